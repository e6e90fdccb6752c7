//! A practice's own Mailgun domain: the key and domain checked with `GET /v4/domains/{domain}` on
//! the region's API before they are saved, the domain's webhooks created through the API, the
//! domain's DNS records and state shown and re-verified through the email domain routes, and the
//! account used only while Mailgun calls the domain `active`.

use crate::audit::AuditAction;
use crate::providers::practice_settings::{EmailRoutes, account_settings};
use futures::future::BoxFuture;
use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::client::{DnsRecord, DomainInfo, MailgunClient, WEBHOOK_EVENTS};
use crate::{
    auth::PracticeCaller,
    crypto::CredentialField,
    messaging::{ProviderKind, accounts, settings::PracticeMessagingConfig},
    providers::practice_settings::SettingsContext,
    providers::practice_settings::{
        AccountWrite, EmailSettingsRequest, EmailValidation, EmailValidationRequest,
        ProviderFailure, SettingsError, SettingsUpdate, begin_change, changed, commit_change, load,
        refuse_other_vendors, required, save_account, stored_secret, view,
    },
    providers::{
        Vendor,
        practice_settings::domain::{
            DnsRecordState, DomainDeletion, DomainError, DomainSetupRequest, DomainState,
            DomainView, SendingDomain, SetUpOutcome,
        },
    },
    types::{self, DomainName, EmailAddress, FieldErrors},
};

const API_KEY: &str = "mailgunApiKey";
const DOMAIN: &str = "mailgunDomain";
const REGION: &str = "mailgunRegion";
const SIGNING_KEY: &str = "mailgunWebhookSigningKey";
const REGIONS: [&str; 2] = ["us", "eu"];

/// The non-secret part of a practice's Mailgun domain, as `practice_accounts.settings` holds it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MailgunAccount {
    pub domain: Option<String>,
    pub region: Option<String>,
    pub from_email: Option<String>,
    pub from_name: Option<String>,
    /// Mailgun's state at the last look: `active`, `unverified` or `disabled`.
    pub state: Option<String>,
    pub is_disabled: bool,
    pub records: Vec<DnsRecord>,
    pub checked_at: Option<DateTime<Utc>>,
    /// Every webhook of ours exists on the domain.
    pub webhooks_created: bool,
}

impl MailgunAccount {
    pub fn region(&self) -> &str {
        self.region.as_deref().unwrap_or("us")
    }

    /// Mailgun lets the domain send.
    pub fn can_send(&self) -> bool {
        self.state.as_deref() == Some("active") && !self.is_disabled
    }

    fn record(&mut self, found: DomainInfo) {
        self.state = Some(found.state.clone());
        self.is_disabled = found.is_disabled;
        self.records = found.sending_records;
        self.checked_at = Some(Utc::now());
    }
}

/// The practice's Mailgun domain as `GET /` shows it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MailgunSettingsView {
    pub mailgun_api_key_configured: bool,
    pub mailgun_api_key_last4: Option<String>,
    pub mailgun_webhook_signing_key_configured: bool,
    pub mailgun_domain: Option<String>,
    pub mailgun_region: String,
    pub from_email: Option<String>,
    pub from_name: Option<String>,
    /// Mailgun's state of the domain at the last look.
    pub domain_state: Option<String>,
    /// Where the domain's webhooks post.
    pub webhook_url: String,
    pub webhooks_created: bool,
}

impl MailgunSettingsView {
    pub fn new(
        config: &PracticeMessagingConfig,
        key_configured: bool,
        key_last4: Option<String>,
        webhook_url: String,
    ) -> Self {
        let account = config.accounts.settings::<MailgunAccount>(Vendor::Mailgun);
        let signing = config
            .accounts
            .get(Vendor::Mailgun)
            .and_then(|s| s.envelope(CredentialField::MailgunWebhookSigningKey))
            .is_some();
        Self {
            mailgun_api_key_configured: key_configured,
            mailgun_api_key_last4: key_last4,
            mailgun_webhook_signing_key_configured: signing,
            mailgun_region: account.region().to_string(),
            mailgun_domain: account.domain,
            from_email: account.from_email,
            from_name: account.from_name,
            domain_state: account.state,
            webhook_url,
            webhooks_created: account.webhooks_created,
        }
    }
}

