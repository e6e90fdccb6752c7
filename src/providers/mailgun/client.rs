//! Mailgun's messages API: `POST {base}/v3/{domain}/messages`, form-encoded, HTTP basic auth
//! with user `api` and the API key, on the base URL of the region the domain lives in.

use std::fmt;

use reqwest::header::ACCEPT;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::providers::error::{self as provider_error, Failure, ProviderError, SendAccepted};

const PROVIDER: &str = "Mailgun";

pub struct MailgunClient {
    http: reqwest::Client,
    base_url: String,
    domain: String,
    api_key: SecretString,
}

impl fmt::Debug for MailgunClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MailgunClient")
            .field("base_url", &self.base_url)
            .field("domain", &self.domain)
            .finish_non_exhaustive()
    }
}

/// One email as Mailgun's form takes it.
#[derive(Debug)]
pub struct OutgoingEmail {
    pub from: String,
    pub to: String,
    pub subject: String,
    pub text: String,
    /// Sent as `h:<name>` MIME headers.
    pub headers: Vec<(String, String)>,
    /// Sent as `v:<name>`; Mailgun returns them in every event as `user-variables`.
    pub variables: Vec<(String, String)>,
}

impl MailgunClient {
    pub fn new(
        http: reqwest::Client,
        base_url: &str,
        domain: impl Into<String>,
        api_key: SecretString,
    ) -> Self {
        Self {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
            domain: domain.into(),
            api_key,
        }
    }

    /// The answer's `id` is `<…@domain>`; events carry it without the angle brackets as
    /// `message.headers.message-id`, so it is kept that way.
    pub async fn send(&self, email: &OutgoingEmail) -> Result<SendAccepted, ProviderError> {
        #[derive(Deserialize)]
        struct Queued {
            id: String,
        }

        let mut form: Vec<(String, &str)> = vec![
            ("from".into(), email.from.as_str()),
            ("to".into(), email.to.as_str()),
            ("subject".into(), email.subject.as_str()),
            ("text".into(), email.text.as_str()),
        ];
        form.extend(
            email
                .headers
                .iter()
                .map(|(n, v)| (format!("h:{n}"), v.as_str())),
        );
        form.extend(
            email
                .variables
                .iter()
                .map(|(n, v)| (format!("v:{n}"), v.as_str())),
        );
        let request = self
            .request(
                reqwest::Method::POST,
                &format!("/v3/{}/messages", self.domain),
            )
            .form(&form);
        let response = provider_error::send(PROVIDER, request, classify).await?;
        let Queued { id } = provider_error::json_body(PROVIDER, response).await?;
        let id = id.trim_start_matches('<').trim_end_matches('>').to_owned();
        Ok(SendAccepted {
            provider_message_id: Some(id),
        })
    }
}

/// A sending domain as Mailgun's domains API describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainInfo {
    pub name: String,
    /// `active`, `unverified` or `disabled`.
    pub state: String,
    pub is_disabled: bool,
    /// The records the domain needs for sending (SPF, DKIM, tracking CNAME), with Mailgun's
    /// last look at each.
    pub sending_records: Vec<DnsRecord>,
}

