//! Everything Postmark does for us: sending email through a server's token, and its webhooks,
//! which Postmark authenticates with HTTP basic auth rather than a signature.

pub mod client;
pub mod webhook;

use futures::future::BoxFuture;

use self::client::{Header, OutgoingEmail, PostmarkClient};
use crate::providers::{
    Accepted, Account, Channel, MessageSender, OutgoingMessage, Provider, ProviderContext,
    ProviderError, ProviderKind, Vendor, mailbox,
};

/// Postmark in the registry.
pub struct Postmark;

struct EmailSender {
    client: PostmarkClient,
    from: String,
    message_stream: String,
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
                text_body: message.body.clone(),
                message_stream: self.message_stream.clone(),
                metadata: message.tracking_ids(),
                headers: message
                    .headers
                    .iter()
                    .map(|(name, value)| Header {
                        name: name.clone(),
                        value: value.clone(),
                    })
                    .collect(),
            };
            self.client.send(&email).await.map(|a| Accepted {
                provider_message_id: a.provider_message_id,
            })
        })
    }
}

impl Provider for Postmark {
    fn vendor(&self) -> Vendor {
        Vendor::Postmark
    }

    fn channel(&self) -> Channel {
        Channel::Email
    }

    fn system_account(&self, ctx: &ProviderContext) -> Option<Account> {
        let system = ctx.settings.vendors.system_postmark.as_ref()?;
        Some(Account {
            kind: ProviderKind::SystemPostmark,
            account_key: Some("postmark:system".into()),
            sender: Box::new(EmailSender {
                client: PostmarkClient::new(
                    ctx.http.clone(),
                    ctx.settings.vendors.postmark_api_base_url.as_str(),
                    system.server_token.clone(),
                ),
                from: mailbox(&system.sender.from_name, &system.sender.from_email),
                message_stream: system.message_stream.clone(),
            }),
        })
    }
}
