//! What a practice manager's settings page does: read the messaging configuration with secrets
//! masked, change or erase each channel's account, check credentials with the provider before
//! they are saved, send test messages and report each channel's state.
//!
//! Requests arrive loosely typed and are parsed here into value types, every bad field collected
//! into one [`FieldErrors`], including the rules that depend on what is stored (a custom account
//! without a stored or given credential). New credentials are checked with the provider before
//! anything is written; each write is one transaction with its audit entry and change
//! notification ([`commit_change`]). Nothing here knows HTTP: `api::settings` maps
//! [`SettingsError`] to statuses.

mod channel;
pub mod domain;
mod email;
mod sms;
mod status;

use crate::audit::AuditAction;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use sqlx::{PgPool, Postgres, Transaction};
use utoipa::ToSchema;
use uuid::Uuid;

pub use crate::providers::sendgrid::settings::EmailValidation;
pub use crate::providers::twilio::settings::SmsValidation;
pub(crate) use channel::account_settings;
pub(crate) use channel::refuse_other_vendors;
pub use channel::{AccountSettings, ChannelRoutes};
pub use channel::{delete, update, validate};
pub use email::{EmailRoutes, EmailSettingsRequest, EmailValidationRequest};
pub use sms::{SmsRoutes, SmsSettingsRequest, SmsValidationRequest};
pub use status::{
    ChannelStatus, MessagingStatus, TestSendRequest, TestSendResult, UsageCounts, send_test, status,
};

use self::domain::DomainState;
pub(crate) use crate::messaging::settings::commit_change;
use crate::messaging::{
    Channel, MessagingServiceFactory, ProviderError, ProviderKind,
    factory::FactoryError,
    settings::{self, PracticeMessagingConfig},
};
use crate::{
    auth::PracticeCaller,
    config::Settings,
    crypto::{CredentialField, CryptoError, Keyring},
    providers::{
        Vendor, mailgun::settings::MailgunSettingsView, postmark::settings::PostmarkSettingsView,
        sendgrid::SendGridAccount, telnyx::settings::TelnyxSettingsView, twilio::TwilioAccount,
    },
    types::FieldErrors,
};

