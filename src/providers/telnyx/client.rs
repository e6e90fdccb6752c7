//! Telnyx's v2 messaging API: `POST /v2/messages` with a bearer API key, JSON both ways. Errors
//! are `{"errors": [{"code": "…", "title": "…", "detail": "…"}]}`.

use std::fmt;

use reqwest::header::ACCEPT;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::providers::error::{self as provider_error, Failure, ProviderError, SendAccepted};

const PROVIDER: &str = "Telnyx";

/// Telnyx error codes we act on.
mod code {
    pub const AUTHENTICATION_FAILED: &str = "10009";
    pub const AUTHORIZATION_FAILED: &str = "10010";
    pub const TOO_MANY_REQUESTS: &str = "10011";
    /// The recipient replied STOP to this messaging profile.
    pub const BLOCKED_BY_STOP: &str = "40300";
    pub const INVALID_FROM: &str = "40305";
    pub const INVALID_TO: &str = "40310";
    pub const PROFILE_DISABLED: &str = "40312";
}

pub struct TelnyxClient {
    http: reqwest::Client,
    base_url: String,
    api_key: SecretString,
}

impl fmt::Debug for TelnyxClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TelnyxClient")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

/// One SMS as `/v2/messages` takes it.
#[derive(Debug, Serialize)]
pub struct OutgoingSms {
    pub from: String,
    pub to: String,
    pub text: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub messaging_profile_id: Option<String>,
    /// Where this message's delivery updates go, whatever the profile says.
    pub webhook_url: String,
}

impl TelnyxClient {
    pub fn new(http: reqwest::Client, base_url: &str, api_key: SecretString) -> Self {
        Self {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
            api_key,
        }
    }

    /// The answer's `data.id` is what delivery updates name the message by.
    pub async fn send_sms(&self, sms: &OutgoingSms) -> Result<SendAccepted, ProviderError> {
        #[derive(Deserialize)]
        struct Sent {
            data: Message,
        }
        #[derive(Deserialize)]
        struct Message {
            id: String,
        }

        let request = self
            .http
            .post(format!("{}/v2/messages", self.base_url))
            .bearer_auth(self.api_key.expose_secret())
            .header(ACCEPT, "application/json")
            .json(sms);
        let response = provider_error::send(PROVIDER, request, classify).await?;
        let Sent { data } = provider_error::json_body(PROVIDER, response).await?;
        Ok(SendAccepted {
            provider_message_id: Some(data.id),
        })
    }
}

/// A number of the account, as the credential check reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedNumber {
    pub phone_number: String,
    pub messaging_profile_id: Option<String>,
}

/// A messaging profile, as the credential check reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessagingProfile {
    pub name: String,
    pub enabled: bool,
}

impl TelnyxClient {
    /// `GET /v2/phone_numbers?filter[phone_number]=…`: whether the key's account owns `phone`
    /// (E.164), and its messaging profile. The filter takes digits only (a `+` would match
    /// nothing), and matches partially, so only an exact number counts.
    pub async fn find_number(&self, phone: &str) -> Result<Option<OwnedNumber>, ProviderError> {
        #[derive(Deserialize)]
        struct Page {
            data: Vec<Number>,
        }
        #[derive(Deserialize)]
        struct Number {
            phone_number: String,
            messaging_profile_id: Option<String>,
        }

        let digits: String = phone.chars().filter(char::is_ascii_digit).collect();
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("filter[phone_number]", &digits)
            .finish();
        let request = self.get(&format!("/v2/phone_numbers?{query}"));
        let response = provider_error::send(PROVIDER, request, classify).await?;
        let Page { data } = provider_error::json_body(PROVIDER, response).await?;
        Ok(data
            .into_iter()
            .find(|number| number.phone_number == phone)
            .map(|number| OwnedNumber {
                phone_number: number.phone_number,
                messaging_profile_id: number.messaging_profile_id.filter(|id| !id.is_empty()),
            }))
    }

