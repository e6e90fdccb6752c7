//! Practices: the tenants.

use sqlx::PgPool;
use uuid::Uuid;

use crate::messaging::ProviderKind;

#[derive(Debug, thiserror::Error)]
pub enum PracticeError {
    #[error("a practice name must be 1 to 200 characters")]
    InvalidName,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

pub async fn create(pool: &PgPool, name: &str) -> Result<Uuid, PracticeError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(PracticeError::InvalidName);
    }
    let id = Uuid::new_v4();
    sqlx::query("insert into practices (id, name) values ($1, $2)")
        .bind(id)
        .bind(name)
        .execute(pool)
        .await?;
    Ok(id)
}

/// A practice's messaging set-up at a glance, for platform operators.
#[derive(Debug, serde::Serialize, utoipa::ToSchema, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct MessagingSummary {
    pub id: Uuid,
    pub name: String,
    pub email_provider: ProviderKind,
    pub sms_provider: ProviderKind,
    pub email_domain_verified: bool,
    pub email_last_tested_at: Option<chrono::DateTime<chrono::Utc>>,
    pub sms_last_tested_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// Practices by name; with `custom_only`, those using their own SendGrid or Twilio account.
pub async fn messaging_summaries(
    pool: &PgPool,
    custom_only: bool,
    limit: i64,
    offset: i64,
) -> Result<Vec<MessagingSummary>, sqlx::Error> {
    sqlx::query_as(
        "select id, name, email_provider, sms_provider, email_domain_verified, email_last_tested_at, sms_last_tested_at
         from practices
         where not $1 or email_provider = any($4) or sms_provider = any($4)
         order by name, id
         limit $2 offset $3",
    )
    .bind(custom_only)
    .bind(limit)
    .bind(offset)
    .bind(ProviderKind::custom_names())
    .fetch_all(pool)
    .await
}
