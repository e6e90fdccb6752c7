//! The durable send queue: one `send_jobs` row per message, in Postgres.

use chrono::Utc;
use sqlx::PgConnection;
use uuid::Uuid;

use super::status::OutreachStatus;
use crate::{
    compliance::{
        Category, recipient,
        rules::{self, Rule, Verdict},
        segments,
        window::DeferReason,
    },
    messaging::Channel,
};

/// A new outreach log's id: time-ordered (UUIDv7), so that logs written together land in the same
/// index pages (a random id touches a random leaf of the primary key for every insert, and after
/// each checkpoint writes that whole page to the WAL again), and so that a log's time can be read
/// from its id should `outreach_logs` be partitioned by time.
pub fn new_log_id() -> Uuid {
    Uuid::now_v7()
}

/// Workers LISTEN here; a NOTIFY wakes them as soon as work is committed.
pub const QUEUE_CHANNEL: &str = "dentite_send_jobs";

/// A message to record and queue.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub practice_id: Uuid,
    pub patient_id: Option<Uuid>,
    pub channel: Channel,
    pub recipient: String,
    pub subject: Option<String>,
    pub body: String,
    pub sequence_enrollment_id: Option<Uuid>,
    pub sequence_step: Option<i32>,
    pub category: Category,
}

/// What became of a message handed to [`enqueue`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Enqueued {
    pub id: Uuid,
    /// The rule that withheld it: it was logged `suppressed` and never queued.
    pub withheld: Option<Rule>,
}

impl Enqueued {
    /// The log's status as the API reports it.
    pub fn status(&self) -> OutreachStatus {
        if self.withheld.is_some() {
            OutreachStatus::Suppressed
        } else {
            OutreachStatus::Queued
        }
    }
}

/// Decides by the compliance rules, then writes the outreach log and, unless a rule withholds
/// the message, its job, in the caller's transaction, and wakes the workers when that
/// transaction commits. A withheld message is logged `suppressed` with the rule as its error and
/// gets no job: it counts as a message and as nothing else, as one the worker withholds does.
///
/// A windowed message queued outside the recipient's sending window gets its job's `run_at` at
/// the window's next opening, and the log says so (`scheduled_for`, `defer_reason`): the queue's
/// own due-time then holds it back across restarts and instances, with nothing kept in memory.
///
/// The log's insert takes its practice's counts row until commit (see `outreach_counts_add`), so
/// the rules are read first and the writes are one statement, and a caller should enqueue last,
/// right before it commits: the shorter that lock is held, the more messages one practice can
/// queue at once.
pub async fn enqueue(db: &mut PgConnection, message: &NewMessage) -> Result<Enqueued, sqlx::Error> {
    let id = new_log_id();
    // Only the practice's own ledger binds every account; the system sender's opt-outs are
    // checked at hand-over, when it is known which account sends.
    let verdict = rules::decide(
        &mut *db,
        &rules::Message {
            practice_id: message.practice_id,
            patient_id: message.patient_id,
            channel: message.channel,
            address: &message.recipient,
            category: message.category,
            outreach_log_id: None,
        },
        false,
        Utc::now(),
    )
    .await?;
    let withheld = match verdict {
        Verdict::Withhold(rule) => Some(rule),
        Verdict::Send { .. } => None,
    };
    // A withheld message never waits: it has no job.
    let scheduled_for = match withheld {
        Some(_) => None,
        None => recipient::window_for(&mut *db, message.practice_id, message.patient_id)
            .await?
            .defer_until(message.channel, message.category, Utc::now()),
    };
    sqlx::query(
        "with log as (
             insert into outreach_logs (id, practice_id, patient_id, message_type, recipient, subject, body,
                                        sequence_enrollment_id, sequence_step, category, segments, status, error,
                                        scheduled_for, defer_reason)
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, case when $13::text is null then 'queued' else 'suppressed' end, $13,
                     $14, $15)
             returning id, practice_id),
         job as (
             insert into send_jobs (outreach_log_id, practice_id, run_at)
             select id, practice_id, coalesce($14, now()) from log where $13::text is null),
         fairness as (
             insert into send_fairness (practice_id) select practice_id from log where $13::text is null
             on conflict (practice_id) do nothing)
         select pg_notify($12, '') where $13::text is null",
    )
    .bind(id)
    .bind(message.practice_id)
    .bind(message.patient_id)
    .bind(message.channel.as_str())
    .bind(&message.recipient)
    .bind(&message.subject)
    .bind(&message.body)
    .bind(message.sequence_enrollment_id)
    .bind(message.sequence_step)
    .bind(message.category.as_str())
    .bind(
        (message.channel == Channel::Sms)
            .then(|| i32::try_from(segments::analyse(&message.body).segments).unwrap_or(i32::MAX)),
    )
    .bind(QUEUE_CHANNEL)
    .bind(withheld.map(Rule::as_str))
    .bind(scheduled_for)
    .bind(scheduled_for.map(|_| DeferReason::QuietHours.as_str()))
    .execute(&mut *db)
    .await?;
    Ok(Enqueued { id, withheld })
}
