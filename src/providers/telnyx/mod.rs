//! Everything Telnyx does for us: sending SMS from a number of the account, and its Ed25519-signed
//! webhooks (delivery updates and inbound messages).

pub mod client;
pub mod signature;
pub mod webhook;

use futures::future::BoxFuture;

use self::client::{OutgoingSms, TelnyxClient};
use crate::providers::{
    Accepted, Account, Channel, MessageSender, OutgoingMessage, Provider, ProviderContext,
    ProviderError, ProviderKind, Vendor,
};

/// Telnyx in the registry.
pub struct Telnyx;

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

impl Provider for Telnyx {
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
                client: TelnyxClient::new(
                    ctx.http.clone(),
                    ctx.settings.vendors.telnyx_api_base_url.as_str(),
                    system.api_key.clone(),
                ),
                from: system.phone_number.clone(),
                messaging_profile_id: system.messaging_profile_id.clone(),
                webhook_url: ctx.urls.webhook(Vendor::Telnyx.as_str(), None),
            }),
        })
    }
}
