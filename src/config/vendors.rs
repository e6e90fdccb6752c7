//! The platform's accounts of the vendors added after SendGrid and Twilio, and the order in which
//! the platform's vendors of a channel are tried (`EMAIL_SYSTEM_PROVIDERS`,
//! `SMS_SYSTEM_PROVIDERS`).

use std::fmt;

use secrecy::SecretString;
use url::Url;

use super::{ConfigError, Env, invalid, parse_or, parse_url};

/// The address the platform's email vendors send from.
#[derive(Debug, Clone)]
pub struct SystemSender {
    pub from_email: String,
    pub from_name: String,
}

#[derive(Clone)]
pub struct SystemPostmark {
    pub server_token: SecretString,
    pub message_stream: String,
    /// `POSTMARK_WEBHOOK_PASSWORD`: the basic-auth password Postmark's webhooks for the platform's
    /// server carry; without it the system route refuses every request.
    pub webhook_password: Option<SecretString>,
    pub sender: SystemSender,
}

#[derive(Clone)]
pub struct SystemMailgun {
    pub api_key: SecretString,
    pub domain: String,
    /// `us` or `eu`.
    pub region: String,
    pub webhook_signing_key: Option<SecretString>,
    pub sender: SystemSender,
}

#[derive(Clone)]
pub struct SystemTelnyx {
    pub api_key: SecretString,
    /// Base64 Ed25519 public key of the account (Mission Control, Keys & Credentials).
    pub public_key: Option<String>,
    pub phone_number: String,
    pub messaging_profile_id: Option<String>,
}

macro_rules! debug_without_secrets {
    ($name:ident, $($field:ident),*) => {
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name))
                    $(.field(stringify!($field), &self.$field))*
                    .finish_non_exhaustive()
            }
        }
    };
}
debug_without_secrets!(SystemPostmark, message_stream);
debug_without_secrets!(SystemMailgun, domain, region);
debug_without_secrets!(SystemTelnyx, phone_number, messaging_profile_id);

/// The newer vendors' platform accounts, their API bases and the failover orders.
#[derive(Debug, Clone)]
pub struct MoreVendors {
    pub system_postmark: Option<SystemPostmark>,
    pub system_mailgun: Option<SystemMailgun>,
    pub system_telnyx: Option<SystemTelnyx>,
    pub postmark_api_base_url: Url,
    /// `MAILGUN_API_BASE_URL`, else the base of the system account's region; a practice's own
    /// account uses its region's base unless this variable is set.
    pub mailgun_api_base_url: Option<Url>,
    pub telnyx_api_base_url: Url,
    /// `MAILGUN_WEBHOOK_MAX_AGE_SECS`: how old a Mailgun webhook's signed timestamp may be.
    /// Mailgun retries a webhook for about 8 hours; the default, 9 hours, lets every retry in.
    pub mailgun_webhook_max_age: std::time::Duration,
    /// Vendor names in the order the platform's email accounts are tried.
    pub email_system_providers: Vec<String>,
    pub sms_system_providers: Vec<String>,
}

const EMAIL_VENDORS: [&str; 3] = ["sendgrid", "postmark", "mailgun"];
const SMS_VENDORS: [&str; 2] = ["twilio", "telnyx"];

/// Mailgun's API base for a region.
pub fn mailgun_region_base(region: &str) -> &'static str {
    match region {
        "eu" => "https://api.eu.mailgun.net",
        _ => "https://api.mailgun.net",
    }
}

fn required(
    env: &impl Env,
    var: &'static str,
    because: &'static str,
) -> Result<String, ConfigError> {
    env.get(var)
        .ok_or_else(|| invalid(var, format!("required when {because} is set")))
}

