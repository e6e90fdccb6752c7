//! Postmark's server API: `POST /email` with the server token in `X-Postmark-Server-Token`.
//! Every error body is `{"ErrorCode": n, "Message": "…"}`, whatever the HTTP status.

use std::{collections::BTreeMap, fmt};

use reqwest::header::ACCEPT;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::providers::error::{self as provider_error, Failure, ProviderError, SendAccepted};

const PROVIDER: &str = "Postmark";
const TOKEN_HEADER: &str = "X-Postmark-Server-Token";

/// Postmark's `ErrorCode`s we act on.
mod code {
    pub const BAD_TOKEN: i64 = 10;
    pub const INVALID_REQUEST: i64 = 300;
    pub const SENDER_NOT_FOUND: i64 = 400;
    pub const SENDER_NOT_CONFIRMED: i64 = 401;
    pub const NOT_ALLOWED_TO_SEND: i64 = 405;
    pub const INACTIVE_RECIPIENT: i64 = 406;
    pub const ACCOUNT_PENDING: i64 = 412;
    pub const ACCOUNT_MAY_NOT_SEND: i64 = 413;
    pub const RATE_LIMITED: i64 = 429;
}

pub struct PostmarkClient {
    http: reqwest::Client,
    base_url: String,
    server_token: SecretString,
}

impl fmt::Debug for PostmarkClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostmarkClient")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

/// One email as Postmark's `/email` takes it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct OutgoingEmail {
    /// `Name <address>` or a bare address.
    pub from: String,
    pub to: String,
    pub subject: String,
    pub text_body: String,
    pub message_stream: String,
    /// Returned in every webhook about the message, so the webhook finds its log.
    pub metadata: BTreeMap<String, String>,
    pub headers: Vec<Header>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Header {
    pub name: String,
    pub value: String,
}

impl PostmarkClient {
    pub fn new(http: reqwest::Client, base_url: &str, server_token: SecretString) -> Self {
        Self {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
            server_token,
        }
    }

    /// `POST /email`; the `MessageID` of the answer is what webhooks name the message by.
    pub async fn send(&self, email: &OutgoingEmail) -> Result<SendAccepted, ProviderError> {
        #[derive(Deserialize)]
        struct Sent {
            #[serde(rename = "MessageID")]
            message_id: String,
        }

        let request = self.request(reqwest::Method::POST, "/email").json(email);
        let response = provider_error::send(PROVIDER, request, classify).await?;
        let Sent { message_id } = provider_error::json_body(PROVIDER, response).await?;
        Ok(SendAccepted {
            provider_message_id: Some(message_id),
        })
    }
}

/// The server a token belongs to, as the credential check reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    pub name: String,
    /// `Live`, or `Sandbox` (which accepts mail and delivers none).
    pub delivery_type: String,
}

/// The outbound webhook this service asks Postmark to create for a practice's server.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct NewWebhook<'a> {
    pub url: &'a str,
    pub message_stream: &'a str,
    pub http_auth: HttpAuth<'a>,
    pub triggers: Triggers,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct HttpAuth<'a> {
    pub username: &'a str,
    pub password: &'a str,
}

/// The events the webhook posts: deliveries, bounces, spam complaints and subscription changes
/// (opens and clicks are off: they change nothing a practice must act on).
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Triggers {
    pub delivery: Trigger,
    pub bounce: Trigger,
    pub spam_complaint: Trigger,
    pub subscription_change: Trigger,
    pub open: Trigger,
    pub click: Trigger,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Trigger {
    pub enabled: bool,
}

impl Triggers {
    pub fn delivery_and_suppressions() -> Self {
        let on = || Trigger { enabled: true };
        let off = || Trigger { enabled: false };
        Self {
            delivery: on(),
            bounce: on(),
            spam_complaint: on(),
            subscription_change: on(),
            open: off(),
            click: off(),
        }
    }
}

impl PostmarkClient {
    /// `GET /server`: the cheap credential check, sending nothing.
    pub async fn server(&self) -> Result<Server, ProviderError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct Wire {
            #[serde(default)]
            name: String,
            #[serde(default)]
            delivery_type: String,
        }

        let request = self.request(reqwest::Method::GET, "/server");
        let response = provider_error::send(PROVIDER, request, classify).await?;
        let Wire {
            name,
            delivery_type,
        } = provider_error::json_body(PROVIDER, response).await?;
        Ok(Server {
            name,
            delivery_type,
        })
    }

    /// `POST /webhooks`; returns the new webhook's `ID`.
    pub async fn create_webhook(&self, webhook: &NewWebhook<'_>) -> Result<i64, ProviderError> {
        #[derive(Deserialize)]
        struct Created {
            #[serde(rename = "ID")]
            id: i64,
        }

        let request = self
            .request(reqwest::Method::POST, "/webhooks")
            .json(webhook);
        let response = provider_error::send(PROVIDER, request, classify).await?;
        let Created { id } = provider_error::json_body(PROVIDER, response).await?;
        Ok(id)
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base_url))
            .header(TOKEN_HEADER, self.server_token.expose_secret())
            .header(ACCEPT, "application/json")
    }
}

