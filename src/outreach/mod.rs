//! Outreach: patients, single messages and sequences, sent through the durable queue; the
//! outreach logs and the numbers drawn from them.
//!
//! Every function here is scoped to one practice by an explicit `practice_id`: a row of another
//! practice is indistinguishable from a row that does not exist.

pub mod activity;
pub mod analytics;
pub mod logs;
pub mod messages;
pub mod opt_outs;
pub mod patients;
pub mod queue;
pub mod rate_limit;
pub mod scheduler;
pub mod sequences;
pub mod status;
pub mod template;
pub mod unsubscribe;
pub mod worker;

use sqlx::PgPool;
use uuid::Uuid;

use crate::types::FieldErrors;

/// What the outreach operations refuse. One enum for the whole domain: its modules fail in the
/// same three ways, and the HTTP layer maps them in one place.
#[derive(Debug, thiserror::Error)]
pub enum OutreachError {
    /// Input that cannot be accepted, by field (`firstName`, `steps[2].body`, `since`…).
    #[error("invalid input: {0:?}")]
    Invalid(FieldErrors),
    /// The named thing does not exist in the caller's practice.
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Runs a `delete` of one row by id (`$1`) and practice (`$2`); no such row of the practice is
/// `what` not found.
async fn delete_one(
    pool: &PgPool,
    statement: &'static str,
    id: Uuid,
    practice_id: Uuid,
    what: &'static str,
) -> Result<(), OutreachError> {
    let deleted = sqlx::query(statement)
        .bind(id)
        .bind(practice_id)
        .execute(pool)
        .await?;
    if deleted.rows_affected() == 0 {
        return Err(OutreachError::NotFound(what));
    }
    Ok(())
}

/// `Ok(())` when nothing was recorded, so validation can end with `finish(errors)?`.
fn finish(errors: FieldErrors) -> Result<(), OutreachError> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(OutreachError::Invalid(errors))
    }
}

/// Email subjects, ad hoc or a sequence step's: RFC 5322's line length.
const SUBJECT_MAX_CHARS: usize = 998;

/// A required one-line text (a name, a subject), trimmed. Line breaks and other control
/// characters are refused: such values end up in email headers and list views.
fn required_line(
    errors: &mut FieldErrors,
    field: &str,
    value: Option<&str>,
    max_chars: usize,
) -> Option<String> {
    let line = required_text(errors, field, value, max_chars)?;
    if let Err(problem) = crate::types::single_line(&line) {
        errors.add(field, problem);
        return None;
    }
    Some(line)
}

/// A required piece of text, trimmed: records why it is missing, blank or too long.
fn required_text(
    errors: &mut FieldErrors,
    field: &str,
    value: Option<&str>,
    max_chars: usize,
) -> Option<String> {
    let Some(value) = value else {
        errors.add(field, "is required");
        return None;
    };
    let value = value.trim();
    if value.is_empty() {
        errors.add(field, "must not be blank");
        None
    } else if value.chars().count() > max_chars {
        errors.add(field, format!("must be at most {max_chars} characters"));
        None
    } else {
        Some(value.to_string())
    }
}
