//! A practice's own Postmark server: its token checked with `GET /server` before it is saved,
//! a webhook created through Postmark's webhooks API with basic auth and a password generated
//! for the practice, and the sender confirmed by the first test send Postmark accepts (a server
//! token cannot prove that its server may send from an address).

use crate::providers::practice_settings::{EmailRoutes, account_settings};
use std::collections::BTreeMap;

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::client::{HttpAuth, NewWebhook, PostmarkClient, Triggers};
use super::webhook::USER;
use crate::{
    auth::PracticeCaller,
    crypto::{CredentialField, Keyring},
    messaging::{ProviderKind, settings::PracticeMessagingConfig},
    providers::Vendor,
    providers::practice_settings::SettingsContext,
    providers::practice_settings::{
        AccountWrite, EmailSettingsRequest, EmailValidation, EmailValidationRequest,
        ProviderFailure, SettingsError, SettingsUpdate, begin_change, changed, load,
        refuse_other_vendors, required, save_account, stored_secret, view,
    },
    types::{self, EmailAddress, FieldErrors},
};

const TOKEN: &str = "postmarkServerToken";
const STREAM: &str = "postmarkMessageStream";
const DEFAULT_STREAM: &str = "outbound";

/// The non-secret part of a practice's Postmark server, as `practice_accounts.settings` holds it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PostmarkAccount {
    pub from_email: Option<String>,
    pub from_name: Option<String>,
    pub message_stream: Option<String>,
    /// The server's name in Postmark, from the credential check.
    pub server_name: Option<String>,
    /// The webhook this service created on the server.
    pub webhook_id: Option<i64>,
}

impl PostmarkAccount {
    pub fn stream(&self) -> &str {
        self.message_stream.as_deref().unwrap_or(DEFAULT_STREAM)
    }
}

/// The practice's Postmark server as `GET /` shows it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PostmarkSettingsView {
    pub postmark_server_token_configured: bool,
    pub postmark_server_token_last4: Option<String>,
    pub postmark_message_stream: String,
    pub from_email: Option<String>,
    pub from_name: Option<String>,
    pub server_name: Option<String>,
    /// The webhook Dentite created on the server, when the token could.
    pub webhook_id: Option<i64>,
    /// Where the server's webhook posts, with basic auth `webhookUsername`:`webhookPassword`.
    pub webhook_url: String,
    pub webhook_username: &'static str,
    /// Generated for the practice and kept encrypted; shown to owners and admins only.
    pub webhook_password: Option<String>,
    /// When Postmark first accepted a test send through the server; until then email goes
    /// through the platform's account.
    pub sending_confirmed_at: Option<DateTime<Utc>>,
}

impl PostmarkSettingsView {
    pub fn new(
        keyring: &Keyring,
        config: &PracticeMessagingConfig,
        token_configured: bool,
        token_last4: Option<String>,
        webhook_url: String,
    ) -> Self {
        let account = config
            .accounts
            .settings::<PostmarkAccount>(Vendor::Postmark);
        let stored = config.accounts.get(Vendor::Postmark);
        let webhook_password =
            stored_secret(keyring, config, CredentialField::PostmarkWebhookPassword)
                .ok()
                .flatten()
                .map(|password| password.expose_secret().to_string());
        Self {
            postmark_server_token_configured: token_configured,
            postmark_server_token_last4: token_last4,
            postmark_message_stream: account.stream().to_string(),
            from_email: account.from_email,
            from_name: account.from_name,
            server_name: account.server_name,
            webhook_id: account.webhook_id,
            webhook_url,
            webhook_username: USER,
            webhook_password,
            sending_confirmed_at: stored.and_then(|s| s.sending_confirmed_at),
        }
    }
}

/// The Postmark-only fields of a request and whether each was given, for refusing them with
/// another provider.
pub fn given_fields(request: &EmailSettingsRequest) -> [(&'static str, bool); 2] {
    [
        (TOKEN, request.postmark_server_token.is_some()),
        (STREAM, request.postmark_message_stream.is_some()),
    ]
}

fn server_token(value: &str) -> Result<SecretString, String> {
    let value = value.trim();
    if value.is_empty() || value.len() > 200 || !value.bytes().all(|b| b.is_ascii_graphic()) {
        Err("must be a Postmark server API token (Postmark, Servers, API Tokens)".into())
    } else {
        Ok(SecretString::from(value.to_string()))
    }
}

fn message_stream(value: &str) -> Result<String, String> {
    let value = value.trim();
    if value.is_empty()
        || value.len() > 100
        || !value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        Err("must be the ID of a message stream of the server, like outbound".into())
    } else {
        Ok(value.to_string())
    }
}