/// The Mailgun-only fields of a request and whether each was given, for refusing them with
/// another provider.
pub fn given_fields(request: &EmailSettingsRequest) -> [(&'static str, bool); 4] {
    [
        (API_KEY, request.mailgun_api_key.is_some()),
        (DOMAIN, request.mailgun_domain.is_some()),
        (REGION, request.mailgun_region.is_some()),
        (SIGNING_KEY, request.mailgun_webhook_signing_key.is_some()),
    ]
}

fn secret(value: &str, what: &str) -> Result<SecretString, String> {
    let value = value.trim();
    if value.is_empty() || value.len() > 200 || !value.bytes().all(|b| b.is_ascii_graphic()) {
        Err(format!("must be the {what} from Mailgun"))
    } else {
        Ok(SecretString::from(value.to_string()))
    }
}

fn region(value: &str) -> Result<String, String> {
    let value = value.trim().to_ascii_lowercase();
    if REGIONS.contains(&value.as_str()) {
        Ok(value)
    } else {
        Err("must be us or eu: the region the domain was created in".into())
    }
}

/// The request, parsed, with what is stored filled in for what was left out.
struct MailgunChange {
    api_key: SecretString,
    key_changed: bool,
    signing_key: Option<SecretString>,
    domain: String,
    region: String,
    from_email: EmailAddress,
    from_name: String,
    fallback_enabled: bool,
}

impl MailgunChange {
    fn parse(
        ctx: &SettingsContext,
        request: EmailSettingsRequest,
        stored: &PracticeMessagingConfig,
    ) -> Result<Self, SettingsError> {
        let mut errors = FieldErrors::new();
        refuse_other_vendors::<EmailRoutes>(&mut errors, &request, ProviderKind::CustomMailgun);
        let before = stored.accounts.settings::<MailgunAccount>(Vendor::Mailgun);
        let from_email = errors.check(
            "fromEmail",
            required(request.from_email).and_then(|v| EmailAddress::parse(&v)),
        );
        let from_name = errors.check(
            "fromName",
            required(request.from_name).and_then(|v| types::sender_display_name(&v)),
        );
        let fallback_enabled = errors.check(
            "fallbackEnabled",
            request.fallback_enabled.ok_or("is required"),
        );
        let domain = errors.check(
            DOMAIN,
            required(request.mailgun_domain).and_then(|d| DomainName::parse(&d)),
        );
        let region = match request.mailgun_region.as_deref() {
            Some(given) => errors.check(REGION, region(given)),
            None => Some(before.region().to_string()),
        };
        let stored_key = stored_secret(&ctx.keyring, stored, CredentialField::MailgunApiKey)
            .ok()
            .flatten();
        let given_key = match request.mailgun_api_key.as_deref() {
            Some(given) => errors.check(API_KEY, secret(given, "private API key")),
            None if stored_key.is_none() => {
                errors.add(
                    API_KEY,
                    "is required with custom_mailgun: no key is stored yet",
                );
                None
            }
            None => None,
        };
        let signing_key = match request.mailgun_webhook_signing_key.as_deref() {
            Some(given) => errors
                .check(SIGNING_KEY, secret(given, "HTTP webhook signing key"))
                .map(Some),
            None => Some(None),
        };
        match (
            from_email,
            from_name,
            fallback_enabled,
            domain,
            region,
            signing_key,
        ) {
            (
                Some(from_email),
                Some(from_name),
                Some(fallback_enabled),
                Some(domain),
                Some(region),
                Some(signing_key),
            ) if errors.is_empty() => {
                let key_changed = given_key.as_ref().is_some_and(|given| {
                    stored_key
                        .as_ref()
                        .is_none_or(|stored| stored.expose_secret() != given.expose_secret())
                });
                Ok(Self {
                    api_key: given_key
                        .or(stored_key)
                        .expect("a key was given or is stored"),
                    key_changed,
                    signing_key,
                    domain: domain.to_string(),
                    region,
                    from_email,
                    from_name,
                    fallback_enabled,
                })
            }
            _ => Err(SettingsError::Invalid(errors)),
        }
    }
}

fn client(ctx: &SettingsContext, key: SecretString, domain: &str, region: &str) -> MailgunClient {
    super::client(ctx.messaging.providers(), key, domain, region)
}

/// The domain as Mailgun knows it: a refused key names `mailgunApiKey`, a domain the account
/// does not have in that region names `mailgunDomain`.
async fn check_domain(
    client: &MailgunClient,
    domain: &str,
    region: &str,
) -> Result<DomainInfo, ProviderFailure> {
    let found = client.domain().await.map_err(|e| {
        ProviderFailure::classify(e, "Mailgun", Some(API_KEY), "Mailgun rejected this API key")
    })?;
    found.ok_or_else(|| {
        ProviderFailure::rejected(
            DOMAIN,
            format!(
                "{domain} is not a domain of this Mailgun account in the {region} region (a domain lives in the region it was created in)"
            ),
        )
    })
}

/// Saves the practice's Mailgun domain. A new key, domain or region is checked with Mailgun
/// first; the domain's webhooks are created when they are not yet, and the account's signing key
/// is fetched when none is given or stored.
#[tracing::instrument(skip_all, fields(practice_id = %caller.practice_id))]
pub async fn update(
    ctx: &SettingsContext,
    caller: &PracticeCaller,
    request: EmailSettingsRequest,
) -> Result<SettingsUpdate, SettingsError> {
    let practice_id = caller.practice_id;
    let stored = load(&ctx.pool, practice_id).await?;
    let change = MailgunChange::parse(ctx, request, &stored)?;
    let mut account = stored.accounts.settings::<MailgunAccount>(Vendor::Mailgun);
    let client = client(ctx, change.api_key.clone(), &change.domain, &change.region);
    let moved = change.key_changed
        || account.domain.as_deref() != Some(change.domain.as_str())
        || account.region() != change.region;
    let mut notes = Vec::new();
    if moved {
        let found = check_domain(&client, &change.domain, &change.region).await?;
        account = MailgunAccount {
            webhooks_created: false,
            ..MailgunAccount::default()
        };
        account.record(found);
    }
    account.domain = Some(change.domain.clone());
    account.region = Some(change.region.clone());
    account.from_email = Some(change.from_email.to_string());
    account.from_name = Some(change.from_name.clone());

    let stored_signing = stored_secret(
        &ctx.keyring,
        &stored,
        CredentialField::MailgunWebhookSigningKey,
    )
    .ok()
    .flatten();
    let signing_key = match (
        &change.signing_key,
        stored_signing.filter(|_| !change.key_changed),
    ) {
        (Some(given), _) => Some(given.clone()),
        (None, Some(stored)) => Some(stored),
        (None, None) => match client.http_signing_key().await {
            Ok(key) => Some(key),
            Err(e) => {
                notes.push(format!(
                    "The account's webhook signing key could not be read with this API key ({e}): copy it from \
                     Mailgun, Sending, Webhooks, HTTP webhook signing key, and save it as mailgunWebhookSigningKey. \
                     Until then Dentite refuses the domain's webhooks."
                ));
                None
            }
        },
    };
    let webhook_url = ctx
        .messaging
        .practice_webhook_url(Vendor::Mailgun, practice_id);
    if !account.webhooks_created {
        let mut failures = Vec::new();
        for event in WEBHOOK_EVENTS {
            if let Err(e) = client.create_webhook(event, &webhook_url).await {
                failures.push(format!("{event}: {e}"));
            }
        }
        account.webhooks_created = failures.is_empty();
        if !failures.is_empty() {
            notes.push(format!(
                "Some webhooks could not be created for you ({}). In Mailgun, open the domain's Webhooks and add \
                 {webhook_url} for Delivered, Permanent failure, Temporary failure, Spam complaint and Unsubscribe.",
                failures.join("; ")
            ));
        }
    }

    let (tx, current) = begin_change(ctx, practice_id, Some(stored.settings_version)).await?;
    let current_stored = current.accounts.get(Vendor::Mailgun);
    let before = current.accounts.settings::<MailgunAccount>(Vendor::Mailgun);
    let mut secrets: BTreeMap<String, String> = current_stored
        .map(|a| a.secrets.clone())
        .unwrap_or_default();
    let mut put = |field: CredentialField, value: &SecretString| {
        secrets.insert(
            field.stored_name().to_string(),
            ctx.keyring
                .encrypt(value.expose_secret(), practice_id, field),
        );
    };
    put(CredentialField::MailgunApiKey, &change.api_key);
    let signing_changed = match &signing_key {
        Some(key) => {
            let changed = stored_secret(
                &ctx.keyring,
                &current,
                CredentialField::MailgunWebhookSigningKey,
            )
            .ok()
            .flatten()
            .is_none_or(|stored| stored.expose_secret() != key.expose_secret());
            put(CredentialField::MailgunWebhookSigningKey, key);
            changed
        }
        None => false,
    };
    let fields = changed(&[
        (
            "provider",
            current.email_provider != ProviderKind::CustomMailgun,
        ),
        (API_KEY, change.key_changed),
        (DOMAIN, before.domain != account.domain),
        (REGION, before.region() != account.region()),
        (SIGNING_KEY, signing_changed),
        ("fromEmail", before.from_email != account.from_email),
        ("fromName", before.from_name != account.from_name),
        (
            "webhook",
            before.webhooks_created != account.webhooks_created,
        ),
        (
            "fallbackEnabled",
            current.email_fallback_enabled != change.fallback_enabled,
        ),
    ]);
    save_account(
        tx,
        ctx,
        caller,
        AccountWrite {
            kind: ProviderKind::CustomMailgun,
            settings: &account,
            secrets: &secrets,
            sending_confirmed_at: None,
            fallback_enabled: change.fallback_enabled,
        },
        &fields,
    )
    .await?;
    if !account.can_send() {
        notes.push(format!(
            "Mailgun calls {} {}: publish its DNS records (GET /api/practice-settings/messaging/email/domain), then verify \
             (POST …/email/domain/verify). Until Mailgun calls it active, email goes through Dentite's shared account.",
            change.domain,
            account.state.as_deref().unwrap_or("not active")
        ));
    }
    Ok(SettingsUpdate {
        settings: view(ctx, practice_id).await?,
        notes,
    })
}

/// `POST /email/validate` with `custom_mailgun`: the given key with the stored domain and region.
#[tracing::instrument(skip_all, fields(practice_id = %caller.practice_id))]
pub async fn validate(
    ctx: &SettingsContext,
    caller: &PracticeCaller,
    request: EmailValidationRequest,
) -> Result<EmailValidation, SettingsError> {
    let stored = load(&ctx.pool, caller.practice_id).await?;
    let account = stored.accounts.settings::<MailgunAccount>(Vendor::Mailgun);
    let mut errors = FieldErrors::new();
    let key = match request.mailgun_api_key.as_deref() {
        Some(given) => errors.check(API_KEY, secret(given, "private API key")),
        None => {
            let key = stored_secret(&ctx.keyring, &stored, CredentialField::MailgunApiKey)
                .map_err(|_| SettingsError::UnreadableCredential(CredentialField::MailgunApiKey))?;
            if key.is_none() {
                errors.add(API_KEY, "give a key to check: none is stored");
            }
            key
        }
    };
    let domain = match request.mailgun_domain.or(account.domain.clone()) {
        Some(domain) => errors.check(DOMAIN, DomainName::parse(&domain)),
        None => {
            errors.add(DOMAIN, "give a domain to check: none is stored");
            None
        }
    };
    let region = match request.mailgun_region.as_deref() {
        Some(given) => errors.check(REGION, region(given)),
        None => Some(account.region().to_string()),
    };
    let (Some(key), Some(domain), Some(region)) = (key, domain, region) else {
        return Err(SettingsError::Invalid(errors));
    };
    let client = client(ctx, key, domain.as_str(), &region);
    let (valid, reason) = match check_domain(&client, domain.as_str(), &region).await {
        Ok(found) if found.can_send() => (true, None),
        Ok(found) => (
            false,
            Some(format!(
                "Mailgun accepts the key, but calls {} {}: publish its DNS records and verify it",
                found.name, found.state
            )),
        ),
        Err(ProviderFailure::Rejected { message, .. }) => (false, Some(message)),
        Err(unavailable) => return Err(unavailable.into()),
    };
    Ok(EmailValidation {
        valid,
        reason,
        can_send: valid,
        can_authenticate_domains: valid,
        can_create_event_webhook: valid,
    })
}

/// The domain routes for a practice on its own Mailgun domain: its records and state.
pub fn domain_view(config: &PracticeMessagingConfig) -> Result<DomainView, DomainError> {
    let account = config.accounts.settings::<MailgunAccount>(Vendor::Mailgun);
    let Some(domain) = account.domain.clone() else {
        return Err(DomainError::NotSetUp);
    };
    let records: Vec<DnsRecordState> = account
        .records
        .iter()
        .enumerate()
        .map(|(index, record)| DnsRecordState {
            name: format!("{}{}", record.record_type.to_ascii_lowercase(), index + 1),
            record_type: record.record_type.to_ascii_lowercase(),
            host: record.name.clone(),
            data: record.value.clone(),
            valid: record.valid == "valid",
            reason: None,
        })
        .collect();
    let verified = account.can_send();
    let instructions = if verified {
        vec![format!(
            "Mailgun calls {domain} active. Keep these records published: removing them stops it sending."
        )]
    } else {
        let mut steps = vec![format!(
            "Sign in where the DNS of {domain} is managed and open its DNS records."
        )];
        steps.extend(records.iter().map(|r| {
            format!(
                "Add a {} record with host (name) {} and value {}.",
                r.record_type.to_uppercase(),
                r.host,
                r.data
            )
        }));
        steps.push("DNS changes can take up to 48 hours to be seen; press Verify to have Mailgun look again.".into());
        steps
    };
    Ok(DomainView {
        state: DomainState {
            domain,
            subdomain: None,
            verified,
            last_checked_at: account.checked_at,
            created_at: None,
        },
        sendgrid_domain_id: None,
        mailgun_state: account.state,
        records,
        instructions,
    })
}

/// `POST /email/domain/verify` for a Mailgun domain: Mailgun looks up the records now; a change
/// of whether the domain may send is a settings change (audited, and every instance re-reads).
#[tracing::instrument(skip_all, fields(practice_id = %config.id))]
pub async fn verify_domain(
    ctx: &SettingsContext,
    config: &PracticeMessagingConfig,
    user_id: Option<uuid::Uuid>,
) -> Result<DomainView, DomainError> {
    let mut account = config.accounts.settings::<MailgunAccount>(Vendor::Mailgun);
    let Some(domain) = account.domain.clone() else {
        return Err(DomainError::NotSetUp);
    };
    let key = stored_secret(&ctx.keyring, config, CredentialField::MailgunApiKey)
        .map_err(|_| DomainError::UnreadableCredential(CredentialField::MailgunApiKey))?
        .ok_or(DomainError::NotSetUp)?;
    let client = client(ctx, key, &domain, account.region());
    let found = client.verify_domain().await.map_err(|e| {
        DomainError::from(ProviderFailure::classify(
            e,
            "Mailgun",
            None,
            "Mailgun refused to verify the domain",
        ))
    })?;
    let could_send = account.can_send();
    account.record(found);
    let mut tx = ctx.pool.begin().await?;
    accounts::update_settings(&mut *tx, config.id, Vendor::Mailgun, &account).await?;
    if could_send == account.can_send() {
        tx.commit().await?;
        ctx.messaging.invalidate(config.id).await;
    } else {
        commit_change(
            tx,
            &ctx.messaging,
            config.id,
            user_id,
            AuditAction::EmailDomainVerify,
            &["domainVerified"],
        )
        .await?;
    }
    let reread = load(&ctx.pool, config.id)
        .await
        .map_err(|e| DomainError::Internal(anyhow::anyhow!(e.to_string())))?;
    domain_view(&reread)
}

account_settings!(
    super::Mailgun,
    EmailRoutes,
    ProviderKind::CustomMailgun,
    given_fields: given_fields,
    update: update,
    validate: validate,

    fn sending_domain(&self) -> Option<&'static dyn SendingDomain> {
        Some(&super::Mailgun)
    }
);

