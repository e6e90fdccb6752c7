//! The email channel: a practice's own SendGrid account, its key checked with `GET /v3/scopes`
//! before it is saved, and its signed Event Webhook created through the API when the key may.

use crate::providers::practice_settings::{EmailRoutes, account_settings, domain::SendingDomain};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use utoipa::ToSchema;

use super::{
    SendGridAccount,
    client::{EventWebhook, SendGridClient},
};
use crate::providers::practice_settings::{
    AccountWrite, EmailSettingsRequest, EmailValidationRequest, Kept, ProviderFailure,
    SettingsError, SettingsUpdate, begin_change, changed, invalid, is_stored_secret, load,
    parse_provider, refuse_custom_only, refuse_other_vendors, required, save_account,
    stored_secret, view,
};
use crate::{
    auth::PracticeCaller,
    crypto::CredentialField,
    messaging::{Channel, ProviderKind, settings::PracticeMessagingConfig},
    providers::Vendor,
    providers::practice_settings::SettingsContext,
    providers::sendgrid::signature::SendGridVerifier,
    types::FieldErrors,
    types::{self, EmailAddress},
};

const API_KEY: &str = "sendgridApiKey";
const WEBHOOK_VERIFY_KEY: &str = "webhookVerifyKey";
const MAIL_SEND: &str = "mail.send";
/// Creating a webhook, then switching its signing on: the two scopes SendGrid's
/// Event Webhook settings API asks for.
const WEBHOOK_SCOPES: [&str; 2] = [
    "user.webhooks.event.settings.create",
    "user.webhooks.event.settings.update",
];
const DOMAIN_SCOPES: [&str; 4] = [
    "whitelabel.create",
    "whitelabel.read",
    "whitelabel.update",
    "whitelabel.delete",
];

/// The request, parsed.
struct EmailChange {
    provider: ProviderKind,
    /// A key that differs from the stored one; `None` keeps what is stored.
    new_api_key: Option<SecretString>,
    from_email: EmailAddress,
    from_name: String,
    fallback_enabled: bool,
    webhook_verify_key: Option<String>,
}

impl EmailChange {
    fn parse(
        ctx: &SettingsContext,
        request: EmailSettingsRequest,
        stored: &PracticeMessagingConfig,
    ) -> Result<Self, SettingsError> {
        let mut errors = FieldErrors::new();
        let provider = errors.check(
            "provider",
            parse_provider(request.provider.as_deref(), Channel::Email),
        );
        refuse_other_vendors::<EmailRoutes>(&mut errors, &request, ProviderKind::CustomSendgrid);
        let from_email = errors.check(
            "fromEmail",
            required(request.from_email).and_then(|v| EmailAddress::parse(&v)),
        );
        let from_name = errors.check(
            "fromName",
            required(request.from_name).and_then(|v| crate::types::sender_display_name(&v)),
        );
        let fallback_enabled = errors.check(
            "fallbackEnabled",
            request.fallback_enabled.ok_or("is required"),
        );
        let api_key = errors.check(
            API_KEY,
            request
                .sendgrid_api_key
                .as_deref()
                .map(types::sendgrid_api_key)
                .transpose(),
        );
        let webhook_verify_key = errors.check(
            WEBHOOK_VERIFY_KEY,
            request
                .webhook_verify_key
                .as_deref()
                .map(webhook_verify_key)
                .transpose(),
        );
        match provider {
            Some(ProviderKind::CustomSendgrid)
                if request.sendgrid_api_key.is_none()
                    && stored.envelope(CredentialField::SendGridApiKey).is_none() =>
            {
                errors.add(
                    API_KEY,
                    "is required with custom_sendgrid: no key is stored yet",
                );
            }
            Some(ProviderKind::SystemSendgrid) => refuse_custom_only(
                &mut errors,
                &[
                    (API_KEY, request.sendgrid_api_key.is_some()),
                    (WEBHOOK_VERIFY_KEY, request.webhook_verify_key.is_some()),
                ],
                ProviderKind::CustomSendgrid,
                Channel::Email,
            ),
            _ => {}
        }
        match (
            provider,
            from_email,
            from_name,
            fallback_enabled,
            api_key,
            webhook_verify_key,
        ) {
            (
                Some(provider),
                Some(from_email),
                Some(from_name),
                Some(fallback_enabled),
                Some(api_key),
                Some(webhook_verify_key),
            ) if errors.is_empty() => {
                let new_api_key = api_key
                    .filter(|key| {
                        !is_stored_secret(
                            &ctx.keyring,
                            stored,
                            CredentialField::SendGridApiKey,
                            key,
                        )
                    })
                    .map(SecretString::from);
                Ok(Self {
                    provider,
                    new_api_key,
                    from_email,
                    from_name,
                    fallback_enabled,
                    webhook_verify_key,
                })
            }
            _ => Err(SettingsError::Invalid(errors)),
        }
    }
}

