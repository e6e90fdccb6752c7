//! Single messages: `POST /api/outreach/messages`, with idempotency keys.
//!
//! A key is claimed inside the transaction that creates the message, under a transaction-scoped
//! advisory lock: a second request with the same key while the first is in flight is told so
//! (409) instead of waiting, and a key whose first request failed is simply free again.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{
    SUBJECT_MAX_CHARS,
    queue::{self, NewMessage},
    status::OutreachStatus,
};
use crate::{
    compliance::{Category, segments},
    messaging::Channel,
    types::single_line,
};

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SendMessageRequest {
    pub patient_id: Uuid,
    pub channel: Channel,
    pub subject: Option<String>,
    pub body: String,
    /// `care` (the default) or `marketing`.
    #[serde(default, skip_serializing_if = "is_absent")]
    pub category: Option<Category>,
}

/// Keeps the idempotency hash of a request without `category` what it was before the field.
fn is_absent(category: &Option<Category>) -> bool {
    category.is_none()
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct QueuedMessage {
    pub id: Uuid,
    /// `queued`, or `suppressed` when a compliance rule withheld it: the log's `error` names
    /// the rule.
    pub status: OutreachStatus,
}

#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("the patient does not exist")]
    UnknownPatient,
    #[error("this Idempotency-Key is being used by a request still in progress")]
    KeyInProgress,
    #[error("this Idempotency-Key was used with a different request body")]
    KeyReused,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

const MAX_BODY_CHARS: usize = 10_000;

/// The same rule as a sequence step's subject: required, one line, at most
/// `SUBJECT_MAX_CHARS`.
fn email_subject(subject: Option<&str>) -> Result<&str, MessageError> {
    let invalid = |message: String| MessageError::Invalid {
        field: "subject",
        message,
    };
    let subject = subject
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| invalid("an email needs a subject".into()))?;
    if subject.chars().count() > SUBJECT_MAX_CHARS {
        return Err(invalid(format!(
            "must be at most {SUBJECT_MAX_CHARS} characters"
        )));
    }
    single_line(subject).map_err(|problem| invalid(problem.into()))?;
    Ok(subject)
}

/// Validates, records and queues a message; with an idempotency key, the first answer is
/// returned again for the same request.
#[tracing::instrument(skip_all, fields(practice_id = %practice_id))]
pub async fn send(
    pool: &PgPool,
    practice_id: Uuid,
    request: &SendMessageRequest,
    idempotency_key: Option<&str>,
) -> Result<QueuedMessage, MessageError> {
    let body = request.body.trim();
    if body.is_empty() || body.chars().count() > MAX_BODY_CHARS {
        return Err(MessageError::Invalid {
            field: "body",
            message: format!("must be 1 to {MAX_BODY_CHARS} characters"),
        });
    }
    if request.channel == Channel::Sms
        && let Some(message) = segments::over_limit(body)
    {
        return Err(MessageError::Invalid {
            field: "body",
            message,
        });
    }
    let subject = match request.channel {
        Channel::Email => Some(email_subject(request.subject.as_deref())?),
        Channel::Sms => None,
    };

    let mut tx = pool.begin().await?;
    let request_hash = idempotency_key.map(|_| hash_request(request));
    if let (Some(key), Some(hash)) = (idempotency_key, &request_hash) {
        let locked: bool = sqlx::query_scalar(
            "select pg_try_advisory_xact_lock(hashtextextended($1 || ':' || $2, 0))",
        )
        .bind(practice_id.to_string())
        .bind(key)
        .fetch_one(&mut *tx)
        .await?;
        if !locked {
            return Err(MessageError::KeyInProgress);
        }
        let previous: Option<(String, sqlx::types::Json<QueuedMessage>)> = sqlx::query_as(
            "select request_hash, response_body from idempotency_keys where practice_id = $1 and key = $2",
        )
        .bind(practice_id)
        .bind(key)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some((previous_hash, response)) = previous {
            return if &previous_hash == hash {
                Ok(response.0)
            } else {
                Err(MessageError::KeyReused)
            };
        }
    }

    let patient: Option<(Option<String>, Option<String>)> =
        sqlx::query_as("select email, phone from patients where id = $1 and practice_id = $2")
            .bind(request.patient_id)
            .bind(practice_id)
            .fetch_optional(&mut *tx)
            .await?;
    let (email, phone) = patient.ok_or(MessageError::UnknownPatient)?;
    let recipient = match request.channel {
        Channel::Email => email,
        Channel::Sms => phone,
    }
    .ok_or_else(|| MessageError::Invalid {
        field: "channel",
        message: format!(
            "the patient has no {} on file",
            if request.channel == Channel::Email {
                "email address"
            } else {
                "phone number"
            }
        ),
    })?;

    let enqueued = queue::enqueue(
        &mut tx,
        &NewMessage {
            practice_id,
            patient_id: Some(request.patient_id),
            channel: request.channel,
            recipient,
            subject: subject.map(str::to_string),
            body: body.to_string(),
            sequence_enrollment_id: None,
            sequence_step: None,
            category: request.category.unwrap_or_default(),
        },
    )
    .await?;
    let answer = QueuedMessage {
        id: enqueued.id,
        status: enqueued.status(),
    };
    if let (Some(key), Some(hash)) = (idempotency_key, request_hash) {
        sqlx::query(
            "insert into idempotency_keys (practice_id, key, request_hash, response_status, response_body)
             values ($1, $2, $3, 202, $4)",
        )
        .bind(practice_id)
        .bind(key)
        .bind(hash)
        .bind(sqlx::types::Json(&answer))
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(answer)
}

fn hash_request(request: &SendMessageRequest) -> String {
    let canonical = serde_json::to_vec(request).expect("a request serialises");
    hex::encode(Sha256::digest(canonical))
}

/// Retention: deletes at most `limit` idempotency keys stored more than `hours` hours ago (a
/// retry after that is a new message), claimed with `for update skip locked` so several
/// instances purge disjoint rows; returns how many.
pub async fn delete_old_idempotency_keys(
    pool: &PgPool,
    hours: i32,
    limit: i64,
) -> Result<u64, sqlx::Error> {
    crate::db::purge_batch(
        pool,
        "with doomed as (
             select practice_id, key from idempotency_keys
             where created_at < now() - make_interval(hours => $1)
             order by created_at limit $2
             for update skip locked)
         delete from idempotency_keys k using doomed
         where k.practice_id = doomed.practice_id and k.key = doomed.key",
        hours,
        limit,
    )
    .await
}