/// The request, parsed, with what is stored filled in for what was left out.
struct PostmarkChange {
    token: SecretString,
    token_changed: bool,
    from_email: EmailAddress,
    from_name: String,
    stream: String,
    fallback_enabled: bool,
}

impl PostmarkChange {
    fn parse(
        ctx: &SettingsContext,
        request: EmailSettingsRequest,
        stored: &PracticeMessagingConfig,
    ) -> Result<Self, SettingsError> {
        let mut errors = FieldErrors::new();
        refuse_other_vendors::<EmailRoutes>(&mut errors, &request, ProviderKind::CustomPostmark);
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
        let stored_token =
            stored_secret(&ctx.keyring, stored, CredentialField::PostmarkServerToken)
                .ok()
                .flatten();
        let given = match request.postmark_server_token.as_deref() {
            Some(given) => errors.check(TOKEN, server_token(given)),
            None if stored_token.is_none() => {
                errors.add(
                    TOKEN,
                    "is required with custom_postmark: no token is stored yet",
                );
                None
            }
            None => None,
        };
        let stream = match request.postmark_message_stream.as_deref() {
            Some(given) => errors.check(STREAM, message_stream(given)),
            None => Some(
                stored
                    .accounts
                    .settings::<PostmarkAccount>(Vendor::Postmark)
                    .stream()
                    .to_string(),
            ),
        };
        match (from_email, from_name, fallback_enabled, stream) {
            (Some(from_email), Some(from_name), Some(fallback_enabled), Some(stream))
                if errors.is_empty() =>
            {
                let token_changed = given.as_ref().is_some_and(|given| {
                    stored_token
                        .as_ref()
                        .is_none_or(|stored| stored.expose_secret() != given.expose_secret())
                });
                Ok(Self {
                    token: given
                        .or(stored_token)
                        .expect("a token was given or is stored"),
                    token_changed,
                    from_email,
                    from_name,
                    stream,
                    fallback_enabled,
                })
            }
            _ => Err(SettingsError::Invalid(errors)),
        }
    }
}

/// A fresh webhook password: 32 random bytes, URL-safe base64.
fn new_webhook_password() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

async fn check_token(client: &PostmarkClient) -> Result<super::client::Server, ProviderFailure> {
    client.server().await.map_err(|e| {
        ProviderFailure::classify(
            e,
            "Postmark",
            Some(TOKEN),
            "Postmark rejected this server token",
        )
    })
}

