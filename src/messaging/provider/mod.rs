//! The provider boundary: the vocabulary and traits every vendor implements (each in its own
//! folder under `providers/`), so that the factory, failover, circuits and queue name no vendor.
//! The vendors are handed to the factory as a [`registry::Registry`] when the service starts.

pub mod error;
pub mod registry;
pub mod urls;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

pub use error::{ProviderError, SendAccepted};

use crate::{
    crypto::CredentialField,
    messaging::{factory::FactoryError, settings::PracticeMessagingConfig},
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema, sqlx::Type)]
#[serde(rename_all = "lowercase")]
#[sqlx(type_name = "text", rename_all = "lowercase")]
pub enum Channel {
    Email,
    Sms,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Sms => "sms",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "email" => Some(Self::Email),
            "sms" => Some(Self::Sms),
            _ => None,
        }
    }
}

/// An account kind: what `practices.email_provider`/`sms_provider` choose and what
/// `outreach_logs.messaging_provider` records (the account that actually sent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema, sqlx::Type)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum ProviderKind {
    SystemSendgrid,
    CustomSendgrid,
    SystemMailgun,
    CustomMailgun,
    SystemPostmark,
    CustomPostmark,
    SystemTwilio,
    CustomTwilio,
    SystemTelnyx,
    CustomTelnyx,
    Outbox,
}

impl ProviderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SystemSendgrid => "system_sendgrid",
            Self::CustomSendgrid => "custom_sendgrid",
            Self::SystemMailgun => "system_mailgun",
            Self::CustomMailgun => "custom_mailgun",
            Self::SystemPostmark => "system_postmark",
            Self::CustomPostmark => "custom_postmark",
            Self::SystemTwilio => "system_twilio",
            Self::CustomTwilio => "custom_twilio",
            Self::SystemTelnyx => "system_telnyx",
            Self::CustomTelnyx => "custom_telnyx",
            Self::Outbox => "outbox",
        }
    }

    pub const ALL: [Self; 11] = [
        Self::SystemSendgrid,
        Self::CustomSendgrid,
        Self::SystemMailgun,
        Self::CustomMailgun,
        Self::SystemPostmark,
        Self::CustomPostmark,
        Self::SystemTwilio,
        Self::CustomTwilio,
        Self::SystemTelnyx,
        Self::CustomTelnyx,
        Self::Outbox,
    ];

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == value)
    }

    /// The stored names of the practices' own account kinds, for SQL that selects by them.
    pub fn custom_names() -> Vec<&'static str> {
        Self::ALL
            .into_iter()
            .filter(|kind| kind.is_custom())
            .map(Self::as_str)
            .collect()
    }

    pub fn is_custom(self) -> bool {
        matches!(
            self,
            Self::CustomSendgrid
                | Self::CustomMailgun
                | Self::CustomPostmark
                | Self::CustomTwilio
                | Self::CustomTelnyx
        )
    }

    /// The vendor behind this account.
    pub fn vendor(self) -> Vendor {
        match self {
            Self::SystemSendgrid | Self::CustomSendgrid => Vendor::Sendgrid,
            Self::SystemMailgun | Self::CustomMailgun => Vendor::Mailgun,
            Self::SystemPostmark | Self::CustomPostmark => Vendor::Postmark,
            Self::SystemTwilio | Self::CustomTwilio => Vendor::Twilio,
            Self::SystemTelnyx | Self::CustomTelnyx => Vendor::Telnyx,
            Self::Outbox => Vendor::Outbox,
        }
    }

    /// What a practice stores to mean "the platform's accounts" for a channel: the platform's
    /// vendors are then tried in their configured order, whichever this names.
    pub fn platform_choice(channel: Channel) -> Self {
        match channel {
            Channel::Email => Self::SystemSendgrid,
            Channel::Sms => Self::SystemTwilio,
        }
    }
}

/// One message, ready for whichever account the factory picks.
#[derive(Debug, Clone)]
pub struct OutgoingMessage {
    pub outreach_log_id: Uuid,
    pub practice_id: Uuid,
    pub channel: Channel,
    pub to: String,
    pub subject: Option<String>,
    pub body: String,
    /// Extra email headers (RFC 8058 List-Unsubscribe); ignored for SMS.
    pub headers: BTreeMap<String, String>,
}

impl OutgoingMessage {
    /// Our ids, attached to the message as the vendor's custom data (SendGrid custom args,
    /// Postmark metadata, Mailgun variables), which its events carry back to us.
    pub fn tracking_ids(&self) -> BTreeMap<String, String> {
        [
            (
                "outreach_log_id".to_string(),
                self.outreach_log_id.to_string(),
            ),
            ("practice_id".to_string(), self.practice_id.to_string()),
        ]
        .into()
    }
}

/// An RFC 5322 mailbox, `"Name" <address>`, the name quoted so that commas and other specials in
/// a practice's name cannot split it into several addresses.
pub fn mailbox(name: &str, address: &str) -> String {
    if name.is_empty() {
        return address.to_string();
    }
    let quoted = name.replace('\\', "\\\\").replace('"', "\\\"");
    format!("\"{quoted}\" <{address}>")
}

/// The provider accepted the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub provider_message_id: Option<String>,
}

