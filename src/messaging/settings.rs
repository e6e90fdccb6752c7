//! The `practices` table, the tenants, and its only writer: a practice as created, its messaging
//! configuration as stored (the choice of account per channel, with its vendor accounts from
//! `practice_accounts`), and the rules that decide which account is usable for each channel.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor, PgPool, Postgres, Transaction};
use uuid::Uuid;

use super::{Channel, MessagingServiceFactory, ProviderKind, accounts::StoredAccounts};
use crate::crypto::CredentialField;

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
    pub email_last_tested_at: Option<DateTime<Utc>>,
    pub sms_last_tested_at: Option<DateTime<Utc>>,
}

/// Practices by name; with `custom_only`, those using an account of their own.
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

/// One row of `practices`, the messaging columns, with the practice's vendor accounts. Secrets
/// are still encrypted here.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PracticeMessagingConfig {
    pub id: Uuid,
    pub name: String,
    pub email_provider: ProviderKind,
    /// Whether the chosen email account's sending domain is verified (SendGrid's domain
    /// authentication); read by the monitoring queries.
    pub email_domain_verified: bool,
    pub email_domain_last_checked_at: Option<DateTime<Utc>>,
    pub email_fallback_enabled: bool,
    pub email_last_tested_at: Option<DateTime<Utc>>,
    pub sms_provider: ProviderKind,
    pub sms_fallback_enabled: bool,
    pub sms_last_tested_at: Option<DateTime<Utc>>,
    pub settings_version: i64,
    /// The practice's accounts of each vendor, in each vendor's own shape.
    #[sqlx(skip)]
    pub accounts: StoredAccounts,
}

const COLUMNS: &str = "id, name, email_provider, email_domain_verified, email_domain_last_checked_at,
    email_fallback_enabled, email_last_tested_at, sms_provider, sms_fallback_enabled, sms_last_tested_at,
    settings_version";

impl PracticeMessagingConfig {
    pub async fn load(db: &PgPool, practice_id: Uuid) -> Result<Option<Self>, sqlx::Error> {
        let mut conn = db.acquire().await?;
        Self::read(&mut conn, practice_id, "").await
    }

    /// The same row, locked for an update in the caller's transaction (which also holds every
    /// write to the practice's accounts, so they are read consistently).
    pub async fn load_for_update(
        db: &mut PgConnection,
        practice_id: Uuid,
    ) -> Result<Option<Self>, sqlx::Error> {
        Self::read(db, practice_id, " for update").await
    }

    async fn read(
        db: &mut PgConnection,
        practice_id: Uuid,
        lock: &str,
    ) -> Result<Option<Self>, sqlx::Error> {
        let row: Option<Self> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "select {COLUMNS} from practices where id = $1{lock}"
        )))
        .bind(practice_id)
        .fetch_optional(&mut *db)
        .await?;
        let Some(mut config) = row else {
            return Ok(None);
        };
        config.accounts = StoredAccounts::load(&mut *db, practice_id).await?;
        Ok(Some(config))
    }

    pub fn wants_custom_email(&self) -> bool {
        self.email_provider.is_custom()
    }

    pub fn wants_custom_sms(&self) -> bool {
        self.sms_provider.is_custom()
    }

    /// The stored envelope of a credential field, whichever of the practice's accounts holds it.
    pub fn envelope(&self, field: CredentialField) -> Option<&str> {
        self.accounts.envelope(field)
    }

    /// The account kind chosen for a channel, as stored.
    pub fn chosen(&self, channel: Channel) -> ProviderKind {
        match channel {
            Channel::Email => self.email_provider,
            Channel::Sms => self.sms_provider,
        }
    }
}

/// The channel on which the `practices_notify_changed` trigger announces, at commit, every change
/// to a practice row (the payload is its id), so every instance drops what it cached.
pub const SETTINGS_CHANNEL: &str = "dentite_practice_settings";