/// The platform's email sender: `SYSTEM_FROM_EMAIL`/`SYSTEM_FROM_NAME`, else SendGrid's.
fn system_sender(env: &impl Env, because: &'static str) -> Result<SystemSender, ConfigError> {
    let from_email = env
        .get("SYSTEM_FROM_EMAIL")
        .or_else(|| env.get("SENDGRID_FROM_EMAIL"))
        .ok_or_else(|| {
            invalid(
                "SYSTEM_FROM_EMAIL",
                format!("required (or SENDGRID_FROM_EMAIL) when {because} is set"),
            )
        })?;
    let from_name = env
        .get("SYSTEM_FROM_NAME")
        .or_else(|| env.get("SENDGRID_FROM_NAME"))
        .unwrap_or_else(|| "Dentite".into());
    Ok(SystemSender {
        from_email,
        from_name,
    })
}

/// The order of `var`, each name known and configured; by default the configured ones in
/// `known` order.
fn order(
    env: &impl Env,
    var: &'static str,
    known: &[&str],
    configured: &[&str],
) -> Result<Vec<String>, ConfigError> {
    let Some(list) = env.get(var) else {
        return Ok(known
            .iter()
            .filter(|name| configured.contains(name))
            .map(|name| name.to_string())
            .collect());
    };
    let mut names: Vec<String> = Vec::new();
    for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let name = name.to_ascii_lowercase();
        if !known.contains(&name.as_str()) {
            return Err(invalid(
                var,
                format!("{name:?} is not one of {}", known.join(", ")),
            ));
        }
        if !configured.contains(&name.as_str()) {
            return Err(invalid(
                var,
                format!("{name} has no platform account configured"),
            ));
        }
        if names.contains(&name) {
            return Err(invalid(var, format!("{name} is listed twice")));
        }
        names.push(name);
    }
    Ok(names)
}

impl MoreVendors {
    /// `sendgrid_configured`/`twilio_configured`: whether the first two vendors have platform
    /// accounts, for the default orders.
    pub fn load(
        env: &impl Env,
        sendgrid_configured: bool,
        twilio_configured: bool,
    ) -> Result<Self, ConfigError> {
        let system_postmark = match env.get("POSTMARK_SERVER_TOKEN") {
            None => None,
            Some(token) => Some(SystemPostmark {
                server_token: SecretString::from(token),
                message_stream: env
                    .get("POSTMARK_MESSAGE_STREAM")
                    .unwrap_or_else(|| "outbound".into()),
                webhook_password: env.get("POSTMARK_WEBHOOK_PASSWORD").map(SecretString::from),
                sender: system_sender(env, "POSTMARK_SERVER_TOKEN")?,
            }),
        };
        let system_mailgun = match env.get("MAILGUN_API_KEY") {
            None => None,
            Some(key) => Some(SystemMailgun {
                api_key: SecretString::from(key),
                domain: required(env, "MAILGUN_DOMAIN", "MAILGUN_API_KEY")?,
                region: match env.get("MAILGUN_REGION").as_deref() {
                    None | Some("us") => "us".into(),
                    Some("eu") => "eu".into(),
                    Some(other) => {
                        return Err(invalid(
                            "MAILGUN_REGION",
                            format!("expected us or eu, got {other:?}"),
                        ));
                    }
                },
                webhook_signing_key: env
                    .get("MAILGUN_WEBHOOK_SIGNING_KEY")
                    .map(SecretString::from),
                sender: system_sender(env, "MAILGUN_API_KEY")?,
            }),
        };
        let system_telnyx = match env.get("TELNYX_API_KEY") {
            None => None,
            Some(key) => Some(SystemTelnyx {
                api_key: SecretString::from(key),
                public_key: env.get("TELNYX_PUBLIC_KEY"),
                phone_number: required(env, "TELNYX_PHONE_NUMBER", "TELNYX_API_KEY")?,
                messaging_profile_id: env.get("TELNYX_MESSAGING_PROFILE_ID"),
            }),
        };
        let mailgun_api_base_url = match env.get("MAILGUN_API_BASE_URL") {
            Some(_) => Some(parse_url(env, "MAILGUN_API_BASE_URL", "")?),
            None => None,
        };
        let email_configured: Vec<&str> = [
            ("sendgrid", sendgrid_configured),
            ("postmark", system_postmark.is_some()),
            ("mailgun", system_mailgun.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, configured)| configured.then_some(name))
        .collect();
        let sms_configured: Vec<&str> = [
            ("twilio", twilio_configured),
            ("telnyx", system_telnyx.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, configured)| configured.then_some(name))
        .collect();
        Ok(Self {
            email_system_providers: order(
                env,
                "EMAIL_SYSTEM_PROVIDERS",
                &EMAIL_VENDORS,
                &email_configured,
            )?,
            sms_system_providers: order(
                env,
                "SMS_SYSTEM_PROVIDERS",
                &SMS_VENDORS,
                &sms_configured,
            )?,
            system_postmark,
            system_mailgun,
            system_telnyx,
            postmark_api_base_url: parse_url(
                env,
                "POSTMARK_API_BASE_URL",
                "https://api.postmarkapp.com",
            )?,
            mailgun_api_base_url,
            telnyx_api_base_url: parse_url(env, "TELNYX_API_BASE_URL", "https://api.telnyx.com")?,
            mailgun_webhook_max_age: std::time::Duration::from_secs(parse_or(
                env,
                "MAILGUN_WEBHOOK_MAX_AGE_SECS",
                "32400",
            )?),
        })
    }

