//! Everything SendGrid does for us: sending email, checking an API key, authenticating a sending
//! domain, and its signed Event Webhook.

pub mod client;
pub mod domain;
pub mod settings;
pub mod signature;
pub mod webhook;

use futures::future::BoxFuture;

use self::client::{OutgoingEmail, SendGridClient};
use crate::{
    crypto::CredentialField,
    messaging::{factory::FactoryError, settings::PracticeMessagingConfig},
    providers::{
        Accepted, Account, Channel, MessageSender, OutgoingMessage, PracticeAccounts, Provider,
        ProviderContext, ProviderError, ProviderKind, Secrets, Vendor,
    },
};

/// SendGrid in the registry.
pub struct SendGrid;

/// A SendGrid client for `api_key` against the configured API base.
pub fn client(ctx: &ProviderContext, api_key: secrecy::SecretString) -> SendGridClient {
    SendGridClient::new(
        ctx.http.clone(),
        ctx.settings.sendgrid_api_base_url.as_str(),
        api_key,
    )
}

struct EmailSender {
    client: SendGridClient,
    from_email: String,
    from_name: Option<String>,
}

impl MessageSender for EmailSender {
    fn send<'a>(
        &'a self,
        message: &'a OutgoingMessage,
    ) -> BoxFuture<'a, Result<Accepted, ProviderError>> {
        Box::pin(async move {
            let email = OutgoingEmail {
                to: message.to.clone(),
                to_name: None,
                from_email: self.from_email.clone(),
                from_name: self.from_name.clone(),
                subject: message.subject.clone().unwrap_or_default(),
                text_body: message.body.clone(),
                html_body: None,
                // Flattened by SendGrid into every event, so the webhook finds its log.
                custom_args: message.tracking_ids(),
                headers: message.headers.clone(),
            };
            self.client.send(&email).await.map(|a| Accepted {
                provider_message_id: a.provider_message_id,
            })
        })
    }
}

impl Provider for SendGrid {
    fn vendor(&self) -> Vendor {
        Vendor::Sendgrid
    }

    fn channel(&self) -> Channel {
        Channel::Email
    }

    fn system_account(&self, ctx: &ProviderContext) -> Option<Account> {
        let system = ctx.settings.system_sendgrid.as_ref()?;
        Some(Account {
            kind: ProviderKind::SystemSendgrid,
            account_key: Some("sendgrid:system".into()),
            sender: Box::new(EmailSender {
                client: client(ctx, system.api_key.clone()),
                from_email: system.from_email.clone(),
                from_name: Some(system.from_name.clone()),
            }),
        })
    }

    fn practice_accounts(&self) -> Option<&dyn PracticeAccounts> {
        Some(self)
    }
}

impl PracticeAccounts for SendGrid {
    fn custom_blocker(&self, config: &PracticeMessagingConfig) -> Option<&'static str> {
        if config.sendgrid_api_key.is_none() {
            Some("custom SendGrid has no API key")
        } else if config.sendgrid_from_email.is_none() {
            Some("custom SendGrid has no from address")
        } else if !config.email_domain_verified {
            Some("custom SendGrid domain is not verified")
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
        let key = secrets.decrypt(config, CredentialField::SendGridApiKey)?;
        let (Some(key), Some(from_email)) = (key, config.sendgrid_from_email.clone()) else {
            return Ok(None);
        };
        Ok(Some(Account {
            kind: ProviderKind::CustomSendgrid,
            account_key: Some(format!("sendgrid:practice:{}", config.id)),
            sender: Box::new(EmailSender {
                client: client(ctx, key),
                from_email,
                from_name: config.sendgrid_from_name.clone(),
            }),
        }))
    }
}
