//! SendGrid v3 client: mail send, key scopes, domain authentication and the signed Event Webhook.
//! Wire shapes follow SendGrid's v3 API reference and its published OpenAPI description
//! (the `tsg_*_v3` documents of SendGrid's open API repository).

use std::collections::BTreeMap;
use std::fmt;

use reqwest::header::{ACCEPT, CONTENT_LENGTH};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::providers::error::{self as provider_error, Failure, ProviderError, SendAccepted};
use crate::providers::sendgrid::signature::SendGridVerifier;

const PROVIDER: &str = "SendGrid";

pub struct SendGridClient {
    http: reqwest::Client,
    /// e.g. `https://api.sendgrid.com` (or `https://api.eu.sendgrid.com` for EU subusers).
    base_url: String,
    api_key: SecretString,
}

impl fmt::Debug for SendGridClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendGridClient")
            .field("base_url", &self.base_url)
            .field("api_key", &"[redacted]")
            .finish_non_exhaustive()
    }
}

/// One email to one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingEmail {
    pub to: String,
    pub to_name: Option<String>,
    pub from_email: String,
    pub from_name: Option<String>,
    pub subject: String,
    pub text_body: String,
    pub html_body: Option<String>,
    /// Echoed back flattened into every Event Webhook event: our join key for events.
    pub custom_args: BTreeMap<String, String>,
    /// Extra message headers, e.g. `List-Unsubscribe` and `List-Unsubscribe-Post`.
    pub headers: BTreeMap<String, String>,
}

