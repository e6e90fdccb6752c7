//! A practice's own Mailgun domain: the key and domain checked with Mailgun before they are
//! saved, the domain's webhooks created, its DNS records and state read and verified through
//! the email domain routes, sending through it only once Mailgun calls it active, its webhooks
//! verified with the account's own signing key, and erased by `DELETE /email`.

use reqwest::Method;
use serde_json::{Value, json};
use wiremock::{
    Mock, MockBuilder, ResponseTemplate,
    matchers::{basic_auth, body_string_contains, method, path},
};

use crate::helpers::*;

const PRACTICE_KEY: &str = "key-practice-0123456789abcdef";
const PRACTICE_SIGNING_KEY: &str = "practice-signing-key-4f7b";
const DOMAIN: &str = "mg.smiledental.com";
const SETTINGS: &str = "/api/practice-settings/messaging";

fn mailgun_account(overrides: Value) -> Value {
    let mut body = json!({
        "provider": "custom_mailgun",
        "mailgunApiKey": PRACTICE_KEY,
        "mailgunDomain": DOMAIN,
        "mailgunRegion": "eu",
        "fromEmail": "desk@mg.smiledental.com",
        "fromName": "Smile Dental",
        "fallbackEnabled": true,
    });
    body.as_object_mut()
        .unwrap()
        .extend(overrides.as_object().unwrap().clone());
    body
}

/// A call to Mailgun's API with the practice's key.
fn practice_call(verb: &str, route: &str) -> MockBuilder {
    Mock::given(method(verb))
        .and(path(route))
        .and(basic_auth("api", PRACTICE_KEY))
}

fn domain(state: &str) -> ResponseTemplate {
    let valid = if state == "active" {
        "valid"
    } else {
        "unknown"
    };
    ResponseTemplate::new(200).set_body_json(json!({
        "domain": {"name": DOMAIN, "state": state, "is_disabled": false, "type": "custom"},
        "sending_dns_records": [
            {"record_type": "TXT", "name": DOMAIN, "value": "v=spf1 include:mailgun.org ~all", "valid": valid},
            {"record_type": "TXT", "name": format!("pic._domainkey.{DOMAIN}"), "value": "k=rsa; p=MIGf", "valid": valid},
        ],
        "receiving_dns_records": []
    }))
}

impl TestApp {
    async fn put_email_settings(&self, owner: &Login, body: &Value) -> (u16, Value) {
        let response = self
            .send_json(Method::PUT, &format!("{SETTINGS}/email"), owner, body)
            .await;
        (response.status().as_u16(), response.json().await.unwrap())
    }

    /// The email domain routes; setting one up (`POST` without a suffix) asks for our domain.
    async fn email_domain(&self, owner: &Login, verb: Method, suffix: &str) -> (u16, Value) {
        let set_up = verb == Method::POST && suffix.is_empty();
        let request = self.request(
            verb,
            &format!("{SETTINGS}/email/domain{suffix}"),
            Some(owner),
        );
        let request = if set_up {
            request.json(&json!({"domain": DOMAIN}))
        } else {
            request
        };
        let response = request.send().await.unwrap();
        (response.status().as_u16(), response.json().await.unwrap())
    }

    async fn mount_mailgun_set_up(&self, state: &str) {
        practice_call("GET", &format!("/v4/domains/{DOMAIN}"))
            .respond_with(domain(state))
            .up_to_n_times(1)
            .mount(&self.vendors)
            .await;
        practice_call("GET", "/v5/accounts/http_signing_key")
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(json!({"http_signing_key": PRACTICE_SIGNING_KEY})),
            )
            .mount(&self.vendors)
            .await;
        practice_call("POST", &format!("/v3/domains/{DOMAIN}/webhooks"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(json!({"message": "Webhook has been created"})),
            )
            .mount(&self.vendors)
            .await;
    }
}

async fn app() -> TestApp {
    TestEnv::new()
        .with_system_accounts()
        .with_system_mailgun()
        .without_background()
        .spawn()
        .await
}