/// What the settings operations use of the running service: the database, the keyring that
/// seals the practices' secrets, the factory (vendor clients, our URLs, its cache to invalidate)
/// and the configuration. Cheap to clone: each part is shared.
#[derive(Clone)]
pub struct SettingsContext {
    pub pool: PgPool,
    pub keyring: Arc<Keyring>,
    pub messaging: Arc<MessagingServiceFactory>,
    pub settings: Arc<Settings>,
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("the request has invalid fields")]
    Invalid(FieldErrors),
    #[error(transparent)]
    Provider(#[from] ProviderFailure),
    /// Another change was committed while this one was being checked with the provider; saving
    /// would silently undo it.
    #[error("the settings were changed meanwhile; reload them and try again")]
    ConcurrentChange,
    /// The account's send rate or the practice's hourly test-send quota is used up.
    #[error("too many test sends; try again in {} s", retry_after.as_secs().max(1))]
    TestSendLimited { retry_after: std::time::Duration },
    /// A stored credential no longer decrypts: the practice must enter it again.
    #[error("{}", .0.unreadable_message())]
    UnreadableCredential(CredentialField),
    /// The token names a practice that has since been deleted.
    #[error("the practice no longer exists")]
    UnknownPractice,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// Postgres could not be reached to read the practice's settings.
    #[error("the database is unavailable: {0}")]
    DatabaseUnavailable(Arc<sqlx::Error>),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<FactoryError> for SettingsError {
    fn from(error: FactoryError) -> Self {
        match error {
            FactoryError::UnknownPractice(_) => Self::UnknownPractice,
            FactoryError::Decrypt {
                practice_id,
                field,
                source,
            } => {
                tracing::error!(%practice_id, field = field.stored_name(), error = %source, "a stored credential cannot be decrypted");
                Self::UnreadableCredential(field)
            }
            FactoryError::Database(e) if crate::db::is_unavailable(&e) => {
                Self::DatabaseUnavailable(e)
            }
            other => Self::Internal(
                anyhow::Error::new(other)
                    .context("could not read the practice's messaging settings"),
            ),
        }
    }
}

/// What a provider said about something the practice gave us (a credential, a number, a domain).
#[derive(Debug, thiserror::Error)]
pub enum ProviderFailure {
    /// The provider said no: the practice must fix it. Nothing was saved.
    #[error("{message}")]
    Rejected {
        field: Option<&'static str>,
        message: String,
    },
    /// The provider could not be asked (down, 5xx, timeout, rate limited). Nothing was saved.
    #[error("{0}")]
    Unavailable(String),
}

impl ProviderFailure {
    /// Refusals become `Rejected` prefixed with `refusal` and naming `field`; anything transient
    /// becomes `Unavailable`, worded so the practice knows to retry rather than to fix.
    pub fn classify(
        error: ProviderError,
        provider: &str,
        field: Option<&'static str>,
        refusal: &str,
    ) -> Self {
        match error {
            ProviderError::Unavailable { message } => {
                Self::Unavailable(format!("{message}; nothing was changed, try again shortly"))
            }
            ProviderError::RateLimited { .. } => Self::Unavailable(format!(
                "{provider} is rate limiting requests; nothing was changed, try again in a minute"
            )),
            ProviderError::AccountRejected { message }
            | ProviderError::BadRequest { message }
            | ProviderError::RecipientRejected { message, .. } => Self::Rejected {
                field,
                message: format!("{refusal}: {message}"),
            },
        }
    }

    pub fn rejected(field: &'static str, message: impl Into<String>) -> Self {
        Self::Rejected {
            field: Some(field),
            message: message.into(),
        }
    }
}

/// A practice's whole messaging configuration, secrets masked.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessagingSettings {
    pub email: EmailSettings,
    pub sms: SmsSettings,
    /// Goes up with every change.
    pub settings_version: i64,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EmailSettings {
    /// `system_sendgrid`, `custom_sendgrid`, `custom_mailgun` or `custom_postmark`.
    pub provider: ProviderKind,
    pub sendgrid_api_key_configured: bool,
    pub sendgrid_api_key_last4: Option<String>,
    pub from_email: Option<String>,
    pub from_name: Option<String>,
    /// Whether a failing custom account may hand messages to the system account.
    pub fallback_enabled: bool,
    pub webhook_verify_key_configured: bool,
    /// The id of the event webhook this service created in the practice's SendGrid account.
    pub event_webhook_id: Option<String>,
    /// Where the practice's SendGrid account must post its events.
    pub webhook_url: String,
    pub domain: Option<DomainState>,
    pub last_tested_at: Option<DateTime<Utc>>,
    /// Why the chosen custom account cannot send yet (mail then goes through the system account).
    pub custom_blocker: Option<String>,
    /// The practice's own Postmark server, as stored.
    pub postmark: PostmarkSettingsView,
    /// The practice's own Mailgun domain, as stored.
    pub mailgun: MailgunSettingsView,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SmsSettings {
    /// `system_twilio`, `custom_twilio` or `custom_telnyx`.
    pub provider: ProviderKind,
    pub twilio_account_sid_configured: bool,
    pub twilio_account_sid_last4: Option<String>,
    pub twilio_auth_token_configured: bool,
    pub twilio_auth_token_last4: Option<String>,
    pub phone_number: Option<String>,
    pub fallback_enabled: bool,
    pub last_tested_at: Option<DateTime<Utc>>,
    pub custom_blocker: Option<String>,
    /// Whether Dentite answers HELP/INFO texted to the practice's own Twilio number (the reply
    /// names the practice and its contact). Off by default, because Twilio answers them itself.
    pub help_reply_enabled: bool,
    /// The practice's own Telnyx account, as stored.
    pub telnyx: TelnyxSettingsView,
}

/// The answer to a change: the configuration as saved, and what the practice should know or do
/// next (a Twilio trial account, an event webhook to paste).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SettingsUpdate {
    pub settings: MessagingSettings,
    pub notes: Vec<String>,
}

#[tracing::instrument(skip_all, fields(practice_id = %practice_id))]
pub async fn view(
    ctx: &SettingsContext,
    practice_id: Uuid,
) -> Result<MessagingSettings, SettingsError> {
    let config = ctx.messaging.config(practice_id).await?;
    MessagingSettings::new(ctx, &config)
}

impl MessagingSettings {
    fn new(ctx: &SettingsContext, config: &PracticeMessagingConfig) -> Result<Self, SettingsError> {
        // The page must still open on a credential that no longer decrypts: it is where the
        // practice enters it again. The secret shows as stored but unreadable, and the channel's
        // blocker says what to do.
        let read = |field| match masked(&ctx.keyring, config, field) {
            Ok(last4) => Ok(StoredSecret {
                configured: last4.is_some(),
                last4,
                unreadable: None,
            }),
            Err(SettingsError::UnreadableCredential(field)) => Ok(StoredSecret {
                configured: true,
                last4: None,
                unreadable: Some(field.unreadable_message()),
            }),
            Err(other) => Err(other),
        };
        let (sid, token) = (
            read(CredentialField::TwilioAccountSid)?,
            read(CredentialField::TwilioAuthToken)?,
        );
        let api_key = read(CredentialField::SendGridApiKey)?;
        let telnyx_key = read(CredentialField::TelnyxApiKey)?;
        let postmark_token = read(CredentialField::PostmarkServerToken)?;
        let mailgun_key = read(CredentialField::MailgunApiKey)?;
        let sms_blocker = sid
            .unreadable
            .clone()
            .or_else(|| token.unreadable.clone())
            .or_else(|| telnyx_key.unreadable.clone())
            .or_else(|| {
                ctx.messaging
                    .custom_blocker(config, Channel::Sms)
                    .map(str::to_string)
            });
        let sendgrid = SendGridAccount::of(config);
        let twilio = TwilioAccount::of(config);
        Ok(Self {
            email: EmailSettings {
                provider: config.email_provider,
                sendgrid_api_key_configured: api_key.configured,
                sendgrid_api_key_last4: api_key.last4,
                from_email: sendgrid.from_email,
                from_name: sendgrid.from_name,
                fallback_enabled: config.email_fallback_enabled,
                webhook_verify_key_configured: sendgrid.webhook_verify_key.is_some(),
                event_webhook_id: sendgrid.webhook_id,
                webhook_url: ctx
                    .messaging
                    .practice_webhook_url(Vendor::Sendgrid, config.id),
                domain: DomainState::from_config(config),
                last_tested_at: config.email_last_tested_at,
                custom_blocker: api_key
                    .unreadable
                    .or(postmark_token.unreadable)
                    .or(mailgun_key.unreadable)
                    .or_else(|| {
                        ctx.messaging
                            .custom_blocker(config, Channel::Email)
                            .map(str::to_string)
                    }),
                mailgun: MailgunSettingsView::new(
                    config,
                    mailgun_key.configured,
                    mailgun_key.last4,
                    ctx.messaging
                        .practice_webhook_url(Vendor::Mailgun, config.id),
                ),
                postmark: PostmarkSettingsView::new(
                    &ctx.keyring,
                    config,
                    postmark_token.configured,
                    postmark_token.last4,
                    ctx.messaging
                        .practice_webhook_url(Vendor::Postmark, config.id),
                ),
            },
            sms: SmsSettings {
                provider: config.sms_provider,
                twilio_account_sid_configured: sid.configured,
                twilio_account_sid_last4: sid.last4,
                twilio_auth_token_configured: token.configured,
                twilio_auth_token_last4: token.last4,
                phone_number: twilio.phone_number,
                fallback_enabled: config.sms_fallback_enabled,
                last_tested_at: config.sms_last_tested_at,
                custom_blocker: sms_blocker,
                help_reply_enabled: twilio.help_reply_enabled,
                telnyx: TelnyxSettingsView::new(
                    config,
                    telnyx_key.configured,
                    telnyx_key.last4,
                    ctx.messaging
                        .practice_webhook_url(Vendor::Telnyx, config.id),
                ),
            },
            settings_version: config.settings_version,
        })
    }
}

/// A stored secret as the settings show it.
struct StoredSecret {
    configured: bool,
    /// `None` when nothing is stored, or it no longer decrypts.
    last4: Option<String>,
    /// What to do when it no longer decrypts.
    unreadable: Option<String>,
}

pub(crate) async fn load(
    pool: &PgPool,
    practice_id: Uuid,
) -> Result<PracticeMessagingConfig, SettingsError> {
    PracticeMessagingConfig::load(pool, practice_id)
        .await?
        .ok_or(SettingsError::UnknownPractice)
}

/// The last four characters of a stored secret: enough to recognise it, too few to use it.
pub(crate) fn masked(
    keyring: &Keyring,
    config: &PracticeMessagingConfig,
    field: CredentialField,
) -> Result<Option<String>, SettingsError> {
    let secret = stored_secret(keyring, config, field).map_err(|source| {
        SettingsError::from(FactoryError::Decrypt {
            practice_id: config.id,
            field,
            source,
        })
    })?;
    Ok(secret.map(|s| {
        let chars: Vec<char> = s.expose_secret().chars().collect();
        chars[chars.len().saturating_sub(4)..].iter().collect()
    }))
}

pub(crate) fn stored_secret(
    keyring: &Keyring,
    config: &PracticeMessagingConfig,
    field: CredentialField,
) -> Result<Option<SecretString>, CryptoError> {
    keyring.decrypt_if_present(config.envelope(field), config.id, field)
}

/// Whether `candidate` is the secret already stored. A stored value that no longer decrypts
/// counts as different, so saving the candidate repairs it.
pub(crate) fn is_stored_secret(
    keyring: &Keyring,
    config: &PracticeMessagingConfig,
    field: CredentialField,
    candidate: &str,
) -> bool {
    stored_secret(keyring, config, field)
        .ok()
        .flatten()
        .is_some_and(|s| s.expose_secret() == candidate)
}

/// Opens a change's transaction with the practice row locked. With `expected_version`, refuses
/// when another change was committed since the caller read the row (while it asked a provider).
pub(crate) async fn begin_change(
    ctx: &SettingsContext,
    practice_id: Uuid,
    expected_version: Option<i64>,
) -> Result<(Transaction<'static, Postgres>, PracticeMessagingConfig), SettingsError> {
    let mut tx = ctx.pool.begin().await?;
    let current = PracticeMessagingConfig::load_for_update(&mut tx, practice_id)
        .await?
        .ok_or(SettingsError::UnknownPractice)?;
    if expected_version.is_some_and(|expected| expected != current.settings_version) {
        return Err(SettingsError::ConcurrentChange);
    }
    Ok((tx, current))
}

/// A practice's own account of a vendor kept in `practice_accounts`, as a settings change
/// writes it.
pub(crate) struct AccountWrite<'a, S> {
    pub kind: ProviderKind,
    /// The vendor's settings, in its own shape.
    pub settings: &'a S,
    /// Field column name -> envelope.
    pub secrets: &'a std::collections::BTreeMap<String, String>,
    pub sending_confirmed_at: Option<DateTime<Utc>>,
    pub fallback_enabled: bool,
}

