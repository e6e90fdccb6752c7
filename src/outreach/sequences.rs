//! Sequences: named, ordered steps sent to each enrolled patient, one after another.
//!
//! A step waits `delayMinutes` after the previous step was queued (after enrolment, for the first
//! step). Templates are checked when a sequence is saved, so the scheduler only meets templates
//! that render. Changing the steps of a sequence with patients part-way through continues them at
//! the same step index in the new list. Pausing holds every enrolment where it is; resuming sends
//! what fell due meanwhile. Deleting a sequence deletes its enrolments, while the outreach logs
//! of steps already queued stay.
//!
//! An enrolment is `active`, `completed`, or `stopped` with a reason: `removed`, `missing_email`,
//! `missing_phone`, `invalid_steps`, or the suppression-ledger reason (`unsubscribed`,
//! `opted_out`, `bounced`, `spam_reported`, `invalid`) that stopped it.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgExecutor, PgPool};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{
    OutreachError, SUBJECT_MAX_CHARS, delete_one, finish, required_line, required_text, template,
};
use crate::{
    compliance::Category,
    messaging::{
        Channel, ProviderKind,
        suppression::{self, Suppression},
    },
    page::{NewestFirst, Page, PageRequest},
    types::FieldErrors,
};

const NAME_MAX_CHARS: usize = 200;
const MAX_STEPS: usize = 50;
/// A year: longer gaps are more likely typos (minutes for days) than plans.
const MAX_DELAY_MINUTES: i64 = 365 * 24 * 60;
const EMAIL_BODY_MAX_CHARS: usize = 100_000;
/// Twilio refuses longer bodies (ten concatenated segments).
const SMS_BODY_MAX_CHARS: usize = 1_600;
const MAX_PATIENTS_PER_ENROLMENT: usize = 1_000;

/// Why the scheduler or a user stopped an enrolment, as `sequence_enrollments.stop_reason` keeps it.
pub const STOPPED_REMOVED: &str = "removed";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SequenceStatus {
    Active,
    Paused,
}

impl SequenceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Paused => "paused",
        }
    }

    fn parse(value: &str) -> Result<Self, &'static str> {
        match value.trim() {
            "active" => Ok(Self::Active),
            "paused" => Ok(Self::Paused),
            _ => Err("must be \"active\" or \"paused\""),
        }
    }
}

impl TryFrom<String> for SequenceStatus {
    type Error = &'static str;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

/// One step, as stored in `sequences.steps` and returned by the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Step {
    pub channel: Channel,
    /// Minutes after the previous step was queued; for the first step, after enrolment.
    pub delay_minutes: i32,
    /// Email steps only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    pub body: String,
    /// `care` or `marketing`; steps stored before categories existed are care.
    #[serde(default)]
    pub category: Category,
}

#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct Sequence {
    pub id: Uuid,
    pub name: String,
    #[sqlx(try_from = "String")]
    pub status: SequenceStatus,
    #[sqlx(json)]
    pub steps: Vec<Step>,
    #[sqlx(flatten)]
    pub enrollments: EnrollmentCounts,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// How many patients are part-way through, finished, or stopped.
#[derive(Debug, Clone, Copy, Serialize, ToSchema, sqlx::FromRow)]
pub struct EnrollmentCounts {
    pub active: i64,
    pub completed: i64,
    pub stopped: i64,
}

/// Selected by every query returning a [`Sequence`], from `sequences s`.
macro_rules! sequence_select {
    () => {
        "select s.id, s.name, s.status, s.steps, s.created_at, s.updated_at, c.active, c.completed, c.stopped
         from sequences s
         cross join lateral (
             select count(*) filter (where e.status = 'active') as active,
                    count(*) filter (where e.status = 'completed') as completed,
                    count(*) filter (where e.status = 'stopped') as stopped
             from sequence_enrollments e where e.sequence_id = s.id
         ) c "
    };
}