#[tokio::test]
async fn a_mailgun_domain_sends_once_mailgun_verifies_it_and_its_webhooks_use_the_accounts_key() {
    let app = app().await;
    let owner = app.practice_owner().await;
    let practice = owner.practice_id.unwrap();
    app.mount_mailgun_set_up("unverified").await;

    let (status, saved) = app
        .put_email_settings(&owner, &mailgun_account(json!({})))
        .await;
    assert_eq!(status, 200, "{saved}");
    let email = &saved["settings"]["email"];
    assert_eq!(email["provider"], "custom_mailgun");
    let mailgun = &email["mailgun"];
    assert_eq!(mailgun["mailgunApiKeyLast4"], "cdef");
    assert_eq!(
        mailgun["mailgunWebhookSigningKeyConfigured"], true,
        "read with the API key"
    );
    assert_eq!(mailgun["mailgunRegion"], "eu");
    assert_eq!(mailgun["domainState"], "unverified");
    assert_eq!(mailgun["webhooksCreated"], true);
    assert_eq!(
        email["customBlocker"],
        "custom Mailgun domain is not verified"
    );
    let hooks = app
        .vendors
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.url.path() == format!("/v3/domains/{DOMAIN}/webhooks"))
        .map(|r| String::from_utf8(r.body).unwrap())
        .collect::<Vec<_>>();
    assert_eq!(hooks.len(), 5, "{hooks:?}");
    assert!(hooks.iter().all(|h| h.contains(&format!(
        "hooks.dentite.test%2Fapi%2Fwebhooks%2Fmailgun%2F{practice}"
    ))));

    let (status, records) = app.email_domain(&owner, Method::GET, "").await;
    assert_eq!(status, 200);
    assert_eq!(
        (records["domain"].as_str(), records["verified"].as_bool()),
        (Some(DOMAIN), Some(false))
    );
    assert_eq!(records["mailgunState"], "unverified");
    assert_eq!(
        records["records"][0]["data"],
        "v=spf1 include:mailgun.org ~all"
    );
    let (status, refused) = app.email_domain(&owner, Method::POST, "").await;
    assert_eq!(status, 409, "chosen with the account, not here: {refused}");

    // Until Mailgun calls it active, mail goes through the platform.
    Mock::given(method("POST"))
        .and(path("/v3/mail/send"))
        .respond_with(ResponseTemplate::new(202).insert_header("X-Message-Id", "sys-1"))
        .expect(1)
        .mount(&app.sendgrid)
        .await;
    let patient = app
        .create_patient(practice, PATIENT_EMAIL, PATIENT_PHONE)
        .await;
    let before = app.queue_message(&owner, patient, "email").await;
    app.drain_queue().await;
    assert_eq!(
        app.log_row(before).await.1.as_deref(),
        Some("system_sendgrid")
    );

    practice_call("PUT", &format!("/v4/domains/{DOMAIN}/verify"))
        .respond_with(domain("active"))
        .expect(1)
        .mount(&app.vendors)
        .await;
    let (status, verified) = app.email_domain(&owner, Method::POST, "/verify").await;
    assert_eq!(
        (status, verified["verified"].as_bool()),
        (200, Some(true)),
        "{verified}"
    );
    assert_eq!(verified["records"][1]["valid"], true);

    practice_call("POST", &format!("/v3/{DOMAIN}/messages"))
        .and(body_string_contains(
            "from=%22Smile+Dental%22+%3Cdesk%40mg.smiledental.com%3E",
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"id": "<mg-practice-1@mg.smiledental.com>", "message": "Queued. Thank you."}),
        ))
        .expect(1)
        .mount(&app.vendors)
        .await;
    let after = app.queue_message(&owner, patient, "email").await;
    app.drain_queue().await;
    let (status, provider, message_id, ..) = app.log_row(after).await;
    assert_eq!(
        (status.as_str(), provider.as_deref(), message_id.as_deref()),
        (
            "sent",
            Some("custom_mailgun"),
            Some("mg-practice-1@mg.smiledental.com")
        )
    );

    // The domain's webhook, signed with the practice's account key, not the platform's.
    let now = chrono::Utc::now().timestamp();
    let delivered = json!({"event": "delivered", "id": "evt-practice-1", "recipient": PATIENT_EMAIL,
        "message": {"headers": {"message-id": "mg-practice-1@mg.smiledental.com"}}});
    let route = format!("/api/webhooks/mailgun/{practice}");
    let platform_signed = mailgun_webhook(now, "token-platform-0123456789", delivered.clone());
    let refused = app
        .http
        .post(app.url(&route))
        .header("content-type", "application/json")
        .body(platform_signed)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let body = signed_with(
        PRACTICE_SIGNING_KEY,
        now,
        "token-practice-0123456789",
        delivered,
    );
    let received = app
        .http
        .post(app.url(&route))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(received.status(), 200);
    assert_eq!(app.log_row(after).await.0, "delivered");
}

