//! Twilio 2010-04-01 API client: send an SMS, check the credentials, check number ownership.
//! Wire shapes follow Twilio's 2010-04-01 REST reference and its published OpenAPI description
//! (`twilio_api_v2010`).

use std::fmt;

use reqwest::header::ACCEPT;
use reqwest::{Method, RequestBuilder};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::providers::error::{self as provider_error, Failure, ProviderError, SendAccepted};

const PROVIDER: &str = "Twilio";

pub struct TwilioClient {
    http: reqwest::Client,
    /// e.g. `https://api.twilio.com`.
    base_url: String,
    account_sid: String,
    auth_token: SecretString,
}

impl fmt::Debug for TwilioClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TwilioClient")
            .field("base_url", &self.base_url)
            .field("account_sid", &self.account_sid)
            .field("auth_token", &"[redacted]")
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingSms {
    /// E.164.
    pub to: String,
    /// A number owned by this account.
    pub from: String,
    pub body: String,
    /// Overrides any service-level callback; Twilio rejects hostnames with underscores.
    pub status_callback: Option<String>,
}

/// The non-secret part of the account resource. Missing or null fields read as empty strings,
/// which callers treat like any status other than `active`: unusable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountInfo {
    /// `active`, `suspended` or `closed`.
    pub status: String,
    /// `Trial` (can only text verified numbers, error 21608) or `Full`.
    pub account_type: String,
    pub friendly_name: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncomingNumber {
    pub sid: String,
    pub phone_number: String,
    pub sms_capable: bool,
}

impl TwilioClient {
    pub fn new(
        http: reqwest::Client,
        base_url: impl Into<String>,
        account_sid: impl Into<String>,
        auth_token: SecretString,
    ) -> Self {
        let base_url = base_url.into().trim_end_matches('/').to_owned();
        Self {
            http,
            base_url,
            account_sid: account_sid.into(),
            auth_token,
        }
    }

    /// `POST /Accounts/{sid}/Messages.json`; the `sid` of the 201 is what status callbacks carry.
    pub async fn send_sms(&self, sms: &OutgoingSms) -> Result<SendAccepted, ProviderError> {
        #[derive(Deserialize)]
        struct Created {
            sid: String,
        }

        let mut form = vec![
            ("To", sms.to.as_str()),
            ("From", sms.from.as_str()),
            ("Body", sms.body.as_str()),
        ];
        if let Some(callback) = &sms.status_callback {
            form.push(("StatusCallback", callback));
        }
        let request = self.request(Method::POST, "/Messages.json").form(&form);
        let Created { sid } = self.fetch_json(request).await?;
        Ok(SendAccepted {
            provider_message_id: Some(sid),
        })
    }

    /// `GET /Accounts/{sid}.json`: the cheap credential check.
    ///
    /// The response carries the account's `auth_token`. Only the three fields below are
    /// deserialized, so the token never reaches a value, a log line or an error message, and the
    /// raw body is dropped as soon as it is parsed.
    pub async fn fetch_account(&self) -> Result<AccountInfo, ProviderError> {
        #[derive(Deserialize)]
        struct AccountWire {
            status: Option<String>,
            #[serde(rename = "type")]
            account_type: Option<String>,
            friendly_name: Option<String>,
        }

        let wire: AccountWire = self.fetch_json(self.request(Method::GET, ".json")).await?;
        Ok(AccountInfo {
            status: wire.status.unwrap_or_default(),
            account_type: wire.account_type.unwrap_or_default(),
            friendly_name: wire.friendly_name.unwrap_or_default(),
        })
    }

