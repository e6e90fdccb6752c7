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
        let url = format!("{}/v3/{}/messages", self.base_url, self.domain);
        let request = self
            .http
            .post(url)
            .basic_auth("api", Some(self.api_key.expose_secret()))
            .header(ACCEPT, "application/json")
            .form(&form);
        let response = provider_error::send(PROVIDER, request, classify).await?;
        let Queued { id } = provider_error::json_body(PROVIDER, response).await?;
        let id = id.trim_start_matches('<').trim_end_matches('>').to_owned();
        Ok(SendAccepted {
            provider_message_id: Some(id),
        })
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
