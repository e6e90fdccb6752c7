//! The sequence scheduler: queues each enrolment's next step when it falls due.
//!
//! Safe with several instances of the service: a batch of due enrolments is claimed with
//! `FOR UPDATE SKIP LOCKED`, and each step is queued (`queue::enqueue`) in the same transaction
//! that moves its enrolment on. Either both commit or neither does, and an instance never sees an
//! enrolment another instance holds, so no step is queued twice. The next step's delay counts from
//! when this one was queued, not from when it was due, so a scheduler that was down does not
//! send a burst of catch-up steps back to back.

use std::time::Duration;

use serde::Deserialize;
use sqlx::{PgConnection, PgPool, types::JsonValue};
use tokio::sync::watch;
use uuid::Uuid;

use super::{
    queue::{self, NewMessage},
    sequences::Step,
    template::{self, Values},
};
use crate::messaging::{Channel, factory::wait_or_stop, suppression};

/// Enrolments claimed per transaction: small enough to hold few locks briefly, large enough that
/// a backlog drains in few round trips.
const BATCH: i64 = 100;

/// Queues due steps every `poll` (at once again while there is a backlog) until `stop` turns true.
pub async fn run_scheduler(pool: PgPool, mut stop: watch::Receiver<bool>, poll: Duration) {
    tracing::info!(
        poll_ms = poll.as_millis() as u64,
        "sequence scheduler started"
    );
    loop {
        let backlog = match enqueue_due_steps(&pool, BATCH).await {
            Ok(queued) => queued > 0,
            Err(error) => {
                tracing::warn!(error = %error, "sequence scheduler could not queue due steps; retrying after the poll interval");
                false
            }
        };
        let stopping = if backlog {
            *stop.borrow()
        } else {
            wait_or_stop(&mut stop, poll).await
        };
        if stopping {
            break;
        }
    }
    tracing::info!("sequence scheduler stopped");
}

/// A due enrolment with what its next step needs.
#[derive(sqlx::FromRow)]
struct DueEnrollment {
    id: Uuid,
    practice_id: Uuid,
    patient_id: Uuid,
    next_step: i32,
    /// Decoded per row, so one unreadable sequence stops its own enrolments instead of the batch.
    steps: JsonValue,
    first_name: String,
    last_name: String,
    email: Option<String>,
    phone: Option<String>,
    practice_name: String,
}

/// What becomes of a due enrolment.
enum Outcome {
    /// The step was queued; the next one is due after this delay, or there is none.
    Queued { next_delay_minutes: Option<i32> },
    /// An edit removed the steps this enrolment had still to go.
    Completed { step_count: i32 },
    /// With the reason `sequence_enrollments.stop_reason` keeps.
    Stopped(String),
}

/// `stop_reason` of an enrolment whose stored steps do not decode or render.
const INVALID_STEPS: &str = "invalid_steps";

/// Claims up to `limit` due enrolments of active sequences, queues their next step and moves them
/// on, in one transaction. Returns how many steps were queued.
pub async fn enqueue_due_steps(pool: &PgPool, limit: i64) -> Result<usize, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let due: Vec<DueEnrollment> = sqlx::query_as(
        "select e.id, e.practice_id, e.patient_id, e.next_step, s.steps,
                p.first_name, p.last_name, p.email, p.phone, pr.name as practice_name
         from sequence_enrollments e
         join sequences s on s.id = e.sequence_id
         join patients p on p.id = e.patient_id
         join practices pr on pr.id = e.practice_id
         where e.status = 'active' and e.next_run_at <= now() and s.status = 'active'
         order by e.next_run_at
         limit $1
         for update of e skip locked",
    )
    .bind(limit)
    .fetch_all(&mut *tx)
    .await?;

    let mut queued = 0;
    for enrollment in &due {
        let outcome = advance(&mut tx, enrollment).await?;
        if let Outcome::Stopped(reason) = &outcome {
            tracing::info!(enrollment_id = %enrollment.id, reason = %reason, "sequence enrolment stopped");
        }
        queued += usize::from(matches!(outcome, Outcome::Queued { .. }));
        record(&mut tx, enrollment, &outcome).await?;
    }
    tx.commit().await?;
    Ok(queued)
}

