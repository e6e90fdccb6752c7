//! Typed configuration, read once at start-up from the environment (and `.env` when present).
//!
//! Every problem names the variable it comes from. In development the two keys are generated once
//! and kept in a git-ignored file so that restarts can still read what was encrypted before.

use std::{
    fmt,
    net::{IpAddr, SocketAddr},
    path::Path,
    time::Duration,
};

pub use ipnet::IpNet;
use secrecy::{ExposeSecret, SecretString};
use url::Url;

use crate::crypto::KeyMaterial;

mod retention;
mod vendors;
pub use retention::RetentionPolicy;
pub use vendors::{MoreVendors, SystemMailgun, SystemPostmark, SystemSender, SystemTelnyx};

/// Where development keys live between runs; listed in `.gitignore`.
pub const DEV_KEYS_FILE: &str = ".dentite-dev-keys";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{var}: {reason}")]
    Invalid { var: &'static str, reason: String },
    #[error("APP_ENV=production requires {0}")]
    MissingInProduction(&'static str),
    #[error("could not keep development keys in {DEV_KEYS_FILE}: {0}")]
    DevKeys(#[source] std::io::Error),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppEnv {
    Development,
    Production,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl LogFormat {
    pub fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
        match env.get("LOG_FORMAT").as_deref() {
            None | Some("text") => Ok(Self::Text),
            Some("json") => Ok(Self::Json),
            Some(other) => Err(invalid(
                "LOG_FORMAT",
                format!("expected text or json, got {other:?}"),
            )),
        }
    }
}

/// The platform's own SendGrid account.
#[derive(Clone)]
pub struct SystemSendGrid {
    pub api_key: SecretString,
    pub from_email: String,
    pub from_name: String,
}

/// The platform's own Twilio account and number.
#[derive(Clone)]
pub struct SystemTwilio {
    pub account_sid: String,
    pub auth_token: SecretString,
    pub phone_number: String,
    /// `TWILIO_HELP_REPLY_CONTACT` when `TWILIO_HELP_REPLY_ENABLED` is true: our webhook then
    /// answers HELP/INFO on the system number, naming this contact. `None` (the default) leaves
    /// HELP to Twilio, which answers it itself on long codes.
    pub help_reply_contact: Option<String>,
}

impl fmt::Debug for SystemSendGrid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SystemSendGrid")
            .field("from_email", &self.from_email)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for SystemTwilio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SystemTwilio")
            .field("account_sid", &self.account_sid)
            .field("phone_number", &self.phone_number)
            .finish_non_exhaustive()
    }
}

/// Send-queue tuning; defaults follow the vendors' published limits (a Twilio long code
/// sends one message per second).
#[derive(Debug, Clone)]
pub struct QueueSettings {
    pub workers: usize,
    pub max_attempts: i32,
    pub retry_base: Duration,
    pub retry_horizon: Duration,
    pub lease: Duration,
    pub poll_interval: Duration,
    /// Requests per second per provider account; `None` turns rate limiting off (benchmarks).
    pub email_rate_per_sec: Option<f64>,
    pub sms_rate_per_sec: Option<f64>,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub database_url: String,
    /// `DATABASE_LISTEN_URL`: a direct connection (not through a pooler) for LISTEN, migrations
    /// and database creation; `DATABASE_URL` when unset.
    pub database_listen_url: String,
    /// `DATABASE_POOLED`: `DATABASE_URL` is a transaction-mode pooler, so no statement may be
    /// kept across transactions.
    pub database_pooled: bool,
    pub bind_addr: SocketAddr,
    pub app_env: AppEnv,
    pub keys: KeyMaterial,
    pub auth_signing_key: SigningSeed,
    pub system_sendgrid: Option<SystemSendGrid>,
    pub sendgrid_webhook_verify_key: Option<String>,
    pub system_twilio: Option<SystemTwilio>,
    /// Mailgun, Postmark and Telnyx as platform accounts, and the failover orders.
    pub vendors: MoreVendors,
    pub sendgrid_api_base_url: Url,
    pub twilio_api_base_url: Url,
    pub webhook_base_url: Url,
    pub client_cache_ttl: Duration,
    pub sendgrid_webhook_max_age: Option<Duration>,
    /// Twilio webhook shared key (HMAC-SHA256 variant), for requests that carry
    /// `X-Twilio-Webhooks-Signature-Settings`; without it such requests are refused.
    pub twilio_webhook_shared_key: Option<SecretString>,
    /// When set, the settings header must name this shared key id.
    pub twilio_webhook_shared_key_id: Option<String>,
    pub provider_timeout: Duration,
    /// How long an open health circuit skips a failing custom account before one send probes it.
    pub circuit_cool_down: Duration,
    pub log_format: LogFormat,
    pub queue: QueueSettings,
    /// How long message bodies, logs, provider events, outbox messages and idempotency keys are
    /// kept (`RETENTION_*`).
    pub retention: RetentionPolicy,
    /// `TEST_SENDS_PER_HOUR`: test sends a practice may make per clock hour, on top of the
    /// account's rate limit. They go to any number the caller types, so unbounded they are a
    /// toll-fraud channel on whichever account pays.
    pub test_sends_per_hour: u32,
    /// `TRUSTED_PROXIES`: peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
    pub http: HttpLimits,
}

