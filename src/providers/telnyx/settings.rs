//! A practice's own Telnyx number, checked before it is saved: the key must list the number
//! (`GET /v2/phone_numbers`), the number must have a messaging profile, and that profile must be
//! enabled (`GET /v2/messaging_profiles/{id}`). Nothing is sent.

use crate::providers::practice_settings::{SmsRoutes, account_settings};
use std::collections::BTreeMap;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{client::TelnyxClient, signature::PublicKey};
use crate::{
    auth::PracticeCaller,
    crypto::CredentialField,
    messaging::{ProviderKind, settings::PracticeMessagingConfig},
    providers::Vendor,
    providers::practice_settings::SettingsContext,
    providers::practice_settings::{
        AccountWrite, ProviderFailure, SettingsError, SettingsUpdate, SmsSettingsRequest,
        SmsValidation, SmsValidationRequest, begin_change, changed, load, refuse_other_vendors,
        save_account, stored_secret, view,
    },
    types::{FieldErrors, PhoneE164},
};

const API_KEY: &str = "telnyxApiKey";
const PUBLIC_KEY: &str = "telnyxPublicKey";
const PROFILE: &str = "telnyxMessagingProfileId";
const PHONE_NUMBER: &str = "phoneNumber";

/// The non-secret part of a practice's Telnyx account, as `practice_accounts.settings` holds it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TelnyxAccount {
    pub phone_number: Option<String>,
    /// Base64 Ed25519 public key that verifies the account's webhooks.
    pub public_key: Option<String>,
    pub messaging_profile_id: Option<String>,
}

/// The practice's Telnyx account as `GET /` shows it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TelnyxSettingsView {
    pub telnyx_api_key_configured: bool,
    pub telnyx_api_key_last4: Option<String>,
    pub telnyx_public_key_configured: bool,
    pub phone_number: Option<String>,
    pub telnyx_messaging_profile_id: Option<String>,
    /// Where the number's messaging profile must send inbound messages (STOP, START, replies);
    /// each message we send names it for its own delivery updates.
    pub webhook_url: String,
}

impl TelnyxSettingsView {
    pub fn new(
        config: &PracticeMessagingConfig,
        api_key_configured: bool,
        api_key_last4: Option<String>,
        webhook_url: String,
    ) -> Self {
        let account: TelnyxAccount = config.accounts.settings(Vendor::Telnyx);
        Self {
            telnyx_api_key_configured: api_key_configured,
            telnyx_api_key_last4: api_key_last4,
            telnyx_public_key_configured: account.public_key.is_some(),
            phone_number: account.phone_number,
            telnyx_messaging_profile_id: account.messaging_profile_id,
            webhook_url,
        }
    }
}

