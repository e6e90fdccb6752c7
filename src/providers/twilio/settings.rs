//! The SMS channel: a practice's own Twilio account, checked before it is saved: the credentials
//! with `GET /Accounts/{sid}.json` (the account must be active) and the sending number with
//! `IncomingPhoneNumbers` (an exact match that can send SMS).

use crate::providers::practice_settings::{SmsRoutes, account_settings};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use utoipa::ToSchema;

use super::TwilioAccount;
use crate::providers::practice_settings::{
    AccountWrite, ProviderFailure, SettingsError, SettingsUpdate, SmsSettingsRequest,
    SmsValidationRequest, begin_change, changed, is_stored_secret, load, parse_provider,
    refuse_custom_only, refuse_other_vendors, save_account, stored_secret, view,
};
use crate::{
    auth::PracticeCaller,
    crypto::CredentialField,
    messaging::{Channel, ProviderKind, settings::PracticeMessagingConfig},
    providers::practice_settings::SettingsContext,
    providers::{Vendor, twilio::client::TwilioClient},
    types::FieldErrors,
    types::{self, PhoneE164},
};

const ACCOUNT_SID: &str = "accountSid";
const AUTH_TOKEN: &str = "authToken";
const PHONE_NUMBER: &str = "phoneNumber";
const HELP_REPLY_ENABLED: &str = "helpReplyEnabled";
const TRIAL_WARNING: &str = "This is a Twilio trial account: it can only text numbers verified in your Twilio console \
    (Twilio error 21608), and Twilio adds a trial notice to every message. Upgrade it before messaging patients.";

/// The request, parsed.
struct SmsChange {
    provider: ProviderKind,
    /// The custom account; `None` with `system_twilio`, which keeps whatever is stored.
    account: Option<CustomAccount>,
    fallback_enabled: bool,
    /// `None`: keep the stored choice.
    help_reply_enabled: Option<bool>,
}

struct CustomAccount {
    sid: String,
    /// The given token, or the stored one when none was given.
    token: SecretString,
    phone: PhoneE164,
    sid_changed: bool,
    token_changed: bool,
    phone_changed: bool,
}

impl CustomAccount {
    /// Only what is new is checked with Twilio: a change of the fallback flag alone calls nobody.
    fn needs_check(&self) -> bool {
        self.sid_changed || self.token_changed || self.phone_changed
    }
}

