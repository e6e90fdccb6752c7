//! The settings audit log: who changed which of a practice's messaging settings, and when.
//!
//! Entries name the fields that changed, never their values, so the log can be shown to every
//! owner and admin of the practice without revealing a credential.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgExecutor, PgPool};
use utoipa::ToSchema;
use uuid::Uuid;

/// What a change was, as `audit_log.action` keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema, sqlx::Type)]
#[sqlx(type_name = "text")]
pub enum AuditAction {
    #[serde(rename = "email.update")]
    #[sqlx(rename = "email.update")]
    EmailUpdate,
    #[serde(rename = "email.delete")]
    #[sqlx(rename = "email.delete")]
    EmailDelete,
    /// A test send proved the account's sender (Postmark).
    #[serde(rename = "email.confirm")]
    #[sqlx(rename = "email.confirm")]
    EmailConfirm,
    #[serde(rename = "email.domain.set_up")]
    #[sqlx(rename = "email.domain.set_up")]
    EmailDomainSetUp,
    #[serde(rename = "email.domain.verify")]
    #[sqlx(rename = "email.domain.verify")]
    EmailDomainVerify,
    #[serde(rename = "email.domain.delete")]
    #[sqlx(rename = "email.domain.delete")]
    EmailDomainDelete,
    #[serde(rename = "sms.update")]
    #[sqlx(rename = "sms.update")]
    SmsUpdate,
    #[serde(rename = "sms.delete")]
    #[sqlx(rename = "sms.delete")]
    SmsDelete,
    #[serde(rename = "sms.confirm")]
    #[sqlx(rename = "sms.confirm")]
    SmsConfirm,
    #[serde(rename = "suppression.lift")]
    #[sqlx(rename = "suppression.lift")]
    SuppressionLift,
}

/// Appends one entry. `user_id` is `None` for changes the service makes by itself (the
/// background domain re-check).
pub async fn record(
    db: impl PgExecutor<'_>,
    practice_id: Uuid,
    user_id: Option<Uuid>,
    action: AuditAction,
    changed_fields: &[&str],
) -> Result<(), sqlx::Error> {
    sqlx::query("insert into audit_log (practice_id, user_id, action, changed_fields) values ($1, $2, $3, $4)")
        .bind(practice_id)
        .bind(user_id)
        .bind(action)
        .bind(changed_fields)
        .execute(db)
        .await?;
    Ok(())
}

#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    pub id: i64,
    /// `null` when the service itself made the change (a domain verified in the background), or
    /// the user has since been deleted.
    pub user_id: Option<Uuid>,
    pub user_email: Option<String>,
    pub action: AuditAction,
    /// Names of the settings that changed, as the API spells them; never their values.
    pub changed_fields: Vec<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditPage {
    /// Newest first.
    pub entries: Vec<AuditEntry>,
    /// Pass as `cursor` for the next (older) page; absent on the last page.
    pub next_cursor: Option<i64>,
}

/// A page of a practice's entries, newest first, older than `cursor` when given. Ids only grow,
/// so keyset paging by id is stable while new entries arrive.
#[tracing::instrument(skip_all, fields(practice_id = %practice_id))]
pub async fn list(
    pool: &PgPool,
    practice_id: Uuid,
    cursor: Option<i64>,
    limit: i64,
) -> Result<AuditPage, sqlx::Error> {
    let mut entries: Vec<AuditEntry> = sqlx::query_as(
        "select a.id, a.user_id, u.email as user_email, a.action, a.changed_fields, a.created_at
         from audit_log a left join users u on u.id = a.user_id
         where a.practice_id = $1 and ($2::bigint is null or a.id < $2)
         order by a.id desc
         limit $3",
    )
    .bind(practice_id)
    .bind(cursor)
    .bind(limit + 1)
    .fetch_all(pool)
    .await?;
    let next_cursor = if entries.len() as i64 > limit {
        entries.truncate(limit as usize);
        entries.last().map(|e| e.id)
    } else {
        None
    };
    Ok(AuditPage {
        entries,
        next_cursor,
    })
}
