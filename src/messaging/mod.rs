//! The messaging core: provider clients, the outbox, the suppression ledger, and the factory that
//! picks, per practice and channel, which account sends.

pub mod circuit;
pub mod delivery;
pub mod factory;
pub mod outbox;
pub mod practice_settings;
pub mod provider_error;
pub mod sendgrid;
pub mod settings;
pub mod suppression;
pub mod twilio;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

pub use factory::MessagingServiceFactory;
pub use provider_error::ProviderError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
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

/// What `outreach_logs.messaging_provider` records: the account that actually sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
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

    pub fn parse(value: &str) -> Option<Self> {
        [
            Self::SystemSendgrid,
            Self::CustomSendgrid,
            Self::SystemTwilio,
            Self::CustomTwilio,
            Self::Outbox,
        ]
        .into_iter()
        .find(|k| k.as_str() == value)
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