/// An authenticated ("whitelabel") domain and the DNS records the practice must publish.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthenticatedDomain {
    pub id: i64,
    pub domain: String,
    pub subdomain: Option<String>,
    pub valid: bool,
    /// Ordered mail_cname, dkim1, dkim2, then any other keys by name.
    pub records: Vec<DnsRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsRecord {
    /// The key in SendGrid's `dns` map: `mail_cname`, `dkim1`, `dkim2` (or, for manual security,
    /// `mail_server`, `subdomain_spf`, `domain_spf`, `dkim`).
    pub name: String,
    /// Lowercase as SendGrid sends it: `cname`, `mx`, `txt`.
    pub record_type: String,
    /// Shown to the practice verbatim: SendGrid's own examples disagree on the exact format.
    pub host: String,
    pub data: String,
    pub valid: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainValidation {
    pub valid: bool,
    /// Same order as [`AuthenticatedDomain::records`].
    pub results: Vec<RecordValidation>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordValidation {
    pub name: String,
    pub valid: bool,
    /// SendGrid's explanation, verbatim (e.g. "Expected CNAME to match ... but found ..."):
    /// it is the most useful thing to show a practice fixing its DNS.
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteOutcome {
    Deleted,
    /// 404: someone (or an earlier attempt) already removed it; the goal state is reached.
    AlreadyGone,
}

/// A signed Event Webhook: `id` routes incoming posts, `public_key` (base64 DER SPKI, P-256)
/// verifies their signatures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventWebhook {
    pub id: String,
    pub public_key: String,
}

impl SendGridClient {
    pub fn new(http: reqwest::Client, base_url: impl Into<String>, api_key: SecretString) -> Self {
        let base_url = base_url.into().trim_end_matches('/').to_owned();
        Self {
            http,
            base_url,
            api_key,
        }
    }

    /// `POST /v3/mail/send`. Tracking settings are left to the account's defaults.
    pub async fn send(&self, email: &OutgoingEmail) -> Result<SendAccepted, ProviderError> {
        let request = self
            .request(Method::POST, "/v3/mail/send")
            .json(&MailSend::from(email));
        let response = self.send_request(request).await?;
        // 202 normally, 200 in sandbox mode; the header is the only result either way.
        let provider_message_id = response
            .headers()
            .get("x-message-id")
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        Ok(SendAccepted {
            provider_message_id,
        })
    }

    /// `GET /v3/scopes`: the scopes of the calling key. Proves the key works and lets the caller
    /// check for `mail.send` / `whitelabel.*` before relying on them.
    pub async fn scopes(&self) -> Result<Vec<String>, ProviderError> {
        #[derive(Deserialize)]
        struct Scopes {
            scopes: Vec<String>,
        }
        let scopes: Scopes = self
            .fetch_json(self.request(Method::GET, "/v3/scopes"))
            .await?;
        Ok(scopes.scopes)
    }

    /// `POST /v3/whitelabel/domains` with automatic security, so the practice only has to
    /// publish three CNAMEs and SendGrid rotates DKIM keys itself.
    pub async fn create_domain(
        &self,
        domain: &str,
        subdomain: Option<&str>,
    ) -> Result<AuthenticatedDomain, ProviderError> {
        let mut body = json!({ "domain": domain, "automatic_security": true });
        if let Some(subdomain) = subdomain {
            body["subdomain"] = json!(subdomain);
        }
        let request = self
            .request(Method::POST, "/v3/whitelabel/domains")
            .json(&body);
        let wire: DomainWire = self.fetch_json(request).await?;
        Ok(wire.into())
    }

    /// Finds an existing authentication for `domain` (and `subdomain`, when given), so a retried
    /// setup reuses it instead of creating a duplicate.
    pub async fn find_domain(
        &self,
        domain: &str,
        subdomain: Option<&str>,
    ) -> Result<Option<AuthenticatedDomain>, ProviderError> {
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("domain", domain)
            .finish();
        let path = format!("/v3/whitelabel/domains?{query}");
        let listed: Vec<DomainWire> = self.fetch_json(self.request(Method::GET, &path)).await?;
        // `domain` is a search, not an equality filter: `example.com` can also list
        // `myexample.com`. DNS names compare case-insensitively.
        let mut matching: Vec<DomainWire> = listed
            .into_iter()
            .filter(|d| d.domain.eq_ignore_ascii_case(domain))
            .filter(|d| {
                subdomain.is_none_or(|wanted| {
                    d.subdomain
                        .as_deref()
                        .is_some_and(|have| have.eq_ignore_ascii_case(wanted))
                })
            })
            .collect();
        // A domain can be authenticated more than once; the validated entry is the one in use.
        matching.sort_by_key(|d| !d.valid);
        Ok(matching.into_iter().next().map(Into::into))
    }

    /// `GET /v3/whitelabel/domains/{id}`.
    pub async fn get_domain(&self, id: i64) -> Result<AuthenticatedDomain, ProviderError> {
        let path = format!("/v3/whitelabel/domains/{id}");
        let wire: DomainWire = self.fetch_json(self.request(Method::GET, &path)).await?;
        Ok(wire.into())
    }

    /// `POST /v3/whitelabel/domains/{id}/validate`: asks SendGrid to look up the DNS records now.
    pub async fn validate_domain(&self, id: i64) -> Result<DomainValidation, ProviderError> {
        #[derive(Deserialize)]
        struct ValidationWire {
            valid: bool,
            #[serde(default)]
            validation_results: BTreeMap<String, ResultWire>,
        }
        #[derive(Deserialize)]
        struct ResultWire {
            valid: bool,
            reason: Option<String>,
        }

        let path = format!("/v3/whitelabel/domains/{id}/validate");
        // The operation takes no body, but a POST without `Content-Length` is one a strict proxy
        // may refuse with 411; an explicit empty body says so.
        let request = self
            .request(Method::POST, &path)
            .header(CONTENT_LENGTH, "0")
            .body(Vec::new());
        let wire: ValidationWire = self.fetch_json(request).await?;
        let results = in_record_order(wire.validation_results)
            .map(|(name, result)| RecordValidation {
                name,
                valid: result.valid,
                reason: result.reason,
            })
            .collect();
        Ok(DomainValidation {
            valid: wire.valid,
            results,
        })
    }

    /// `DELETE /v3/whitelabel/domains/{id}`. Idempotent: a 404 counts as done.
    pub async fn delete_domain(&self, id: i64) -> Result<DeleteOutcome, ProviderError> {
        let path = format!("/v3/whitelabel/domains/{id}");
        let response =
            provider_error::dispatch(PROVIDER, self.request(Method::DELETE, &path)).await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(DeleteOutcome::AlreadyGone);
        }
        provider_error::require_success(PROVIDER, response, classify).await?;
        Ok(DeleteOutcome::Deleted)
    }

    /// Creates an Event Webhook posting every event type to `url`, turns on signing, and returns
    /// the webhook id with its verification key.
    ///
    /// Signing cannot be requested at creation; it is a separate toggle on the new id. If a later
    /// step fails, the webhook exists unsigned and a retry with the same `url` gets SendGrid's
    /// "already exists" 400 (its error carries the existing id).
    pub async fn create_signed_event_webhook(
        &self,
        url: &str,
    ) -> Result<EventWebhook, ProviderError> {
        #[derive(Deserialize)]
        struct Created {
            id: String,
        }
        #[derive(Deserialize)]
        struct Signed {
            #[serde(default)]
            public_key: String,
        }

        let settings = json!({
            "enabled": true,
            "url": url,
            "delivered": true,
            "open": true,
            "click": true,
            "bounce": true,
            "dropped": true,
            "spam_report": true,
            "unsubscribe": true,
            "processed": true,
            "deferred": true,
            "group_unsubscribe": true,
            "group_resubscribe": true,
        });
        let create = self
            .request(Method::POST, "/v3/user/webhooks/event/settings")
            .json(&settings);
        let Created { id } = self.fetch_json(create).await?;

        let signed_path = format!("/v3/user/webhooks/event/settings/signed/{id}");
        let enable = self
            .request(Method::PATCH, &signed_path)
            .json(&json!({ "enabled": true }));
        let Signed { mut public_key } = self.fetch_json(enable).await?;
        // The PATCH response documents the key, but the dedicated GET is the authoritative source
        // when it comes back empty.
        if public_key.is_empty() {
            let fetched: Signed = self
                .fetch_json(self.request(Method::GET, &signed_path))
                .await?;
            public_key = fetched.public_key;
        }
        if public_key.is_empty() {
            return Err(ProviderError::Unavailable {
                message: format!("SendGrid returned no public key for signed webhook {id}"),
            });
        }
        // A key that does not parse would fail every event's signature: refuse it now, while
        // the practice is on the settings page and can paste the one SendGrid shows instead.
        if SendGridVerifier::from_base64_der(&public_key).is_err() {
            return Err(ProviderError::BadRequest {
                message: format!(
                    "SendGrid returned a verification key for signed webhook {id} that is not a P-256 \
                     public key in base64 DER, so it was not stored"
                ),
            });
        }
        Ok(EventWebhook {
            id,
            public_key: public_key.trim().to_string(),
        })
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base_url))
            .bearer_auth(self.api_key.expose_secret())
            .header(ACCEPT, "application/json")
    }

    async fn send_request(&self, request: RequestBuilder) -> Result<Response, ProviderError> {
        provider_error::send(PROVIDER, request, classify).await
    }

    async fn fetch_json<T: serde::de::DeserializeOwned>(
        &self,
        request: RequestBuilder,
    ) -> Result<T, ProviderError> {
        let response = self.send_request(request).await?;
        provider_error::json_body(PROVIDER, response).await
    }
}