/// A vendor we can send through. Each has its own folder under `providers/`, registered once in
/// `providers::registry`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, sqlx::Type,
)]
#[serde(rename_all = "lowercase")]
#[sqlx(type_name = "text", rename_all = "lowercase")]
pub enum Vendor {
    Sendgrid,
    Mailgun,
    Postmark,
    Twilio,
    Telnyx,
    Outbox,
}

impl Vendor {
    /// Every vendor a platform account can be configured for, in the default failover order of
    /// each channel.
    pub const SYSTEM: [Self; 5] = [
        Self::Sendgrid,
        Self::Postmark,
        Self::Mailgun,
        Self::Twilio,
        Self::Telnyx,
    ];

    /// The vendor's name as a practice manager knows it, for logs and reasons.
    pub fn display_name(self) -> &'static str {
        match self {
            Self::Sendgrid => "SendGrid",
            Self::Mailgun => "Mailgun",
            Self::Postmark => "Postmark",
            Self::Twilio => "Twilio",
            Self::Telnyx => "Telnyx",
            Self::Outbox => "outbox",
        }
    }

    /// The name in configuration (`EMAIL_SYSTEM_PROVIDERS`), webhook routes and
    /// `provider_events.provider`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sendgrid => "sendgrid",
            Self::Mailgun => "mailgun",
            Self::Postmark => "postmark",
            Self::Twilio => "twilio",
            Self::Telnyx => "telnyx",
            Self::Outbox => "outbox",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::SYSTEM.into_iter().find(|v| v.as_str() == value)
    }

    pub fn channel(self) -> Option<Channel> {
        match self {
            Self::Sendgrid | Self::Mailgun | Self::Postmark => Some(Channel::Email),
            Self::Twilio | Self::Telnyx => Some(Channel::Sms),
            Self::Outbox => None,
        }
    }

    /// The platform's account of this vendor.
    pub fn system_kind(self) -> ProviderKind {
        match self {
            Self::Sendgrid => ProviderKind::SystemSendgrid,
            Self::Mailgun => ProviderKind::SystemMailgun,
            Self::Postmark => ProviderKind::SystemPostmark,
            Self::Twilio => ProviderKind::SystemTwilio,
            Self::Telnyx => ProviderKind::SystemTelnyx,
            Self::Outbox => ProviderKind::Outbox,
        }
    }

    /// A practice's own account of this vendor; `None` for the outbox.
    pub fn custom_kind(self) -> Option<ProviderKind> {
        match self {
            Self::Sendgrid => Some(ProviderKind::CustomSendgrid),
            Self::Mailgun => Some(ProviderKind::CustomMailgun),
            Self::Postmark => Some(ProviderKind::CustomPostmark),
            Self::Twilio => Some(ProviderKind::CustomTwilio),
            Self::Telnyx => Some(ProviderKind::CustomTelnyx),
            Self::Outbox => None,
        }
    }
}

/// One account able to send: what the factory caches per practice and channel.
pub trait MessageSender: Send + Sync {
    fn send<'a>(
        &'a self,
        message: &'a OutgoingMessage,
    ) -> futures::future::BoxFuture<'a, Result<Accepted, ProviderError>>;
}

/// A built account: which kind it is, whose rate limit it draws on, and how it sends.
pub struct Account {
    pub kind: ProviderKind,
    /// The provider account whose rate limit this draws on; `None` for the outbox.
    pub account_key: Option<String>,
    pub sender: Box<dyn MessageSender>,
}

/// What every provider may use to build its accounts: the shared HTTP client, configuration,
/// the database (the outbox) and our own public URLs.
pub struct ProviderContext {
    pub http: reqwest::Client,
    pub settings: std::sync::Arc<crate::config::Settings>,
    pub pool: sqlx::PgPool,
    pub urls: urls::OurUrls,
}

/// What a vendor does for the factory: build the platform's account from configuration, and,
/// for a vendor a practice may bring, its own accounts.
pub trait Provider: Send + Sync {
    fn vendor(&self) -> Vendor;
    fn channel(&self) -> Channel;
    /// The platform's account of this vendor, when configured.
    fn system_account(&self, ctx: &ProviderContext) -> Option<Account>;
    /// The practices' own accounts of this vendor, for a vendor that takes them.
    fn practice_accounts(&self) -> Option<&dyn PracticeAccounts> {
        None
    }
}

/// A practice's own account of a vendor, from its stored settings.
pub trait PracticeAccounts: Send + Sync {
    /// Why the practice's chosen own account of this vendor cannot send yet, if it cannot.
    fn custom_blocker(&self, config: &PracticeMessagingConfig) -> Option<&'static str>;
    /// Whether the account is complete and only a test send Postmark-style acceptance is
    /// missing: a test send then goes through it (and nothing else does until one succeeds).
    fn awaits_test_send(&self, _config: &PracticeMessagingConfig) -> bool {
        false
    }
    /// The practice's own account; `Ok(None)` while it is incomplete. Secrets are decrypted
    /// through `secrets`, which binds each to the practice and field.
    fn custom_account(
        &self,
        ctx: &ProviderContext,
        config: &PracticeMessagingConfig,
        secrets: &dyn Secrets,
    ) -> Result<Option<Account>, FactoryError>;
}

/// Decrypts a practice's stored credential fields, wherever the practice's row keeps them.
pub trait Secrets {
    fn decrypt(
        &self,
        config: &PracticeMessagingConfig,
        field: CredentialField,
    ) -> Result<Option<secrecy::SecretString>, FactoryError>;
}