/// A Mailgun webhook body signed with `key`.
fn signed_with(key: &str, timestamp: i64, token: &str, event_data: Value) -> String {
    use hmac::{KeyInit, Mac};
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(format!("{timestamp}{token}").as_bytes());
    json!({
        "signature": {"timestamp": timestamp.to_string(), "token": token, "signature": hex::encode(mac.finalize().into_bytes())},
        "event-data": event_data,
    })
    .to_string()
}

#[tokio::test]
async fn what_mailgun_refuses_is_named_at_its_field_and_delete_erases_the_domain() {
    let app = app().await;
    let owner = app.practice_owner().await;
    let practice = owner.practice_id.unwrap();
    let before: Value = app.get(SETTINGS, &owner).await.json().await.unwrap();

    Mock::given(method("GET"))
        .and(path(format!("/v4/domains/{DOMAIN}")))
        .respond_with(ResponseTemplate::new(401).set_body_string("Forbidden"))
        .up_to_n_times(1)
        .mount(&app.vendors)
        .await;
    let (status, body) = app
        .put_email_settings(&owner, &mailgun_account(json!({})))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("provider_rejected"))
    );
    assert!(
        body["error"]["fields"]["mailgunApiKey"]
            .as_str()
            .unwrap()
            .starts_with("Mailgun rejected this API key")
    );

    practice_call("GET", &format!("/v4/domains/{DOMAIN}"))
        .respond_with(
            ResponseTemplate::new(404).set_body_json(json!({"message": "Domain not found"})),
        )
        .up_to_n_times(1)
        .mount(&app.vendors)
        .await;
    let (_, body) = app
        .put_email_settings(&owner, &mailgun_account(json!({})))
        .await;
    assert_eq!(
        body["error"]["fields"]["mailgunDomain"],
        format!(
            "{DOMAIN} is not a domain of this Mailgun account in the eu region (a domain lives in the region it was created in)"
        )
    );
    let (status, body) = app
        .put_email_settings(&owner, &mailgun_account(json!({"mailgunRegion": "asia", "mailgunDomain": "https://x/y", "postmarkServerToken": "t"})))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("validation_failed"))
    );
    let mut named: Vec<&str> = body["error"]["fields"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    named.sort();
    assert_eq!(
        named,
        ["mailgunDomain", "mailgunRegion", "postmarkServerToken"]
    );
    let after: Value = app.get(SETTINGS, &owner).await.json().await.unwrap();
    assert_eq!(after, before, "nothing was saved");

    app.mount_mailgun_set_up("active").await;
    assert_eq!(
        app.put_email_settings(&owner, &mailgun_account(json!({})))
            .await
            .0,
        200
    );
    let erased: Value = app
        .request(Method::DELETE, &format!("{SETTINGS}/email"), Some(&owner))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(erased["email"]["provider"], "system_sendgrid");
    assert_eq!(erased["email"]["mailgun"]["mailgunApiKeyConfigured"], false);
    let rows: i64 =
        sqlx::query_scalar("select count(*) from practice_accounts where practice_id = $1")
            .bind(practice)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(rows, 0);
    assert_eq!(app.email_domain(&owner, Method::GET, "").await.0, 404);
}
