//! Value types parsed at the edge: once constructed, a value is known to be well formed.
//! Each error message is written for the person who typed the value.

use std::{collections::BTreeMap, fmt};

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

/// A DNS name a practice sends from: at least two labels of letters, digits and hyphens, no
/// scheme or path. A name that cannot be a public mail domain is refused before any provider sees
/// it: an IP address, `localhost`, a bare top-level domain, or a reserved non-public suffix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DomainName(String);
string_value!(DomainName);

/// Suffixes that never resolve on the public internet (RFC 6761, RFC 6762), so mail sent from or
/// to them cannot be authenticated or delivered.
const NON_PUBLIC_SUFFIXES: [&str; 3] = ["localhost", "local", "invalid"];

impl DomainName {
    pub fn parse(value: &str) -> Result<Self, String> {
        let value = value.trim().trim_end_matches('.').to_ascii_lowercase();
        if value.contains("://") || value.contains('/') {
            return Err(format!(
                "{value:?} must be a bare domain like example.com, without scheme or path"
            ));
        }
        if value.is_empty() || value.len() > 253 || !value.split('.').all(is_dns_label) {
            return Err(format!("{value:?} is not a valid domain name"));
        }
        let top_level = value.rsplit('.').next().unwrap_or_default();
        if !value.contains('.') || top_level.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "{value:?} must be a public domain name like example.com, not a bare name or an IP address"
            ));
        }
        if NON_PUBLIC_SUFFIXES.contains(&top_level) {
            return Err(format!(
                "{value:?} is a reserved name that is not reachable on the internet"
            ));
        }
        Ok(Self(value))
    }

    /// A single DNS label, as SendGrid's return-path subdomain.
    pub fn parse_label(value: &str) -> Result<String, String> {
        let value = value.trim().to_ascii_lowercase();
        if is_dns_label(&value) {
            Ok(value)
        } else {
            Err(format!("{value:?} must be a single DNS label like \"em\""))
        }
    }
}

fn is_dns_label(label: &str) -> bool {
    (1..=63).contains(&label.len())
        && !label.starts_with('-')
        && !label.ends_with('-')
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// Why a one-line value (an email subject, a sender's display name) is refused, if it is. Such
/// values end up in email headers and list views, where a control character (tab, CR, LF, NEL)
/// or a Unicode line or paragraph separator would split or disguise them.
pub fn single_line(value: &str) -> Result<(), &'static str> {
    if value
        .chars()
        .any(|c| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}'))
    {
        Err("must be a single line without control characters or line separators")
    } else {
        Ok(())
    }
}

/// The display name in a `From` header. It may not carry an address or quoting of its own
/// (`"Bank" <ceo@bank.test>`), which mail clients would show as the sender instead of ours.
pub fn sender_display_name(value: &str) -> Result<String, String> {
    let value = value.trim();
    match value.chars().count() {
        0 => return Err("must not be empty".into()),
        n if n > 100 => return Err("must be at most 100 characters".into()),
        _ => {}
    }
    single_line(value)?;
    if value.contains(['<', '>', '@', '"']) {
        return Err("must be a plain name, without an email address, <, >, @ or quotes".into());
    }
    Ok(value.to_string())
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

/// Field name → what is wrong with it, in words for a person.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FieldErrors(BTreeMap<String, String>);

impl FieldErrors {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn single(field: &str, message: impl Into<String>) -> Self {
        let mut errors = Self::new();
        errors.add(field, message);
        errors
    }

    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        self.0
            .entry(field.to_string())
            .or_insert_with(|| message.into());
    }

    /// Records the error of a parse under `field` and yields the value when it parsed.
    pub fn check<T, E: std::fmt::Display>(
        &mut self,
        field: &str,
        result: Result<T, E>,
    ) -> Option<T> {
        result.map_err(|e| self.add(field, e.to_string())).ok()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The names of the fields in error, alphabetically.
    pub fn fields(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// Each field in error with its message, alphabetically by field.
    pub fn into_fields(self) -> BTreeMap<String, String> {
        self.0
    }
}

/// The longest `search` a list accepts: longer is no search anyone types.
pub const SEARCH_MAX_CHARS: usize = 100;

/// A list's `search` parameter, trimmed (empty when absent); a longer one is recorded in `errors`.
pub fn search_text<'a>(errors: &mut FieldErrors, search: Option<&'a str>) -> &'a str {
    let search = search.map(str::trim).unwrap_or_default();
    if search.chars().count() > SEARCH_MAX_CHARS {
        errors.add(
            "search",
            format!("must be at most {SEARCH_MAX_CHARS} characters"),
        );
    }
    search
}

/// A search word taken literally by `like`/`ilike`: its own `%`, `_` and `\` are not wildcards.
pub fn escape_like(word: &str) -> String {
    word.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
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
    fn domains_that_cannot_be_public_mail_domains_are_refused() {
        for bad in [
            "127.0.0.1",
            "10.0.0.1",
            "localhost",
            "mail.localhost",
            "com",
            "printer.local",
            "x.invalid",
        ] {
            assert!(DomainName::parse(bad).is_err(), "{bad}");
        }
        assert!(EmailAddress::parse("root@127.0.0.1").is_err());
        assert!(DomainName::parse("smile-dental.co.uk").is_ok());
    }

    #[test]
    fn single_lines_refuse_every_line_break_and_control_character() {
        assert!(single_line("Your recall is due ✓").is_ok());
        for bad in [
            "a\tb",
            "a\rb",
            "a\nb",
            "a\u{85}b",
            "a\u{2028}b",
            "a\u{2029}b",
            "a\u{0}b",
        ] {
            assert!(single_line(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn display_names_may_not_carry_an_address() {
        assert_eq!(
            sender_display_name(" Smile Dental & Co. ").unwrap(),
            "Smile Dental & Co."
        );
        for bad in [
            "\"Evil\" <ceo@bank.test>",
            "ceo@bank.test",
            "Bank <x>",
            "",
            "Two\nLines",
            &"n".repeat(101),
        ] {
            assert!(sender_display_name(bad).is_err(), "{bad:?}");
        }
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

    #[test]
    fn like_wildcards_in_search_words_are_literal() {
        assert_eq!(escape_like(r"50%_off\"), r"50\%\_off\\");
    }
}