    /// Whether this account owns `phone` (E.164). `PhoneNumber` is a partial/wildcard filter on
    /// Twilio's side, so only an exact `phone_number` match counts.
    pub async fn find_incoming_number(
        &self,
        phone: &str,
    ) -> Result<Option<IncomingNumber>, ProviderError> {
        #[derive(Deserialize)]
        struct Page {
            incoming_phone_numbers: Vec<NumberWire>,
        }
        #[derive(Deserialize)]
        struct NumberWire {
            sid: String,
            phone_number: String,
            capabilities: Option<Capabilities>,
        }
        #[derive(Deserialize)]
        struct Capabilities {
            #[serde(default)]
            sms: bool,
        }

        // Form-encoding turns the E.164 `+` into `%2B`; a bare `+` would arrive as a space.
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("PhoneNumber", phone)
            .finish();
        let path = format!("/IncomingPhoneNumbers.json?{query}");
        let page: Page = self.fetch_json(self.request(Method::GET, &path)).await?;
        Ok(page
            .incoming_phone_numbers
            .into_iter()
            .find(|number| number.phone_number == phone)
            .map(|number| IncomingNumber {
                sid: number.sid,
                phone_number: number.phone_number,
                sms_capable: number.capabilities.is_some_and(|c| c.sms),
            }))
    }

    /// A request under `/2010-04-01/Accounts/{sid}`; `suffix` starts with `/` or `.json`.
    fn request(&self, method: Method, suffix: &str) -> RequestBuilder {
        let url = format!(
            "{}/2010-04-01/Accounts/{}{suffix}",
            self.base_url, self.account_sid
        );
        self.http
            .request(method, url)
            .basic_auth(&self.account_sid, Some(self.auth_token.expose_secret()))
            .header(ACCEPT, "application/json")
    }

    async fn fetch_json<T: DeserializeOwned>(
        &self,
        request: RequestBuilder,
    ) -> Result<T, ProviderError> {
        let response = provider_error::send(PROVIDER, request, classify).await?;
        provider_error::json_body(PROVIDER, response).await
    }
}