/// Saves the account, makes it its channel's choice with the fallback setting, and commits the
/// change with its audit entry (`email.update`, `sms.update`) naming `fields`; with no field
/// changed nothing is written.
pub(crate) async fn save_account<S: Serialize>(
    mut tx: Transaction<'_, Postgres>,
    ctx: &SettingsContext,
    caller: &PracticeCaller,
    write: AccountWrite<'_, S>,
    fields: &[&'static str],
) -> Result<(), SettingsError> {
    if fields.is_empty() {
        return Ok(());
    }
    let practice_id = caller.practice_id;
    let vendor = write.kind.vendor();
    crate::messaging::accounts::save(
        &mut tx,
        practice_id,
        vendor,
        write.settings,
        write.secrets,
        write.sending_confirmed_at,
    )
    .await?;
    let (channel, action) = match vendor.channel() {
        Some(Channel::Sms) => (Channel::Sms, AuditAction::SmsUpdate),
        _ => (Channel::Email, AuditAction::EmailUpdate),
    };
    settings::choose(
        &mut tx,
        practice_id,
        channel,
        write.kind,
        write.fallback_enabled,
    )
    .await?;
    commit_change(
        tx,
        &ctx.messaging,
        practice_id,
        Some(caller.user_id),
        action,
        fields,
    )
    .await?;
    Ok(())
}

/// What a channel keeps of an account when its accounts are erased (the sender's name and
/// address, which are not credentials): the vendor and its settings in the vendor's shape.
pub(crate) type Kept = Option<(Vendor, serde_json::Value)>;

pub(crate) fn invalid(field: &str, message: impl Into<String>) -> SettingsError {
    SettingsError::Invalid(FieldErrors::single(field, message))
}

/// The names whose flag is set, in order: the audit entry's changed fields.
pub(crate) fn changed(fields: &[(&'static str, bool)]) -> Vec<&'static str> {
    fields
        .iter()
        .filter(|(_, changed)| *changed)
        .map(|(name, _)| *name)
        .collect()
}

/// The platform's choice for `channel` or its vendor's own account (what the platform vendor's
/// settings module saves), or every choice the practice may write instead.
pub(crate) fn parse_provider(
    value: Option<&str>,
    channel: Channel,
) -> Result<ProviderKind, String> {
    let platform = ProviderKind::platform_choice(channel);
    let wanted = value.ok_or_else(|| "is required".to_string())?;
    if let Some(kind) = std::iter::once(platform)
        .chain(platform.vendor().custom_kind())
        .find(|kind| kind.as_str() == wanted)
    {
        return Ok(kind);
    }
    let choices: Vec<&str> = std::iter::once(platform)
        .chain(
            crate::providers::VENDORS
                .iter()
                .map(crate::providers::Registered::provider)
                .filter(|provider| provider.channel() == channel)
                .filter_map(|provider| provider.vendor().custom_kind()),
        )
        .map(ProviderKind::as_str)
        .collect();
    let (last, rest) = choices.split_last().expect("the platform's choice is one");
    Err(format!("must be {} or {last}", rest.join(", ")))
}

pub(crate) fn required(value: Option<String>) -> Result<String, String> {
    value.ok_or_else(|| "is required".to_string())
}

/// Flags each custom-only field given with a system provider: silently ignoring it would let
/// the practice believe a credential was saved.
pub(crate) fn refuse_custom_only(
    errors: &mut FieldErrors,
    given: &[(&'static str, bool)],
    custom: ProviderKind,
    channel: Channel,
) {
    for field in changed(given) {
        errors.add(
            field,
            format!(
                "is only accepted with provider {}; to erase the stored custom account use DELETE /api/practice-settings/messaging/{}",
                custom.as_str(),
                channel.as_str()
            ),
        );
    }
}
