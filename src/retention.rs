//! Retention, the job: message bodies and subjects are forgotten after `body_days` (the log itself is
//! kept), logs are deleted after `log_days`, provider events after `event_days`, outbox messages
//! after `outbox_days` and idempotency keys after `idempotency_hours`. `0` keeps forever.
//!
//! Each table's owner purges its own rows ([`crate::outreach::logs::forget_old_bodies`] and the
//! like); this module decides when, how much at a time, and counts it.
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

use sqlx::PgPool;
use tokio::sync::watch;

pub use crate::config::RetentionPolicy;

/// Rows per batch: large enough to be efficient, small enough that a batch is a few
/// milliseconds of locks.
pub const BATCH: i64 = 1_000;

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

/// One kind of purge, in the order a run makes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Bodies,
    Logs,
    Events,
    Outbox,
    IdempotencyKeys,
}

impl Kind {
    const ALL: [Self; 5] = [
        Self::Bodies,
        Self::Logs,
        Self::Events,
        Self::Outbox,
        Self::IdempotencyKeys,
    ];

    /// Its metric label.
    fn label(self) -> &'static str {
        match self {
            Self::Bodies => "bodies",
            Self::Logs => "logs",
            Self::Events => "events",
            Self::Outbox => "outbox",
            Self::IdempotencyKeys => "idempotency_keys",
        }
    }

    fn unit(self) -> &'static str {
        match self {
            Self::IdempotencyKeys => "hours",
            _ => "days",
        }
    }

    /// The age past which its rows go, in its unit; `0` keeps them forever.
    fn age(self, policy: &RetentionPolicy) -> u32 {
        match self {
            Self::Bodies => policy.body_days,
            Self::Logs => policy.log_days,
            Self::Events => policy.event_days,
            Self::Outbox => policy.outbox_days,
            Self::IdempotencyKeys => policy.idempotency_hours,
        }
    }

    fn tally(self, purged: &mut Purged) -> &mut u64 {
        match self {
            Self::Bodies => &mut purged.bodies,
            Self::Logs => &mut purged.logs,
            Self::Events => &mut purged.events,
            Self::Outbox => &mut purged.outbox,
            Self::IdempotencyKeys => &mut purged.idempotency_keys,
        }
    }

    /// One batch, by the table's owner; returns how many rows it purged.
    async fn batch(self, pool: &PgPool, age: i32) -> Result<u64, sqlx::Error> {
        match self {
            Self::Bodies => crate::outreach::logs::forget_old_bodies(pool, age, BATCH).await,
            Self::Logs => crate::outreach::logs::delete_old(pool, age, BATCH).await,
            Self::Events => crate::webhooks::events::delete_old(pool, age, BATCH).await,
            Self::Outbox => crate::providers::outbox::delete_old(pool, age, BATCH).await,
            Self::IdempotencyKeys => {
                crate::outreach::messages::delete_old_idempotency_keys(pool, age, BATCH).await
            }
        }
    }
}

const METRIC: &str = "retention_purged_rows_total";

/// Purges everything past its age, batch by batch, until nothing is left or `stop` flips.
#[tracing::instrument(skip_all)]
pub async fn run_once(
    pool: &PgPool,
    policy: &RetentionPolicy,
    stop: &watch::Receiver<bool>,
) -> Result<Purged, sqlx::Error> {
    let mut purged = Purged::default();
    for kind in Kind::ALL {
        let age = kind.age(policy);
        if age == 0 {
            continue;
        }
        let mut rows = 0;
        loop {
            if *stop.borrow() {
                break;
            }
            let done = kind
                .batch(pool, i32::try_from(age).unwrap_or(i32::MAX))
                .await?;
            rows += done;
            metrics::counter!(METRIC, "kind" => kind.label()).increment(done);
            if done < BATCH as u64 {
                break;
            }
            // Let the service's own queries through between batches.
            tokio::task::yield_now().await;
        }
        if rows > 0 {
            tracing::info!(
                kind = kind.label(),
                rows,
                age,
                unit = kind.unit(),
                "retention purged"
            );
        }
        *kind.tally(&mut purged) = rows;
    }
    Ok(purged)
}

/// The background job: a run at start, then one every `policy.interval`, until `stop` flips.
pub async fn run(pool: PgPool, policy: RetentionPolicy, mut stop: watch::Receiver<bool>) {
    // Every kind shows in `/metrics` from the start, at 0 until something is purged.
    for kind in Kind::ALL {
        metrics::counter!(METRIC, "kind" => kind.label()).increment(0);
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