#[derive(Serialize)]
struct MailSend<'a> {
    personalizations: [Personalization<'a>; 1],
    from: Address<'a>,
    subject: &'a str,
    content: Vec<Content<'a>>,
    // Top level rather than per personalization: one recipient per request, and the Python SDK
    // sends it as an object there too although the spec types it `string`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    custom_args: &'a BTreeMap<String, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    headers: &'a BTreeMap<String, String>,
}

#[derive(Serialize)]
struct Personalization<'a> {
    to: [Address<'a>; 1],
}

#[derive(Serialize)]
struct Address<'a> {
    email: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
}

#[derive(Serialize)]
struct Content<'a> {
    #[serde(rename = "type")]
    mime: &'static str,
    value: &'a str,
}

impl<'a> From<&'a OutgoingEmail> for MailSend<'a> {
    fn from(email: &'a OutgoingEmail) -> Self {
        // text/plain must come first or SendGrid answers 400 (RFC 1341 §7.2 ordering).
        let mut content = vec![Content {
            mime: "text/plain",
            value: &email.text_body,
        }];
        if let Some(html) = &email.html_body {
            content.push(Content {
                mime: "text/html",
                value: html,
            });
        }
        Self {
            personalizations: [Personalization {
                to: [Address {
                    email: &email.to,
                    name: email.to_name.as_deref(),
                }],
            }],
            from: Address {
                email: &email.from_email,
                name: email.from_name.as_deref(),
            },
            subject: &email.subject,
            content,
            custom_args: &email.custom_args,
            headers: &email.headers,
        }
    }
}

/// Domain object as returned by create/get/list.
#[derive(Deserialize)]
struct DomainWire {
    id: i64,
    domain: String,
    subdomain: Option<String>,
    valid: bool,
    #[serde(default)]
    dns: BTreeMap<String, DnsRecordWire>,
}

#[derive(Deserialize)]
struct DnsRecordWire {
    #[serde(rename = "type")]
    record_type: String,
    host: String,
    data: String,
    valid: bool,
}

impl From<DomainWire> for AuthenticatedDomain {
    fn from(wire: DomainWire) -> Self {
        let records = in_record_order(wire.dns)
            .map(|(name, record)| DnsRecord {
                name,
                record_type: record.record_type,
                host: record.host,
                data: record.data,
                valid: record.valid,
            })
            .collect();
        Self {
            id: wire.id,
            domain: wire.domain,
            subdomain: wire.subdomain,
            valid: wire.valid,
            records,
        }
    }
}

/// The order a practice is walked through: the return-path CNAME, then the two DKIM CNAMEs, then
/// anything else alphabetically (the input map is already sorted by name).
fn in_record_order<T>(by_name: BTreeMap<String, T>) -> impl Iterator<Item = (String, T)> {
    const FIRST: [&str; 3] = ["mail_cname", "dkim1", "dkim2"];
    let mut entries: Vec<(String, T)> = by_name.into_iter().collect();
    entries.sort_by_key(|(name, _)| {
        FIRST
            .iter()
            .position(|first| first == name)
            .unwrap_or(FIRST.len())
    });
    entries.into_iter()
}

/// SendGrid error bodies: `{"errors":[{"message","field","help"}],"id"?}`, except a few
/// endpoints that send `errors` as a single object with `error`/`field`, and proxies that send
/// HTML. Anything unreadable falls back to the HTTP status.
fn classify(failure: &Failure<'_>) -> ProviderError {
    let errors = error_entries(failure.body);
    let message = if errors.is_empty() {
        failure.status_message(PROVIDER)
    } else {
        errors
            .iter()
            .map(|e| e.message.as_str())
            .collect::<Vec<_>>()
            .join("; ")
    };
    // Only blame the recipient when every complaint is about the recipient; a mix means our
    // request is wrong as well.
    let about_recipient = !errors.is_empty()
        && errors
            .iter()
            .all(|e| e.field.as_deref().is_some_and(is_recipient_field));
    if failure.status == StatusCode::BAD_REQUEST && about_recipient {
        return ProviderError::RecipientRejected {
            code: None,
            message,
            opted_out: false,
        };
    }
    // 403 covers both a key without `mail.send` and an unverified From sender: both are fixed
    // in the account, and another account may well be able to send.
    failure.classify_by_status(message)
}