impl SmsChange {
    fn parse(
        ctx: &SettingsContext,
        request: SmsSettingsRequest,
        stored: &PracticeMessagingConfig,
    ) -> Result<Self, SettingsError> {
        let mut errors = FieldErrors::new();
        let provider = errors.check(
            "provider",
            parse_provider(request.provider.as_deref(), Channel::Sms),
        );
        let fallback_enabled = errors.check(
            "fallbackEnabled",
            request.fallback_enabled.ok_or("is required"),
        );
        refuse_other_vendors::<SmsRoutes>(&mut errors, &request, ProviderKind::CustomTwilio);
        let custom = provider == Some(ProviderKind::CustomTwilio);
        if provider == Some(ProviderKind::SystemTwilio) {
            let given = [
                (ACCOUNT_SID, request.account_sid.is_some()),
                (AUTH_TOKEN, request.auth_token.is_some()),
                (PHONE_NUMBER, request.phone_number.is_some()),
                (HELP_REPLY_ENABLED, request.help_reply_enabled == Some(true)),
            ];
            refuse_custom_only(
                &mut errors,
                &given,
                ProviderKind::CustomTwilio,
                Channel::Sms,
            );
        }
        // The Account SID is masked like a secret, so a settings page cannot send it back: left
        // out, the stored one is kept, as the auth token is.
        let stored_sid = custom
            .then(|| stored_secret(&ctx.keyring, stored, CredentialField::TwilioAccountSid))
            .and_then(|decrypted| decrypted.ok().flatten());
        let sid = errors.check(
            ACCOUNT_SID,
            field(
                request.account_sid.as_deref(),
                custom && stored_sid.is_none(),
                types::twilio_account_sid,
            )
            .map(|given| given.or_else(|| stored_sid.map(|s| s.expose_secret().to_string()))),
        );
        let phone = errors.check(
            PHONE_NUMBER,
            field(request.phone_number.as_deref(), custom, PhoneE164::parse),
        );
        let same_sid = |sid: &str| {
            is_stored_secret(
                &ctx.keyring,
                stored,
                CredentialField::TwilioAccountSid,
                sid.trim(),
            )
        };
        let token = match request.auth_token.as_deref() {
            Some(given) => errors.check(
                AUTH_TOKEN,
                types::twilio_auth_token(given).map(SecretString::from),
            ),
            None if !custom => None,
            // A token belongs to one account: the stored one only serves the stored SID.
            None => match stored_secret(&ctx.keyring, stored, CredentialField::TwilioAuthToken)
                .ok()
                .flatten()
            {
                Some(stored_token) if request.account_sid.as_deref().is_none_or(same_sid) => {
                    Some(stored_token)
                }
                Some(_) => {
                    errors.add(AUTH_TOKEN, "is required when the Account SID changes");
                    None
                }
                None => {
                    errors.add(
                        AUTH_TOKEN,
                        "is required with custom_twilio: no auth token is stored yet",
                    );
                    None
                }
            },
        };
        match (provider, fallback_enabled, sid, phone, token) {
            (
                Some(ProviderKind::CustomTwilio),
                Some(fallback_enabled),
                Some(Some(sid)),
                Some(Some(phone)),
                Some(token),
            ) if errors.is_empty() => {
                let account = CustomAccount {
                    sid_changed: !same_sid(&sid),
                    token_changed: !is_stored_secret(
                        &ctx.keyring,
                        stored,
                        CredentialField::TwilioAuthToken,
                        token.expose_secret(),
                    ),
                    phone_changed: TwilioAccount::of(stored).phone_number.as_deref()
                        != Some(phone.as_str()),
                    sid,
                    token,
                    phone,
                };
                Ok(Self {
                    provider: ProviderKind::CustomTwilio,
                    account: Some(account),
                    fallback_enabled,
                    help_reply_enabled: request.help_reply_enabled,
                })
            }
            (Some(ProviderKind::SystemTwilio), Some(fallback_enabled), ..) if errors.is_empty() => {
                Ok(Self {
                    provider: ProviderKind::SystemTwilio,
                    account: None,
                    fallback_enabled,
                    help_reply_enabled: request.help_reply_enabled,
                })
            }
            _ => Err(SettingsError::Invalid(errors)),
        }
    }
}