/// The domain routes for a practice on its own Mailgun domain: read and verified here; it is
/// chosen and removed with the account itself.
impl SendingDomain for super::Mailgun {
    fn view<'a>(
        &'a self,
        _ctx: &'a SettingsContext,
        config: &'a PracticeMessagingConfig,
    ) -> BoxFuture<'a, Result<DomainView, DomainError>> {
        Box::pin(async move { domain_view(config) })
    }

    fn verify<'a>(
        &'a self,
        ctx: &'a SettingsContext,
        config: &'a PracticeMessagingConfig,
        user_id: Option<uuid::Uuid>,
    ) -> BoxFuture<'a, Result<DomainView, DomainError>> {
        Box::pin(verify_domain(ctx, config, user_id))
    }

    fn set_up<'a>(
        &'a self,
        _ctx: &'a SettingsContext,
        _caller: &'a PracticeCaller,
        _config: &'a PracticeMessagingConfig,
        _request: DomainSetupRequest,
    ) -> BoxFuture<'a, Result<(DomainView, SetUpOutcome), DomainError>> {
        Box::pin(async { Err(DomainError::MailgunDomain) })
    }

    fn delete<'a>(
        &'a self,
        _ctx: &'a SettingsContext,
        _caller: &'a PracticeCaller,
        _config: &'a PracticeMessagingConfig,
    ) -> BoxFuture<'a, Result<DomainDeletion, DomainError>> {
        Box::pin(async { Err(DomainError::MailgunDomain) })
    }
}