/// A pasted Signed Event Webhook verification key, kept only if it is a P-256 public key.
fn webhook_verify_key(value: &str) -> Result<String, String> {
    SendGridVerifier::from_base64_der(value).map(|_| value.trim().to_string()).map_err(|_| {
        "must be the Signed Event Webhook verification key from SendGrid: a P-256 public key in base64 DER \
         (it starts with MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE)"
            .to_string()
    })
}

/// Saves the email settings. A new key is checked with SendGrid first, and when it may manage
/// event webhooks (and no verification key is stored or given) the practice's signed webhook is
/// created before the one transaction that saves everything.
#[tracing::instrument(skip_all, fields(practice_id = %caller.practice_id))]
pub async fn update_email(
    ctx: &SettingsContext,
    caller: &PracticeCaller,
    request: EmailSettingsRequest,
) -> Result<SettingsUpdate, SettingsError> {
    let practice_id = caller.practice_id;
    let stored = load(&ctx.pool, practice_id).await?;
    let change = EmailChange::parse(ctx, request, &stored)?;

    // Ok(None): no webhook was wanted; Err: why one could not be made, for the note.
    let mut webhook: Result<Option<EventWebhook>, String> = Ok(None);
    if let Some(key) = &change.new_api_key {
        let client = super::client(ctx.messaging.providers(), key.clone());
        let scopes = key_scopes(&client).await?;
        require_mail_send(&scopes)?;
        let wants_webhook = change.provider == ProviderKind::CustomSendgrid
            && change.webhook_verify_key.is_none()
            && SendGridAccount::of(&stored).webhook_verify_key.is_none();
        if wants_webhook {
            webhook = create_webhook(
                &client,
                &scopes,
                &ctx.messaging
                    .practice_webhook_url(Vendor::Sendgrid, practice_id),
            )
            .await
            .map(Some);
        }
    }

    let (tx, current) = begin_change(ctx, practice_id, Some(stored.settings_version)).await?;
    let stored_account = current.accounts.get(Vendor::Sendgrid);
    let mut secrets = stored_account
        .map(|a| a.secrets.clone())
        .unwrap_or_default();
    if let Some(key) = &change.new_api_key {
        let field = CredentialField::SendGridApiKey;
        secrets.insert(
            field.stored_name().to_string(),
            ctx.keyring.encrypt(key.expose_secret(), practice_id, field),
        );
    }
    let before = SendGridAccount::of(&current);
    let (webhook_verify_key, webhook_id) = match (&webhook, &change.webhook_verify_key) {
        (Ok(Some(created)), _) => (Some(created.public_key.clone()), Some(created.id.clone())),
        // A pasted key belongs to a webhook the practice made itself, not to one we created.
        (_, Some(pasted)) => (Some(pasted.clone()), None),
        _ => (before.webhook_verify_key.clone(), before.webhook_id.clone()),
    };
    let account = SendGridAccount {
        from_email: Some(change.from_email.to_string()),
        from_name: Some(change.from_name.clone()),
        webhook_verify_key,
        webhook_id,
        ..before.clone()
    };
    let fields = changed(&[
        ("provider", current.email_provider != change.provider),
        (API_KEY, change.new_api_key.is_some()),
        ("fromEmail", before.from_email != account.from_email),
        ("fromName", before.from_name != account.from_name),
        (
            "fallbackEnabled",
            current.email_fallback_enabled != change.fallback_enabled,
        ),
        (
            WEBHOOK_VERIFY_KEY,
            before.webhook_verify_key != account.webhook_verify_key,
        ),
    ]);
    save_account(
        tx,
        ctx,
        caller,
        AccountWrite {
            kind: change.provider,
            settings: &account,
            secrets: &secrets,
            sending_confirmed_at: None,
            fallback_enabled: change.fallback_enabled,
        },
        &fields,
    )
    .await?;

    let settings = view(ctx, practice_id).await?;
    let mut notes = Vec::new();
    if settings.email.provider == ProviderKind::CustomSendgrid
        && !settings.email.webhook_verify_key_configured
    {
        let why = webhook
            .err()
            .map(|reason| format!("{reason}. "))
            .unwrap_or_default();
        notes.push(format!(
            "{why}To receive delivery events, open SendGrid, Settings > Mail Settings > Event Webhooks, create a webhook \
             posting to {url}, turn on Signed Event Webhook, and save its verification key here as webhookVerifyKey.",
            url = settings.email.webhook_url
        ));
    }
    Ok(SettingsUpdate { settings, notes })
}

