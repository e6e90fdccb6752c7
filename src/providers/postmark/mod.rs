//! Everything Postmark does for us: sending email through a server's token, and its webhooks,
//! which Postmark authenticates with HTTP basic auth rather than a signature.

pub mod client;
pub mod settings;
pub mod webhook;

use futures::future::BoxFuture;

use self::{
    client::{Header, OutgoingEmail, PostmarkClient},
    settings::PostmarkAccount,
};
use crate::{
    crypto::CredentialField,
    messaging::{factory::FactoryError, settings::PracticeMessagingConfig},
    providers::{
        Accepted, Account, Channel, MessageSender, OutgoingMessage, PracticeAccounts, Provider,
        ProviderContext, ProviderError, ProviderKind, Secrets, Vendor, mailbox,
    },
};

/// Postmark in the registry.
pub struct Postmark;

/// A Postmark client for a server token against the configured API base.
pub fn client(ctx: &ProviderContext, server_token: secrecy::SecretString) -> PostmarkClient {
    PostmarkClient::new(
        ctx.http.clone(),
        ctx.settings.vendors.postmark_api_base_url.as_str(),
        server_token,
    )
}

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

impl PracticeAccounts for Postmark {
    fn custom_blocker(&self, config: &PracticeMessagingConfig) -> Option<&'static str> {
        let stored = config.accounts.get(Vendor::Postmark);
        let account = config
            .accounts
            .settings::<PostmarkAccount>(Vendor::Postmark);
        if config
            .envelope(CredentialField::PostmarkServerToken)
            .is_none()
        {
            Some("custom Postmark has no server token")
        } else if account.from_email.is_none() {
            Some("custom Postmark has no from address")
        } else if stored.is_some_and(|s| s.sending_confirmed_at.is_none()) {
            Some("custom Postmark's sender is not confirmed yet: send a test email")
        } else {
            None
        }
    }

    fn awaits_test_send(&self, config: &PracticeMessagingConfig) -> bool {
        let stored = config.accounts.get(Vendor::Postmark);
        stored.is_some_and(|s| {
            s.envelope(CredentialField::PostmarkServerToken).is_some()
                && s.sending_confirmed_at.is_none()
        }) && config
            .accounts
            .settings::<PostmarkAccount>(Vendor::Postmark)
            .from_email
            .is_some()
    }

    fn custom_account(
        &self,
        ctx: &ProviderContext,
        config: &PracticeMessagingConfig,
        secrets: &dyn Secrets,
    ) -> Result<Option<Account>, FactoryError> {
        let account = config
            .accounts
            .settings::<PostmarkAccount>(Vendor::Postmark);
        let token = secrets.decrypt(config, CredentialField::PostmarkServerToken)?;
        let (Some(token), Some(from_email)) = (token, account.from_email.as_deref()) else {
            return Ok(None);
        };
        Ok(Some(Account {
            kind: ProviderKind::CustomPostmark,
            account_key: Some(format!("postmark:practice:{}", config.id)),
            sender: Box::new(EmailSender {
                client: client(ctx, token),
                from: mailbox(account.from_name.as_deref().unwrap_or_default(), from_email),
                message_stream: account.stream().to_string(),
            }),
        }))
    }
}

impl Provider for Postmark {
    fn practice_accounts(&self) -> Option<&dyn PracticeAccounts> {
        Some(self)
    }

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
                client: client(ctx, system.server_token.clone()),
                from: mailbox(&system.sender.from_name, &system.sender.from_email),
                message_stream: system.message_stream.clone(),
            }),
        })
    }
}
