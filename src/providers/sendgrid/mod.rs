//! Everything SendGrid does for us: sending email, checking an API key, authenticating a sending
//! domain, and its signed Event Webhook.

pub mod client;
pub mod domain;
pub mod settings;
pub mod signature;
pub mod webhook;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

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

/// The non-secret part of a practice's SendGrid account, as `practice_accounts.settings` holds
/// it: the sender (kept with the platform's account too, where it names the practice), the event
/// webhook and the domain authentication. The API key is its one secret.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SendGridAccount {
    pub from_email: Option<String>,
    pub from_name: Option<String>,
    /// The Signed Event Webhook's public key, pasted or read back from the webhook we created.
    pub webhook_verify_key: Option<String>,
    /// The id of the event webhook we created in the practice's account.
    pub webhook_id: Option<String>,
    pub domain: Option<String>,
    pub domain_subdomain: Option<String>,
    /// SendGrid's id of the domain authentication.
    pub domain_id: Option<i64>,
    /// The DNS records as SendGrid gave them, with their last validation, shown verbatim.
    #[serde(default)]
    pub domain_records: Vec<super::practice_settings::domain::DnsRecordState>,
    pub domain_created_at: Option<DateTime<Utc>>,
}

impl SendGridAccount {
    pub fn of(config: &PracticeMessagingConfig) -> Self {
        config.accounts.settings(Vendor::Sendgrid)
    }

    /// Forgets the domain authentication.
    fn without_domain(self) -> Self {
        Self {
            domain: None,
            domain_subdomain: None,
            domain_id: None,
            domain_records: Vec::new(),
            domain_created_at: None,
            ..self
        }
    }
}

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
        if config.envelope(CredentialField::SendGridApiKey).is_none() {
            Some("custom SendGrid has no API key")
        } else if SendGridAccount::of(config).from_email.is_none() {
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
        let account = SendGridAccount::of(config);
        let (Some(key), Some(from_email)) = (key, account.from_email) else {
            return Ok(None);
        };
        Ok(Some(Account {
            kind: ProviderKind::CustomSendgrid,
            account_key: Some(format!("sendgrid:practice:{}", config.id)),
            sender: Box::new(EmailSender {
                client: client(ctx, key),
                from_email,
                from_name: account.from_name,
            }),
        }))
    }
}