/// Finishes a settings change the caller has already written in `tx`: bumps the version, records
/// who changed which fields, commits (the trigger's notification goes out then), and drops this
/// instance's cache at once instead of waiting for the notification to come back through Postgres.
pub async fn commit_change(
    mut tx: Transaction<'_, Postgres>,
    factory: &MessagingServiceFactory,
    practice_id: Uuid,
    user_id: Option<Uuid>,
    action: crate::audit::AuditAction,
    changed_fields: &[&str],
) -> Result<(), sqlx::Error> {
    sqlx::query("update practices set settings_version = settings_version + 1, updated_at = now() where id = $1")
        .bind(practice_id)
        .execute(&mut *tx)
        .await?;
    crate::audit::record(&mut *tx, practice_id, user_id, action, changed_fields).await?;
    tx.commit().await?;
    factory.invalidate(practice_id).await;
    Ok(())
}

/// Makes `kind` the practice's choice for `channel`, with the fallback setting, in the caller's
/// transaction.
pub async fn choose(
    db: &mut PgConnection,
    practice_id: Uuid,
    channel: Channel,
    kind: ProviderKind,
    fallback_enabled: bool,
) -> Result<(), sqlx::Error> {
    let statement = match channel {
        Channel::Email => {
            "update practices set email_provider = $2, email_fallback_enabled = $3 where id = $1"
        }
        Channel::Sms => {
            "update practices set sms_provider = $2, sms_fallback_enabled = $3 where id = $1"
        }
    };
    sqlx::query(statement)
        .bind(practice_id)
        .bind(kind)
        .bind(fallback_enabled)
        .execute(db)
        .await?;
    Ok(())
}

/// Returns a channel to the platform's accounts, in the caller's transaction, keeping the
/// fallback setting; the email channel forgets its domain's verification with it.
pub async fn return_to_system(
    db: &mut PgConnection,
    practice_id: Uuid,
    channel: Channel,
) -> Result<(), sqlx::Error> {
    let statement = match channel {
        Channel::Email => {
            "update practices set email_provider = $2, email_domain_verified = false,
                 email_domain_last_checked_at = null
             where id = $1"
        }
        Channel::Sms => "update practices set sms_provider = $2 where id = $1",
    };
    sqlx::query(statement)
        .bind(practice_id)
        .bind(ProviderKind::platform_choice(channel))
        .execute(db)
        .await?;
    Ok(())
}

/// Records that a test send through a channel was accepted.
pub async fn record_tested(
    db: impl PgExecutor<'_>,
    practice_id: Uuid,
    channel: Channel,
) -> Result<(), sqlx::Error> {
    let statement = match channel {
        Channel::Email => "update practices set email_last_tested_at = now() where id = $1",
        Channel::Sms => "update practices set sms_last_tested_at = now() where id = $1",
    };
    sqlx::query(statement).bind(practice_id).execute(db).await?;
    Ok(())
}

/// Stores what is known of the email sending domain: whether it is verified and when it was
/// last checked.
pub async fn record_email_domain(
    db: &mut PgConnection,
    practice_id: Uuid,
    verified: bool,
    last_checked_at: Option<DateTime<Utc>>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "update practices set email_domain_verified = $2, email_domain_last_checked_at = $3
         where id = $1",
    )
    .bind(practice_id)
    .bind(verified)
    .bind(last_checked_at)
    .execute(db)
    .await?;
    Ok(())
}

/// A practice whose email domain is due a check, with its last check as it was seen.
#[derive(Debug, Clone, Copy, sqlx::FromRow)]
pub struct DueDomainCheck {
    pub practice_id: Uuid,
    pub last_checked_at: Option<DateTime<Utc>>,
}

/// Claims the domain checks of `due` by moving their last check to now, and returns the
/// practices claimed. A practice whose last check moved since it was seen (another instance
/// claimed it first) is not claimed again, so each is checked once per turn however many
/// instances look.
pub async fn claim_domain_checks(
    pool: &PgPool,
    due: &[DueDomainCheck],
) -> Result<Vec<Uuid>, sqlx::Error> {
    let ids: Vec<Uuid> = due.iter().map(|d| d.practice_id).collect();
    let seen: Vec<Option<DateTime<Utc>>> = due.iter().map(|d| d.last_checked_at).collect();
    sqlx::query_scalar(
        "update practices p set email_domain_last_checked_at = now()
         from unnest($1::uuid[], $2::timestamptz[]) as seen (id, last_checked_at)
         where p.id = seen.id
           and p.email_domain_last_checked_at is not distinct from seen.last_checked_at
         returning p.id",
    )
    .bind(ids)
    .bind(seen)
    .fetch_all(pool)
    .await
}
