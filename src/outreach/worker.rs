//! Send workers: claim due jobs fairly, respect provider rate limits, deliver through the
//! factory, record what happened, and retry transient failures with back-off.
//!
//! Claims are leases (`leased_until`). A worker that dies mid-send leaves its jobs to be taken
//! up again once the lease runs out: delivery is at-least-once, and the window for a duplicate is
//! a crash between the provider accepting a message and the outcome being committed.
//!
//! Fairness: each claim first picks the practice served longest ago (`send_fairness`), then takes
//! a small batch of that practice's due jobs, so one practice's 50,000 recall messages interleave
//! with everybody else's instead of queueing ahead of them.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use sqlx::PgPool;
use tokio::sync::{Notify, watch};
use uuid::Uuid;

use super::{
    queue::QUEUE_CHANNEL,
    rate_limit,
    status::{DeliveryOutcome, OutreachStatus},
    unsubscribe::UnsubscribeLinks,
};
use crate::{
    compliance::{
        Category,
        rules::{self, Rule, Verdict},
    },
    config::QueueSettings,
    messaging::{
        Channel, MessagingServiceFactory, OutgoingMessage, ProviderKind,
        delivery::{Delivery, DeliveryResult},
        factory::wait_or_stop,
    },
};

const CLAIM_BATCH: i64 = 16;

#[derive(Clone)]
pub struct Workers {
    pool: PgPool,
    /// Where the wake-up LISTEN connects: a direct connection, never a transaction pooler.
    listen_pool: PgPool,
    messaging: Arc<MessagingServiceFactory>,
    unsubscribe: Arc<UnsubscribeLinks>,
    settings: QueueSettings,
    wake: Arc<Notify>,
}

/// The final outcome of one job, recorded with the rest of its batch.
struct Outcome {
    job_id: i64,
    outreach_log_id: Uuid,
    log: DeliveryOutcome,
}

impl Outcome {
    fn failed_unsent(job: &ClaimedJob, error: String) -> Self {
        Self::new(job, DeliveryOutcome::failed_unsent(error))
    }

    /// A compliance rule withholds the message: no provider is asked.
    fn withheld(job: &ClaimedJob, rule: Rule) -> Self {
        Self::new(job, DeliveryOutcome::withheld(rule))
    }

    fn new(job: &ClaimedJob, log: DeliveryOutcome) -> Self {
        Self {
            job_id: job.job_id,
            outreach_log_id: job.outreach_log_id,
            log,
        }
    }
}

#[derive(sqlx::FromRow)]
struct ClaimedJob {
    job_id: i64,
    attempts: i32,
    first_queued_at: chrono::DateTime<chrono::Utc>,
    outreach_log_id: Uuid,
    practice_id: Uuid,
    patient_id: Option<Uuid>,
    status: OutreachStatus,
    message_type: String,
    category: Category,
    recipient: String,
    subject: Option<String>,
    /// Null once retention purged it; retention never purges a message still to be sent, but a
    /// row changed by hand must not go out blank.
    body: Option<String>,
}

impl Workers {
    pub fn new(
        pool: PgPool,
        messaging: Arc<MessagingServiceFactory>,
        unsubscribe: Arc<UnsubscribeLinks>,
        settings: QueueSettings,
    ) -> Self {
        Self {
            listen_pool: pool.clone(),
            pool,
            messaging,
            unsubscribe,
            settings,
            wake: Arc::new(Notify::new()),
        }
    }

    /// Listens for wake-ups on `pool` instead of the query pool (which may be a pooler).
    pub fn listening_on(mut self, pool: PgPool) -> Self {
        self.listen_pool = pool;
        self
    }

    /// Starts the NOTIFY listener and `settings.workers` workers; all stop when `stop` flips.
    pub fn spawn(self, stop: watch::Receiver<bool>) -> Vec<tokio::task::JoinHandle<()>> {
        let mut tasks = vec![tokio::spawn(self.clone().listen(stop.clone()))];
        for _ in 0..self.settings.workers.max(1) {
            tasks.push(tokio::spawn(self.clone().work(stop.clone())));
        }
        tasks
    }