impl Settings {
    /// Where this instance's queries and its LISTEN connections go.
    pub fn database_endpoints(&self) -> anyhow::Result<crate::db::Endpoints> {
        crate::db::Endpoints::new(
            &self.database_url,
            &self.database_listen_url,
            self.database_pooled,
        )
    }
}

/// How the HTTP server protects itself from clients that hold connections open.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    /// `HTTP_HEADER_READ_TIMEOUT_MS`: a request's headers must arrive within this long of its
    /// first byte (or of the connection, for the first request).
    pub header_read_timeout: Duration,
    /// `HTTP_MAX_CONNECTIONS`: connections served at once; further ones wait in the kernel's
    /// backlog until one closes.
    pub max_connections: usize,
}

/// The 32-byte Ed25519 seed that signs login tokens.
#[derive(Clone)]
pub struct SigningSeed(pub [u8; 32]);

impl fmt::Debug for SigningSeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningSeed(..)")
    }
}

/// A source of variables: the process environment in production, a map in tests.
pub trait Env {
    fn get(&self, name: &str) -> Option<String>;
}

pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.trim().is_empty())
    }
}

impl<S: std::hash::BuildHasher> Env for std::collections::HashMap<String, String, S> {
    fn get(&self, name: &str) -> Option<String> {
        self.get(name).cloned().filter(|v| !v.trim().is_empty())
    }
}

impl Settings {
    /// Reads `.env` (when present) and the environment; in development, missing keys come from
    /// (or are generated into) [`DEV_KEYS_FILE`] in the working directory.
    pub fn from_process_env() -> Result<Self, ConfigError> {
        let _ = dotenvy::dotenv();
        Self::load(&ProcessEnv, Path::new(DEV_KEYS_FILE))
    }