/// Twilio error bodies: the 2010 API's `{code, message, more_info, status}` or RFC 9457
/// `{type, title, status, code, detail}` from newer services. Anything else falls back to the
/// HTTP status, as the official SDK does.
fn classify(failure: &Failure<'_>) -> ProviderError {
    #[derive(Deserialize)]
    struct ErrorBody {
        code: Option<i64>,
        message: Option<String>,
        detail: Option<String>,
        title: Option<String>,
    }

    let parsed = serde_json::from_slice::<ErrorBody>(failure.body).ok();
    let code = parsed.as_ref().and_then(|body| body.code);
    let text = parsed.and_then(|body| body.message.or(body.detail).or(body.title));
    let message = match (text, code) {
        (Some(text), Some(code)) => format!("{text} (Twilio error {code})"),
        (Some(text), None) => text,
        (None, Some(code)) => format!("Twilio error {code}"),
        (None, None) => failure.status_message(PROVIDER),
    };
    let recipient = |opted_out| ProviderError::RecipientRejected {
        code,
        message: message.clone(),
        opted_out,
    };

    match code {
        // Wrong SID/token, or a suspended/closed account.
        Some(20003) => ProviderError::AccountRejected { message },
        // Too many concurrent requests: never processed, always safe to retry.
        Some(20429) => ProviderError::RateLimited {
            retry_after: failure.retry_after,
        },
        // The patient replied STOP to this sender; only a START from them lifts it.
        Some(21610) => recipient(true),
        // Invalid `To`, unroutable, not a mobile number, landline.
        Some(21211 | 21612 | 21614 | 21635) => recipient(false),
        // 21606: `From` is not an SMS-capable number of this account. 21608: a trial account (or
        // one without an approved compliance profile) may only text verified numbers. The
        // recipient is fine in both: another account can deliver, and marking the patient's
        // number bad would be wrong.
        Some(21606 | 21608) => ProviderError::AccountRejected { message },
        _ => failure.classify_by_status(message),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;
    use wiremock::matchers::{basic_auth, header, method, path, query_param};
    use wiremock::{Mock, MockServer, Request, ResponseTemplate};

    use super::*;
    use crate::providers::error::http_client;

    const SID: &str = "AC00000000000000000000000000000001";
    const TOKEN: &str = "auth-token-must-never-leak";
    const MESSAGES: &str = "/2010-04-01/Accounts/AC00000000000000000000000000000001/Messages.json";

    fn client(server: &MockServer) -> TwilioClient {
        let http = http_client(Duration::from_secs(5)).expect("client builds");
        TwilioClient::new(http, server.uri(), SID, SecretString::from(TOKEN))
    }

    fn sms() -> OutgoingSms {
        OutgoingSms {
            to: "+15551234567".into(),
            from: "+15557654321".into(),
            body: "Reminder: cleaning tomorrow at 9:00 & bring forms".into(),
            status_callback: Some("https://app.example/webhooks/twilio/status?m=42".into()),
        }
    }

    /// The decoded form fields of a request body, in order.
    fn form_fields(request: &Request) -> Vec<(String, String)> {
        url::form_urlencoded::parse(&request.body)
            .into_owned()
            .collect()
    }

    fn twilio_error(status: u16, code: i64, message: &str) -> ResponseTemplate {
        ResponseTemplate::new(status).set_body_json(json!({
            "code": code,
            "message": message,
            "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
            "status": status,
        }))
    }

    async fn send_failure(response: ResponseTemplate) -> ProviderError {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path(MESSAGES))
            .and(basic_auth(SID, TOKEN))
            .respond_with(response)
            .expect(1)
            .mount(&server)
            .await;
        client(&server)
            .send_sms(&sms())
            .await
            .expect_err("the send fails")
    }

    #[tokio::test]
    async fn sending_an_sms_posts_the_form_with_basic_auth_and_returns_the_message_sid() {
        let server = MockServer::start().await;
        let expected = [
            ("To", "+15551234567"),
            ("From", "+15557654321"),
            ("Body", "Reminder: cleaning tomorrow at 9:00 & bring forms"),
            (
                "StatusCallback",
                "https://app.example/webhooks/twilio/status?m=42",
            ),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
        Mock::given(method("POST"))
            .and(path(MESSAGES))
            .and(basic_auth(SID, TOKEN))
            .and(header("content-type", "application/x-www-form-urlencoded"))
            .and(header("accept", "application/json"))
            .and(move |request: &Request| form_fields(request) == expected)
            .respond_with(ResponseTemplate::new(201).set_body_json(json!({
                "sid": "SM0123456789abcdef0123456789abcdef",
                "status": "queued",
                "error_code": null,
            })))
            .expect(1)
            .mount(&server)
            .await;

        let accepted = client(&server).send_sms(&sms()).await.expect("accepted");

        assert_eq!(
            accepted.provider_message_id.as_deref(),
            Some("SM0123456789abcdef0123456789abcdef")
        );
    }

    #[tokio::test]
    async fn every_twilio_request_names_us_in_the_user_agent() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path(MESSAGES))
            .and(header("user-agent", crate::providers::error::USER_AGENT))
            .respond_with(ResponseTemplate::new(201).set_body_json(json!({
                "sid": "SM0123456789abcdef0123456789abcdef", "status": "queued",
            })))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path(format!("/2010-04-01/Accounts/{SID}.json")))
            .and(header("user-agent", crate::providers::error::USER_AGENT))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "sid": SID, "status": "active", "type": "Full", "friendly_name": "Smile",
            })))
            .expect(1)
            .mount(&server)
            .await;

        let client = client(&server);
        client.send_sms(&sms()).await.expect("accepted");
        client.fetch_account().await.expect("fetched");
    }

    #[tokio::test]
    async fn an_sms_without_a_status_callback_leaves_the_field_out() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path(MESSAGES))
            .and(|request: &Request| {
                form_fields(request)
                    .iter()
                    .all(|(name, _)| name != "StatusCallback")
            })
            .respond_with(ResponseTemplate::new(201).set_body_json(json!({ "sid": "SM1" })))
            .expect(1)
            .mount(&server)
            .await;
        let sms = OutgoingSms {
            status_callback: None,
            ..sms()
        };

        client(&server).send_sms(&sms).await.expect("accepted");
    }

    #[tokio::test]
    async fn a_recipient_who_replied_stop_is_rejected_as_opted_out() {
        let message = "Attempt to send to unsubscribed recipient";
        let error = send_failure(twilio_error(400, 21610, message)).await;

        assert_eq!(
            error,
            ProviderError::RecipientRejected {
                code: Some(21610),
                message: format!("{message} (Twilio error 21610)"),
                opted_out: true
            }
        );
    }

    #[tokio::test]
    async fn an_invalid_to_number_is_a_recipient_rejection_not_opted_out() {
        let message = "The 'To' number 5551234567 is not a valid phone number.";
        let error = send_failure(twilio_error(400, 21211, message)).await;

        assert_eq!(
            error,
            ProviderError::RecipientRejected {
                code: Some(21211),
                message: format!("{message} (Twilio error 21211)"),
                opted_out: false
            }
        );
    }

    #[tokio::test]
    async fn wrong_credentials_are_an_account_rejection() {
        let error = send_failure(twilio_error(401, 20003, "Authenticate")).await;

        assert_eq!(
            error,
            ProviderError::AccountRejected {
                message: "Authenticate (Twilio error 20003)".into()
            }
        );
    }

    #[tokio::test]
    async fn a_from_number_that_cannot_send_sms_is_the_accounts_problem() {
        let error = send_failure(twilio_error(
            400,
            21606,
            "The 'From' phone number provided is not a valid message-capable Twilio phone number.",
        ))
        .await;

        assert!(
            matches!(error, ProviderError::AccountRejected { .. }),
            "{error:?}"
        );
    }

    #[tokio::test]
    async fn a_trial_accounts_unverified_recipient_is_the_accounts_problem() {
        let error = send_failure(twilio_error(
            400,
            21608,
            "The number is unverified. Trial accounts cannot send messages to unverified numbers.",
        ))
        .await;

        assert!(
            matches!(error, ProviderError::AccountRejected { .. }),
            "{error:?}"
        );
    }

    #[tokio::test]
    async fn an_rfc_9457_problem_body_is_classified_by_its_code() {
        let error = send_failure(ResponseTemplate::new(400).set_body_json(json!({
            "type": "https://www.twilio.com/docs/errors/21614",
            "title": "Invalid mobile number",
            "status": 400,
            "code": 21614,
            "detail": "'To' number is not a valid mobile number",
        })))
        .await;

        assert_eq!(
            error,
            ProviderError::RecipientRejected {
                code: Some(21614),
                message: "'To' number is not a valid mobile number (Twilio error 21614)".into(),
                opted_out: false
            }
        );
    }

    #[tokio::test]
    async fn too_many_concurrent_requests_is_rate_limited() {
        let error = send_failure(
            twilio_error(429, 20429, "Too Many Requests").insert_header("Retry-After", "2"),
        )
        .await;

        assert_eq!(
            error,
            ProviderError::RateLimited {
                retry_after: Some(Duration::from_secs(2))
            }
        );
    }

    #[tokio::test]
    async fn an_unknown_client_error_code_is_a_bad_request() {
        let error = send_failure(twilio_error(400, 21602, "Message body is required.")).await;

        assert_eq!(
            error,
            ProviderError::BadRequest {
                message: "Message body is required. (Twilio error 21602)".into()
            }
        );
    }

    #[tokio::test]
    async fn a_server_error_with_a_non_json_body_is_unavailable() {
        let error = send_failure(ResponseTemplate::new(503).set_body_string("upstream down")).await;

        assert_eq!(
            error,
            ProviderError::Unavailable {
                message: "Twilio returned HTTP 503 Service Unavailable".into()
            }
        );
    }

    #[tokio::test]
    async fn fetching_the_account_keeps_nothing_of_the_auth_token() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path(format!("/2010-04-01/Accounts/{SID}.json")))
            .and(basic_auth(SID, TOKEN))
            .and(header("accept", "application/json"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "sid": SID,
                "auth_token": "BODY-TOKEN-SECRET",
                "status": "active",
                "type": "Trial",
                "friendly_name": "Smile Dental",
                "owner_account_sid": SID,
            })))
            .expect(1)
            .mount(&server)
            .await;

        let account = client(&server).fetch_account().await.expect("fetched");

        assert_eq!(
            account,
            AccountInfo {
                status: "active".into(),
                account_type: "Trial".into(),
                friendly_name: "Smile Dental".into(),
            }
        );
        assert!(!format!("{account:?}").contains("BODY-TOKEN-SECRET"));
    }

    #[tokio::test]
    async fn a_malformed_account_body_errors_without_quoting_it() {
        let server = MockServer::start().await;
        // A body off the documented shape; the error must not carry any of it.
        Mock::given(method("GET"))
            .and(path(format!("/2010-04-01/Accounts/{SID}.json")))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "auth_token": "BODY-TOKEN-SECRET",
                "status": ["BODY-TOKEN-SECRET"],
            })))
            .expect(1)
            .mount(&server)
            .await;

        let error = client(&server)
            .fetch_account()
            .await
            .expect_err("malformed");

        assert!(
            matches!(error, ProviderError::Unavailable { .. }),
            "{error:?}"
        );
        assert!(!format!("{error:?} {error}").contains("BODY-TOKEN-SECRET"));
    }

    #[tokio::test]
    async fn finding_a_number_requires_an_exact_match_and_reports_sms_capability() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path(format!(
                "/2010-04-01/Accounts/{SID}/IncomingPhoneNumbers.json"
            )))
            .and(query_param("PhoneNumber", "+15551234567"))
            .and(basic_auth(SID, TOKEN))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "incoming_phone_numbers": [
                    { "sid": "PN1", "phone_number": "+155512345670", "capabilities": { "sms": true } },
                    { "sid": "PN2", "phone_number": "+15551234567",
                      "capabilities": { "sms": true, "mms": false, "voice": true, "fax": false } },
                ],
                "page": 0, "page_size": 50,
            })))
            .expect(1)
            .mount(&server)
            .await;

        let number = client(&server)
            .find_incoming_number("+15551234567")
            .await
            .expect("listed");

        assert_eq!(
            number,
            Some(IncomingNumber {
                sid: "PN2".into(),
                phone_number: "+15551234567".into(),
                sms_capable: true
            })
        );
        // The query must carry `%2B`: a raw `+` would decode as a space.
        let query = server.received_requests().await.unwrap()[0]
            .url
            .query()
            .map(str::to_owned);
        assert_eq!(query.as_deref(), Some("PhoneNumber=%2B15551234567"));
    }

    #[tokio::test]
    async fn a_number_listed_only_by_partial_match_is_not_ours() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path(format!(
                "/2010-04-01/Accounts/{SID}/IncomingPhoneNumbers.json"
            )))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "incoming_phone_numbers": [
                    { "sid": "PN1", "phone_number": "+155512345670", "capabilities": { "sms": true } },
                ],
            })))
            .expect(1)
            .mount(&server)
            .await;

        let number = client(&server)
            .find_incoming_number("+15551234567")
            .await
            .expect("listed");

        assert_eq!(number, None);
    }

    #[test]
    fn debug_output_never_shows_the_auth_token() {
        let http = http_client(Duration::from_secs(1)).expect("client builds");
        let client = TwilioClient::new(
            http,
            "https://api.twilio.com",
            SID,
            SecretString::from(TOKEN),
        );

        let debug = format!("{client:?}");

        assert!(!debug.contains(TOKEN), "{debug}");
        assert!(debug.contains(SID) && debug.contains("[redacted]"));
    }
}
