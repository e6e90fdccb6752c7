//! What every vendor's client has in common: the provider-neutral error (which decides failover),
//! the outcome of an accepted send, the shared `reqwest::Client` builder, and the "send a request,
//! turn a failure into a `ProviderError`" plumbing. Each vendor only supplies how to read its own
//! error bodies.

use std::error::Error as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;

/// Why a provider call failed, sorted by what the caller should do about it.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum ProviderError {
    /// The account itself is refused: bad/revoked key, missing scope, unverified sender, suspended
    /// account (HTTP 401/403, Twilio 20003), or an account-side sender restriction (Twilio 21606,
    /// 21608).
    #[error("{message}")]
    AccountRejected { message: String },
    /// This recipient cannot be sent to (Twilio 21211, 21610 opted out, 21612, 21614, 21635;
    /// SendGrid 400 whose errors all point at `personalizations.N.to`).
    #[error("{message}")]
    RecipientRejected {
        code: Option<i64>,
        message: String,
        opted_out: bool,
    },
    /// HTTP 429 / Twilio 20429. `retry_after` comes from `Retry-After` (seconds) or, failing that,
    /// SendGrid's `X-RateLimit-Reset` (unix seconds).
    #[error("rate limited by the provider")]
    RateLimited { retry_after: Option<Duration> },
    /// 5xx, timeout, connection failure, or a success response we could not read.
    #[error("{message}")]
    Unavailable { message: String },
    /// Any other 4xx: the request itself is wrong and sending it again will not help.
    #[error("{message}")]
    BadRequest { message: String },
}

impl ProviderError {
    /// Worth retrying the same request later on the same account.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::RateLimited { .. } | Self::Unavailable { .. })
    }

    /// The failure belongs to the account (or the provider behind it), not to the message, so
    /// falling back to another account may succeed.
    pub fn is_account_failure(&self) -> bool {
        matches!(
            self,
            Self::AccountRejected { .. } | Self::Unavailable { .. } | Self::RateLimited { .. }
        )
    }
}

/// The provider took the message. The id is what later webhooks/status callbacks refer to
/// (SendGrid `X-Message-Id`, Twilio message `sid`); SendGrid does not promise the header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendAccepted {
    pub provider_message_id: Option<String>,
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// What every vendor request names itself as: vendors ask API clients to identify themselves, and
/// their support can then find our traffic in their logs.
pub const USER_AGENT: &str = concat!("dentite/", env!("CARGO_PKG_VERSION"));

/// Builds the client both providers share: 5 s to connect, `timeout` for the whole request, and
/// [`USER_AGENT`] on every request.
///
/// reqwest is compiled with `rustls-no-provider`, so building a client panics unless a process-wide
/// rustls crypto provider exists. Installing ring here is a no-op when the app already installed
/// one, and keeps a single crypto backend (sqlx's rustls is ring too). Building can still fail if
/// the platform root store cannot be loaded, which the caller should treat as a startup error.
pub fn http_client(timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(timeout)
        .user_agent(USER_AGENT)
        .build()
}

/// A non-2xx response, handed to a provider's classifier.
pub struct Failure<'a> {
    pub status: StatusCode,
    pub retry_after: Option<Duration>,
    /// Raw body: may be JSON in any shape, HTML from a proxy, or empty. Never log it.
    pub body: &'a [u8],
}

impl Failure<'_> {
    /// The fallback for bodies we cannot read, e.g. SendGrid's nginx HTML 413 page.
    pub fn status_message(&self, provider: &str) -> String {
        format!("{provider} returned HTTP {}", self.status)
    }

    /// Classification by HTTP status alone, for everything a provider has no better rule for.
    pub fn classify_by_status(&self, message: String) -> ProviderError {
        match self.status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                ProviderError::AccountRejected { message }
            }
            StatusCode::TOO_MANY_REQUESTS => ProviderError::RateLimited {
                retry_after: self.retry_after,
            },
            status if status.is_server_error() => ProviderError::Unavailable { message },
            _ => ProviderError::BadRequest { message },
        }
    }
}

