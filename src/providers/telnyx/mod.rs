//! Everything Telnyx does for us: sending SMS from a number of the account, and its Ed25519-signed
//! webhooks (delivery updates and inbound messages).

pub mod client;
pub mod settings;
pub mod signature;
pub mod webhook;

use futures::future::BoxFuture;

use self::{
    client::{OutgoingSms, TelnyxClient},
    settings::TelnyxAccount,
};
use crate::{
    crypto::CredentialField,
    messaging::{factory::FactoryError, settings::PracticeMessagingConfig},
    providers::{
        Accepted, Account, Channel, MessageSender, OutgoingMessage, PracticeAccounts, Provider,
        ProviderContext, ProviderError, ProviderKind, Secrets, Vendor,
    },
};

/// Telnyx in the registry.
pub struct Telnyx;

/// A Telnyx client for `api_key` against the configured API base.
pub fn client(ctx: &ProviderContext, api_key: secrecy::SecretString) -> TelnyxClient {
    TelnyxClient::new(
        ctx.http.clone(),
        ctx.settings.vendors.telnyx_api_base_url.as_str(),
        api_key,
    )
}

struct SmsSender {
    client: TelnyxClient,
    from: String,
    messaging_profile_id: Option<String>,
    webhook_url: String,
}

impl MessageSender for SmsSender {
    fn send<'a>(
        &'a self,
        message: &'a OutgoingMessage,
    ) -> BoxFuture<'a, Result<Accepted, ProviderError>> {
        Box::pin(async move {
            let sms = OutgoingSms {
                from: self.from.clone(),
                to: message.to.clone(),
                text: message.body.clone(),
                messaging_profile_id: self.messaging_profile_id.clone(),
                webhook_url: self.webhook_url.clone(),
            };
            self.client.send_sms(&sms).await.map(|a| Accepted {
                provider_message_id: a.provider_message_id,
            })
        })
    }
}

impl PracticeAccounts for Telnyx {
    fn custom_blocker(&self, config: &PracticeMessagingConfig) -> Option<&'static str> {
        let account: TelnyxAccount = config.accounts.settings(Vendor::Telnyx);
        if config.envelope(CredentialField::TelnyxApiKey).is_none() {
            Some("custom Telnyx has no API key")
        } else if account.phone_number.is_none() {
            Some("custom Telnyx has no phone number")
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
        let account: TelnyxAccount = config.accounts.settings(Vendor::Telnyx);
        let key = secrets.decrypt(config, CredentialField::TelnyxApiKey)?;
        let (Some(key), Some(from)) = (key, account.phone_number) else {
            return Ok(None);
        };
        Ok(Some(Account {
            kind: ProviderKind::CustomTelnyx,
            account_key: Some(format!("telnyx:{from}")),
            sender: Box::new(SmsSender {
                client: client(ctx, key),
                from,
                messaging_profile_id: account.messaging_profile_id,
                webhook_url: ctx.urls.webhook(Vendor::Telnyx.as_str(), Some(config.id)),
            }),
        }))
    }
}

impl Provider for Telnyx {
    fn practice_accounts(&self) -> Option<&dyn PracticeAccounts> {
        Some(self)
    }

    fn vendor(&self) -> Vendor {
        Vendor::Telnyx
    }

    fn channel(&self) -> Channel {
        Channel::Sms
    }

    fn system_account(&self, ctx: &ProviderContext) -> Option<Account> {
        let system = ctx.settings.vendors.system_telnyx.as_ref()?;
        Some(Account {
            kind: ProviderKind::SystemTelnyx,
            account_key: Some(format!("telnyx:{}", system.phone_number)),
            sender: Box::new(SmsSender {
                client: client(ctx, system.api_key.clone()),
                from: system.phone_number.clone(),
                messaging_profile_id: system.messaging_profile_id.clone(),
                webhook_url: ctx.urls.webhook(Vendor::Telnyx.as_str(), None),
            }),
        })
    }
}
