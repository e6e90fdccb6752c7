//! The SMS channel's requests, whichever vendor they choose, which its routes hand to the vendor
//! each chooses (`practice_settings::channel`).

use serde::Deserialize;
use utoipa::ToSchema;

use super::{
    SmsValidation,
    channel::{AccountSettings, ChannelRoutes},
};
use crate::{messaging::Channel, providers::Registered};

/// `PUT /sms`. Every field is optional to serde so that all missing and malformed fields are
/// reported together; the schema marks the ones the contract requires.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SmsSettingsRequest {
    /// `system_twilio`, `custom_twilio` or `custom_telnyx`.
    #[schema(required = true, nullable = false, value_type = String, example = "custom_twilio")]
    pub provider: Option<String>,
    /// `AC` and 32 hexadecimal characters. Required with `custom_twilio` when none is stored;
    /// omit it to keep the stored one.
    #[schema(example = "AC0123456789abcdef0123456789abcdef")]
    pub account_sid: Option<String>,
    /// 32 hexadecimal characters. Omit it to keep the stored token (for the same Account SID).
    pub auth_token: Option<String>,
    /// Required with `custom_twilio` and `custom_telnyx`: a number of that account, in E.164.
    #[schema(example = "+15551234567")]
    pub phone_number: Option<String>,
    #[schema(required = true, nullable = false, value_type = bool)]
    pub fallback_enabled: Option<bool>,
    /// Whether Dentite answers HELP/INFO texted to this number, with the practice's name, its
    /// contact (`contactPhone`, else `contactEmail`, of the compliance settings, which must be
    /// set), "Msg & data rates may apply" and "Reply STOP to opt out". Off by default: Twilio
    /// answers HELP itself on long codes unless you turned that off in Twilio, and a second
    /// reply costs you a message. Only with `custom_twilio` (the system number's reply is the
    /// platform's). Omit it to keep the stored choice.
    #[schema(nullable = false, value_type = bool, example = false)]
    pub help_reply_enabled: Option<bool>,
    /// Only with `custom_telnyx`: a Telnyx API key (Mission Control, Keys & Credentials).
    /// Required when none is stored; omit it to keep the stored one.
    #[schema(example = "KEY0123456789ABCDEF")]
    pub telnyx_api_key: Option<String>,
    /// Only with `custom_telnyx`: the account's public key (base64 of 32 bytes), which verifies
    /// Telnyx's webhooks. Omit it to keep the stored one.
    #[schema(example = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=")]
    pub telnyx_public_key: Option<String>,
    /// Only with `custom_telnyx`: the messaging profile to send with. Omit it to use the
    /// number's own profile; given, it must be that profile.
    pub telnyx_messaging_profile_id: Option<String>,
}

/// `POST /sms/validate`: what to check; each field left out is taken from the stored account.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SmsValidationRequest {
    /// `custom_twilio` (the default) or `custom_telnyx`: whose account to check.
    #[schema(value_type = String, example = "custom_twilio")]
    pub provider: Option<String>,
    pub account_sid: Option<String>,
    pub auth_token: Option<String>,
    pub phone_number: Option<String>,
    pub telnyx_api_key: Option<String>,
    pub telnyx_messaging_profile_id: Option<String>,
}

/// The SMS settings routes.
pub struct SmsRoutes;

impl ChannelRoutes for SmsRoutes {
    const CHANNEL: Channel = Channel::Sms;
    type Change = SmsSettingsRequest;
    type Check = SmsValidationRequest;
    type Checked = SmsValidation;

    fn chosen(change: &SmsSettingsRequest) -> Option<&str> {
        change.provider.as_deref()
    }

    fn checked(check: &SmsValidationRequest) -> Option<&str> {
        check.provider.as_deref()
    }

    fn settings(vendor: &Registered) -> Option<&'static dyn AccountSettings<Self>> {
        match *vendor {
            Registered::Sms(vendor) => Some(vendor),
            Registered::Email(_) => None,
        }
    }
}
