//! Value types parsed at the edge: once constructed, a value is known to be well formed.
//! Each error message is written for the person who typed the value.

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! string_value {
    ($name:ident) => {
        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::parse(&value)
            }
        }
        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }
    };
}

/// An email address in the common `local@domain.tld` form (no display names, no comments).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EmailAddress(String);
string_value!(EmailAddress);

impl EmailAddress {
    pub fn parse(value: &str) -> Result<Self, String> {
        let value = value.trim();
        let invalid = || format!("{value:?} is not a valid email address");
        if value.len() > 254 || value.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid());
        }
        let (local, domain) = value.rsplit_once('@').ok_or_else(invalid)?;
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..")
            && local
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c));
        if !local_ok || DomainName::parse(domain).is_err() || !domain.contains('.') {
            return Err(invalid());
        }
        Ok(Self(format!("{local}@{}", domain.to_ascii_lowercase())))
    }
}

/// A phone number in E.164: `+`, a non-zero country digit, 8 to 15 digits in all.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PhoneE164(String);
string_value!(PhoneE164);

impl PhoneE164 {
    pub fn parse(value: &str) -> Result<Self, String> {
        let value = value.trim();
        let digits = value.strip_prefix('+').unwrap_or("");
        let ok = (8..=15).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0');
        if ok {
            Ok(Self(value.to_string()))
        } else {
            Err(format!(
                "{value:?} is not an E.164 phone number (like +15551234567)"
            ))
        }
    }
}

/// A DNS name a practice sends from: labels of letters, digits and hyphens, no scheme or path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DomainName(String);
string_value!(DomainName);

impl DomainName {
    pub fn parse(value: &str) -> Result<Self, String> {
        let value = value.trim().trim_end_matches('.').to_ascii_lowercase();
        if value.contains("://") || value.contains('/') {
            return Err(format!(
                "{value:?} must be a bare domain like example.com, without scheme or path"
            ));
        }
        let labels_ok = !value.is_empty()
            && value.len() <= 253
            && value.split('.').all(|label| {
                (1..=63).contains(&label.len())
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        if !labels_ok {
            return Err(format!("{value:?} is not a valid domain name"));
        }
        Ok(Self(value))
    }

    /// A single DNS label, as SendGrid's return-path subdomain.
    pub fn parse_label(value: &str) -> Result<String, String> {
        let value = value.trim().to_ascii_lowercase();
        match Self::parse(&value) {
            Ok(_) if !value.contains('.') => Ok(value),
            _ => Err(format!("{value:?} must be a single DNS label like \"em\"")),
        }
    }
}

/// Why a credential's shape is wrong; never repeats the credential itself.
pub fn sendgrid_api_key(value: &str) -> Result<String, String> {
    let value = value.trim();
    let mut parts = value.split('.');
    let ok = parts.next() == Some("SG")
        && parts.clone().count() == 2
        && parts.all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if ok && value.len() <= 200 {
        Ok(value.to_string())
    } else {
        Err("must be a SendGrid API key of the form SG.xxxx.yyyy".into())
    }
}

pub fn twilio_account_sid(value: &str) -> Result<String, String> {
    let value = value.trim();
    match value.strip_prefix("AC") {
        Some(hex) if hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Ok(value.to_string())
        }
        _ => Err("must be a Twilio Account SID: AC followed by 32 hexadecimal characters".into()),
    }
}

pub fn twilio_auth_token(value: &str) -> Result<String, String> {
    let value = value.trim();
    if value.len() == 32 && value.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(value.to_string())
    } else {
        Err("must be a Twilio auth token: 32 hexadecimal characters".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_addresses_are_accepted_and_their_domain_lowercased() {
        assert_eq!(
            EmailAddress::parse(" Pat.Lee+x@Example.COM ")
                .unwrap()
                .as_str(),
            "Pat.Lee+x@example.com"
        );
        for bad in [
            "",
            "pat",
            "pat@",
            "@x.com",
            "pat@x",
            "pa t@x.com",
            "pat@x..com",
            ".pat@x.com",
            "pat@-x.com",
        ] {
            assert!(EmailAddress::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn phone_numbers_must_be_e164() {
        assert!(PhoneE164::parse("+15551234567").is_ok());
        for bad in [
            "15551234567",
            "+0551234567",
            "+1 555 123",
            "+1234567",
            "+1234567890123456",
            "+1555abc4567",
        ] {
            assert!(PhoneE164::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn domains_refuse_schemes_paths_and_bad_labels() {
        assert_eq!(
            DomainName::parse("Mail.Smile-Dental.com.")
                .unwrap()
                .as_str(),
            "mail.smile-dental.com"
        );
        for bad in [
            "https://x.com",
            "x.com/path",
            "-x.com",
            "x..com",
            "x_y.com",
            "",
            &"a".repeat(64),
        ] {
            assert!(DomainName::parse(bad).is_err(), "{bad}");
        }
        assert!(DomainName::parse_label("em").is_ok());
        assert!(DomainName::parse_label("em.x").is_err());
    }

    #[test]
    fn credential_shapes_are_checked_without_echoing_the_value() {
        assert!(sendgrid_api_key("SG.abc_DEF-1.xyz").is_ok());
        for bad in ["sk_live", "SG.abc", "SG..x", "SG.a.b.c"] {
            let err = sendgrid_api_key(bad).unwrap_err();
            assert!(!err.contains(bad));
        }
        assert!(twilio_account_sid(&format!("AC{}", "a1".repeat(16))).is_ok());
        assert!(twilio_account_sid(&format!("SK{}", "a1".repeat(16))).is_err());
        assert!(twilio_auth_token(&"f0".repeat(16)).is_ok());
        assert!(twilio_auth_token("short").is_err());
    }
}