/// By `ErrorCode` first: Postmark answers most refusals with HTTP 422, the code says whose fault
/// it is. An unverified From is also code 300 ("Invalid 'From' address"): the account's.
fn classify(failure: &Failure<'_>) -> ProviderError {
    #[derive(Deserialize)]
    struct ErrorBody {
        #[serde(rename = "ErrorCode")]
        error_code: i64,
        #[serde(rename = "Message", default)]
        message: String,
    }

    let Ok(body) = serde_json::from_slice::<ErrorBody>(failure.body) else {
        // A 403 HTML page comes from a network layer in front of the API, not from Postmark.
        return failure.classify_by_status(failure.status_message(PROVIDER));
    };
    let message = format!("{} (Postmark error {})", body.message, body.error_code);
    match body.error_code {
        code::INVALID_REQUEST if body.message.contains("'From'") => {
            ProviderError::AccountRejected { message }
        }
        code::INVALID_REQUEST | code::INACTIVE_RECIPIENT => ProviderError::RecipientRejected {
            code: Some(body.error_code),
            message,
            opted_out: false,
        },
        code::BAD_TOKEN
        | code::SENDER_NOT_FOUND
        | code::SENDER_NOT_CONFIRMED
        | code::NOT_ALLOWED_TO_SEND
        | code::ACCOUNT_PENDING
        | code::ACCOUNT_MAY_NOT_SEND => ProviderError::AccountRejected { message },
        code::RATE_LIMITED => ProviderError::RateLimited {
            retry_after: failure.retry_after,
        },
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
    fn a_bad_token_and_an_unverified_sender_are_the_accounts_failures() {
        for (status, body) in [
            (401, r#"{"ErrorCode":10,"Message":"Invalid API key"}"#),
            (
                422,
                r#"{"ErrorCode":300,"Message":"Invalid 'From' address: 'sender@example.com' is not a verified sender signature."}"#,
            ),
            (
                422,
                r#"{"ErrorCode":400,"Message":"Sender signature not found"}"#,
            ),
            (
                422,
                r#"{"ErrorCode":401,"Message":"Sender signature not confirmed"}"#,
            ),
            (422, r#"{"ErrorCode":412,"Message":"Account is pending"}"#),
            (422, r#"{"ErrorCode":413,"Message":"Account may not send"}"#),
        ] {
            assert!(
                matches!(
                    classified(status, body),
                    ProviderError::AccountRejected { .. }
                ),
                "{body}"
            );
        }
    }

    #[test]
    fn an_inactive_recipient_and_a_bad_address_are_refusals_of_the_recipient() {
        for body in [
            r#"{"ErrorCode":406,"Message":"You tried to send to recipient(s) that have been marked as inactive. Found inactive addresses: a@x.test."}"#,
            r#"{"ErrorCode":300,"Message":"Invalid 'To' address: 'not-an-address'."}"#,
        ] {
            let error = classified(422, body);
            assert!(
                matches!(
                    error,
                    ProviderError::RecipientRejected {
                        opted_out: false,
                        ..
                    }
                ),
                "{body}"
            );
            assert!(!error.is_account_failure());
        }
    }

    #[test]
    fn rate_limits_and_outages_are_transient_and_a_proxy_page_is_classed_by_status() {
        assert!(matches!(
            classified(429, r#"{"ErrorCode":429,"Message":"Rate limit exceeded"}"#),
            ProviderError::RateLimited { .. }
        ));
        assert!(matches!(
            classified(503, "<html>down</html>"),
            ProviderError::Unavailable { .. }
        ));
        assert!(matches!(
            classified(403, "<html>blocked</html>"),
            ProviderError::AccountRejected { .. }
        ));
    }
}
