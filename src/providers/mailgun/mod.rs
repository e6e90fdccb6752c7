//! Everything Mailgun does for us: sending email through a domain of the account, and its
//! webhooks, signed with HMAC-SHA256 over a timestamp and a token.

pub mod client;
pub mod signature;
pub mod tokens;
pub mod webhook;

use futures::future::BoxFuture;

use self::client::{MailgunClient, OutgoingEmail};
use crate::providers::{
    Accepted, Account, Channel, MessageSender, OutgoingMessage, Provider, ProviderContext,
    ProviderError, ProviderKind, Vendor, mailbox,
};

/// Mailgun in the registry.
pub struct Mailgun;

struct EmailSender {
    client: MailgunClient,
    from: String,
}

impl MessageSender for EmailSender {
    fn send<'a>(
        &'a self,
        message: &'a OutgoingMessage,
    ) -> BoxFuture<'a, Result<Accepted, ProviderError>> {
        Box::pin(async move {
            let email = OutgoingEmail {
                from: self.from.clone(),
                to: message.to.clone(),
                subject: message.subject.clone().unwrap_or_default(),
                text: message.body.clone(),
                headers: message.headers.clone().into_iter().collect(),
                variables: message.tracking_ids().into_iter().collect(),
            };
            self.client.send(&email).await.map(|a| Accepted {
                provider_message_id: a.provider_message_id,
            })
        })
    }
}

impl Provider for Mailgun {
    fn vendor(&self) -> Vendor {
        Vendor::Mailgun
    }

    fn channel(&self) -> Channel {
        Channel::Email
    }

    fn system_account(&self, ctx: &ProviderContext) -> Option<Account> {
        let system = ctx.settings.vendors.system_mailgun.as_ref()?;
        let base = ctx.settings.vendors.mailgun_base(&system.region);
        Some(Account {
            kind: ProviderKind::SystemMailgun,
            account_key: Some(format!("mailgun:{}", system.domain)),
            sender: Box::new(EmailSender {
                client: MailgunClient::new(
                    ctx.http.clone(),
                    base.as_str(),
                    system.domain.clone(),
                    system.api_key.clone(),
                ),
                from: mailbox(&system.sender.from_name, &system.sender.from_email),
            }),
        })
    }
}