/// Parses a field that `required` makes mandatory; absent and optional is `Ok(None)`.
fn field<T>(
    value: Option<&str>,
    required: bool,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<Option<T>, String> {
    match value {
        Some(value) => parse(value).map(Some),
        None if required => Err("is required with custom_twilio".into()),
        None => Ok(None),
    }
}

/// Saves the SMS settings; new credentials or a new number are checked with Twilio first.
#[tracing::instrument(skip_all, fields(practice_id = %caller.practice_id))]
pub async fn update_sms(
    ctx: &SettingsContext,
    caller: &PracticeCaller,
    request: SmsSettingsRequest,
) -> Result<SettingsUpdate, SettingsError> {
    let practice_id = caller.practice_id;
    let stored = load(&ctx.pool, practice_id).await?;
    let change = SmsChange::parse(ctx, request, &stored)?;
    let stored_help_reply = TwilioAccount::of(&stored).help_reply_enabled;
    let help_reply_enabled = change.help_reply_enabled.unwrap_or(stored_help_reply);
    if help_reply_enabled
        && !stored_help_reply
        && crate::compliance::settings::help_contact(&ctx.pool, practice_id)
            .await?
            .is_none()
    {
        let mut errors = FieldErrors::new();
        errors.add(
            HELP_REPLY_ENABLED,
            "needs a contactPhone or contactEmail in /api/practice-settings/messaging/compliance first: \
             the HELP reply must say how to reach the practice",
        );
        return Err(SettingsError::Invalid(errors));
    }
    let mut notes = Vec::new();
    if let Some(account) = change.account.as_ref().filter(|a| a.needs_check()) {
        let client = super::client(
            ctx.messaging.providers(),
            account.sid.clone(),
            account.token.clone(),
        );
        notes.extend(check_account(&client, &account.phone).await?.warnings);
    }

    let (tx, current) = begin_change(ctx, practice_id, Some(stored.settings_version)).await?;
    let before = TwilioAccount::of(&current);
    let mut secrets = current
        .accounts
        .get(Vendor::Twilio)
        .map(|a| a.secrets.clone())
        .unwrap_or_default();
    let mut put = |field: CredentialField, value: &str| {
        secrets.insert(
            field.stored_name().to_string(),
            ctx.keyring.encrypt(value, practice_id, field),
        );
    };
    // The system account keeps the stored custom one, so switching back needs no re-entry.
    let mut account = before.clone();
    if let Some(custom) = &change.account {
        if custom.sid_changed {
            put(CredentialField::TwilioAccountSid, &custom.sid);
        }
        if custom.token_changed {
            put(
                CredentialField::TwilioAuthToken,
                custom.token.expose_secret(),
            );
        }
        account.phone_number = Some(custom.phone.to_string());
    }
    account.help_reply_enabled = help_reply_enabled;
    let custom = change.account.as_ref();
    let fields = changed(&[
        ("provider", current.sms_provider != change.provider),
        (ACCOUNT_SID, custom.is_some_and(|a| a.sid_changed)),
        (AUTH_TOKEN, custom.is_some_and(|a| a.token_changed)),
        (PHONE_NUMBER, custom.is_some_and(|a| a.phone_changed)),
        (
            "fallbackEnabled",
            current.sms_fallback_enabled != change.fallback_enabled,
        ),
        (
            HELP_REPLY_ENABLED,
            before.help_reply_enabled != help_reply_enabled,
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
    Ok(SettingsUpdate {
        settings: view(ctx, practice_id).await?,
        notes,
    })
}

/// What Twilio said about an account that passed.
struct AccountCheck {
    friendly_name: String,
    trial: bool,
    warnings: Vec<String>,
}

/// The account must be active and own `phone`, able to send SMS. A trial account passes with a
/// warning: it works, but only towards verified numbers.
async fn check_account(
    client: &TwilioClient,
    phone: &PhoneE164,
) -> Result<AccountCheck, ProviderFailure> {
    let account = client.fetch_account().await.map_err(|e| {
        ProviderFailure::classify(
            e,
            "Twilio",
            Some(AUTH_TOKEN),
            "Twilio rejected this Account SID and auth token",
        )
    })?;
    if account.status != "active" {
        let status = if account.status.is_empty() {
            "not active"
        } else {
            account.status.as_str()
        };
        return Err(ProviderFailure::rejected(
            ACCOUNT_SID,
            format!("this Twilio account is {status}; only an active account can send"),
        ));
    }
    let number = client
        .find_incoming_number(phone.as_str())
        .await
        .map_err(|e| {
            ProviderFailure::classify(
                e,
                "Twilio",
                Some(PHONE_NUMBER),
                "Twilio refused to list this account's phone numbers",
            )
        })?;
    match number {
        None => Err(ProviderFailure::rejected(
            PHONE_NUMBER,
            format!("{phone} is not a phone number of this Twilio account"),
        )),
        Some(number) if !number.sms_capable => Err(ProviderFailure::rejected(
            PHONE_NUMBER,
            format!("{phone} belongs to this Twilio account but cannot send SMS"),
        )),
        Some(_) => {
            let trial = account.account_type.eq_ignore_ascii_case("trial");
            let warnings = if trial {
                vec![TRIAL_WARNING.to_string()]
            } else {
                Vec::new()
            };
            Ok(AccountCheck {
                friendly_name: account.friendly_name,
                trial,
                warnings,
            })
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SmsValidation {
    /// Twilio accepts the credentials, the account is active and owns the number, which can send SMS.
    pub valid: bool,
    /// Why not, in Twilio's words where it gave any.
    pub reason: Option<String>,
    /// The request field the reason is about.
    pub field: Option<String>,
    /// The account's name in Twilio, when the check passed.
    pub account_name: Option<String>,
    pub trial: bool,
    pub warnings: Vec<String>,
}

/// Checks an account with Twilio without saving anything. A refusal is an answer
/// (`valid: false`); only an unreachable Twilio is an error.
#[tracing::instrument(skip_all, fields(practice_id = %caller.practice_id))]
pub async fn validate_sms(
    ctx: &SettingsContext,
    caller: &PracticeCaller,
    request: SmsValidationRequest,
) -> Result<SmsValidation, SettingsError> {
    let stored = load(&ctx.pool, caller.practice_id).await?;
    let stored_value = |field| {
        stored_secret(&ctx.keyring, &stored, field)
            .ok()
            .flatten()
            .map(|s| s.expose_secret().to_string())
    };
    let mut errors = FieldErrors::new();
    let none_stored = "give one to check: none is stored";
    // The stored token is only worth trying with the stored account.
    let (stored_token, no_token) = match request.account_sid {
        Some(_) => (None, "give the auth token of this Account SID"),
        None => (stored_value(CredentialField::TwilioAuthToken), none_stored),
    };
    let stored_sid = stored_value(CredentialField::TwilioAccountSid);
    let sid = given_or_stored(
        &mut errors,
        ACCOUNT_SID,
        request.account_sid,
        stored_sid,
        none_stored,
        types::twilio_account_sid,
    );
    let token = given_or_stored(
        &mut errors,
        AUTH_TOKEN,
        request.auth_token,
        stored_token,
        no_token,
        types::twilio_auth_token,
    );
    let stored_phone = TwilioAccount::of(&stored).phone_number;
    let phone = given_or_stored(
        &mut errors,
        PHONE_NUMBER,
        request.phone_number,
        stored_phone,
        none_stored,
        PhoneE164::parse,
    );
    let (Some(sid), Some(token), Some(phone)) = (sid, token, phone) else {
        return Err(SettingsError::Invalid(errors));
    };
    let client = super::client(ctx.messaging.providers(), sid, SecretString::from(token));
    match check_account(&client, &phone).await {
        Ok(check) => Ok(SmsValidation {
            valid: true,
            reason: None,
            field: None,
            account_name: Some(check.friendly_name),
            trial: check.trial,
            warnings: check.warnings,
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

/// The given value, else the stored one, parsed; `missing` is the error when there is neither.
fn given_or_stored<T>(
    errors: &mut FieldErrors,
    name: &str,
    given: Option<String>,
    stored: Option<String>,
    missing: &str,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Option<T> {
    match given.or(stored) {
        Some(value) => errors.check(name, parse(&value)),
        None => {
            errors.add(name, missing);
            None
        }
    }
}

/// What erasing the SMS channel erases of Twilio's: the fields it finds set, for the audit.
pub fn erased_fields(current: &PracticeMessagingConfig) -> Vec<&'static str> {
    let account = TwilioAccount::of(current);
    let has = |field| current.envelope(field).is_some();
    changed(&[
        (ACCOUNT_SID, has(CredentialField::TwilioAccountSid)),
        (AUTH_TOKEN, has(CredentialField::TwilioAuthToken)),
        (PHONE_NUMBER, account.phone_number.is_some()),
        (HELP_REPLY_ENABLED, account.help_reply_enabled),
    ])
}

/// The Twilio-only fields of a request and whether each was given (the number is Telnyx's too).
fn given_fields(request: &SmsSettingsRequest) -> [(&'static str, bool); 3] {
    [
        (ACCOUNT_SID, request.account_sid.is_some()),
        (AUTH_TOKEN, request.auth_token.is_some()),
        (HELP_REPLY_ENABLED, request.help_reply_enabled == Some(true)),
    ]
}

account_settings!(
    super::Twilio,
    SmsRoutes,
    ProviderKind::CustomTwilio,
    given_fields: given_fields,
    update: update_sms,
    validate: validate_sms,

    fn erased_fields(&self, current: &PracticeMessagingConfig) -> Vec<&'static str> {
        erased_fields(current)
    }
);