    pub fn load(env: &impl Env, dev_keys_file: &Path) -> Result<Self, ConfigError> {
        let app_env = match env.get("APP_ENV").as_deref() {
            None | Some("development") => AppEnv::Development,
            Some("production") => AppEnv::Production,
            Some(other) => {
                return Err(invalid(
                    "APP_ENV",
                    format!("expected development or production, got {other:?}"),
                ));
            }
        };
        if app_env == AppEnv::Production {
            for var in ["ENCRYPTION_KEY", "AUTH_SIGNING_KEY", "WEBHOOK_BASE_URL"] {
                if env.get(var).is_none() {
                    return Err(ConfigError::MissingInProduction(var));
                }
            }
        }

        let bind_addr: SocketAddr = parse_or(env, "BIND_ADDR", "127.0.0.1:8080")?;
        let dev_keys = match (env.get("ENCRYPTION_KEY"), env.get("AUTH_SIGNING_KEY")) {
            (Some(_), Some(_)) => None,
            _ => Some(DevKeys::load_or_create(dev_keys_file).map_err(ConfigError::DevKeys)?),
        };
        let encryption_key = env
            .get("ENCRYPTION_KEY")
            .or_else(|| dev_keys.as_ref().map(|k| k.encryption_key.clone()))
            .expect("development keys exist whenever a key variable is unset");
        let auth_key = env
            .get("AUTH_SIGNING_KEY")
            .or_else(|| dev_keys.as_ref().map(|k| k.auth_signing_key.clone()))
            .expect("development keys exist whenever a key variable is unset");
        let previous = env
            .get("ENCRYPTION_KEYS_PREVIOUS")
            .map(|list| {
                list.split(',')
                    .map(str::trim)
                    .filter(|k| !k.is_empty())
                    .map(|k| parse_key32("ENCRYPTION_KEYS_PREVIOUS", k))
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?
            .unwrap_or_default();
        let keys = KeyMaterial {
            current: parse_key32("ENCRYPTION_KEY", &encryption_key)?,
            previous,
        };
        let auth_signing_key = SigningSeed(parse_key32("AUTH_SIGNING_KEY", &auth_key)?);

        let system_sendgrid = match env.get("SENDGRID_API_KEY") {
            None => None,
            Some(api_key) => Some(SystemSendGrid {
                api_key: SecretString::from(api_key),
                from_email: env.get("SENDGRID_FROM_EMAIL").ok_or_else(|| {
                    invalid(
                        "SENDGRID_FROM_EMAIL",
                        "required when SENDGRID_API_KEY is set",
                    )
                })?,
                from_name: env
                    .get("SENDGRID_FROM_NAME")
                    .unwrap_or_else(|| "Dentite".into()),
            }),
        };
        let system_twilio = match (env.get("TWILIO_ACCOUNT_SID"), env.get("TWILIO_AUTH_TOKEN")) {
            (None, None) => None,
            (Some(account_sid), Some(token)) => Some(SystemTwilio {
                account_sid,
                auth_token: SecretString::from(token),
                phone_number: env.get("TWILIO_PHONE_NUMBER").ok_or_else(|| {
                    invalid(
                        "TWILIO_PHONE_NUMBER",
                        "required when TWILIO_ACCOUNT_SID is set",
                    )
                })?,
                help_reply_contact: match parse_or(env, "TWILIO_HELP_REPLY_ENABLED", "false")? {
                    false => None,
                    true => Some(env.get("TWILIO_HELP_REPLY_CONTACT").ok_or_else(|| {
                        invalid(
                            "TWILIO_HELP_REPLY_CONTACT",
                            "required when TWILIO_HELP_REPLY_ENABLED is true: the HELP reply must say how to reach you",
                        )
                    })?),
                },
            }),
            (Some(_), None) => {
                return Err(invalid(
                    "TWILIO_AUTH_TOKEN",
                    "required when TWILIO_ACCOUNT_SID is set",
                ));
            }
            (None, Some(_)) => {
                return Err(invalid(
                    "TWILIO_ACCOUNT_SID",
                    "required when TWILIO_AUTH_TOKEN is set",
                ));
            }
        };

        let default_webhook_base = format!("http://{bind_addr}");
        let database_url = env
            .get("DATABASE_URL")
            .unwrap_or_else(|| "postgres://postgres@localhost:5432/dentite".into());
        let vendors = MoreVendors::load(env, system_sendgrid.is_some(), system_twilio.is_some())?;
        Ok(Settings {
            database_listen_url: env
                .get("DATABASE_LISTEN_URL")
                .unwrap_or_else(|| database_url.clone()),
            database_pooled: parse_or(env, "DATABASE_POOLED", "false")?,
            database_url,
            bind_addr,
            app_env,
            keys,
            auth_signing_key,
            system_sendgrid,
            sendgrid_webhook_verify_key: env.get("SENDGRID_WEBHOOK_VERIFY_KEY"),
            vendors,
            system_twilio,
            sendgrid_api_base_url: parse_url(
                env,
                "SENDGRID_API_BASE_URL",
                "https://api.sendgrid.com",
            )?,
            twilio_api_base_url: parse_url(env, "TWILIO_API_BASE_URL", "https://api.twilio.com")?,
            webhook_base_url: parse_url(env, "WEBHOOK_BASE_URL", &default_webhook_base)?,
            client_cache_ttl: Duration::from_secs(parse_or(env, "CLIENT_CACHE_TTL_SECS", "3600")?),
            sendgrid_webhook_max_age: match parse_or::<u64>(
                env,
                "SENDGRID_WEBHOOK_MAX_AGE_SECS",
                "90000",
            )? {
                0 => None,
                secs => Some(Duration::from_secs(secs)),
            },
            twilio_webhook_shared_key: env.get("TWILIO_WEBHOOK_SHARED_KEY").map(SecretString::from),
            twilio_webhook_shared_key_id: env.get("TWILIO_WEBHOOK_SHARED_KEY_ID"),
            provider_timeout: Duration::from_millis(parse_or(env, "PROVIDER_TIMEOUT_MS", "10000")?),
            circuit_cool_down: match parse_or::<u64>(env, "PROVIDER_CIRCUIT_COOL_DOWN_SECS", "60")?
            {
                0 => {
                    return Err(invalid(
                        "PROVIDER_CIRCUIT_COOL_DOWN_SECS",
                        "must be at least 1 second (got 0)",
                    ));
                }
                secs => Duration::from_secs(secs),
            },
            log_format: LogFormat::from_env(env)?,
            queue: QueueSettings {
                workers: parse_or(env, "SEND_WORKERS", "8")?,
                max_attempts: parse_or(env, "SEND_MAX_ATTEMPTS", "8")?,
                retry_base: Duration::from_millis(parse_or(env, "SEND_RETRY_BASE_MS", "2000")?),
                retry_horizon: Duration::from_secs(parse_or(
                    env,
                    "SEND_RETRY_HORIZON_SECS",
                    "86400",
                )?),
                lease: Duration::from_secs(parse_or(env, "SEND_LEASE_SECS", "60")?),
                poll_interval: Duration::from_millis(parse_or(env, "SEND_POLL_MS", "1000")?),
                email_rate_per_sec: parse_rate(env, "SENDGRID_RATE_PER_SEC", "100")?,
                sms_rate_per_sec: parse_rate(env, "TWILIO_RATE_PER_SEC", "1")?,
            },
            retention: RetentionPolicy {
                body_days: parse_or(env, "RETENTION_BODY_DAYS", "90")?,
                log_days: parse_or(env, "RETENTION_LOG_DAYS", "2190")?,
                event_days: parse_or(env, "RETENTION_EVENT_DAYS", "400")?,
                outbox_days: parse_or(env, "RETENTION_OUTBOX_DAYS", "30")?,
                idempotency_hours: parse_or(env, "RETENTION_IDEMPOTENCY_HOURS", "168")?,
                interval: Duration::from_secs(
                    parse_or::<u64>(env, "RETENTION_INTERVAL_SECS", "3600")?.max(1),
                ),
            },
            test_sends_per_hour: match parse_or(env, "TEST_SENDS_PER_HOUR", "10")? {
                0 => return Err(invalid("TEST_SENDS_PER_HOUR", "must be at least 1 (got 0)")),
                n => n,
            },
            trusted_proxies: parse_trusted_proxies(env)?,
            http: HttpLimits {
                header_read_timeout: match parse_or::<u64>(
                    env,
                    "HTTP_HEADER_READ_TIMEOUT_MS",
                    "10000",
                )? {
                    0 => {
                        return Err(invalid(
                            "HTTP_HEADER_READ_TIMEOUT_MS",
                            "must be at least 1 millisecond (got 0)",
                        ));
                    }
                    ms => Duration::from_millis(ms),
                },
                max_connections: match parse_or(env, "HTTP_MAX_CONNECTIONS", "1024")? {
                    0 => {
                        return Err(invalid(
                            "HTTP_MAX_CONNECTIONS",
                            "must be at least 1 (got 0)",
                        ));
                    }
                    n => n,
                },
            },
        })
    }

    /// Whether a channel has no platform vendor, so its system account is the outbox.
    pub fn uses_outbox(&self) -> bool {
        self.vendors.email_system_providers.is_empty()
            || self.vendors.sms_system_providers.is_empty()
    }
}

fn invalid(var: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        var,
        reason: reason.into(),
    }
}

fn parse_or<T>(env: &impl Env, var: &'static str, default: &str) -> Result<T, ConfigError>
where
    T: std::str::FromStr,
    T::Err: fmt::Display,
{
    let raw = env.get(var).unwrap_or_else(|| default.to_string());
    raw.trim()
        .parse()
        .map_err(|e| invalid(var, format!("{e} (got {raw:?})")))
}

/// Comma-separated addresses (`10.0.0.7`) and networks (`10.0.0.0/8`, `fd00::/8`).
fn parse_trusted_proxies(env: &impl Env) -> Result<Vec<IpNet>, ConfigError> {
    let Some(list) = env.get("TRUSTED_PROXIES") else {
        return Ok(Vec::new());
    };
    list.split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            entry
                .parse::<IpNet>()
                .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    invalid(
                        "TRUSTED_PROXIES",
                        format!("{entry:?} is neither an IP address nor a CIDR network"),
                    )
                })
        })
        .collect()
}