impl DomainInfo {
    /// Whether Mailgun lets the domain send.
    pub fn can_send(&self) -> bool {
        self.state == "active" && !self.is_disabled
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct DnsRecord {
    pub record_type: String,
    pub name: String,
    pub value: String,
    /// `valid`, `invalid` or `unknown`.
    #[serde(default)]
    pub valid: String,
}

#[derive(Deserialize)]
struct DomainResponse {
    domain: DomainWire,
    #[serde(default)]
    sending_dns_records: Vec<DnsRecord>,
}

#[derive(Deserialize)]
struct DomainWire {
    name: String,
    #[serde(default)]
    state: String,
    #[serde(default)]
    is_disabled: bool,
}

impl From<DomainResponse> for DomainInfo {
    fn from(response: DomainResponse) -> Self {
        Self {
            name: response.domain.name,
            state: response.domain.state,
            is_disabled: response.domain.is_disabled,
            sending_records: response.sending_dns_records,
        }
    }
}

/// The events the practice's domain webhooks are created for.
pub const WEBHOOK_EVENTS: [&str; 5] = [
    "delivered",
    "permanent_fail",
    "temporary_fail",
    "complained",
    "unsubscribed",
];

impl MailgunClient {
    /// `GET /v4/domains/{domain}`: the credential check, sending nothing; `None` when the key's
    /// account has no such domain in this region.
    pub async fn domain(&self) -> Result<Option<DomainInfo>, ProviderError> {
        let request = self.request(
            reqwest::Method::GET,
            &format!("/v4/domains/{}", self.domain),
        );
        let response = provider_error::dispatch(PROVIDER, request).await?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let response = provider_error::require_success(PROVIDER, response, classify).await?;
        let found: DomainResponse = provider_error::json_body(PROVIDER, response).await?;
        Ok(Some(found.into()))
    }

    /// `PUT /v4/domains/{domain}/verify`: Mailgun looks up the records now.
    pub async fn verify_domain(&self) -> Result<DomainInfo, ProviderError> {
        let request = self.request(
            reqwest::Method::PUT,
            &format!("/v4/domains/{}/verify", self.domain),
        );
        let response = provider_error::send(PROVIDER, request, classify).await?;
        let found: DomainResponse = provider_error::json_body(PROVIDER, response).await?;
        Ok(found.into())
    }

    /// `POST /v3/domains/{domain}/webhooks` for one event.
    pub async fn create_webhook(&self, event: &str, url: &str) -> Result<(), ProviderError> {
        let request = self
            .request(
                reqwest::Method::POST,
                &format!("/v3/domains/{}/webhooks", self.domain),
            )
            .form(&[("id", event), ("url", url)]);
        provider_error::send(PROVIDER, request, classify).await?;
        Ok(())
    }

    /// `GET /v5/accounts/http_signing_key`: the key the account signs its webhooks with.
    pub async fn http_signing_key(&self) -> Result<SecretString, ProviderError> {
        #[derive(Deserialize)]
        struct Key {
            http_signing_key: String,
        }

        let request = self.request(reqwest::Method::GET, "/v5/accounts/http_signing_key");
        let response = provider_error::send(PROVIDER, request, classify).await?;
        let Key { http_signing_key } = provider_error::json_body(PROVIDER, response).await?;
        Ok(SecretString::from(http_signing_key))
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base_url))
            .basic_auth("api", Some(self.api_key.expose_secret()))
            .header(ACCEPT, "application/json")
    }
}

/// Mailgun answers 401 with a plain-text `Forbidden`, 403 when the domain may not send (sandbox,
/// unverified, free plan), 404 for a domain the key does not know, and 400 with a JSON
/// `message` for a bad request, naming `to` when the recipient is the problem.
fn classify(failure: &Failure<'_>) -> ProviderError {
    #[derive(Deserialize)]
    struct ErrorBody {
        message: String,
    }

    let text = serde_json::from_slice::<ErrorBody>(failure.body)
        .map(|body| body.message)
        .ok();
    let message = match &text {
        Some(text) => format!("Mailgun: {text}"),
        None => failure.status_message(PROVIDER),
    };
    match failure.status.as_u16() {
        403 | 404 => ProviderError::AccountRejected { message },
        400 if text
            .as_deref()
            .is_some_and(|t| t.trim_start().starts_with("to parameter")) =>
        {
            ProviderError::RecipientRejected {
                code: Some(400),
                message,
                opted_out: false,
            }
        }
        _ => failure.classify_by_status(message),
    }
}

#[cfg(test)]
mod tests {
    use reqwest::StatusCode;

    use super::*;

    fn classified(status: u16, body: &str) -> ProviderError {
        classify(&Failure {
            status: StatusCode::from_u16(status).unwrap(),
            retry_after: None,
            body: body.as_bytes(),
        })
    }

    #[test]
    fn a_plain_text_401_a_domain_not_allowed_and_an_unknown_domain_are_the_accounts_failures() {
        for (status, body) in [
            (401, "Forbidden"),
            (
                403,
                r#"{"message":"Domain DOMAIN.TEST is not allowed to send: Free accounts are for test purposes only."}"#,
            ),
            (404, r#"{"message":"Domain not found: not-our-doma.in"}"#),
        ] {
            assert!(
                matches!(
                    classified(status, body),
                    ProviderError::AccountRejected { .. }
                ),
                "{status} {body}"
            );
        }
    }

    #[test]
    fn an_invalid_to_is_the_recipients_refusal_and_other_400s_are_bad_requests() {
        let error = classified(
            400,
            r#"{"message":"to parameter is not a valid address. please check documentation"}"#,
        );
        assert!(matches!(error, ProviderError::RecipientRejected { .. }));
        assert!(!error.is_account_failure());
        assert!(matches!(
            classified(
                400,
                r#"{"message":"Need at least one of 'text' or 'html' parameters specified"}"#
            ),
            ProviderError::BadRequest { .. }
        ));
    }

    #[test]
    fn a_plain_text_429_is_a_rate_limit_and_a_5xx_an_outage() {
        assert!(matches!(
            classified(429, "Too Many Requests"),
            ProviderError::RateLimited { .. }
        ));
        assert!(matches!(
            classified(502, ""),
            ProviderError::Unavailable { .. }
        ));
    }
}