struct ErrorEntry {
    message: String,
    field: Option<String>,
}

fn error_entries(body: &[u8]) -> Vec<ErrorEntry> {
    let Ok(parsed) = serde_json::from_slice::<Value>(body) else {
        return Vec::new();
    };
    let entry = |item: &Value| {
        let text = |key: &str| item.get(key).and_then(Value::as_str).map(str::to_owned);
        Some(ErrorEntry {
            message: text("message").or_else(|| text("error"))?,
            field: text("field"),
        })
    };
    match parsed.get("errors") {
        Some(Value::Array(items)) => items.iter().filter_map(entry).collect(),
        Some(item @ Value::Object(_)) => entry(item).into_iter().collect(),
        _ => Vec::new(),
    }
}

/// `personalizations.0.to`, `personalizations.0.to.0`, `personalizations.0.to.0.email`, ...
fn is_recipient_field(field: &str) -> bool {
    let mut parts = field.split('.');
    parts.next() == Some("personalizations")
        && parts
            .next()
            .is_some_and(|index| index.parse::<usize>().is_ok())
        && parts.next() == Some("to")
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;
    use wiremock::matchers::{bearer_token, body_partial_json, header, method, path, query_param};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    use super::*;
    use crate::providers::error::http_client;

    const KEY: &str = "SG.test-key-must-never-leak";
    /// A P-256 public key as SendGrid shows it: base64 of the DER SubjectPublicKeyInfo.
    const VERIFY_KEY: &str = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE83T4O/n84iotIvIW4mdBgQ/7dAfSmpqIM8kF9mN1flpVKS3GRqe62gw+2fNNRaINXvVpiglSI8eNEc6wEA3F+g==";

    fn client_with_timeout(server: &MockServer, timeout: Duration) -> SendGridClient {
        let http = http_client(timeout).expect("client builds");
        SendGridClient::new(http, server.uri(), SecretString::from(KEY))
    }

    fn client(server: &MockServer) -> SendGridClient {
        client_with_timeout(server, Duration::from_secs(5))
    }

    fn email() -> OutgoingEmail {
        OutgoingEmail {
            to: "pat@example.com".into(),
            to_name: Some("Pat".into()),
            from_email: "noreply@practice.example".into(),
            from_name: Some("Smile Dental".into()),
            subject: "Reminder".into(),
            text_body: "See you tomorrow".into(),
            html_body: Some("<p>See you tomorrow</p>".into()),
            custom_args: BTreeMap::from([
                ("tenant".into(), "t1".into()),
                ("message_id".into(), "42".into()),
            ]),
            headers: BTreeMap::from([
                (
                    "List-Unsubscribe".into(),
                    "<https://app.example/u/abc>".into(),
                ),
                (
                    "List-Unsubscribe-Post".into(),
                    "List-Unsubscribe=One-Click".into(),
                ),
            ]),
        }
    }

    /// A mail/send mock that checks auth and Accept, answering with `response`.
    async fn mail_send_answers(server: &MockServer, response: ResponseTemplate) {
        Mock::given(method("POST"))
            .and(path("/v3/mail/send"))
            .and(bearer_token(KEY))
            .and(header("accept", "application/json"))
            .respond_with(response)
            .expect(1)
            .mount(server)
            .await;
    }

    async fn send_failure(response: ResponseTemplate) -> ProviderError {
        let server = MockServer::start().await;
        mail_send_answers(&server, response).await;
        client(&server)
            .send(&email())
            .await
            .expect_err("the send fails")
    }

    fn sendgrid_errors(errors: Value) -> ResponseTemplate {
        ResponseTemplate::new(400).set_body_json(json!({ "errors": errors }))
    }

    fn domain_json(id: i64, domain: &str, subdomain: &str, valid: bool) -> Value {
        let record = |host: String, data: &str| json!({ "valid": valid, "type": "cname", "host": host, "data": data });
        // Deliberately not in presentation order, with an extra key, to exercise the sorting.
        json!({
            "id": id, "user_id": 7, "subdomain": subdomain, "domain": domain, "username": "u",
            "ips": [], "custom_spf": false, "default": false, "legacy": false,
            "automatic_security": true, "valid": valid,
            "dns": {
                "dkim2": record(format!("s2._domainkey.{domain}"), "s2.domainkey.u7.wl.sendgrid.net"),
                "zz_extra": record(format!("x.{domain}"), "x.sendgrid.net"),
                "mail_cname": record(format!("{subdomain}.{domain}"), "u7.wl.sendgrid.net"),
                "dkim1": record(format!("s1._domainkey.{domain}"), "s1.domainkey.u7.wl.sendgrid.net"),
            }
        })
    }

    #[tokio::test]
    async fn sending_posts_the_documented_body_and_returns_the_x_message_id() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v3/mail/send"))
            .and(bearer_token(KEY))
            .and(header("accept", "application/json"))
            .and(body_partial_json(json!({
                "personalizations": [{ "to": [{ "email": "pat@example.com", "name": "Pat" }] }],
                "from": { "email": "noreply@practice.example", "name": "Smile Dental" },
                "subject": "Reminder",
                "content": [
                    { "type": "text/plain", "value": "See you tomorrow" },
                    { "type": "text/html", "value": "<p>See you tomorrow</p>" },
                ],
                "custom_args": { "tenant": "t1", "message_id": "42" },
                "headers": {
                    "List-Unsubscribe": "<https://app.example/u/abc>",
                    "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
                },
            })))
            .respond_with(
                ResponseTemplate::new(202).insert_header("X-Message-Id", "moW00FY9Sqyr2r5ekgRDLg"),
            )
            .expect(1)
            .mount(&server)
            .await;

        let accepted = client(&server).send(&email()).await.expect("accepted");

        assert_eq!(
            accepted.provider_message_id.as_deref(),
            Some("moW00FY9Sqyr2r5ekgRDLg")
        );
        let sent: Value = server.received_requests().await.unwrap()[0]
            .body_json()
            .unwrap();
        assert_eq!(sent["content"].as_array().unwrap().len(), 2);
        assert!(sent.get("tracking_settings").is_none());
    }

    #[tokio::test]
    async fn an_email_without_html_sends_only_the_plain_text_part_and_no_empty_maps() {
        let server = MockServer::start().await;
        mail_send_answers(&server, ResponseTemplate::new(202)).await;
        let plain = OutgoingEmail {
            html_body: None,
            custom_args: BTreeMap::new(),
            headers: BTreeMap::new(),
            to_name: None,
            ..email()
        };

        let accepted = client(&server).send(&plain).await.expect("accepted");

        assert_eq!(accepted.provider_message_id, None);
        let sent: Value = server.received_requests().await.unwrap()[0]
            .body_json()
            .unwrap();
        assert_eq!(
            sent["content"],
            json!([{ "type": "text/plain", "value": "See you tomorrow" }])
        );
        assert_eq!(
            sent["personalizations"],
            json!([{ "to": [{ "email": "pat@example.com" }] }])
        );
        assert!(sent.get("custom_args").is_none() && sent.get("headers").is_none());
    }

    #[tokio::test]
    async fn a_revoked_key_is_an_account_rejection_in_sendgrids_words() {
        let error = send_failure(ResponseTemplate::new(401).set_body_json(json!({
            "errors": [{ "field": null, "message": "The provided authorization grant is invalid, expired, or revoked" }]
        })))
        .await;

        assert_eq!(
            error,
            ProviderError::AccountRejected {
                message: "The provided authorization grant is invalid, expired, or revoked".into()
            }
        );
    }

    #[tokio::test]
    async fn an_unverified_from_sender_is_an_account_rejection() {
        let message = "The from address does not match a verified Sender Identity. Mail cannot be sent until this error is resolved.";
        let error = send_failure(ResponseTemplate::new(403).set_body_json(json!({
            "errors": [{ "message": message, "field": "from", "help": null }]
        })))
        .await;

        assert_eq!(
            error,
            ProviderError::AccountRejected {
                message: message.into()
            }
        );
        assert!(error.is_account_failure());
    }

    #[tokio::test]
    async fn a_400_about_the_recipient_address_is_a_recipient_rejection() {
        let error = send_failure(sendgrid_errors(json!([{
            "message": "Does not contain a valid address.",
            "field": "personalizations.0.to.0.email",
            "help": "http://sendgrid.com/docs/API_Reference/Web_API_v3/Mail/errors.html#message.personalizations.to"
        }])))
        .await;

        assert_eq!(
            error,
            ProviderError::RecipientRejected {
                code: None,
                message: "Does not contain a valid address.".into(),
                opted_out: false
            }
        );
    }

    #[tokio::test]
    async fn a_400_about_other_fields_is_our_bad_request_with_all_messages_joined() {
        let error = send_failure(sendgrid_errors(json!([
            { "message": "Does not contain a valid address.", "field": "personalizations.0.to.0.email" },
            { "message": "The subject is required.", "field": "subject" },
        ])))
        .await;

        assert_eq!(
            error,
            ProviderError::BadRequest {
                message: "Does not contain a valid address.; The subject is required.".into()
            }
        );
    }

    #[tokio::test]
    async fn a_429_with_retry_after_is_rate_limited_for_that_long() {
        let error = send_failure(
            ResponseTemplate::new(429)
                .insert_header("Retry-After", "7")
                .set_body_json(
                    json!({ "errors": [{ "field": null, "message": "too many requests" }] }),
                ),
        )
        .await;

        assert_eq!(
            error,
            ProviderError::RateLimited {
                retry_after: Some(Duration::from_secs(7))
            }
        );
    }

    #[tokio::test]
    async fn a_500_is_unavailable_in_sendgrids_words() {
        let error = send_failure(
            ResponseTemplate::new(500)
                .set_body_json(json!({ "errors": [{ "message": "internal server error" }] })),
        )
        .await;

        assert_eq!(
            error,
            ProviderError::Unavailable {
                message: "internal server error".into()
            }
        );
    }

    #[tokio::test]
    async fn an_html_413_page_is_a_bad_request_described_by_its_status() {
        let error = send_failure(ResponseTemplate::new(413).set_body_raw(
            "<html><head><title>413 Request Entity Too Large</title></head><body>nginx</body></html>",
            "text/html",
        ))
        .await;

        assert_eq!(
            error,
            ProviderError::BadRequest {
                message: "SendGrid returned HTTP 413 Payload Too Large".into()
            }
        );
    }

    #[tokio::test]
    async fn a_provider_slower_than_the_client_timeout_is_unavailable() {
        let server = MockServer::start().await;
        mail_send_answers(
            &server,
            ResponseTemplate::new(202).set_delay(Duration::from_secs(2)),
        )
        .await;

        let error = client_with_timeout(&server, Duration::from_millis(200))
            .send(&email())
            .await
            .expect_err("times out");

        assert_eq!(
            error,
            ProviderError::Unavailable {
                message: "SendGrid did not answer in time".into()
            }
        );
    }

    #[tokio::test]
    async fn an_unreadable_success_body_is_unavailable() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/v3/scopes"))
            .respond_with(ResponseTemplate::new(200).set_body_string("not json"))
            .expect(1)
            .mount(&server)
            .await;

        let error = client(&server).scopes().await.expect_err("unreadable");

        assert!(
            matches!(error, ProviderError::Unavailable { .. }),
            "{error:?}"
        );
    }

    #[tokio::test]
    async fn scopes_returns_the_calling_keys_scopes() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/v3/scopes"))
            .and(bearer_token(KEY))
            .and(header("accept", "application/json"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(json!({ "scopes": ["mail.send", "whitelabel.create"] })),
            )
            .expect(1)
            .mount(&server)
            .await;

        let scopes = client(&server).scopes().await.expect("scopes");

        assert_eq!(scopes, ["mail.send", "whitelabel.create"]);
    }

    #[tokio::test]
    async fn creating_a_domain_asks_for_automatic_security_and_orders_the_records() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v3/whitelabel/domains"))
            .and(bearer_token(KEY))
            .and(body_partial_json(json!({
                "domain": "smile.example", "subdomain": "em", "automatic_security": true
            })))
            .respond_with(ResponseTemplate::new(201).set_body_json(domain_json(
                302183,
                "smile.example",
                "em",
                false,
            )))
            .expect(1)
            .mount(&server)
            .await;

        let domain = client(&server)
            .create_domain("smile.example", Some("em"))
            .await
            .expect("created");

        assert_eq!(
            (
                domain.id,
                domain.domain.as_str(),
                domain.subdomain.as_deref()
            ),
            (302183, "smile.example", Some("em"))
        );
        let names: Vec<&str> = domain.records.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["mail_cname", "dkim1", "dkim2", "zz_extra"]);
        assert_eq!(
            domain.records[0],
            DnsRecord {
                name: "mail_cname".into(),
                record_type: "cname".into(),
                host: "em.smile.example".into(),
                data: "u7.wl.sendgrid.net".into(),
                valid: false,
            }
        );
    }

    #[tokio::test]
    async fn creating_a_domain_without_a_subdomain_leaves_it_to_sendgrid() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v3/whitelabel/domains"))
            .respond_with(ResponseTemplate::new(201).set_body_json(domain_json(
                1,
                "smile.example",
                "em123",
                false,
            )))
            .expect(1)
            .mount(&server)
            .await;

        client(&server)
            .create_domain("smile.example", None)
            .await
            .expect("created");

        let sent: Value = server.received_requests().await.unwrap()[0]
            .body_json()
            .unwrap();
        assert_eq!(
            sent,
            json!({ "domain": "smile.example", "automatic_security": true })
        );
    }

    #[tokio::test]
    async fn finding_a_domain_requires_an_exact_domain_and_the_given_subdomain() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/v3/whitelabel/domains"))
            .and(query_param("domain", "smile.example"))
            .and(bearer_token(KEY))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!([
                domain_json(1, "mysmile.example", "em", true),
                domain_json(2, "smile.example", "other", true),
                domain_json(3, "smile.example", "em", false),
                domain_json(4, "Smile.Example", "em", true),
            ])))
            .expect(3)
            .mount(&server)
            .await;
        let client = client(&server);

        let with_subdomain = client.find_domain("smile.example", Some("em")).await;
        let any_subdomain = client.find_domain("smile.example", None).await;
        let missing = client.find_domain("smile.example", Some("nope")).await;

        // Id 4 over id 3: same names, but the validated one is in use.
        assert_eq!(with_subdomain.unwrap().map(|d| d.id), Some(4));
        assert_eq!(any_subdomain.unwrap().map(|d| d.id), Some(2));
        assert_eq!(missing.unwrap(), None);
    }

    #[tokio::test]
    async fn getting_a_domain_by_id_reads_the_same_shape() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/v3/whitelabel/domains/45373692"))
            .and(bearer_token(KEY))
            .respond_with(ResponseTemplate::new(200).set_body_json(domain_json(
                45373692,
                "smile.example",
                "em",
                true,
            )))
            .expect(1)
            .mount(&server)
            .await;

        let domain = client(&server).get_domain(45373692).await.expect("found");

        assert!(domain.valid && domain.records.iter().all(|r| r.valid));
    }

    #[tokio::test]
    async fn validating_a_domain_keeps_the_failure_reason_verbatim_in_record_order() {
        let reason = "Expected CNAME for \"em.smile.example\" to match \"u7.wl.sendgrid.net\".";
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v3/whitelabel/domains/7/validate"))
            .and(bearer_token(KEY))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "id": 7, "valid": false,
                "validation_results": {
                    "spf": { "valid": true, "reason": null },
                    "dkim2": { "valid": true, "reason": null },
                    "dkim1": { "valid": true, "reason": null },
                    "mail_cname": { "valid": false, "reason": reason },
                }
            })))
            .expect(1)
            .mount(&server)
            .await;

        let validation = client(&server).validate_domain(7).await.expect("validated");

        assert!(!validation.valid);
        let names: Vec<&str> = validation.results.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["mail_cname", "dkim1", "dkim2", "spf"]);
        assert_eq!(validation.results[0].reason.as_deref(), Some(reason));
        assert_eq!(validation.results[1].reason, None);
    }

    #[tokio::test]
    async fn the_validate_post_sends_an_empty_body_with_content_length_zero_and_our_user_agent() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v3/whitelabel/domains/7/validate"))
            .and(header("content-length", "0"))
            .and(header("user-agent", crate::providers::error::USER_AGENT))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(json!({ "id": 7, "valid": true, "validation_results": {} })),
            )
            .expect(1)
            .mount(&server)
            .await;

        client(&server).validate_domain(7).await.expect("validated");

        let requests = server.received_requests().await.unwrap();
        let sent = &requests[0];
        assert_eq!(
            sent.headers
                .get_all("content-length")
                .iter()
                .collect::<Vec<_>>(),
            ["0"],
            "exactly one Content-Length"
        );
        assert!(sent.body.is_empty());
        assert_eq!(
            crate::providers::error::USER_AGENT,
            concat!("dentite/", env!("CARGO_PKG_VERSION"))
        );
    }

    #[tokio::test]
    async fn mail_send_names_us_in_the_user_agent() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v3/mail/send"))
            .and(header("user-agent", crate::providers::error::USER_AGENT))
            .respond_with(ResponseTemplate::new(202))
            .expect(1)
            .mount(&server)
            .await;

        client(&server).send(&email()).await.expect("accepted");
    }

    #[tokio::test]
    async fn a_validation_lookup_failure_is_unavailable() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v3/whitelabel/domains/7/validate"))
            .respond_with(
                ResponseTemplate::new(500).set_body_json(
                    json!({ "errors": [{ "message": "internal error getting TXT" }] }),
                ),
            )
            .expect(1)
            .mount(&server)
            .await;

        let error = client(&server).validate_domain(7).await.expect_err("fails");

        assert_eq!(
            error,
            ProviderError::Unavailable {
                message: "internal error getting TXT".into()
            }
        );
    }

    #[tokio::test]
    async fn deleting_a_domain_reports_deleted() {
        let server = MockServer::start().await;
        Mock::given(method("DELETE"))
            .and(path("/v3/whitelabel/domains/7"))
            .and(bearer_token(KEY))
            .respond_with(ResponseTemplate::new(204))
            .expect(1)
            .mount(&server)
            .await;

        let outcome = client(&server).delete_domain(7).await.expect("deleted");

        assert_eq!(outcome, DeleteOutcome::Deleted);
    }

    #[tokio::test]
    async fn deleting_a_domain_that_is_already_gone_succeeds_as_already_gone() {
        let server = MockServer::start().await;
        Mock::given(method("DELETE"))
            .and(path("/v3/whitelabel/domains/7"))
            .respond_with(
                ResponseTemplate::new(404)
                    .set_body_json(json!({ "errors": [{ "message": "resource not found" }] })),
            )
            .expect(1)
            .mount(&server)
            .await;

        let outcome = client(&server).delete_domain(7).await.expect("idempotent");

        assert_eq!(outcome, DeleteOutcome::AlreadyGone);
    }

    #[tokio::test]
    async fn deleting_with_a_revoked_key_is_still_an_error() {
        let server = MockServer::start().await;
        Mock::given(method("DELETE"))
            .and(path("/v3/whitelabel/domains/7"))
            .respond_with(ResponseTemplate::new(401).set_body_json(
                json!({ "errors": [{ "field": null, "message": "authorization required" }] }),
            ))
            .expect(1)
            .mount(&server)
            .await;

        let error = client(&server).delete_domain(7).await.expect_err("refused");

        assert_eq!(
            error,
            ProviderError::AccountRejected {
                message: "authorization required".into()
            }
        );
    }

    async fn mount_webhook_creation(server: &MockServer, id: &str) {
        Mock::given(method("POST"))
            .and(path("/v3/user/webhooks/event/settings"))
            .and(bearer_token(KEY))
            .and(body_partial_json(json!({
                "enabled": true, "url": "https://app.example/webhooks/sendgrid/ref1",
                "delivered": true, "open": true, "click": true, "bounce": true, "dropped": true,
                "spam_report": true, "unsubscribe": true, "processed": true, "deferred": true,
                "group_unsubscribe": true, "group_resubscribe": true,
            })))
            .respond_with(ResponseTemplate::new(201).set_body_json(json!({
                "enabled": true, "url": "https://app.example/webhooks/sendgrid/ref1", "id": id,
                "created_date": "2026-01-01T12:00:00Z", "updated_date": "2026-01-01T12:00:00Z",
            })))
            .expect(1)
            .mount(server)
            .await;
    }

    #[tokio::test]
    async fn creating_a_signed_webhook_enables_signing_and_fetches_the_key_when_patch_omits_it() {
        let id = "77d4a5da-7015-11ed-a1eb-0242ac120002";
        let signed = format!("/v3/user/webhooks/event/settings/signed/{id}");
        let server = MockServer::start().await;
        mount_webhook_creation(&server, id).await;
        Mock::given(method("PATCH"))
            .and(path(signed.as_str()))
            .and(bearer_token(KEY))
            .and(body_partial_json(json!({ "enabled": true })))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(json!({ "id": id, "public_key": "" })),
            )
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path(signed.as_str()))
            .and(bearer_token(KEY))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(json!({ "id": id, "public_key": VERIFY_KEY })),
            )
            .expect(1)
            .mount(&server)
            .await;

        let webhook = client(&server)
            .create_signed_event_webhook("https://app.example/webhooks/sendgrid/ref1")
            .await
            .expect("created");

        assert_eq!(
            webhook,
            EventWebhook {
                id: id.into(),
                public_key: VERIFY_KEY.into()
            }
        );
    }

    #[tokio::test]
    async fn creating_a_signed_webhook_uses_the_key_from_the_patch_response_when_present() {
        let id = "wh-1";
        let signed = format!("/v3/user/webhooks/event/settings/signed/{id}");
        let server = MockServer::start().await;
        mount_webhook_creation(&server, id).await;
        Mock::given(method("PATCH"))
            .and(path(signed.as_str()))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(json!({ "id": id, "public_key": VERIFY_KEY })),
            )
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path(signed.as_str()))
            .respond_with(ResponseTemplate::new(500))
            .expect(0)
            .mount(&server)
            .await;

        let webhook = client(&server)
            .create_signed_event_webhook("https://app.example/webhooks/sendgrid/ref1")
            .await
            .expect("created");

        assert_eq!(webhook.public_key, VERIFY_KEY);
    }

    #[tokio::test]
    async fn a_verification_key_that_is_not_a_p256_public_key_is_refused() {
        // A truncated key, an Ed25519 key (SPKI, the wrong curve) and plain garbage.
        for key in [
            "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE",
            "MCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=",
            "KEY-FROM-PATCH",
        ] {
            let id = "wh-1";
            let server = MockServer::start().await;
            mount_webhook_creation(&server, id).await;
            Mock::given(method("PATCH"))
                .and(path(format!(
                    "/v3/user/webhooks/event/settings/signed/{id}"
                )))
                .respond_with(
                    ResponseTemplate::new(200)
                        .set_body_json(json!({ "id": id, "public_key": key })),
                )
                .expect(1)
                .mount(&server)
                .await;

            let error = client(&server)
                .create_signed_event_webhook("https://app.example/webhooks/sendgrid/ref1")
                .await
                .expect_err(key);

            assert!(
                matches!(&error, ProviderError::BadRequest { message } if message.contains("not a P-256 public key")),
                "{key}: {error:?}"
            );
        }
    }

    #[test]
    fn debug_output_never_shows_the_api_key() {
        let http = http_client(Duration::from_secs(1)).expect("client builds");
        let client =
            SendGridClient::new(http, "https://api.sendgrid.com/", SecretString::from(KEY));

        let debug = format!("{client:?}");

        assert!(!debug.contains(KEY), "{debug}");
        assert!(debug.contains("https://api.sendgrid.com") && debug.contains("[redacted]"));
    }

    #[test]
    fn recipient_fields_are_recognised_only_under_personalizations_to() {
        for field in [
            "personalizations.0.to",
            "personalizations.1.to.0",
            "personalizations.0.to.0.email",
        ] {
            assert!(is_recipient_field(field), "{field}");
        }
        for field in [
            "from",
            "personalizations",
            "personalizations.0.cc.0.email",
            "personalizations.x.to",
            "personalizations.0.tos",
        ] {
            assert!(!is_recipient_field(field), "{field}");
        }
    }
}
