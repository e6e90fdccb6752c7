//! The provider boundary: every vendor we send through lives in its own folder here, behind the
//! types and traits of this module, so that the factory, the queue, the webhook routing and the
//! settings page name no vendor.

pub mod error;
pub mod outbox;
pub mod registry;
pub mod sendgrid;
pub mod signature;
pub mod twilio;
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
    SystemTwilio,
    CustomTwilio,
    Outbox,
}

impl ProviderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SystemSendgrid => "system_sendgrid",
            Self::CustomSendgrid => "custom_sendgrid",
            Self::SystemTwilio => "system_twilio",
            Self::CustomTwilio => "custom_twilio",
            Self::Outbox => "outbox",
        }
    }

    pub const ALL: [Self; 5] = [
        Self::SystemSendgrid,
        Self::CustomSendgrid,
        Self::SystemTwilio,
        Self::CustomTwilio,
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
        matches!(self, Self::CustomSendgrid | Self::CustomTwilio)
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

/// The provider accepted the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub provider_message_id: Option<String>,
}

/// A vendor we can send through. Each has its own folder under `providers/`, registered once in
/// [`registry::Registry::new`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Vendor {
    Sendgrid,
    Twilio,
    Outbox,
}

impl Vendor {
    /// The vendor's name as a practice manager knows it, for logs and reasons.
    pub fn display_name(self) -> &'static str {
        match self {
            Self::Sendgrid => "SendGrid",
            Self::Twilio => "Twilio",
            Self::Outbox => "outbox",
        }
    }
}

impl ProviderKind {
    /// The vendor behind this account.
    pub fn vendor(self) -> Vendor {
        match self {
            Self::SystemSendgrid | Self::CustomSendgrid => Vendor::Sendgrid,
            Self::SystemTwilio | Self::CustomTwilio => Vendor::Twilio,
            Self::Outbox => Vendor::Outbox,
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

/// What a vendor does for the factory: build the platform's account from configuration and a
/// practice's own from its stored settings.
pub trait Provider: Send + Sync {
    fn vendor(&self) -> Vendor;
    fn channel(&self) -> Channel;
    /// The platform's account of this vendor, when configured.
    fn system_account(&self, ctx: &ProviderContext) -> Option<Account>;
    /// Why the practice's chosen own account of this vendor cannot send yet, if it cannot.
    fn custom_blocker(&self, config: &PracticeMessagingConfig) -> Option<&'static str>;
    /// The practice's own account; `Ok(None)` while it is incomplete. Secrets are decrypted
    /// through `secrets`, which binds each to the practice and field.
    fn custom_account(
        &self,
        ctx: &ProviderContext,
        config: &PracticeMessagingConfig,
        secrets: &dyn Secrets,
    ) -> Result<Option<Account>, FactoryError>;
}

/// Decrypts a practice's stored credential fields.
pub trait Secrets {
    fn decrypt(
        &self,
        config: &PracticeMessagingConfig,
        field: CredentialField,
        envelope: Option<&str>,
    ) -> Result<Option<secrecy::SecretString>, FactoryError>;
}
