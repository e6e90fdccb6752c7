//! Everything Mailgun does for us: sending email through a domain of the account, and its
//! webhooks, signed with HMAC-SHA256 over a timestamp and a token.

pub mod client;
pub mod settings;
pub mod signature;
pub mod tokens;
pub mod webhook;

use futures::future::BoxFuture;

use self::{
    client::{MailgunClient, OutgoingEmail},
    settings::MailgunAccount,
};
use crate::{
    crypto::CredentialField,
    messaging::{factory::FactoryError, settings::PracticeMessagingConfig},
    providers::{
        Accepted, Account, Channel, MessageSender, OutgoingMessage, PracticeAccounts, Provider,
        ProviderContext, ProviderError, ProviderKind, Secrets, Vendor, mailbox,
    },
};

/// Mailgun in the registry.
pub struct Mailgun;

/// A Mailgun client for `domain` with `api_key`, on the API of `region` (or
/// `MAILGUN_API_BASE_URL`).
pub fn client(
    ctx: &ProviderContext,
    api_key: secrecy::SecretString,
    domain: &str,
    region: &str,
) -> MailgunClient {
    let base = ctx.settings.vendors.mailgun_base(region);
    MailgunClient::new(ctx.http.clone(), base.as_str(), domain, api_key)
}

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

impl PracticeAccounts for Mailgun {
    fn custom_blocker(&self, config: &PracticeMessagingConfig) -> Option<&'static str> {
        let account = config.accounts.settings::<MailgunAccount>(Vendor::Mailgun);
        if config.envelope(CredentialField::MailgunApiKey).is_none() {
            Some("custom Mailgun has no API key")
        } else if account.domain.is_none() || account.from_email.is_none() {
            Some("custom Mailgun has no domain or from address")
        } else if !account.can_send() {
            Some("custom Mailgun domain is not verified")
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
        let account = config.accounts.settings::<MailgunAccount>(Vendor::Mailgun);
        let key = secrets.decrypt(config, CredentialField::MailgunApiKey)?;
        let (Some(key), Some(domain), Some(from_email)) = (
            key,
            account.domain.as_deref(),
            account.from_email.as_deref(),
        ) else {
            return Ok(None);
        };
        Ok(Some(Account {
            kind: ProviderKind::CustomMailgun,
            account_key: Some(format!("mailgun:{domain}")),
            sender: Box::new(EmailSender {
                client: client(ctx, key, domain, account.region()),
                from: mailbox(account.from_name.as_deref().unwrap_or_default(), from_email),
            }),
        }))
    }
}

impl Provider for Mailgun {
    fn practice_accounts(&self) -> Option<&dyn PracticeAccounts> {
        Some(self)
    }

    fn vendor(&self) -> Vendor {
        Vendor::Mailgun
    }

    fn channel(&self) -> Channel {
        Channel::Email
    }

    fn system_account(&self, ctx: &ProviderContext) -> Option<Account> {
        let system = ctx.settings.vendors.system_mailgun.as_ref()?;
        Some(Account {
            kind: ProviderKind::SystemMailgun,
            account_key: Some(format!("mailgun:{}", system.domain)),
            sender: Box::new(EmailSender {
                client: client(ctx, system.api_key.clone(), &system.domain, &system.region),
                from: mailbox(&system.sender.from_name, &system.sender.from_email),
            }),
        })
    }
}