    /// Mailgun's API base for an account in `region`.
    pub fn mailgun_base(&self, region: &str) -> Url {
        self.mailgun_api_base_url.clone().unwrap_or_else(|| {
            Url::parse(mailgun_region_base(region)).expect("the region bases are valid URLs")
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_default_order_is_the_configured_vendors_in_the_documented_order() {
        let vendors = MoreVendors::load(
            &env(&[
                ("MAILGUN_API_KEY", "key"),
                ("MAILGUN_DOMAIN", "mg.example.com"),
                ("POSTMARK_SERVER_TOKEN", "token"),
                ("SENDGRID_FROM_EMAIL", "desk@example.com"),
            ]),
            true,
            false,
        )
        .unwrap();
        assert_eq!(
            vendors.email_system_providers,
            ["sendgrid", "postmark", "mailgun"]
        );
        assert!(vendors.sms_system_providers.is_empty());
    }

    #[test]
    fn an_order_naming_an_unconfigured_or_unknown_vendor_is_refused_naming_the_variable() {
        let unconfigured = MoreVendors::load(
            &env(&[("SMS_SYSTEM_PROVIDERS", "telnyx,twilio")]),
            false,
            true,
        )
        .unwrap_err();
        assert!(
            unconfigured
                .to_string()
                .starts_with("SMS_SYSTEM_PROVIDERS: telnyx")
        );
        let unknown =
            MoreVendors::load(&env(&[("EMAIL_SYSTEM_PROVIDERS", "sendgird")]), true, false)
                .unwrap_err();
        assert!(
            unknown
                .to_string()
                .contains("not one of sendgrid, postmark, mailgun")
        );
    }

    #[test]
    fn a_system_email_vendor_needs_a_from_address() {
        let error =
            MoreVendors::load(&env(&[("POSTMARK_SERVER_TOKEN", "t")]), false, false).unwrap_err();
        assert!(error.to_string().starts_with("SYSTEM_FROM_EMAIL"));
    }

    #[test]
    fn system_from_overrides_sendgrid_from() {
        let vendors = MoreVendors::load(
            &env(&[
                ("POSTMARK_SERVER_TOKEN", "t"),
                ("SENDGRID_FROM_EMAIL", "sg@example.com"),
                ("SYSTEM_FROM_EMAIL", "all@example.com"),
                ("SYSTEM_FROM_NAME", "Smiles"),
            ]),
            false,
            false,
        )
        .unwrap();
        let sender = vendors.system_postmark.unwrap().sender;
        assert_eq!(
            (sender.from_email.as_str(), sender.from_name.as_str()),
            ("all@example.com", "Smiles")
        );
    }
}
