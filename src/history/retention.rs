//! Retention: message bodies and subjects are forgotten after `body_days` (the log itself is
//! kept), logs are deleted after `log_days`, provider events after `event_days`, outbox messages
//! after `outbox_days` and idempotency keys after `idempotency_hours`. `0` keeps forever.
//!
//! The job runs at start and then every `interval`, in batches of [`BATCH`] rows, each batch its
//! own short transaction that claims its rows with `for update skip locked`: several instances
//! run it side by side on disjoint rows, nothing holds a lock between batches (so it works behind
//! a transaction-pooling PgBouncer), and a live writer is never waited for.
//!
//! What it does not do: touch a message that may still be sent. A log still `queued` or
//! `sending`, or with a send job left, keeps its body and is not deleted, however old. Deleting
//! logs leaves the outreach counts alone (no trigger fires on delete), so the analytics keep
//! counting purged messages.

use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::watch;

/// Rows per batch: large enough to be efficient, small enough that a batch is a few
/// milliseconds of locks.
pub const BATCH: i64 = 1_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionPolicy {
    pub body_days: u32,
    pub log_days: u32,
    pub event_days: u32,
    pub outbox_days: u32,
    pub idempotency_hours: u32,
    pub interval: Duration,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        Self {
            body_days: 90,
            log_days: 2190,
            event_days: 400,
            outbox_days: 30,
            idempotency_hours: 168,
            interval: Duration::from_secs(3600),
        }
    }
}

/// What one run did, per kind.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Purged {
    /// Logs whose body and subject were set to null.
    pub bodies: u64,
    pub logs: u64,
    pub events: u64,
    pub outbox: u64,
    pub idempotency_keys: u64,
}

/// One kind of purge: its metric label and one batch of it, `$1` the age in the kind's unit and
/// `$2` the batch size.
struct Kind {
    label: &'static str,
    unit: &'static str,
    batch: &'static str,
    tally: fn(&mut Purged) -> &mut u64,
}

const BODIES: Kind = Kind {
    label: "bodies",
    tally: |purged| &mut purged.bodies,
    unit: "days",
    batch: "with doomed as (
                select l.id from outreach_logs l
                where l.body is not null and l.created_at < now() - make_interval(days => $1)
                  and l.status not in ('queued', 'sending')
                  and not exists (select 1 from send_jobs j where j.outreach_log_id = l.id)
                order by l.created_at limit $2
                for update skip locked)
            update outreach_logs l set body = null, subject = null
            from doomed where l.id = doomed.id",
};

const LOGS: Kind = Kind {
    label: "logs",
    tally: |purged| &mut purged.logs,
    unit: "days",
    batch: "with doomed as (
                select l.id from outreach_logs l
                where l.created_at < now() - make_interval(days => $1)
                  and l.status not in ('queued', 'sending')
                  and not exists (select 1 from send_jobs j where j.outreach_log_id = l.id)
                order by l.created_at limit $2
                for update skip locked)
            delete from outreach_logs l using doomed where l.id = doomed.id",
};

const EVENTS: Kind = Kind {
    label: "events",
    tally: |purged| &mut purged.events,
    unit: "days",
    batch: "with doomed as (
                select id from provider_events
                where received_at < now() - make_interval(days => $1)
                order by received_at limit $2
                for update skip locked)
            delete from provider_events e using doomed where e.id = doomed.id",
};

const OUTBOX: Kind = Kind {
    label: "outbox",
    tally: |purged| &mut purged.outbox,
    unit: "days",
    batch: "with doomed as (
                select id from outbox_messages
                where created_at < now() - make_interval(days => $1)
                order by created_at limit $2
                for update skip locked)
            delete from outbox_messages o using doomed where o.id = doomed.id",
};

const IDEMPOTENCY_KEYS: Kind = Kind {
    label: "idempotency_keys",
    tally: |purged| &mut purged.idempotency_keys,
    unit: "hours",
    batch: "with doomed as (
                select practice_id, key from idempotency_keys
                where created_at < now() - make_interval(hours => $1)
                order by created_at limit $2
                for update skip locked)
            delete from idempotency_keys k using doomed
            where k.practice_id = doomed.practice_id and k.key = doomed.key",
};

const METRIC: &str = "retention_purged_rows_total";

impl RetentionPolicy {
    fn kinds(&self) -> [(Kind, u32); 5] {
        [
            (BODIES, self.body_days),
            (LOGS, self.log_days),
            (EVENTS, self.event_days),
            (OUTBOX, self.outbox_days),
            (IDEMPOTENCY_KEYS, self.idempotency_hours),
        ]
    }
}

/// Purges everything past its age, batch by batch, until nothing is left or `stop` flips.
#[tracing::instrument(skip_all)]
pub async fn run_once(
    pool: &PgPool,
    policy: &RetentionPolicy,
    stop: &watch::Receiver<bool>,
) -> Result<Purged, sqlx::Error> {
    let mut purged = Purged::default();
    for (kind, age) in policy.kinds() {
        if age == 0 {
            continue;
        }
        let mut rows = 0;
        loop {
            if *stop.borrow() {
                break;
            }
            let done = sqlx::query(kind.batch)
                .bind(i32::try_from(age).unwrap_or(i32::MAX))
                .bind(BATCH)
                .execute(pool)
                .await?
                .rows_affected();
            rows += done;
            metrics::counter!(METRIC, "kind" => kind.label).increment(done);
            if done < BATCH as u64 {
                break;
            }
            // Let the service's own queries through between batches.
            tokio::task::yield_now().await;
        }
        if rows > 0 {
            tracing::info!(
                kind = kind.label,
                rows,
                age,
                unit = kind.unit,
                "retention purged"
            );
        }
        *(kind.tally)(&mut purged) = rows;
    }
    Ok(purged)
}

/// The background job: a run at start, then one every `policy.interval`, until `stop` flips.
pub async fn run(pool: PgPool, policy: RetentionPolicy, mut stop: watch::Receiver<bool>) {
    // Every kind shows in `/metrics` from the start, at 0 until something is purged.
    for (kind, _) in policy.kinds() {
        metrics::counter!(METRIC, "kind" => kind.label).increment(0);
    }
    loop {
        if let Err(e) = run_once(&pool, &policy, &stop).await {
            tracing::warn!(error = %e, "retention could not run; trying again at the next interval");
        }
        tokio::select! {
            _ = stop.changed() => return,
            () = tokio::time::sleep(policy.interval) => {}
        }
    }
}
