//! The email channel's requests, whichever vendor they choose, and the operations that are the
//! channel's rather than a vendor's: choosing the vendor's settings module, and erasing every
//! custom account of the channel.

use serde::Deserialize;
use utoipa::ToSchema;

use super::{
    EmailValidation, MessagingSettings, SettingsError, SettingsUpdate, changed, erase,
    refuse_custom_only,
};
use crate::{
    auth::PracticeCaller,
    messaging::{Channel, ProviderKind, settings::PracticeMessagingConfig},
    providers::practice_settings::SettingsContext,
    providers::{Vendor, mailgun, postmark, sendgrid},
    types::FieldErrors,
};

/// `PUT /email`. Every field is optional to serde so that all missing and malformed fields are
/// reported together; the schema marks the ones the contract requires.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EmailSettingsRequest {
    /// `system_sendgrid`, `custom_sendgrid`, `custom_mailgun` or `custom_postmark`.
    #[schema(required = true, nullable = false, value_type = String, example = "custom_sendgrid")]
    pub provider: Option<String>,
    /// Only with `custom_sendgrid`. Omit it to keep the stored key.
    #[schema(example = "SG.xxxxxxxx.yyyyyyyy")]
    pub sendgrid_api_key: Option<String>,
    #[schema(required = true, nullable = false, value_type = String, example = "desk@smiledental.com")]
    pub from_email: Option<String>,
    #[schema(required = true, nullable = false, value_type = String, example = "Smile Dental")]
    pub from_name: Option<String>,
    #[schema(required = true, nullable = false, value_type = bool)]
    pub fallback_enabled: Option<bool>,
    /// Only with `custom_sendgrid`: the Signed Event Webhook verification key (base64 DER of a
    /// P-256 public key). Omit it to keep the stored one, or to let the service create the
    /// webhook when the API key may.
    pub webhook_verify_key: Option<String>,
    /// Only with `custom_postmark`: the server's API token (Postmark, Servers, API Tokens).
    /// Required when none is stored; omit it to keep the stored one.
    #[schema(example = "00000000-0000-0000-0000-000000000000")]
    pub postmark_server_token: Option<String>,
    /// Only with `custom_postmark`: the message stream to send through; `outbound` when left out.
    #[schema(example = "outbound")]
    pub postmark_message_stream: Option<String>,
    /// Only with `custom_mailgun`: a private API key of the account. Required when none is
    /// stored; omit it to keep the stored one.
    pub mailgun_api_key: Option<String>,
    /// Required with `custom_mailgun`: the sending domain, as Mailgun lists it.
    #[schema(example = "mg.smiledental.com")]
    pub mailgun_domain: Option<String>,
    /// Only with `custom_mailgun`: `us` (the default) or `eu`, where the domain was created.
    #[schema(example = "us")]
    pub mailgun_region: Option<String>,
    /// Only with `custom_mailgun`: the account's HTTP webhook signing key. Omit it to keep the
    /// stored one, or to let Dentite read it with the API key.
    pub mailgun_webhook_signing_key: Option<String>,
}

/// `POST /email/validate`: a credential to check, or none to check the stored one.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EmailValidationRequest {
    /// `custom_sendgrid` (the default), `custom_mailgun` or `custom_postmark`: whose credential
    /// to check.
    #[schema(value_type = String, example = "custom_sendgrid")]
    pub provider: Option<String>,
    pub sendgrid_api_key: Option<String>,
    pub postmark_server_token: Option<String>,
    pub mailgun_api_key: Option<String>,
    pub mailgun_domain: Option<String>,
    pub mailgun_region: Option<String>,
}

/// Flags each field of an email vendor other than `chosen` that the request gives: silently
/// ignoring it would let the practice believe it was saved. Each vendor's parsing calls this, so
/// every bad field of a request is named in one answer.
pub(crate) fn refuse_other_vendors(
    errors: &mut FieldErrors,
    request: &EmailSettingsRequest,
    chosen: ProviderKind,
) {
    let vendors: [(ProviderKind, &[(&'static str, bool)]); 3] = [
        (
            ProviderKind::CustomSendgrid,
            &[
                ("sendgridApiKey", request.sendgrid_api_key.is_some()),
                ("webhookVerifyKey", request.webhook_verify_key.is_some()),
            ],
        ),
        (
            ProviderKind::CustomMailgun,
            &mailgun::settings::given_fields(request),
        ),
        (
            ProviderKind::CustomPostmark,
            &postmark::settings::given_fields(request),
        ),
    ];
    for (kind, given) in vendors {
        if kind != chosen {
            refuse_custom_only(errors, given, kind, Channel::Email);
        }
    }
}

fn wants(provider: Option<&str>, kind: ProviderKind) -> bool {
    provider.map(str::trim) == Some(kind.as_str())
}

/// Saves the email settings through the chosen vendor's module.
#[tracing::instrument(skip_all, fields(practice_id = %caller.practice_id))]
pub async fn update_email(
    ctx: &SettingsContext,
    caller: &PracticeCaller,
    request: EmailSettingsRequest,
) -> Result<SettingsUpdate, SettingsError> {
    if wants(request.provider.as_deref(), ProviderKind::CustomPostmark) {
        postmark::settings::update(ctx, caller, request).await
    } else if wants(request.provider.as_deref(), ProviderKind::CustomMailgun) {
        mailgun::settings::update(ctx, caller, request).await
    } else {
        sendgrid::settings::update_email(ctx, caller, request).await
    }
}

/// Checks a credential with its vendor without saving anything.
#[tracing::instrument(skip_all, fields(practice_id = %caller.practice_id))]
pub async fn validate_email(
    ctx: &SettingsContext,
    caller: &PracticeCaller,
    request: EmailValidationRequest,
) -> Result<EmailValidation, SettingsError> {
    if wants(request.provider.as_deref(), ProviderKind::CustomPostmark) {
        postmark::settings::validate(ctx, caller, request).await
    } else if wants(request.provider.as_deref(), ProviderKind::CustomMailgun) {
        mailgun::settings::validate(ctx, caller, request).await
    } else {
        sendgrid::settings::validate_email(ctx, caller, request).await
    }
}

/// Back to the system account; every custom email account's credentials are erased here (the
/// vendors' own accounts are not touched).
#[tracing::instrument(skip_all, fields(practice_id = %caller.practice_id))]
pub async fn delete_email(
    ctx: &SettingsContext,
    caller: &PracticeCaller,
) -> Result<MessagingSettings, SettingsError> {
    let erased = |current: &PracticeMessagingConfig| {
        let mut fields = sendgrid::settings::erased_fields(current);
        fields.extend(changed(&[
            ("mailgun", current.accounts.get(Vendor::Mailgun).is_some()),
            ("postmark", current.accounts.get(Vendor::Postmark).is_some()),
        ]));
        fields
    };
    erase(
        ctx,
        caller,
        Channel::Email,
        erased,
        sendgrid::settings::kept_after_erase,
    )
    .await
}