/// Saves the practice's Postmark server. A new token is checked with Postmark first; when the
/// server has no webhook of ours yet, one is created with the practice's own password.
#[tracing::instrument(skip_all, fields(practice_id = %caller.practice_id))]
pub async fn update(
    ctx: &SettingsContext,
    caller: &PracticeCaller,
    request: EmailSettingsRequest,
) -> Result<SettingsUpdate, SettingsError> {
    let practice_id = caller.practice_id;
    let stored = load(&ctx.pool, practice_id).await?;
    let change = PostmarkChange::parse(ctx, request, &stored)?;
    let before = stored
        .accounts
        .settings::<PostmarkAccount>(Vendor::Postmark);
    let client = super::client(ctx.messaging.providers(), change.token.clone());
    let mut notes = Vec::new();
    let server_name = if change.token_changed {
        let server = check_token(&client).await?;
        if server.delivery_type.eq_ignore_ascii_case("sandbox") {
            notes.push(format!(
                "The Postmark server \"{}\" is a sandbox server: it accepts email and delivers none. \
                 Use a live server's token to reach patients.",
                server.name
            ));
        }
        Some(server.name)
    } else {
        before.server_name.clone()
    };
    let stored_password = stored_secret(
        &ctx.keyring,
        &stored,
        CredentialField::PostmarkWebhookPassword,
    )
    .ok()
    .flatten()
    .map(|p| p.expose_secret().to_string());
    let password = match (&stored_password, change.token_changed) {
        (Some(password), false) => password.clone(),
        _ => new_webhook_password(),
    };
    let webhook_url = ctx
        .messaging
        .practice_webhook_url(Vendor::Postmark, practice_id);
    let needs_webhook =
        change.token_changed || before.webhook_id.is_none() || before.stream() != change.stream;
    let webhook_id = if needs_webhook {
        let webhook = NewWebhook {
            url: &webhook_url,
            message_stream: &change.stream,
            http_auth: HttpAuth {
                username: USER,
                password: &password,
            },
            triggers: Triggers::delivery_and_suppressions(),
        };
        match client.create_webhook(&webhook).await {
            Ok(id) => Some(id),
            Err(e) => {
                tracing::warn!(error = %e, "could not create the practice's Postmark webhook");
                notes.push(format!(
                    "The webhook could not be created for you ({e}). In Postmark, open the server, Webhooks, \
                     add {webhook_url} for the {} stream with basic auth user \"{USER}\" and the password shown \
                     here, and turn on Delivery, Bounce, Spam Complaint and Subscription Change.",
                    change.stream
                ));
                None
            }
        }
    } else {
        before.webhook_id
    };

    let (tx, current) = begin_change(ctx, practice_id, Some(stored.settings_version)).await?;
    let current_stored = current.accounts.get(Vendor::Postmark);
    let before = current
        .accounts
        .settings::<PostmarkAccount>(Vendor::Postmark);
    let mut secrets: BTreeMap<String, String> = current_stored
        .map(|account| account.secrets.clone())
        .unwrap_or_default();
    let encrypt = |value: &str, field: CredentialField| {
        (
            field.stored_name().to_string(),
            ctx.keyring.encrypt(value, practice_id, field),
        )
    };
    if change.token_changed
        || !secrets.contains_key(CredentialField::PostmarkServerToken.stored_name())
    {
        secrets.extend([encrypt(
            change.token.expose_secret(),
            CredentialField::PostmarkServerToken,
        )]);
    }
    let password_changed = stored_password.as_deref() != Some(password.as_str());
    if password_changed {
        secrets.extend([encrypt(&password, CredentialField::PostmarkWebhookPassword)]);
    }
    let account = PostmarkAccount {
        from_email: Some(change.from_email.to_string()),
        from_name: Some(change.from_name.clone()),
        message_stream: Some(change.stream.clone()),
        server_name,
        webhook_id,
    };
    // A new server, sender or stream must prove itself again.
    let confirmed = current_stored
        .and_then(|s| s.sending_confirmed_at)
        .filter(|_| {
            !change.token_changed
                && before.from_email == account.from_email
                && before.stream() == account.stream()
        });
    let fields = changed(&[
        (
            "provider",
            current.email_provider != ProviderKind::CustomPostmark,
        ),
        (TOKEN, change.token_changed),
        ("fromEmail", before.from_email != account.from_email),
        ("fromName", before.from_name != account.from_name),
        (STREAM, before.stream() != account.stream()),
        (
            "webhook",
            before.webhook_id != account.webhook_id || password_changed,
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
            kind: ProviderKind::CustomPostmark,
            settings: &account,
            secrets: &secrets,
            sending_confirmed_at: confirmed,
            fallback_enabled: change.fallback_enabled,
        },
        &fields,
    )
    .await?;
    let settings = view(ctx, practice_id).await?;
    if settings.email.postmark.sending_confirmed_at.is_none() {
        notes.push(format!(
            "Send a test email now: Postmark sends only from a confirmed Sender Signature or a verified domain, \
             and a server token cannot tell which. Until Postmark accepts a test from {}, email goes through \
             Dentite's shared account.",
            change.from_email
        ));
    }
    Ok(SettingsUpdate { settings, notes })
}

/// `POST /email/validate` with `custom_postmark`: the given token, or the stored one.
#[tracing::instrument(skip_all, fields(practice_id = %caller.practice_id))]
pub async fn validate(
    ctx: &SettingsContext,
    caller: &PracticeCaller,
    request: EmailValidationRequest,
) -> Result<EmailValidation, SettingsError> {
    let token = match request.postmark_server_token.as_deref() {
        Some(given) => server_token(given)
            .map_err(|e| SettingsError::Invalid(FieldErrors::single(TOKEN, e)))?,
        None => {
            let stored = load(&ctx.pool, caller.practice_id).await?;
            stored_secret(&ctx.keyring, &stored, CredentialField::PostmarkServerToken)
                .map_err(|_| {
                    SettingsError::UnreadableCredential(CredentialField::PostmarkServerToken)
                })?
                .ok_or_else(|| {
                    SettingsError::Invalid(FieldErrors::single(
                        TOKEN,
                        "give a token to check: none is stored",
                    ))
                })?
        }
    };
    let client = super::client(ctx.messaging.providers(), token);
    let (valid, reason) = match check_token(&client).await {
        Ok(_) => (true, None),
        Err(ProviderFailure::Rejected { message, .. }) => (false, Some(message)),
        Err(unavailable) => return Err(unavailable.into()),
    };
    Ok(EmailValidation {
        valid,
        reason,
        can_send: valid,
        can_authenticate_domains: false,
        can_create_event_webhook: valid,
    })
}

account_settings!(
    super::Postmark,
    EmailRoutes,
    ProviderKind::CustomPostmark,
    given_fields: given_fields,
    update: update,
    validate: validate,
);