/// Queues the enrolment's next step unless the patient cannot (or must not) receive it.
async fn advance(
    db: &mut PgConnection,
    enrollment: &DueEnrollment,
) -> Result<Outcome, sqlx::Error> {
    let steps = match Vec::<Step>::deserialize(&enrollment.steps) {
        Ok(steps) => steps,
        Err(error) => {
            tracing::error!(enrollment_id = %enrollment.id, error = %error, "sequence steps are unreadable");
            return Ok(Outcome::Stopped(INVALID_STEPS.into()));
        }
    };
    let index = usize::try_from(enrollment.next_step).unwrap_or(usize::MAX);
    let Some(step) = steps.get(index) else {
        return Ok(Outcome::Completed {
            step_count: i32::try_from(steps.len()).unwrap_or(i32::MAX),
        });
    };
    let (address, missing) = match step.channel {
        Channel::Email => (&enrollment.email, "missing_email"),
        Channel::Sms => (&enrollment.phone, "missing_phone"),
    };
    let Some(address) = address else {
        return Ok(Outcome::Stopped(missing.into()));
    };
    // Whether the system or a custom account will send is decided at send time; counting the
    // shared system sender's opt-outs too means never starting a step that may not be sent.
    if let Some(reason) = suppression::check(
        &mut *db,
        enrollment.practice_id,
        step.channel,
        address,
        true,
    )
    .await?
    {
        return Ok(Outcome::Stopped(reason));
    }
    let values = Values {
        first_name: &enrollment.first_name,
        last_name: &enrollment.last_name,
        practice_name: &enrollment.practice_name,
    };
    let render = |text: &str| template::render(text, &values);
    let (subject, body) = match (
        step.subject.as_deref().map(render).transpose(),
        render(&step.body),
    ) {
        (Ok(subject), Ok(body)) => (subject, body),
        (Err(error), _) | (_, Err(error)) => {
            tracing::error!(enrollment_id = %enrollment.id, error = %error, "a stored sequence step does not render");
            return Ok(Outcome::Stopped(INVALID_STEPS.into()));
        }
    };
    queue::enqueue(
        db,
        &NewMessage {
            practice_id: enrollment.practice_id,
            patient_id: Some(enrollment.patient_id),
            channel: step.channel,
            recipient: address.clone(),
            subject,
            body,
            sequence_enrollment_id: Some(enrollment.id),
            sequence_step: Some(enrollment.next_step),
            category: step.category,
        },
    )
    .await?;
    Ok(Outcome::Queued {
        next_delay_minutes: steps.get(index + 1).map(|next| next.delay_minutes),
    })
}

/// Moves the enrolment on; `next_run_at` is cleared when it finishes or stops.
async fn record(
    db: &mut PgConnection,
    enrollment: &DueEnrollment,
    outcome: &Outcome,
) -> Result<(), sqlx::Error> {
    let current = enrollment.next_step;
    let (next_step, status, stop_reason, next_delay) = match outcome {
        Outcome::Queued {
            next_delay_minutes: Some(delay),
        } => (current + 1, "active", None, Some(*delay)),
        Outcome::Queued {
            next_delay_minutes: None,
        } => (current + 1, "completed", None, None),
        Outcome::Completed { step_count } => (*step_count, "completed", None, None),
        Outcome::Stopped(reason) => (current, "stopped", Some(reason.as_str()), None),
    };
    sqlx::query(
        "update sequence_enrollments
         set next_step = $2, status = $3, stop_reason = $4,
             next_run_at = now() + make_interval(mins => $5),
             updated_at = now()
         where id = $1",
    )
    .bind(enrollment.id)
    .bind(next_step)
    .bind(status)
    .bind(stop_reason)
    .bind(next_delay)
    .execute(db)
    .await?;
    Ok(())
}