/// Creates the signed event webhook, or says why it was not.
async fn create_webhook(
    client: &SendGridClient,
    scopes: &[String],
    url: &str,
) -> Result<EventWebhook, String> {
    if !has_all(scopes, &WEBHOOK_SCOPES) {
        return Err(format!(
            "This API key may not manage event webhooks (it lacks {}), so the webhook was not created for you",
            WEBHOOK_SCOPES.join(" and ")
        ));
    }
    client.create_signed_event_webhook(url).await.map_err(|e| {
        tracing::warn!(error = %e, "could not create the practice's SendGrid event webhook");
        format!("The signed event webhook could not be set up for you ({e})")
    })
}

/// The key's scopes; a key SendGrid refuses names the field.
async fn key_scopes(client: &SendGridClient) -> Result<Vec<String>, ProviderFailure> {
    client.scopes().await.map_err(|e| {
        ProviderFailure::classify(
            e,
            "SendGrid",
            Some(API_KEY),
            "SendGrid rejected this API key",
        )
    })
}

fn require_mail_send(scopes: &[String]) -> Result<(), ProviderFailure> {
    if has_all(scopes, &[MAIL_SEND]) {
        Ok(())
    } else {
        Err(ProviderFailure::rejected(
            API_KEY,
            "this API key lacks the Mail Send permission (mail.send); create a key with at least Mail Send access",
        ))
    }
}

