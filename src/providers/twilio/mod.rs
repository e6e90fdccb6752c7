//! Everything Twilio does for us: sending SMS, checking account credentials and numbers, its
//! signed status callbacks and inbound messages.

pub mod client;
pub mod settings;
pub mod signature;
pub mod webhook;

use futures::future::BoxFuture;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use self::client::{OutgoingSms, TwilioClient};
use crate::{
    crypto::CredentialField,
    messaging::{factory::FactoryError, settings::PracticeMessagingConfig},
    providers::{
        Accepted, Account, Channel, MessageSender, OutgoingMessage, PracticeAccounts, Provider,
        ProviderContext, ProviderError, ProviderKind, Secrets, Vendor,
    },
};

/// Twilio in the registry.
pub struct Twilio;

/// The non-secret part of a practice's Twilio account, as `practice_accounts.settings` holds
/// it. The Account SID and auth token are its secrets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TwilioAccount {
    /// The number it sends from, E.164.
    pub phone_number: Option<String>,
    /// Whether our inbound webhook answers HELP/INFO on this number (Twilio answers them too,
    /// so it is off until the practice turns it on).
    #[serde(default)]
    pub help_reply_enabled: bool,
}

impl TwilioAccount {
    pub fn of(config: &PracticeMessagingConfig) -> Self {
        config.accounts.settings(Vendor::Twilio)
    }
}

/// The route segment of Twilio's status callbacks under `/api/webhooks/`.
pub const STATUS_ROUTE: &str = "twilio";

/// A Twilio client for an account against the configured API base.
pub fn client(
    ctx: &ProviderContext,
    account_sid: String,
    auth_token: SecretString,
) -> TwilioClient {
    TwilioClient::new(
        ctx.http.clone(),
        ctx.settings.twilio_api_base_url.as_str(),
        account_sid,
        auth_token,
    )
}

struct SmsSender {
    client: TwilioClient,
    from: String,
    status_callback: String,
}

impl MessageSender for SmsSender {
    fn send<'a>(
        &'a self,
        message: &'a OutgoingMessage,
    ) -> BoxFuture<'a, Result<Accepted, ProviderError>> {
        Box::pin(async move {
            let sms = OutgoingSms {
                to: message.to.clone(),
                from: self.from.clone(),
                body: message.body.clone(),
                status_callback: Some(self.status_callback.clone()),
            };
            self.client.send_sms(&sms).await.map(|a| Accepted {
                provider_message_id: a.provider_message_id,
            })
        })
    }
}

impl Provider for Twilio {
    fn vendor(&self) -> Vendor {
        Vendor::Twilio
    }

    fn channel(&self) -> Channel {
        Channel::Sms
    }

    fn system_account(&self, ctx: &ProviderContext) -> Option<Account> {
        let system = ctx.settings.system_twilio.as_ref()?;
        Some(Account {
            kind: ProviderKind::SystemTwilio,
            account_key: Some(format!("twilio:{}", system.phone_number)),
            sender: Box::new(SmsSender {
                client: client(ctx, system.account_sid.clone(), system.auth_token.clone()),
                from: system.phone_number.clone(),
                status_callback: ctx.urls.webhook(STATUS_ROUTE, None),
            }),
        })
    }

    fn practice_accounts(&self) -> Option<&dyn PracticeAccounts> {
        Some(self)
    }
}

impl PracticeAccounts for Twilio {
    fn custom_blocker(&self, config: &PracticeMessagingConfig) -> Option<&'static str> {
        let has = |field| config.envelope(field).is_some();
        if !has(CredentialField::TwilioAccountSid) || !has(CredentialField::TwilioAuthToken) {
            Some("custom Twilio credentials are incomplete")
        } else if TwilioAccount::of(config).phone_number.is_none() {
            Some("custom Twilio has no phone number")
        } else {
            None
        }
    }

    fn custom_account(
        &self,
        ctx: &ProviderContext,
        config: &PracticeMessagingConfig,
        secrets: &dyn Secrets,
    ) -> Result<Option<Account>, FactoryError> {
        let sid = secrets.decrypt(config, CredentialField::TwilioAccountSid)?;
        let token = secrets.decrypt(config, CredentialField::TwilioAuthToken)?;
        let (Some(sid), Some(token), Some(from)) =
            (sid, token, TwilioAccount::of(config).phone_number)
        else {
            return Ok(None);
        };
        Ok(Some(Account {
            kind: ProviderKind::CustomTwilio,
            account_key: Some(format!("twilio:{from}")),
            sender: Box::new(SmsSender {
                client: client(ctx, sid.expose_secret().to_string(), token),
                from,
                status_callback: ctx.urls.webhook(STATUS_ROUTE, Some(config.id)),
            }),
        }))
    }
}