    async fn listen(self, mut stop: watch::Receiver<bool>) {
        loop {
            let mut listener = match crate::db::listen(&self.listen_pool, QUEUE_CHANNEL).await {
                Ok(listener) => listener,
                Err(e) => {
                    tracing::warn!(error = %e, "send queue listener cannot connect; workers poll meanwhile");
                    if wait_or_stop(&mut stop, Duration::from_secs(2)).await {
                        return;
                    }
                    continue;
                }
            };
            loop {
                tokio::select! {
                    _ = stop.changed() => return,
                    notification = listener.recv() => match notification {
                        Ok(_) => self.wake.notify_waiters(),
                        Err(_) => break,
                    }
                }
            }
        }
    }

    async fn work(self, mut stop: watch::Receiver<bool>) {
        while !*stop.borrow() {
            match self.run_once().await {
                Ok(0) => {
                    tokio::select! {
                        _ = stop.changed() => {}
                        () = self.wake.notified() => {}
                        () = tokio::time::sleep(self.settings.poll_interval) => {}
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "send worker cannot reach the database; pausing");
                    if wait_or_stop(
                        &mut stop,
                        self.settings.poll_interval.max(Duration::from_millis(500)),
                    )
                    .await
                    {
                        return;
                    }
                }
            }
        }
    }

    /// Claims one batch and processes it; returns how many jobs it handled. The batch's messages
    /// are sent concurrently (each waits mostly on its provider's answer) and their outcomes
    /// recorded together in one statement.
    pub async fn run_once(&self) -> Result<usize, sqlx::Error> {
        let jobs = self.claim().await?;
        let count = jobs.len();
        // Every send runs to its end even if another fails: none may be cut off after the
        // provider accepted it.
        let results =
            futures::future::join_all(jobs.into_iter().map(|job| self.process(job))).await;
        let mut outcomes = Vec::with_capacity(count);
        let mut first_error = None;
        for result in results {
            match result {
                Ok(Some(outcome)) => outcomes.push(outcome),
                Ok(None) => {}
                Err(e) => first_error = first_error.or(Some(e)),
            }
        }
        self.finish_despite_outage(&outcomes).await?;
        first_error.map_or(Ok(count), Err)
    }