    /// `GET /v2/messaging_profiles/{id}`.
    pub async fn messaging_profile(&self, id: &str) -> Result<MessagingProfile, ProviderError> {
        #[derive(Deserialize)]
        struct Found {
            data: Profile,
        }
        #[derive(Deserialize)]
        struct Profile {
            #[serde(default)]
            name: String,
            #[serde(default)]
            enabled: bool,
        }

        let id: String = url::form_urlencoded::byte_serialize(id.as_bytes()).collect();
        let request = self.get(&format!("/v2/messaging_profiles/{id}"));
        let response = provider_error::send(PROVIDER, request, classify).await?;
        let Found { data } = provider_error::json_body(PROVIDER, response).await?;
        Ok(MessagingProfile {
            name: data.name,
            enabled: data.enabled,
        })
    }

    fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http
            .get(format!("{}{path}", self.base_url))
            .bearer_auth(self.api_key.expose_secret())
            .header(ACCEPT, "application/json")
    }
}

/// By the first error's `code`, else by HTTP status.
fn classify(failure: &Failure<'_>) -> ProviderError {
    #[derive(Deserialize)]
    struct ErrorBody {
        errors: Vec<ErrorObject>,
    }
    #[derive(Deserialize)]
    struct ErrorObject {
        code: Option<String>,
        title: Option<String>,
        detail: Option<String>,
    }

    let first = serde_json::from_slice::<ErrorBody>(failure.body)
        .ok()
        .and_then(|body| body.errors.into_iter().next());
    let Some(first) = first else {
        return failure.classify_by_status(failure.status_message(PROVIDER));
    };
    let code = first.code.unwrap_or_default();
    let text = first.detail.or(first.title).unwrap_or_default();
    let message = format!("{text} (Telnyx error {code})");
    match code.as_str() {
        code::BLOCKED_BY_STOP | code::INVALID_TO => ProviderError::RecipientRejected {
            code: code.parse().ok(),
            message,
            opted_out: code == code::BLOCKED_BY_STOP,
        },
        code::AUTHENTICATION_FAILED
        | code::AUTHORIZATION_FAILED
        | code::INVALID_FROM
        | code::PROFILE_DISABLED => ProviderError::AccountRejected { message },
        code::TOO_MANY_REQUESTS => ProviderError::RateLimited {
            retry_after: failure.retry_after,
        },
        _ => failure.classify_by_status(message),
    }
}

#[cfg(test)]
mod tests {
    use reqwest::StatusCode;

    use super::*;

    fn classified(status: u16, code: &str) -> ProviderError {
        let body = format!(r#"{{"errors":[{{"code":"{code}","title":"t","detail":"d"}}]}}"#);
        classify(&Failure {
            status: StatusCode::from_u16(status).unwrap(),
            retry_after: None,
            body: body.as_bytes(),
        })
    }

    #[test]
    fn a_stop_block_is_an_opted_out_recipient_and_an_invalid_to_a_plain_refusal() {
        assert!(matches!(
            classified(409, "40300"),
            ProviderError::RecipientRejected {
                opted_out: true,
                code: Some(40300),
                ..
            }
        ));
        let invalid_to = classified(400, "40310");
        assert!(matches!(
            invalid_to,
            ProviderError::RecipientRejected {
                opted_out: false,
                ..
            }
        ));
        assert!(!invalid_to.is_account_failure());
    }

    #[test]
    fn bad_keys_refused_senders_rate_limits_and_outages_are_classed_for_failover() {
        assert!(matches!(
            classified(401, "10009"),
            ProviderError::AccountRejected { .. }
        ));
        assert!(matches!(
            classified(403, "10010"),
            ProviderError::AccountRejected { .. }
        ));
        assert!(matches!(
            classified(400, "40305"),
            ProviderError::AccountRejected { .. }
        ));
        assert!(matches!(
            classified(429, "10011"),
            ProviderError::RateLimited { .. }
        ));
        assert!(matches!(
            classified(500, "10007"),
            ProviderError::Unavailable { .. }
        ));
        assert!(matches!(
            classify(&Failure {
                status: StatusCode::BAD_GATEWAY,
                retry_after: None,
                body: b"<html>"
            }),
            ProviderError::Unavailable { .. }
        ));
    }
}
