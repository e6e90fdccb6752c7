//! A practice's messaging configuration as stored, and the rules that decide which account is
//! usable for each channel.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool, Postgres, Transaction};
use uuid::Uuid;

use super::{Channel, MessagingServiceFactory, ProviderKind, accounts::StoredAccounts};
use crate::crypto::CredentialField;

/// One row of `practices`, the messaging columns only. Secrets are still encrypted here.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PracticeMessagingConfig {
    pub id: Uuid,
    pub name: String,
    pub email_provider: ProviderKind,
    pub sendgrid_api_key: Option<String>,
    pub sendgrid_from_email: Option<String>,
    pub sendgrid_from_name: Option<String>,
    pub sendgrid_domain: Option<String>,
    pub sendgrid_domain_subdomain: Option<String>,
    pub sendgrid_domain_id: Option<i64>,
    pub sendgrid_domain_records: sqlx::types::JsonValue,
    pub sendgrid_domain_created_at: Option<DateTime<Utc>>,
    pub email_domain_verified: bool,
    pub email_domain_last_checked_at: Option<DateTime<Utc>>,
    pub sendgrid_webhook_verify_key: Option<String>,
    pub sendgrid_webhook_id: Option<String>,
    pub email_fallback_enabled: bool,
    pub email_last_tested_at: Option<DateTime<Utc>>,
    pub sms_provider: ProviderKind,
    pub twilio_account_sid: Option<String>,
    pub twilio_auth_token: Option<String>,
    pub twilio_phone_number: Option<String>,
    pub sms_fallback_enabled: bool,
    pub sms_last_tested_at: Option<DateTime<Utc>>,
    /// Our webhook answers HELP/INFO on the practice's own number (Twilio answers them too).
    pub sms_help_reply_enabled: bool,
    pub settings_version: i64,
    /// The practice's accounts of vendors without columns here.
    #[sqlx(skip)]
    pub accounts: StoredAccounts,
}

const COLUMNS: &str = "id, name, email_provider, sendgrid_api_key, sendgrid_from_email, sendgrid_from_name,
    sendgrid_domain, sendgrid_domain_subdomain, sendgrid_domain_id, sendgrid_domain_records, sendgrid_domain_created_at,
    email_domain_verified, email_domain_last_checked_at, sendgrid_webhook_verify_key, sendgrid_webhook_id,
    email_fallback_enabled, email_last_tested_at, sms_provider, twilio_account_sid, twilio_auth_token,
    twilio_phone_number, sms_fallback_enabled, sms_last_tested_at, sms_help_reply_enabled, settings_version";

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

    /// The stored envelope of a credential column.
    pub fn envelope(&self, field: CredentialField) -> Option<&str> {
        match field {
            CredentialField::SendGridApiKey => self.sendgrid_api_key.as_deref(),
            CredentialField::TwilioAccountSid => self.twilio_account_sid.as_deref(),
            CredentialField::TwilioAuthToken => self.twilio_auth_token.as_deref(),
            CredentialField::MailgunApiKey
            | CredentialField::MailgunWebhookSigningKey
            | CredentialField::PostmarkServerToken
            | CredentialField::PostmarkWebhookPassword
            | CredentialField::TelnyxApiKey => self.accounts.envelope(field),
        }
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