    async fn claim(&self) -> Result<Vec<ClaimedJob>, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let practice: Option<Uuid> = sqlx::query_scalar(
            "update send_fairness set last_served_at = clock_timestamp()
             where practice_id = (
                 select f.practice_id from send_fairness f
                 where exists (select 1 from send_jobs j
                               where j.practice_id = f.practice_id and j.run_at <= now()
                                 and (j.leased_until is null or j.leased_until < now()))
                 order by f.last_served_at
                 limit 1
                 for update skip locked)
             returning practice_id",
        )
        .fetch_optional(&mut *tx)
        .await?;
        // When the practice due next is being claimed by another worker, take the oldest due
        // work of anyone else rather than idling until the next poll.
        let practice = match practice {
            Some(practice) => Some(practice),
            None => {
                sqlx::query_scalar(
                    "select practice_id from send_jobs
                 where run_at <= now() and (leased_until is null or leased_until < now())
                 order by run_at limit 1 for update skip locked",
                )
                .fetch_optional(&mut *tx)
                .await?
            }
        };
        let Some(practice_id) = practice else {
            return Ok(Vec::new());
        };
        let jobs: Vec<ClaimedJob> = sqlx::query_as(
            "with claimed as (
                 update send_jobs set leased_until = now() + make_interval(secs => $3), attempts = attempts + 1
                 where id in (select id from send_jobs
                              where practice_id = $1 and run_at <= now() and (leased_until is null or leased_until < now())
                              order by run_at, id limit $2 for update skip locked)
                 returning id, attempts, created_at, outreach_log_id
             ), sending as (
                 update outreach_logs l set status = 'sending', updated_at = now()
                 from claimed where l.id = claimed.outreach_log_id and l.status = 'queued'
             )
             select c.id as job_id, c.attempts, c.created_at as first_queued_at, l.id as outreach_log_id,
                    l.practice_id, l.patient_id, l.status, l.message_type, l.category, l.recipient, l.subject, l.body
             from claimed c join outreach_logs l on l.id = c.outreach_log_id",
        )
        .bind(practice_id)
        .bind(CLAIM_BATCH)
        .bind(self.settings.lease.as_secs_f64())
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(jobs)
    }

    /// Sends one job's message; returns its final outcome, or `None` when the job was
    /// rescheduled or had nothing to send.
    async fn process(&self, job: ClaimedJob) -> Result<Option<Outcome>, sqlx::Error> {
        if !matches!(job.status, OutreachStatus::Queued | OutreachStatus::Sending) {
            // The message already has an outcome (a job re-run after a crash): nothing to send.
            sqlx::query("delete from send_jobs where id = $1")
                .bind(job.job_id)
                .execute(&self.pool)
                .await?;
            return Ok(None);
        }
        let Some(body) = job.body.clone() else {
            return Ok(Some(Outcome::failed_unsent(
                &job,
                "the message body was purged by retention; nothing was sent".into(),
            )));
        };
        let channel = Channel::parse(&job.message_type).unwrap_or(Channel::Email);
        if self.hold_for_window(&job, channel).await? {
            return Ok(None);
        }
        // Sequence steps are checked as templates; only the filled-in text shows whether a
        // long name pushed it past what Twilio accepts, and sending it would only be refused.
        if channel == Channel::Sms
            && let Some(why) = crate::compliance::segments::over_limit(&body)
        {
            return Ok(Some(Outcome::failed_unsent(
                &job,
                format!("the SMS with its placeholders filled in {why}; nothing was sent"),
            )));
        }
        let postal_address = match self.compliance(&job, channel).await? {
            Verdict::Send { postal_address } => postal_address,
            Verdict::Withhold(rule) => return Ok(Some(Outcome::withheld(&job, rule))),
        };
        let route = match self.messaging.route(job.practice_id, channel).await {
            Ok(route) => route,
            // Retrying cannot help until the practice re-enters the credential: say so on the
            // message instead of keeping it queued behind an error nobody sees.
            Err(crate::messaging::factory::FactoryError::Decrypt { field, .. }) => {
                return Ok(Some(Outcome::failed_unsent(
                    &job,
                    format!("not sent: {}", field.unreadable_message()),
                )));
            }
            Err(e) => {
                tracing::error!(error = %e, job = job.job_id, "cannot build the practice's senders; retrying later");
                self.retry_later(&job, &e.to_string(), None).await?;
                return Ok(None);
            }
        };
        if let Some((account, rate)) = route
            .primary()
            .account_key()
            .zip(self.rate_for(route.primary().kind()))
            && let Some(wait) = rate_limit::try_acquire(&self.pool, account, rate).await?
        {
            // Not a failure: give the attempt back and come back when a token is there.
            self.postpone(&job, wait).await?;
            return Ok(None);
        }
        let message = self.message(&job, channel, body, postal_address.as_deref());
        let final_attempt = job.attempts >= self.settings.max_attempts
            || chrono::Utc::now() - job.first_queued_at
                >= chrono::Duration::from_std(self.settings.retry_horizon).unwrap_or_default();
        let delivery = match self.messaging.deliver(&message, final_attempt).await {
            Ok(delivery) => delivery,
            Err(e) => {
                tracing::warn!(error = %e, job = job.job_id, "delivery could not run; retrying later");
                self.retry_later(&job, &e.to_string(), None).await?;
                return Ok(None);
            }
        };
        match &delivery.result {
            DeliveryResult::Failed {
                error,
                retryable: true,
            } if !final_attempt => {
                let advised = match error {
                    crate::messaging::ProviderError::RateLimited { retry_after } => *retry_after,
                    _ => None,
                };
                self.record_attempt(&job, &delivery).await?;
                self.retry_later(&job, &error.to_string(), advised).await?;
                Ok(None)
            }
            _ => Ok(Some(Outcome::new(&job, DeliveryOutcome::of(&delivery)))),
        }
    }

    /// The provider has acted, so the outcome must be recorded: while the database is away, keep
    /// trying until the lease would let another worker resend it.
    async fn finish_despite_outage(&self, outcomes: &[Outcome]) -> Result<(), sqlx::Error> {
        if outcomes.is_empty() {
            return Ok(());
        }
        let deadline = tokio::time::Instant::now() + self.settings.lease;
        loop {
            match self.finish(outcomes).await {
                Err(e)
                    if crate::db::is_unavailable(&e) && tokio::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                outcome => return outcome,
            }
        }
    }

    fn rate_for(&self, kind: ProviderKind) -> Option<f64> {
        super::rate_limit::rate_for(&self.settings, kind)
    }

    /// The compliance rules, again at hand-over: consent may have been withdrawn, a cap reached
    /// or the postal address removed since the message was queued.
    async fn compliance(&self, job: &ClaimedJob, channel: Channel) -> Result<Verdict, sqlx::Error> {
        let mut db = self.pool.acquire().await?;
        rules::decide(
            &mut db,
            &rules::Message {
                practice_id: job.practice_id,
                patient_id: job.patient_id,
                channel,
                address: &job.recipient,
                category: job.category,
                outreach_log_id: Some(job.outreach_log_id),
            },
            false,
            chrono::Utc::now(),
        )
        .await
    }

    /// The message as handed over; a marketing email ends with its CAN-SPAM footer.
    fn message(
        &self,
        job: &ClaimedJob,
        channel: Channel,
        body: String,
        postal_address: Option<&str>,
    ) -> OutgoingMessage {
        let mut body = body;
        let headers = match channel {
            Channel::Email => {
                let url = self.unsubscribe.url(job.practice_id, &job.recipient);
                if let Some(address) = postal_address {
                    body = rules::with_can_spam_footer(&body, address, &url);
                }
                BTreeMap::from([
                    ("List-Unsubscribe".to_string(), format!("<{url}>")),
                    (
                        "List-Unsubscribe-Post".to_string(),
                        "List-Unsubscribe=One-Click".to_string(),
                    ),
                ])
            }
            Channel::Sms => BTreeMap::new(),
        };
        OutgoingMessage {
            outreach_log_id: job.outreach_log_id,
            practice_id: job.practice_id,
            channel,
            to: job.recipient.clone(),
            subject: job.subject.clone(),
            body,
            headers,
        }
    }

    /// The final outcome: the log gets its status, provider and reasons; the job is done.
    async fn finish(&self, outcomes: &[Outcome]) -> Result<(), sqlx::Error> {
        // Status only moves forward: a webhook may already have reported delivery.
        sqlx::query(
            "with done as (delete from send_jobs where id = any($1))
             update outreach_logs l set
                 status = case when l.status in ('queued', 'sending') then o.status else l.status end,
                 messaging_provider = o.provider, provider_message_id = coalesce(o.message_id, l.provider_message_id),
                 handed_over_at = case when o.status = 'sent' then now() else l.handed_over_at end,
                 fallback_reason = o.fallback_reason, error = o.error, updated_at = now()
             from unnest($2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[])
                 as o(id, status, provider, message_id, fallback_reason, error)
             where l.id = o.id",
        )
        .bind(outcomes.iter().map(|o| o.job_id).collect::<Vec<_>>())
        .bind(outcomes.iter().map(|o| o.outreach_log_id).collect::<Vec<_>>())
        .bind(outcomes.iter().map(|o| o.log.status.as_str()).collect::<Vec<_>>())
        .bind(
            outcomes
                .iter()
                .map(|o| o.log.provider.map(ProviderKind::as_str))
                .collect::<Vec<_>>(),
        )
        .bind(outcomes.iter().map(|o| o.log.provider_message_id.as_deref()).collect::<Vec<_>>())
        .bind(outcomes.iter().map(|o| o.log.fallback_reason.as_deref()).collect::<Vec<_>>())
        .bind(outcomes.iter().map(|o| o.log.error.as_deref()).collect::<Vec<_>>())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Keeps what the failed attempt tells (provider tried, reason) while the message waits.
    async fn record_attempt(
        &self,
        job: &ClaimedJob,
        delivery: &Delivery,
    ) -> Result<(), sqlx::Error> {
        let DeliveryResult::Failed { error, .. } = &delivery.result else {
            return Ok(());
        };
        sqlx::query(
            "update outreach_logs set status = 'queued', messaging_provider = $2, fallback_reason = $3,
                 error = $4, updated_at = now()
             where id = $1 and status in ('queued', 'sending')",
        )
        .bind(job.outreach_log_id)
        .bind(delivery.provider.map(ProviderKind::as_str))
        .bind(&delivery.fallback_reason)
        .bind(error.to_string())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Exponential back-off with jitter (×0.5 to ×1.5), or the provider's advised delay if longer.
    async fn retry_later(
        &self,
        job: &ClaimedJob,
        reason: &str,
        advised: Option<Duration>,
    ) -> Result<(), sqlx::Error> {
        let exponent = u32::try_from(job.attempts.saturating_sub(1))
            .unwrap_or(0)
            .min(16);
        let backoff = self
            .settings
            .retry_base
            .saturating_mul(1 << exponent)
            .mul_f64(0.5 + rand::random::<f64>());
        let delay = advised.map_or(backoff, |advised| advised.max(backoff));
        sqlx::query(
            "update send_jobs set run_at = now() + make_interval(secs => $2), leased_until = null, last_error = $3
             where id = $1",
        )
        .bind(job.job_id)
        .bind(delay.as_secs_f64())
        .bind(reason)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Re-checks the recipient's window at hand-over, with the zone and settings as they are now:
    /// a retry's back-off can land in the night, and a patient's zone or the practice's window
    /// can have changed since enqueue. Outside it, the job waits for the next opening without
    /// counting an attempt, and the log says until when. Returns whether it was held.
    async fn hold_for_window(
        &self,
        job: &ClaimedJob,
        channel: Channel,
    ) -> Result<bool, sqlx::Error> {
        let mut db = self.pool.acquire().await?;
        let Some(until) =
            crate::compliance::recipient::window_for(&mut db, job.practice_id, job.patient_id)
                .await?
                .defer_until(channel, job.category, chrono::Utc::now())
        else {
            return Ok(false);
        };
        sqlx::query(
            "with job as (
                 update send_jobs set run_at = $2, leased_until = null, attempts = attempts - 1
                 where id = $1
             )
             update outreach_logs set status = 'queued', scheduled_for = $2, defer_reason = $4, updated_at = now()
             where id = $3 and status in ('queued', 'sending')",
        )
        .bind(job.job_id)
        .bind(until)
        .bind(job.outreach_log_id)
        .bind(crate::compliance::window::DeferReason::QuietHours.as_str())
        .execute(&mut *db)
        .await?;
        Ok(true)
    }

    async fn postpone(&self, job: &ClaimedJob, wait: Duration) -> Result<(), sqlx::Error> {
        sqlx::query(
            "with job as (
                 update send_jobs set run_at = now() + make_interval(secs => $2), leased_until = null, attempts = attempts - 1
                 where id = $1
             )
             update outreach_logs set status = 'queued', updated_at = now() where id = $3 and status = 'sending'",
        )
        .bind(job.job_id)
        .bind(wait.as_secs_f64())
        .bind(job.outreach_log_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