fn has_all(scopes: &[String], wanted: &[&str]) -> bool {
    wanted.iter().all(|w| scopes.iter().any(|s| s == w))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EmailValidation {
    /// SendGrid accepts the key and it may send mail.
    pub valid: bool,
    /// Why not, in SendGrid's words where it gave any.
    pub reason: Option<String>,
    /// `mail.send`: the key can send.
    pub can_send: bool,
    /// `whitelabel.*`: the key can set up domain authentication.
    pub can_authenticate_domains: bool,
    /// The key can create the signed event webhook, so the practice pastes nothing.
    pub can_create_event_webhook: bool,
}

/// Checks a key with SendGrid without saving anything. A refusal is an answer (`valid: false`);
/// only an unreachable SendGrid is an error.
#[tracing::instrument(skip_all, fields(practice_id = %caller.practice_id))]
pub async fn validate_email(
    ctx: &SettingsContext,
    caller: &PracticeCaller,
    request: EmailValidationRequest,
) -> Result<EmailValidation, SettingsError> {
    let key = match request.sendgrid_api_key {
        Some(given) => {
            SecretString::from(types::sendgrid_api_key(&given).map_err(|e| invalid(API_KEY, e))?)
        }
        None => {
            let stored = load(&ctx.pool, caller.practice_id).await?;
            stored_secret(&ctx.keyring, &stored, CredentialField::SendGridApiKey)
                .map_err(|_| SettingsError::UnreadableCredential(CredentialField::SendGridApiKey))?
                .ok_or_else(|| invalid(API_KEY, "give a key to check: none is stored"))?
        }
    };
    let scopes = match key_scopes(&super::client(ctx.messaging.providers(), key)).await {
        Ok(scopes) => scopes,
        Err(ProviderFailure::Rejected { message, .. }) => {
            return Ok(EmailValidation {
                valid: false,
                reason: Some(message),
                can_send: false,
                can_authenticate_domains: false,
                can_create_event_webhook: false,
            });
        }
        Err(unavailable) => return Err(unavailable.into()),
    };
    let reason = require_mail_send(&scopes).err().map(|e| e.to_string());
    Ok(EmailValidation {
        valid: reason.is_none(),
        reason,
        can_send: has_all(&scopes, &[MAIL_SEND]),
        can_authenticate_domains: has_all(&scopes, &DOMAIN_SCOPES),
        can_create_event_webhook: has_all(&scopes, &WEBHOOK_SCOPES),
    })
}

/// What erasing the email channel erases of SendGrid's: the fields it finds set, for the audit.
/// The key, the event webhook's key and id and the domain authentication are forgotten here;
/// they stay in the practice's SendGrid account, which we do not touch without being asked
/// (DELETE /email/domain removes the domain there).
pub fn erased_fields(current: &PracticeMessagingConfig) -> Vec<&'static str> {
    let account = SendGridAccount::of(current);
    changed(&[
        (
            API_KEY,
            current.envelope(CredentialField::SendGridApiKey).is_some(),
        ),
        (
            WEBHOOK_VERIFY_KEY,
            account.webhook_verify_key.is_some() || account.webhook_id.is_some(),
        ),
        ("domain", account.domain.is_some()),
    ])
}

/// What erasing the email channel keeps of SendGrid's: the sender, which names the practice
/// whichever account sends.
pub fn kept_after_erase(current: &PracticeMessagingConfig) -> Kept {
    let account = SendGridAccount::of(current);
    let sender = SendGridAccount {
        from_email: account.from_email,
        from_name: account.from_name,
        ..SendGridAccount::default()
    };
    (sender != SendGridAccount::default()).then(|| {
        let settings = serde_json::to_value(sender).expect("an account serializes");
        (Vendor::Sendgrid, settings)
    })
}

/// The SendGrid-only fields of a request and whether each was given.
fn given_fields(request: &EmailSettingsRequest) -> [(&'static str, bool); 2] {
    [
        (API_KEY, request.sendgrid_api_key.is_some()),
        (WEBHOOK_VERIFY_KEY, request.webhook_verify_key.is_some()),
    ]
}

account_settings!(
    super::SendGrid,
    EmailRoutes,
    ProviderKind::CustomSendgrid,
    given_fields: given_fields,
    update: update_email,
    validate: validate_email,

    fn erased_fields(&self, current: &PracticeMessagingConfig) -> Vec<&'static str> {
        erased_fields(current)
    }

    fn kept_after_erase(&self, current: &PracticeMessagingConfig) -> Kept {
        kept_after_erase(current)
    }

    fn sending_domain(&self) -> Option<&'static dyn SendingDomain> {
        Some(&super::SendGrid)
    }
);
