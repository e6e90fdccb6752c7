//! The email channel's requests, whichever vendor they choose, which its routes hand to the vendor
//! each chooses (`practice_settings::channel`).

use serde::Deserialize;
use utoipa::ToSchema;

use super::{
    EmailValidation,
    channel::{AccountSettings, ChannelRoutes},
};
use crate::{messaging::Channel, providers::Registered};

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

/// The email settings routes.
pub struct EmailRoutes;

impl ChannelRoutes for EmailRoutes {
    const CHANNEL: Channel = Channel::Email;
    type Change = EmailSettingsRequest;
    type Check = EmailValidationRequest;
    type Checked = EmailValidation;

    fn chosen(change: &EmailSettingsRequest) -> Option<&str> {
        change.provider.as_deref()
    }

    fn checked(check: &EmailValidationRequest) -> Option<&str> {
        check.provider.as_deref()
    }

    fn settings(vendor: &Registered) -> Option<&'static dyn AccountSettings<Self>> {
        match *vendor {
            Registered::Email(vendor) => Some(vendor),
            Registered::Sms(_) => None,
        }
    }
}