/// The Telnyx-only fields of a request and whether each was given, for refusing them with
/// another provider.
pub fn given_fields(request: &SmsSettingsRequest) -> [(&'static str, bool); 3] {
    [
        (API_KEY, request.telnyx_api_key.is_some()),
        (PUBLIC_KEY, request.telnyx_public_key.is_some()),
        (PROFILE, request.telnyx_messaging_profile_id.is_some()),
    ]
}

/// The request, parsed, with what is stored filled in for what was left out.
struct TelnyxChange {
    api_key: SecretString,
    account: TelnyxAccount,
    fallback_enabled: bool,
    key_changed: bool,
}

fn api_key(value: &str) -> Result<SecretString, String> {
    let value = value.trim();
    if value.is_empty() || value.len() > 200 || !value.bytes().all(|b| b.is_ascii_graphic()) {
        Err("must be a Telnyx API key (Mission Control, Keys & Credentials)".into())
    } else {
        Ok(SecretString::from(value.to_string()))
    }
}

fn profile_id(value: &str) -> Result<String, String> {
    let value = value.trim();
    if value.is_empty() || value.len() > 100 || !value.bytes().all(|b| b.is_ascii_graphic()) {
        Err("must be the id of a messaging profile of this Telnyx account".into())
    } else {
        Ok(value.to_string())
    }
}

fn public_key(value: &str) -> Result<String, String> {
    PublicKey::from_base64(value)
        .map(|_| value.trim().to_string())
        .map_err(|e| format!("{e} (Mission Control, Keys & Credentials, Public Key)"))
}

impl TelnyxChange {
    fn parse(
        ctx: &SettingsContext,
        request: SmsSettingsRequest,
        stored: &PracticeMessagingConfig,
    ) -> Result<Self, SettingsError> {
        let mut errors = FieldErrors::new();
        let fallback_enabled = errors.check(
            "fallbackEnabled",
            request.fallback_enabled.ok_or("is required"),
        );
        refuse_other_vendors::<SmsRoutes>(&mut errors, &request, ProviderKind::CustomTelnyx);
        let before = stored.accounts.settings::<TelnyxAccount>(Vendor::Telnyx);
        let stored_key = stored_secret(&ctx.keyring, stored, CredentialField::TelnyxApiKey)
            .ok()
            .flatten();
        let given_key = match request.telnyx_api_key.as_deref() {
            Some(given) => errors.check(API_KEY, api_key(given)),
            None if stored_key.is_none() => {
                errors.add(
                    API_KEY,
                    "is required with custom_telnyx: no key is stored yet",
                );
                None
            }
            None => None,
        };
        let phone = match request.phone_number.as_deref() {
            Some(phone) => errors.check(PHONE_NUMBER, PhoneE164::parse(phone)),
            None => {
                errors.add(PHONE_NUMBER, "is required with custom_telnyx");
                None
            }
        };
        let public = match request.telnyx_public_key.as_deref() {
            Some(given) => errors.check(PUBLIC_KEY, public_key(given)).map(Some),
            None => Some(before.public_key.clone()),
        };
        let profile = match request.telnyx_messaging_profile_id.as_deref() {
            Some(given) => errors.check(PROFILE, profile_id(given)).map(Some),
            None => Some(None),
        };
        match (fallback_enabled, phone, public, profile) {
            (Some(fallback_enabled), Some(phone), Some(public_key), Some(messaging_profile_id))
                if errors.is_empty() =>
            {
                let key_changed = given_key.as_ref().is_some_and(|given| {
                    stored_key
                        .as_ref()
                        .is_none_or(|stored| stored.expose_secret() != given.expose_secret())
                });
                let api_key = given_key
                    .or(stored_key)
                    .expect("a key was given or is stored");
                Ok(Self {
                    api_key,
                    account: TelnyxAccount {
                        phone_number: Some(phone.to_string()),
                        public_key,
                        messaging_profile_id,
                    },
                    fallback_enabled,
                    key_changed,
                })
            }
            _ => Err(SettingsError::Invalid(errors)),
        }
    }
}

/// Saves the practice's Telnyx account; a new key or number is checked with Telnyx first.
#[tracing::instrument(skip_all, fields(practice_id = %caller.practice_id))]
pub async fn update(
    ctx: &SettingsContext,
    caller: &PracticeCaller,
    request: SmsSettingsRequest,
) -> Result<SettingsUpdate, SettingsError> {
    let practice_id = caller.practice_id;
    let stored = load(&ctx.pool, practice_id).await?;
    let mut change = TelnyxChange::parse(ctx, request, &stored)?;
    let before = stored.accounts.settings::<TelnyxAccount>(Vendor::Telnyx);
    let asks_telnyx = change.key_changed
        || change.account.phone_number != before.phone_number
        || (change.account.messaging_profile_id.is_some()
            && change.account.messaging_profile_id != before.messaging_profile_id);
    if asks_telnyx {
        let client = super::client(ctx.messaging.providers(), change.api_key.clone());
        let phone = change.account.phone_number.clone().unwrap_or_default();
        let profile = check_number(
            &client,
            &phone,
            change.account.messaging_profile_id.as_deref(),
        )
        .await?;
        change.account.messaging_profile_id = Some(profile);
    } else {
        change.account.messaging_profile_id = change
            .account
            .messaging_profile_id
            .or(before.messaging_profile_id.clone());
    }

    let (tx, current) = begin_change(ctx, practice_id, Some(stored.settings_version)).await?;
    let current_account = current.accounts.get(Vendor::Telnyx);
    let mut secrets: BTreeMap<String, String> = current_account
        .map(|account| account.secrets.clone())
        .unwrap_or_default();
    if change.key_changed || !secrets.contains_key(CredentialField::TelnyxApiKey.stored_name()) {
        secrets.insert(
            CredentialField::TelnyxApiKey.stored_name().to_string(),
            ctx.keyring.encrypt(
                change.api_key.expose_secret(),
                practice_id,
                CredentialField::TelnyxApiKey,
            ),
        );
    }
    let before: TelnyxAccount = current.accounts.settings(Vendor::Telnyx);
    let fields = changed(&[
        (
            "provider",
            current.sms_provider != ProviderKind::CustomTelnyx,
        ),
        (API_KEY, change.key_changed),
        (
            PHONE_NUMBER,
            before.phone_number != change.account.phone_number,
        ),
        (PUBLIC_KEY, before.public_key != change.account.public_key),
        (
            PROFILE,
            before.messaging_profile_id != change.account.messaging_profile_id,
        ),
        (
            "fallbackEnabled",
            current.sms_fallback_enabled != change.fallback_enabled,
        ),
    ]);
    save_account(
        tx,
        ctx,
        caller,
        AccountWrite {
            kind: ProviderKind::CustomTelnyx,
            settings: &change.account,
            secrets: &secrets,
            sending_confirmed_at: None,
            fallback_enabled: change.fallback_enabled,
        },
        &fields,
    )
    .await?;
    let settings = view(ctx, practice_id).await?;
    let telnyx = &settings.sms.telnyx;
    let mut notes = vec![format!(
        "In Telnyx, set the inbound webhook of messaging profile {} to {}, so that STOP and other replies \
         to {} reach Dentite. Delivery updates need nothing: each message names that address itself.",
        telnyx
            .telnyx_messaging_profile_id
            .as_deref()
            .unwrap_or("of this number"),
        telnyx.webhook_url,
        telnyx.phone_number.as_deref().unwrap_or("the number"),
    )];
    if !telnyx.telnyx_public_key_configured {
        notes.push(
            "Save the account's public key as telnyxPublicKey (Mission Control, Keys & Credentials, Public Key): \
             until then Dentite refuses the account's webhooks, since it cannot tell them from forgeries."
                .into(),
        );
    }
    Ok(SettingsUpdate { settings, notes })
}

/// The key must own `phone`, the number must be on a messaging profile (the given one, when one
/// is given), and the profile must be enabled; returns the profile's id.
async fn check_number(
    client: &TelnyxClient,
    phone: &str,
    wanted_profile: Option<&str>,
) -> Result<String, ProviderFailure> {
    let number = client.find_number(phone).await.map_err(|e| {
        ProviderFailure::classify(e, "Telnyx", Some(API_KEY), "Telnyx rejected this API key")
    })?;
    let Some(number) = number else {
        return Err(ProviderFailure::rejected(
            PHONE_NUMBER,
            format!("{phone} is not a phone number of this Telnyx account"),
        ));
    };
    let profile = match (number.messaging_profile_id, wanted_profile) {
        (None, _) => {
            return Err(ProviderFailure::rejected(
                PHONE_NUMBER,
                format!(
                    "{phone} is on no messaging profile; assign it to one in Mission Control (Messaging) first"
                ),
            ));
        }
        (Some(actual), Some(wanted)) if actual != wanted => {
            return Err(ProviderFailure::rejected(
                PROFILE,
                format!("{phone} is on messaging profile {actual}, not {wanted}"),
            ));
        }
        (Some(actual), _) => actual,
    };
    let found = client.messaging_profile(&profile).await.map_err(|e| {
        ProviderFailure::classify(
            e,
            "Telnyx",
            Some(PROFILE),
            "Telnyx refused to show this messaging profile",
        )
    })?;
    if found.enabled {
        Ok(profile)
    } else {
        Err(ProviderFailure::rejected(
            PROFILE,
            format!("the messaging profile {profile} is disabled in Telnyx"),
        ))
    }
}

/// `POST /sms/validate` with `custom_telnyx`: the given key and number, or the stored ones.
#[tracing::instrument(skip_all, fields(practice_id = %caller.practice_id))]
pub async fn validate(
    ctx: &SettingsContext,
    caller: &PracticeCaller,
    request: SmsValidationRequest,
) -> Result<SmsValidation, SettingsError> {
    let stored = load(&ctx.pool, caller.practice_id).await?;
    let account = stored.accounts.settings::<TelnyxAccount>(Vendor::Telnyx);
    let mut errors = FieldErrors::new();
    let key = match request.telnyx_api_key.as_deref() {
        Some(given) => errors.check(API_KEY, api_key(given)),
        None => {
            let stored = stored_secret(&ctx.keyring, &stored, CredentialField::TelnyxApiKey)
                .map_err(|_| SettingsError::UnreadableCredential(CredentialField::TelnyxApiKey))?;
            if stored.is_none() {
                errors.add(API_KEY, "give one to check: none is stored");
            }
            stored
        }
    };
    let phone = match request.phone_number.or(account.phone_number) {
        Some(phone) => errors.check(PHONE_NUMBER, PhoneE164::parse(&phone)),
        None => {
            errors.add(PHONE_NUMBER, "give one to check: none is stored");
            None
        }
    };
    let profile = match request.telnyx_messaging_profile_id.as_deref() {
        Some(given) => errors.check(PROFILE, profile_id(given)).map(Some),
        None => Some(None),
    };
    let (Some(key), Some(phone), Some(profile)) = (key, phone, profile) else {
        return Err(SettingsError::Invalid(errors));
    };
    let client = super::client(ctx.messaging.providers(), key);
    match check_number(&client, phone.as_str(), profile.as_deref()).await {
        Ok(_) => Ok(SmsValidation {
            valid: true,
            reason: None,
            field: None,
            account_name: None,
            trial: false,
            warnings: Vec::new(),
        }),
        Err(ProviderFailure::Rejected { field, message }) => Ok(SmsValidation {
            valid: false,
            reason: Some(message),
            field: field.map(str::to_string),
            account_name: None,
            trial: false,
            warnings: Vec::new(),
        }),
        Err(unavailable) => Err(unavailable.into()),
    }
}

account_settings!(
    super::Telnyx,
    SmsRoutes,
    ProviderKind::CustomTelnyx,
    given_fields: given_fields,
    update: update,
    validate: validate,
);