/// `0` turns the limit off.
fn parse_rate(
    env: &impl Env,
    var: &'static str,
    default: &str,
) -> Result<Option<f64>, ConfigError> {
    let rate: f64 = parse_or(env, var, default)?;
    if !rate.is_finite() || rate < 0.0 {
        return Err(invalid(
            var,
            "must be a non-negative number of requests per second",
        ));
    }
    Ok((rate > 0.0).then_some(rate))
}

fn parse_url(env: &impl Env, var: &'static str, default: &str) -> Result<Url, ConfigError> {
    let raw = env.get(var).unwrap_or_else(|| default.to_string());
    let url = Url::parse(raw.trim()).map_err(|e| invalid(var, format!("{e} (got {raw:?})")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(invalid(var, "must be an absolute http(s) URL"));
    }
    Ok(url)
}

fn parse_key32(var: &'static str, hex_key: &str) -> Result<[u8; 32], ConfigError> {
    let bytes = hex::decode(hex_key.trim())
        .map_err(|_| invalid(var, "must be 64 hex characters (32 bytes)"))?;
    bytes
        .try_into()
        .map_err(|_| invalid(var, "must be 64 hex characters (32 bytes)"))
}

/// Fresh random keys, hex encoded, as `dentite keys generate` prints them.
pub fn generate_key_hex() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

struct DevKeys {
    encryption_key: String,
    auth_signing_key: String,
}

impl DevKeys {
    fn load_or_create(path: &Path) -> std::io::Result<Self> {
        if let Ok(text) = std::fs::read_to_string(path) {
            let value = |name: &str| {
                text.lines()
                    .find_map(|line| line.strip_prefix(name)?.strip_prefix('='))
                    .map(|v| v.trim().to_string())
            };
            if let (Some(encryption_key), Some(auth_signing_key)) =
                (value("ENCRYPTION_KEY"), value("AUTH_SIGNING_KEY"))
            {
                tracing::warn!(file = %path.display(), "using development keys; set ENCRYPTION_KEY and AUTH_SIGNING_KEY in production");
                return Ok(Self {
                    encryption_key,
                    auth_signing_key,
                });
            }
        }
        let keys = Self {
            encryption_key: generate_key_hex(),
            auth_signing_key: generate_key_hex(),
        };
        write_private_file(
            path,
            &format!(
                "# Development keys made by dentite; never use them in production.\nENCRYPTION_KEY={}\nAUTH_SIGNING_KEY={}\n",
                keys.encryption_key, keys.auth_signing_key
            ),
        )?;
        tracing::warn!(file = %path.display(), "generated development keys; set ENCRYPTION_KEY and AUTH_SIGNING_KEY in production");
        Ok(keys)
    }
}

fn write_private_file(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(contents.as_bytes())
}

impl SystemSendGrid {
    pub fn api_key(&self) -> &str {
        self.api_key.expose_secret()
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

    fn keys() -> Vec<(&'static str, &'static str)> {
        vec![
            ("ENCRYPTION_KEY", "11".repeat(32).leak()),
            ("AUTH_SIGNING_KEY", "22".repeat(32).leak()),
        ]
    }

    #[test]
    fn defaults_match_the_contract() {
        let s = Settings::load(&env(&keys()), Path::new("/nonexistent/keys")).unwrap();
        assert_eq!(s.database_url, "postgres://postgres@localhost:5432/dentite");
        assert_eq!(s.database_listen_url, s.database_url);
        assert!(!s.database_pooled);
        assert_eq!(s.bind_addr.to_string(), "127.0.0.1:8080");
        assert_eq!(s.webhook_base_url.as_str(), "http://127.0.0.1:8080/");
        assert_eq!(s.client_cache_ttl, Duration::from_secs(3600));
        assert_eq!(s.circuit_cool_down, Duration::from_secs(60));
        assert!(s.system_sendgrid.is_none() && s.system_twilio.is_none());
        assert!(s.uses_outbox());
    }

    #[test]
    fn production_refuses_to_start_without_each_required_variable() {
        for missing in ["ENCRYPTION_KEY", "AUTH_SIGNING_KEY", "WEBHOOK_BASE_URL"] {
            let mut vars = keys();
            vars.push(("APP_ENV", "production"));
            vars.push(("WEBHOOK_BASE_URL", "https://hooks.example.com"));
            vars.retain(|(k, _)| *k != missing);
            let err = Settings::load(&env(&vars), Path::new("/nonexistent/keys")).unwrap_err();
            assert!(err.to_string().contains(missing), "{err}");
        }
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        for (var, value) in [
            ("BIND_ADDR", "not an address"),
            ("ENCRYPTION_KEY", "abcd"),
            ("CLIENT_CACHE_TTL_SECS", "soon"),
            ("WEBHOOK_BASE_URL", "ftp://x"),
            ("LOG_FORMAT", "xml"),
            ("PROVIDER_CIRCUIT_COOL_DOWN_SECS", "0"),
            ("DATABASE_POOLED", "yes please"),
        ] {
            let mut vars = keys();
            vars.retain(|(k, _)| *k != var);
            vars.push((var, value));
            let err = Settings::load(&env(&vars), Path::new("/nonexistent/keys")).unwrap_err();
            assert!(err.to_string().starts_with(var), "{var}: {err}");
        }
    }

    #[test]
    fn the_system_help_reply_is_off_by_default_and_on_only_with_a_contact() {
        let twilio = |extra: &[(&'static str, &'static str)]| {
            let mut vars = keys();
            vars.extend([
                ("TWILIO_ACCOUNT_SID", "AC00000000000000000000000000000000"),
                ("TWILIO_AUTH_TOKEN", "00000000000000000000000000000000"),
                ("TWILIO_PHONE_NUMBER", "+15550000000"),
            ]);
            vars.extend_from_slice(extra);
            Settings::load(&env(&vars), Path::new("/nonexistent/keys"))
        };
        let contact = |s: Settings| s.system_twilio.unwrap().help_reply_contact;
        assert_eq!(contact(twilio(&[]).unwrap()), None);
        assert_eq!(
            contact(
                twilio(&[
                    ("TWILIO_HELP_REPLY_ENABLED", "true"),
                    ("TWILIO_HELP_REPLY_CONTACT", "help@dentite.test"),
                ])
                .unwrap()
            )
            .as_deref(),
            Some("help@dentite.test")
        );
        let err = twilio(&[("TWILIO_HELP_REPLY_ENABLED", "true")]).unwrap_err();
        assert!(
            err.to_string().starts_with("TWILIO_HELP_REPLY_CONTACT"),
            "{err}"
        );
    }

    #[test]
    fn development_keys_are_generated_once_and_reused() {
        let dir = std::env::temp_dir().join(format!("dentite-keys-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("keys");
        let first = Settings::load(&env(&[]), &file).unwrap();
        let second = Settings::load(&env(&[]), &file).unwrap();
        assert_eq!(first.keys.current, second.keys.current);
        assert_eq!(first.auth_signing_key.0, second.auth_signing_key.0);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