/// A sequence to create, or a change to one (absent fields are kept). Read loosely, so that every
/// problem is reported at once.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SequenceFields {
    /// Required when creating.
    pub name: Option<String>,
    /// `active` (the default) or `paused`.
    #[schema(value_type = Option<SequenceStatus>)]
    pub status: Option<String>,
    /// Required when creating; a change replaces every step.
    pub steps: Option<Vec<StepFields>>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StepFields {
    #[schema(value_type = Channel, required = true)]
    pub channel: Option<String>,
    /// 0 to 525600 (a year).
    #[schema(value_type = i64, required = true, minimum = 0, maximum = 525_600)]
    pub delay_minutes: Option<i64>,
    /// Required for email steps, refused for SMS steps.
    pub subject: Option<String>,
    /// May use `{{firstName}}`, `{{lastName}}` and `{{practiceName}}`.
    #[schema(value_type = String, required = true)]
    pub body: Option<String>,
    /// `care` (appointment and recall reminders; the default) or `marketing` (benefit
    /// reminders, promotions, reactivation), which the consent and CAN-SPAM rules apply to.
    pub category: Option<Category>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SequenceQuery {
    /// Page size, 1 to 100 (default 50).
    #[param(value_type = Option<i64>)]
    pub limit: Option<String>,
    /// `nextCursor` of the previous page.
    pub cursor: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnrollmentRequest {
    /// 1 to 1000 patients of the practice.
    #[schema(value_type = Vec<Uuid>, required = true)]
    pub patient_ids: Option<Vec<Uuid>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnrollmentOutcome {
    /// Newly enrolled, or re-enrolled after being stopped (they start again at the first step).
    pub enrolled: u64,
    /// Already active or completed: left as they were.
    pub already_enrolled: u64,
}

/// Where an enrolment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema, sqlx::Type)]
#[serde(rename_all = "lowercase")]
#[sqlx(type_name = "text", rename_all = "lowercase")]
pub enum EnrollmentStatus {
    /// Part-way through: `nextStep` is queued at `nextRunAt` (held while the sequence is paused).
    Active,
    /// Every step was queued.
    Completed,
    /// Ended early: `stopReason` says why.
    Stopped,
}

impl EnrollmentStatus {
    const ALL: [Self; 3] = [Self::Active, Self::Completed, Self::Stopped];

    fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Completed => "completed",
            Self::Stopped => "stopped",
        }
    }
}

/// One patient's enrolment in a sequence.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct Enrollment {
    pub patient_id: Uuid,
    pub first_name: String,
    pub last_name: String,
    pub status: EnrollmentStatus,
    /// Index (from 0) of the next step to queue; the step count once completed.
    pub next_step: i32,
    /// When the next step is queued; absent once the enrolment ended.
    pub next_run_at: Option<DateTime<Utc>>,
    /// Why it stopped: `removed`, `missing_email`, `missing_phone`, `invalid_steps`, or the
    /// suppression that stopped it (`unsubscribed`, `opted_out`, `bounced`, `spam_reported`,
    /// `invalid`).
    pub stop_reason: Option<String>,
    /// When the patient was enrolled (or enrolled again after being stopped: then `updatedAt`).
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EnrollmentQuery {
    /// Only enrolments in this state.
    #[param(value_type = Option<EnrollmentStatus>)]
    pub status: Option<String>,
    /// Page size, 1 to 100 (default 50).
    #[param(value_type = Option<i64>)]
    pub limit: Option<String>,
    /// `nextCursor` of the previous page.
    pub cursor: Option<String>,
}

struct ValidSequence {
    name: String,
    status: SequenceStatus,
    steps: Vec<Step>,
}

impl SequenceFields {
    /// The sequence these fields describe, taking what they leave out from `current` when
    /// changing one.
    fn validate(&self, current: Option<&Sequence>) -> Result<ValidSequence, OutreachError> {
        let mut errors = FieldErrors::new();
        let name = match (&self.name, current) {
            (None, Some(current)) => Some(current.name.clone()),
            (name, _) => required_line(&mut errors, "name", name.as_deref(), NAME_MAX_CHARS),
        };
        let status = match (&self.status, current) {
            (Some(status), _) => errors.check("status", SequenceStatus::parse(status)),
            (None, Some(current)) => Some(current.status),
            (None, None) => Some(SequenceStatus::Active),
        };
        let steps = match (&self.steps, current) {
            (None, Some(current)) => Some(current.steps.clone()),
            (steps, _) => validate_steps(&mut errors, steps.as_deref()),
        };
        match (name, status, steps) {
            (Some(name), Some(status), Some(steps)) if errors.is_empty() => Ok(ValidSequence {
                name,
                status,
                steps,
            }),
            _ => Err(OutreachError::Invalid(errors)),
        }
    }
}

fn validate_steps(errors: &mut FieldErrors, steps: Option<&[StepFields]>) -> Option<Vec<Step>> {
    let Some(steps) = steps else {
        errors.add("steps", "is required");
        return None;
    };
    if steps.is_empty() || steps.len() > MAX_STEPS {
        errors.add("steps", format!("must have 1 to {MAX_STEPS} steps"));
        return None;
    }
    // Validate every step before giving up, so all their errors are reported.
    let steps: Vec<Option<Step>> = steps
        .iter()
        .enumerate()
        .map(|(i, step)| step.validate(errors, i))
        .collect();
    steps.into_iter().collect()
}

impl StepFields {
    fn validate(&self, errors: &mut FieldErrors, index: usize) -> Option<Step> {
        let field = |name: &str| format!("steps[{index}].{name}");
        let channel = match self.channel.as_deref() {
            None => {
                errors.add(&field("channel"), "is required");
                None
            }
            Some(text) => errors.check(
                &field("channel"),
                Channel::parse(text.trim()).ok_or("must be \"email\" or \"sms\""),
            ),
        };
        let delay_minutes = match self.delay_minutes {
            None => {
                errors.add(&field("delayMinutes"), "is required");
                None
            }
            Some(minutes) => errors.check(
                &field("delayMinutes"),
                i32::try_from(minutes)
                    .ok()
                    .filter(|m| (0..=MAX_DELAY_MINUTES).contains(&i64::from(*m)))
                    .ok_or_else(|| {
                        format!("must be from 0 to {MAX_DELAY_MINUTES} minutes (a year)")
                    }),
            ),
        };
        let body_max = if channel == Some(Channel::Sms) {
            SMS_BODY_MAX_CHARS
        } else {
            EMAIL_BODY_MAX_CHARS
        };
        let body = required_text(errors, &field("body"), self.body.as_deref(), body_max)
            .and_then(|body| with_known_placeholders(errors, &field("body"), body));
        let subject = match channel {
            Some(Channel::Email) => required_line(
                errors,
                &field("subject"),
                self.subject.as_deref(),
                SUBJECT_MAX_CHARS,
            )
            .and_then(|subject| with_known_placeholders(errors, &field("subject"), subject))
            .map(Some),
            Some(Channel::Sms)
                if self
                    .subject
                    .as_deref()
                    .is_some_and(|s| !s.trim().is_empty()) =>
            {
                errors.add(&field("subject"), "SMS steps have no subject; leave it out");
                None
            }
            _ => Some(None),
        };
        Some(Step {
            channel: channel?,
            delay_minutes: delay_minutes?,
            subject: subject?,
            body: body?,
            category: self.category.unwrap_or_default(),
        })
    }
}

fn with_known_placeholders(errors: &mut FieldErrors, field: &str, text: String) -> Option<String> {
    errors.check(field, template::check(&text)).map(|()| text)
}

async fn fetch(
    db: impl PgExecutor<'_>,
    practice_id: Uuid,
    id: Uuid,
) -> Result<Sequence, OutreachError> {
    sqlx::query_as(concat!(
        sequence_select!(),
        "where s.id = $1 and s.practice_id = $2"
    ))
    .bind(id)
    .bind(practice_id)
    .fetch_optional(db)
    .await?
    .ok_or(OutreachError::NotFound("sequence"))
}

#[tracing::instrument(skip_all, fields(practice_id = %practice_id))]
pub async fn get(pool: &PgPool, practice_id: Uuid, id: Uuid) -> Result<Sequence, OutreachError> {
    fetch(pool, practice_id, id).await
}

#[tracing::instrument(skip_all, fields(practice_id = %practice_id))]
pub async fn create(
    pool: &PgPool,
    practice_id: Uuid,
    fields: &SequenceFields,
) -> Result<Sequence, OutreachError> {
    let sequence = fields.validate(None)?;
    let id = Uuid::new_v4();
    sqlx::query(
        "insert into sequences (id, practice_id, name, status, steps) values ($1, $2, $3, $4, $5)",
    )
    .bind(id)
    .bind(practice_id)
    .bind(&sequence.name)
    .bind(sequence.status.as_str())
    .bind(sqlx::types::Json(&sequence.steps))
    .execute(pool)
    .await?;
    fetch(pool, practice_id, id).await
}

/// Newest first.
#[tracing::instrument(skip_all, fields(practice_id = %practice_id))]
pub async fn list(
    pool: &PgPool,
    practice_id: Uuid,
    query: &SequenceQuery,
) -> Result<Page<Sequence>, OutreachError> {
    let errors = FieldErrors::new();
    let page =
        PageRequest::<NewestFirst>::parse(errors, query.limit.as_deref(), query.cursor.as_deref())
            .map_err(OutreachError::Invalid)?;
    let after = page.after.as_ref();
    let rows: Vec<Sequence> = sqlx::query_as(concat!(
        sequence_select!(),
        "where s.practice_id = $1 and ($2::timestamptz is null or (s.created_at, s.id) < ($2, $3))
         order by s.created_at desc, s.id desc
         limit $4"
    ))
    .bind(practice_id)
    .bind(after.map(|key| key.0))
    .bind(after.map(|key| key.1))
    .bind(page.fetch_limit())
    .fetch_all(pool)
    .await?;
    Ok(page.page(rows, |s| (s.created_at, s.id)))
}

/// Applies a change under a row lock, so concurrent changes do not undo each other.
#[tracing::instrument(skip_all, fields(practice_id = %practice_id))]
pub async fn update(
    pool: &PgPool,
    practice_id: Uuid,
    id: Uuid,
    fields: &SequenceFields,
) -> Result<Sequence, OutreachError> {
    let mut tx = pool.begin().await?;
    sqlx::query("select 1 from sequences where id = $1 and practice_id = $2 for update")
        .bind(id)
        .bind(practice_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(OutreachError::NotFound("sequence"))?;
    let current = fetch(&mut *tx, practice_id, id).await?;
    let sequence = fields.validate(Some(&current))?;
    sqlx::query(
        "update sequences set name = $2, status = $3, steps = $4, updated_at = now() where id = $1",
    )
    .bind(id)
    .bind(&sequence.name)
    .bind(sequence.status.as_str())
    .bind(sqlx::types::Json(&sequence.steps))
    .execute(&mut *tx)
    .await?;
    let updated = fetch(&mut *tx, practice_id, id).await?;
    tx.commit().await?;
    Ok(updated)
}

/// Deletes the sequence and its enrolments; logs of steps already queued stay.
#[tracing::instrument(skip_all, fields(practice_id = %practice_id))]
pub async fn delete(pool: &PgPool, practice_id: Uuid, id: Uuid) -> Result<(), OutreachError> {
    delete_one(
        pool,
        "delete from sequences where id = $1 and practice_id = $2",
        id,
        practice_id,
        "sequence",
    )
    .await
}

/// Enrols patients of the practice, all or none: an unknown patient fails the whole request.
/// Enrolling an active or completed patient again changes nothing, so a client may safely repeat
/// a request; a stopped enrolment starts again from the first step.
#[tracing::instrument(skip_all, fields(practice_id = %practice_id))]
pub async fn enroll(
    pool: &PgPool,
    practice_id: Uuid,
    sequence_id: Uuid,
    request: &EnrollmentRequest,
) -> Result<EnrollmentOutcome, OutreachError> {
    let mut errors = FieldErrors::new();
    let patient_ids = match request.patient_ids.as_deref() {
        None => {
            errors.add("patientIds", "is required");
            &[][..]
        }
        Some(ids) if ids.is_empty() || ids.len() > MAX_PATIENTS_PER_ENROLMENT => {
            errors.add(
                "patientIds",
                format!("must list 1 to {MAX_PATIENTS_PER_ENROLMENT} patients"),
            );
            &[][..]
        }
        Some(ids) => ids,
    };
    finish(errors)?;

    let mut tx = pool.begin().await?;
    // Held until commit, so the sequence cannot be deleted half-way through.
    let first_delay: i32 = sqlx::query_scalar(
        "select (steps -> 0 ->> 'delayMinutes')::int from sequences where id = $1 and practice_id = $2 for share",
    )
    .bind(sequence_id)
    .bind(practice_id)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(OutreachError::NotFound("sequence"))?;
    let known: BTreeSet<Uuid> = sqlx::query_scalar::<_, Uuid>(
        "select id from patients where practice_id = $1 and id = any($2)",
    )
    .bind(practice_id)
    .bind(patient_ids)
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .collect();
    let mut errors = FieldErrors::new();
    for (index, id) in patient_ids.iter().enumerate() {
        if !known.contains(id) {
            errors.add(
                &format!("patientIds[{index}]"),
                "no such patient in this practice",
            );
        }
    }
    finish(errors)?;

    let patients: Vec<Uuid> = known.into_iter().collect();
    let changed = sqlx::query(
        "insert into sequence_enrollments (id, sequence_id, practice_id, patient_id, next_run_at)
         select gen_random_uuid(), $1, $2, patient_id, now() + make_interval(mins => $4)
         from unnest($3::uuid[]) as patient_id
         on conflict (sequence_id, patient_id) do update
             set status = 'active', next_step = 0, stop_reason = null,
                 next_run_at = excluded.next_run_at, updated_at = now()
             where sequence_enrollments.status = 'stopped'",
    )
    .bind(sequence_id)
    .bind(practice_id)
    .bind(&patients)
    .bind(first_delay)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    Ok(EnrollmentOutcome {
        enrolled: changed,
        already_enrolled: patients.len() as u64 - changed,
    })
}

/// The sequence's enrolments, newest first, optionally of one state.
#[tracing::instrument(skip_all, fields(practice_id = %practice_id))]
pub async fn enrollments(
    pool: &PgPool,
    practice_id: Uuid,
    sequence_id: Uuid,
    query: &EnrollmentQuery,
) -> Result<Page<Enrollment>, OutreachError> {
    let mut errors = FieldErrors::new();
    let status = query
        .status
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .and_then(|wanted| {
            errors.check(
                "status",
                EnrollmentStatus::ALL
                    .into_iter()
                    .find(|s| s.as_str() == wanted)
                    .ok_or("must be one of active, completed, stopped"),
            )
        });
    let page =
        PageRequest::<NewestFirst>::parse(errors, query.limit.as_deref(), query.cursor.as_deref())
            .map_err(OutreachError::Invalid)?;
    fetch(pool, practice_id, sequence_id).await?;
    let after = page.after.as_ref();
    let rows: Vec<Enrollment> = sqlx::query_as(
        "select e.patient_id, p.first_name, p.last_name, e.status, e.next_step, e.next_run_at,
                e.stop_reason, e.created_at, e.updated_at
         from sequence_enrollments e
         join patients p on p.id = e.patient_id
         where e.sequence_id = $1 and e.practice_id = $2
           and ($3::text is null or e.status = $3)
           and ($4::timestamptz is null or (e.created_at, e.patient_id) < ($4, $5))
         order by e.created_at desc, e.patient_id desc
         limit $6",
    )
    .bind(sequence_id)
    .bind(practice_id)
    .bind(status)
    .bind(after.map(|key| key.0))
    .bind(after.map(|key| key.1))
    .bind(page.fetch_limit())
    .fetch_all(pool)
    .await?;
    Ok(page.page(rows, |e| (e.created_at, e.patient_id)))
}

/// Stops a patient's enrolment: nothing more of the sequence is queued for them. Stopping one
/// that already ended changes nothing; a patient never enrolled (or not of this practice) is
/// not found.
#[tracing::instrument(skip_all, fields(practice_id = %practice_id))]
pub async fn remove_enrollment(
    pool: &PgPool,
    practice_id: Uuid,
    sequence_id: Uuid,
    patient_id: Uuid,
) -> Result<(), OutreachError> {
    let found = sqlx::query(
        "update sequence_enrollments
         set stop_reason = case when status = 'active' then $4 else stop_reason end,
             next_run_at = case when status = 'active' then null else next_run_at end,
             updated_at = case when status = 'active' then now() else updated_at end,
             status = case when status = 'active' then 'stopped' else status end
         where practice_id = $1 and sequence_id = $2 and patient_id = $3",
    )
    .bind(practice_id)
    .bind(sequence_id)
    .bind(patient_id)
    .bind(STOPPED_REMOVED)
    .execute(pool)
    .await?;
    if found.rows_affected() == 0 {
        return Err(OutreachError::NotFound("enrollment"));
    }
    Ok(())
}

/// Stops the active enrolments of patients at each entry's address, who must receive no further
/// steps: in the entry's practice, or, for the shared system sender, in every practice that
/// sends that channel from the platform's accounts. The stop reason is the entry's.
pub async fn stop_enrolments_at(
    db: &mut sqlx::PgConnection,
    entries: &[Suppression],
) -> Result<(), sqlx::Error> {
    let stop = sqlx::query(
        "update sequence_enrollments e
         set status = 'stopped', stop_reason = s.reason, updated_at = now()
         from unnest($1::uuid[], $2::text[], $3::text[], $4::text[]) as s(practice_id, channel, address, reason),
              patients p, practices pr
         where e.status = 'active' and p.id = e.patient_id and pr.id = e.practice_id
           and (e.practice_id = s.practice_id
                or (s.practice_id is null and case s.channel
                        when 'email' then pr.email_provider <> all($5)
                        else pr.sms_provider <> all($5) end))
           and case s.channel when 'email' then lower(p.email) = s.address else p.phone = s.address end",
    );
    suppression::bind_entries(stop, entries)
        .bind(ProviderKind::custom_names())
        .execute(db)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(channel: &str, delay: i64, subject: Option<&str>, body: &str) -> StepFields {
        StepFields {
            channel: Some(channel.into()),
            delay_minutes: Some(delay),
            subject: subject.map(Into::into),
            body: Some(body.into()),
            category: None,
        }
    }

    fn errors_of(fields: &SequenceFields) -> Vec<String> {
        match fields.validate(None) {
            Err(OutreachError::Invalid(errors)) => errors.fields().map(String::from).collect(),
            Err(other) => panic!("unexpected {other}"),
            Ok(_) => panic!("expected a validation error"),
        }
    }

    #[test]
    fn a_valid_sequence_is_active_by_default_and_trimmed() {
        let fields = SequenceFields {
            name: Some(" Recall ".into()),
            steps: Some(vec![
                step(
                    "email",
                    0,
                    Some("Hi {{firstName}}"),
                    "From {{practiceName}}",
                ),
                step("sms", 1440, None, "{{ lastName }}"),
            ]),
            ..Default::default()
        };
        let valid = fields.validate(None).unwrap();
        assert_eq!(
            (valid.name.as_str(), valid.status),
            ("Recall", SequenceStatus::Active)
        );
        assert_eq!(
            valid.steps[1],
            Step {
                channel: Channel::Sms,
                delay_minutes: 1440,
                subject: None,
                body: "{{ lastName }}".into(),
                category: Category::Care,
            }
        );
    }

    #[test]
    fn each_bad_step_field_is_named_by_its_index() {
        let fields = SequenceFields {
            name: Some("Recall".into()),
            status: Some("running".into()),
            steps: Some(vec![
                step("email", 0, None, "Hi {{dob}}"),
                step("fax", -1, None, ""),
                step("sms", 525_601, Some("Subject"), "x"),
                step("email", 0, Some("{{firstName"), "ok"),
                step("email", 0, Some("Hi\r\nBcc: all"), "ok"),
            ]),
        };
        assert_eq!(
            errors_of(&fields),
            [
                "status",
                "steps[0].body",
                "steps[0].subject",
                "steps[1].body",
                "steps[1].channel",
                "steps[1].delayMinutes",
                "steps[2].delayMinutes",
                "steps[2].subject",
                "steps[3].subject",
                "steps[4].subject",
            ]
        );
    }

    #[test]
    fn creating_needs_a_name_and_steps_but_changing_keeps_them() {
        assert_eq!(errors_of(&SequenceFields::default()), ["name", "steps"]);
        assert_eq!(
            errors_of(&SequenceFields {
                steps: Some(vec![]),
                ..Default::default()
            }),
            ["name", "steps"]
        );
        let current = Sequence {
            id: Uuid::nil(),
            name: "Recall".into(),
            status: SequenceStatus::Active,
            steps: vec![Step {
                channel: Channel::Sms,
                delay_minutes: 5,
                subject: None,
                body: "Hi".into(),
                category: Category::Care,
            }],
            enrollments: EnrollmentCounts {
                active: 0,
                completed: 0,
                stopped: 0,
            },
            created_at: Utc::now(),
            updated_at: Utc::now(),
        };
        let paused = SequenceFields {
            status: Some("paused".into()),
            ..Default::default()
        }
        .validate(Some(&current))
        .unwrap();
        assert_eq!(
            (paused.name, paused.status, paused.steps),
            (current.name, SequenceStatus::Paused, current.steps)
        );
    }
}