/// Sends `request` and returns the response if it is 2xx; otherwise hands the failure to
/// `classify`.
pub async fn send(
    provider: &'static str,
    request: RequestBuilder,
    classify: fn(&Failure<'_>) -> ProviderError,
) -> Result<Response, ProviderError> {
    let response = dispatch(provider, request).await?;
    require_success(provider, response, classify).await
}

/// Sends `request`, turning only transport failures (connect, timeout, TLS) into errors, for
/// callers that give some non-2xx status a meaning of their own (DELETE's 404).
pub async fn dispatch(
    provider: &'static str,
    request: RequestBuilder,
) -> Result<Response, ProviderError> {
    request.send().await.map_err(|err| {
        let message = transport_message(provider, err);
        tracing::debug!(provider, error = %message, "provider request failed in transport");
        ProviderError::Unavailable { message }
    })
}

/// Passes a 2xx response through; classifies anything else.
pub async fn require_success(
    provider: &'static str,
    response: Response,
    classify: fn(&Failure<'_>) -> ProviderError,
) -> Result<Response, ProviderError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let retry_after = retry_after(response.headers(), SystemTime::now());
    // A body we cannot read is classified on the status alone, like an unparsable one.
    let body = response.bytes().await.unwrap_or_default();
    let error = classify(&Failure {
        status,
        retry_after,
        body: &body,
    });
    tracing::debug!(provider, %status, ?error, "provider rejected request");
    Err(error)
}

/// Reads a success body as JSON. A body we cannot read is the provider breaking its contract,
/// so it is `Unavailable` (worth retrying or falling back) rather than our bad request.
///
/// The error keeps only serde's category and position, never its text: serde quotes offending
/// values, and some bodies (Twilio's account resource) carry secrets.
pub async fn json_body<T: DeserializeOwned>(
    provider: &'static str,
    response: Response,
) -> Result<T, ProviderError> {
    let bytes = response
        .bytes()
        .await
        .map_err(|err| ProviderError::Unavailable {
            message: transport_message(provider, err),
        })?;
    serde_json::from_slice(&bytes).map_err(|err| ProviderError::Unavailable {
        message: format!(
            "{provider} returned an unreadable response ({:?} error at line {} column {})",
            err.classify(),
            err.line(),
            err.column()
        ),
    })
}

/// reqwest's own message is generic ("error sending request"); the cause chain says what
/// actually happened. The URL is left out: it adds nothing the caller does not know.
fn transport_message(provider: &str, err: reqwest::Error) -> String {
    if err.is_timeout() {
        return format!("{provider} did not answer in time");
    }
    let err = err.without_url();
    let mut message = format!("{provider} request failed: {err}");
    let mut source = err.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

/// `Retry-After` in delta-seconds, else SendGrid's documented `X-RateLimit-Reset` epoch seconds.
/// Neither provider documents an HTTP-date `Retry-After`, so that form is not parsed (it would
/// need a date parser) and falls through to the reset header.
fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let header_u64 = |name| headers.get(name)?.to_str().ok()?.trim().parse::<u64>().ok();
    if let Some(seconds) = header_u64(RETRY_AFTER.as_str()) {
        return Some(Duration::from_secs(seconds));
    }
    let reset = UNIX_EPOCH + Duration::from_secs(header_u64("x-ratelimit-reset")?);
    // A reset moment already past (clock skew) means "now", not "unknown".
    Some(reset.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(name, value)| {
                (
                    reqwest::header::HeaderName::from_static(name),
                    HeaderValue::from_static(value),
                )
            })
            .collect()
    }

    #[test]
    fn only_rate_limits_and_outages_are_transient() {
        let transient = |e: ProviderError| e.is_transient();
        assert!(transient(ProviderError::RateLimited { retry_after: None }));
        assert!(transient(ProviderError::Unavailable {
            message: "x".into()
        }));
        assert!(!transient(ProviderError::AccountRejected {
            message: "x".into()
        }));
        assert!(!transient(ProviderError::BadRequest {
            message: "x".into()
        }));
        assert!(!transient(ProviderError::RecipientRejected {
            code: None,
            message: "x".into(),
            opted_out: false
        }));
    }

    #[test]
    fn account_rejections_outages_and_rate_limits_justify_trying_another_account() {
        let account = |e: ProviderError| e.is_account_failure();
        assert!(account(ProviderError::AccountRejected {
            message: "x".into()
        }));
        assert!(account(ProviderError::Unavailable {
            message: "x".into()
        }));
        assert!(account(ProviderError::RateLimited { retry_after: None }));
        assert!(!account(ProviderError::BadRequest {
            message: "x".into()
        }));
        assert!(!account(ProviderError::RecipientRejected {
            code: Some(21610),
            message: "x".into(),
            opted_out: true
        }));
    }

    #[test]
    fn retry_after_in_seconds_wins_over_the_rate_limit_reset() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000);
        let h = headers(&[("retry-after", "7"), ("x-ratelimit-reset", "1100")]);
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(7)));
    }

    #[test]
    fn the_rate_limit_reset_epoch_becomes_the_time_left_until_it() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000);
        let h = headers(&[("x-ratelimit-reset", "1030")]);
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(30)));
    }

    #[test]
    fn a_reset_moment_already_past_means_retry_now() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000);
        let h = headers(&[("x-ratelimit-reset", "900")]);
        assert_eq!(retry_after(&h, now), Some(Duration::ZERO));
    }

    #[tokio::test]
    async fn an_unreadable_success_body_is_unavailable_without_quoting_the_body() {
        use wiremock::{Mock, MockServer, ResponseTemplate, matchers::any};
        let server = MockServer::start().await;
        // serde's own message for this would be `invalid type: string "SECRET-IN-BODY", ...`.
        Mock::given(any())
            .respond_with(ResponseTemplate::new(200).set_body_string(r#""SECRET-IN-BODY""#))
            .expect(1)
            .mount(&server)
            .await;
        let http = http_client(Duration::from_secs(5)).expect("client builds");
        let response = http.get(server.uri()).send().await.expect("response");

        let error = json_body::<u64>("Twilio", response)
            .await
            .expect_err("not a number");

        assert_eq!(
            error,
            ProviderError::Unavailable {
                message: "Twilio returned an unreadable response (Data error at line 1 column 16)"
                    .into()
            }
        );
    }

    #[test]
    fn an_http_date_retry_after_without_a_reset_header_gives_no_hint() {
        let h = headers(&[("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT")]);
        assert_eq!(retry_after(&h, SystemTime::now()), None);
    }
}
