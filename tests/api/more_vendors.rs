//! Postmark, Mailgun and Telnyx as the platform's accounts, and failover across the platform's
//! vendors: messages queued through the API, sent by the real queue to fakes that check the
//! request each real API needs, and webhooks signed as each vendor signs them.

use dentite::auth::Role;
use serde_json::{Value, json};
use uuid::Uuid;
use wiremock::{
    Mock, MockBuilder, ResponseTemplate,
    matchers::{
        basic_auth, bearer_token, body_partial_json, body_string_contains, header, method, path,
    },
};

use crate::helpers::*;

const POSTMARK_MESSAGE_ID: &str = "b7bc2f4a-e38e-4336-af7d-e6c392c2f817";
const MAILGUN_MESSAGE_ID: &str = "20261203101500.1.ABCDEF@mg.dentite.test";
const OTHER_PHONE: &str = "+15557654322";
const TELNYX_MESSAGE_ID: &str = "40385f64-5717-4562-b3fc-2c963f66afa6";

/// A practice on the platform's accounts, its owner, and a patient with both addresses.
struct Practice {
    id: Uuid,
    owner: Login,
    patient: Uuid,
}

async fn practice(app: &TestApp) -> Practice {
    let id = app.create_practice("Smile Dental").await;
    let owner = app.login_as(Some(id), Role::Owner).await;
    let patient = app.create_patient(id, PATIENT_EMAIL, PATIENT_PHONE).await;
    Practice { id, owner, patient }
}

impl TestApp {
    /// Queues one message through the API and runs the queue until nothing is due.
    async fn send_through_queue(&self, practice: &Practice, channel: &str) -> LogRow {
        let log = self
            .queue_message(&practice.owner, practice.patient, channel)
            .await;
        self.drain_queue().await;
        let (status, provider, provider_message_id, fallback_reason, error) =
            self.log_row(log).await;
        LogRow {
            id: log,
            status,
            provider,
            provider_message_id,
            fallback_reason,
            error,
        }
    }

    async fn post_postmark(&self, password: &str, event: &Value) -> reqwest::Response {
        self.http
            .post(self.url("/api/webhooks/postmark"))
            .basic_auth("postmark", Some(password))
            .json(event)
            .send()
            .await
            .unwrap()
    }

    async fn post_mailgun(&self, body: String) -> reqwest::Response {
        self.http
            .post(self.url("/api/webhooks/mailgun"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap()
    }

    async fn post_telnyx(&self, timestamp: i64, body: &Value) -> reqwest::Response {
        let body = body.to_string();
        let timestamp = timestamp.to_string();
        self.http
            .post(self.url("/api/webhooks/telnyx"))
            .header("content-type", "application/json")
            .header("telnyx-timestamp", &timestamp)
            .header(
                "telnyx-signature-ed25519",
                TelnyxSigner::new().sign(&timestamp, body.as_bytes()),
            )
            .body(body)
            .send()
            .await
            .unwrap()
    }

    async fn suppressed(&self, address: &str) -> Vec<(Option<Uuid>, String)> {
        sqlx::query_as(
            "select practice_id, reason from suppressions where address = $1 order by reason",
        )
        .bind(address)
        .fetch_all(&self.pool)
        .await
        .unwrap()
    }
}

struct LogRow {
    id: Uuid,
    status: String,
    provider: Option<String>,
    provider_message_id: Option<String>,
    fallback_reason: Option<String>,
    error: Option<String>,
}

fn postmark_accepts() -> Mock {
    Mock::given(method("POST"))
        .and(path("/email"))
        .and(header("X-Postmark-Server-Token", SYSTEM_POSTMARK_TOKEN))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "To": PATIENT_EMAIL, "SubmittedAt": "2026-12-03T10:15:00Z",
            "MessageID": POSTMARK_MESSAGE_ID, "ErrorCode": 0, "Message": "OK"
        })))
}

/// `POST /v3/{domain}/messages` of the platform's domain with its key.
fn mailgun_send() -> MockBuilder {
    Mock::given(method("POST"))
        .and(path(format!("/v3/{SYSTEM_MAILGUN_DOMAIN}/messages")))
        .and(basic_auth("api", SYSTEM_MAILGUN_KEY))
}

fn mailgun_queued() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "id": format!("<{MAILGUN_MESSAGE_ID}>"), "message": "Queued. Thank you."
    }))
}

fn mailgun_accepts() -> Mock {
    mailgun_send().respond_with(mailgun_queued())
}

/// `POST /v2/messages` with the platform's key.
fn telnyx_send() -> MockBuilder {
    Mock::given(method("POST"))
        .and(path("/v2/messages"))
        .and(bearer_token(SYSTEM_TELNYX_KEY))
}

fn telnyx_queued() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({"data": {
        "record_type": "message", "id": TELNYX_MESSAGE_ID, "direction": "outbound",
        "to": [{"phone_number": PATIENT_PHONE, "status": "queued"}], "errors": []
    }}))
}

fn telnyx_accepts() -> Mock {
    telnyx_send().respond_with(telnyx_queued())
}

fn sendgrid_down() -> Mock {
    Mock::given(method("POST"))
        .and(path("/v3/mail/send"))
        .and(bearer_token(SYSTEM_SENDGRID_KEY))
        .respond_with(ResponseTemplate::new(503).set_body_string("upstream unavailable"))
}

#[tokio::test]
async fn postmark_sends_json_with_the_server_token_our_ids_as_metadata_and_the_stream() {
    let app = TestEnv::new()
        .with_system_postmark()
        .var("POSTMARK_MESSAGE_STREAM", "reminders")
        .var("SYSTEM_FROM_NAME", "Smile, Dental")
        .without_background()
        .spawn()
        .await;
    let practice = practice(&app).await;
    Mock::given(method("POST"))
        .and(path("/email"))
        .and(header("X-Postmark-Server-Token", SYSTEM_POSTMARK_TOKEN))
        .and(header("accept", "application/json"))
        .and(body_partial_json(json!({
            "From": "\"Smile, Dental\" <noreply@dentite.test>",
            "To": PATIENT_EMAIL,
            "Subject": "Your benefits",
            "TextBody": "Hello Pat",
            "MessageStream": "reminders",
            "Metadata": {"practice_id": practice.id.to_string()},
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "MessageID": POSTMARK_MESSAGE_ID, "ErrorCode": 0, "Message": "OK"
        })))
        .expect(1)
        .mount(&app.vendors)
        .await;

    let log = app.send_through_queue(&practice, "email").await;
    assert_eq!(log.status, "sent");
    assert_eq!(log.provider.as_deref(), Some("system_postmark"));
    assert_eq!(
        log.provider_message_id.as_deref(),
        Some(POSTMARK_MESSAGE_ID)
    );
    let sent: Value =
        serde_json::from_slice(&app.vendors.received_requests().await.unwrap()[0].body).unwrap();
    assert_eq!(sent["Metadata"]["outreach_log_id"], log.id.to_string());
}

#[tokio::test]
async fn mailgun_sends_a_form_with_basic_auth_and_our_ids_as_variables_and_keeps_the_id_without_brackets()
 {
    let app = TestEnv::new()
        .with_system_mailgun()
        .without_background()
        .spawn()
        .await;
    let practice = practice(&app).await;
    mailgun_send()
        .and(header("content-type", "application/x-www-form-urlencoded"))
        .and(body_string_contains("to=pat%40example.com"))
        .and(body_string_contains("subject=Your+benefits"))
        .and(body_string_contains("text=Hello+Pat"))
        .and(body_string_contains(format!(
            "v%3Apractice_id={}",
            practice.id
        )))
        .respond_with(mailgun_queued())
        .expect(1)
        .mount(&app.vendors)
        .await;

    let log = app.send_through_queue(&practice, "email").await;
    assert_eq!(
        (log.status.as_str(), log.provider.as_deref()),
        ("sent", Some("system_mailgun"))
    );
    assert_eq!(log.provider_message_id.as_deref(), Some(MAILGUN_MESSAGE_ID));
    let form = String::from_utf8(
        app.vendors.received_requests().await.unwrap()[0]
            .body
            .clone(),
    )
    .unwrap();
    assert!(
        form.contains(&format!("v%3Aoutreach_log_id={}", log.id)),
        "{form}"
    );
}

#[tokio::test]
async fn telnyx_sends_json_with_a_bearer_key_and_a_webhook_url_for_the_platforms_route() {
    let app = TestEnv::new()
        .with_system_telnyx()
        .var("TELNYX_MESSAGING_PROFILE_ID", "profile-1")
        .without_background()
        .spawn()
        .await;
    let practice = practice(&app).await;
    telnyx_send()
        .and(body_partial_json(json!({
            "from": SYSTEM_TELNYX_NUMBER,
            "to": PATIENT_PHONE,
            "text": "Hello Pat",
            "messaging_profile_id": "profile-1",
            "webhook_url": "https://hooks.dentite.test/api/webhooks/telnyx",
        })))
        .respond_with(telnyx_queued())
        .expect(1)
        .mount(&app.vendors)
        .await;

    let log = app.send_through_queue(&practice, "sms").await;
    assert_eq!(
        (log.status.as_str(), log.provider.as_deref()),
        ("sent", Some("system_telnyx"))
    );
    assert_eq!(log.provider_message_id.as_deref(), Some(TELNYX_MESSAGE_ID));
}

#[tokio::test]
async fn with_the_first_system_vendor_down_the_second_sends_once_and_the_hop_is_recorded() {
    let app = TestEnv::new()
        .with_system_accounts()
        .with_system_postmark()
        .without_background()
        .spawn()
        .await;
    let practice = practice(&app).await;
    sendgrid_down().expect(1).mount(&app.sendgrid).await;
    postmark_accepts().expect(1).mount(&app.vendors).await;

    let log = app.send_through_queue(&practice, "email").await;
    assert_eq!(log.status, "sent");
    assert_eq!(log.provider.as_deref(), Some("system_postmark"));
    let reason = log.fallback_reason.unwrap();
    assert!(reason.starts_with("system SendGrid failed: "), "{reason}");
    let jobs: i64 = sqlx::query_scalar("select count(*) from send_jobs")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(jobs, 0, "nothing is left to send twice");
}

#[tokio::test]
async fn a_recipient_refused_by_the_first_vendor_is_not_handed_to_the_second() {
    let app = TestEnv::new()
        .with_system_accounts()
        .with_system_postmark()
        .without_background()
        .spawn()
        .await;
    let practice = practice(&app).await;
    Mock::given(method("POST"))
        .and(path("/v3/mail/send"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({"errors": [
            {"message": "Does not contain a valid address.", "field": "personalizations.0.to.0.email"}
        ]})))
        .expect(1)
        .mount(&app.sendgrid)
        .await;
    postmark_accepts().expect(0).mount(&app.vendors).await;

    let log = app.send_through_queue(&practice, "email").await;
    assert_eq!(log.status, "failed");
    assert_eq!(log.provider.as_deref(), Some("system_sendgrid"));
    assert_eq!(log.fallback_reason, None);
}

#[tokio::test]
async fn a_system_vendor_failing_repeatedly_is_passed_over_by_its_circuit_until_it_recovers() {
    let app = TestEnv::new()
        .with_system_accounts()
        .with_system_postmark()
        .var("PROVIDER_CIRCUIT_COOL_DOWN_SECS", "3600")
        .without_background()
        .spawn()
        .await;
    let practice = practice(&app).await;
    sendgrid_down().expect(3).mount(&app.sendgrid).await;
    postmark_accepts().expect(4).mount(&app.vendors).await;

    for _ in 0..3 {
        let log = app.send_through_queue(&practice, "email").await;
        assert!(
            log.fallback_reason
                .unwrap()
                .starts_with("system SendGrid failed")
        );
    }
    let log = app.send_through_queue(&practice, "email").await;
    assert_eq!(log.provider.as_deref(), Some("system_postmark"));
    assert_eq!(
        log.fallback_reason.as_deref(),
        Some("system SendGrid is failing repeatedly (circuit open)")
    );
    let status: Value = app
        .get("/api/practice-settings/messaging/status", &practice.owner)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(status["email"]["providerInEffect"], "system_postmark");
}

#[tokio::test]
async fn with_twilio_down_telnyx_sends_and_a_telnyx_stop_block_joins_the_shared_ledger() {
    let app = TestEnv::new()
        .with_system_accounts()
        .with_system_telnyx()
        // Twilio's one message a second would hold the second message back.
        .var("TWILIO_RATE_PER_SEC", "0")
        .without_background()
        .spawn()
        .await;
    let practice = practice(&app).await;
    Mock::given(method("POST"))
        .and(path(format!(
            "/2010-04-01/Accounts/{SYSTEM_TWILIO_SID}/Messages.json"
        )))
        .respond_with(ResponseTemplate::new(500))
        .mount(&app.twilio)
        .await;
    telnyx_accepts()
        .up_to_n_times(1)
        .expect(1)
        .mount(&app.vendors)
        .await;
    let log = app.send_through_queue(&practice, "sms").await;
    assert_eq!(
        (log.status.as_str(), log.provider.as_deref()),
        ("sent", Some("system_telnyx"))
    );
    assert!(
        log.fallback_reason
            .unwrap()
            .starts_with("system Twilio failed: ")
    );

    Mock::given(method("POST"))
        .and(path("/v2/messages"))
        .respond_with(ResponseTemplate::new(409).set_body_json(json!({"errors": [{
            "code": "40300", "title": "Blocked due to STOP message",
            "detail": format!("Messages cannot be sent from '{SYSTEM_TELNYX_NUMBER}' to '{PATIENT_PHONE}' due to an existing block rule.")
        }]})))
        .expect(1)
        .mount(&app.vendors)
        .await;
    // Another patient: the first has had today's one care SMS.
    let opted_out = Practice {
        patient: app
            .create_patient(practice.id, "sam@example.com", OTHER_PHONE)
            .await,
        ..practice
    };
    let refused = app.send_through_queue(&opted_out, "sms").await;
    assert_eq!(refused.status, "failed");
    assert!(refused.error.unwrap().contains("Telnyx error 40300"));
    assert_eq!(
        app.suppressed(OTHER_PHONE).await,
        [(None, "opted_out".to_string())]
    );
}

#[tokio::test]
async fn postmark_webhooks_need_the_password_and_move_the_log_and_the_ledger() {
    let app = TestEnv::new()
        .with_system_postmark()
        .without_background()
        .spawn()
        .await;
    let practice = practice(&app).await;
    postmark_accepts().mount(&app.vendors).await;
    let log = app.send_through_queue(&practice, "email").await;
    let metadata =
        json!({"outreach_log_id": log.id.to_string(), "practice_id": practice.id.to_string()});
    let delivery = json!({"RecordType": "Delivery", "MessageID": POSTMARK_MESSAGE_ID,
        "Recipient": PATIENT_EMAIL, "DeliveredAt": "2026-12-03T10:16:00Z", "Metadata": metadata});

    assert_eq!(
        app.post_postmark("not-the-password", &delivery)
            .await
            .status(),
        401
    );
    assert_eq!(app.log_row(log.id).await.0, "sent");
    let first: Value = app
        .post_postmark(SYSTEM_POSTMARK_WEBHOOK_PASSWORD, &delivery)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(first, json!({"received": 1, "stored": 1}));
    let again: Value = app
        .post_postmark(SYSTEM_POSTMARK_WEBHOOK_PASSWORD, &delivery)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again, json!({"received": 1, "stored": 0}));
    assert_eq!(app.log_row(log.id).await.0, "delivered");

    let second = app.send_through_queue(&practice, "email").await;
    let bounce = json!({"RecordType": "Bounce", "ID": 4323372036854775807_i64, "Type": "HardBounce",
        "TypeCode": 1, "Email": PATIENT_EMAIL, "MessageID": POSTMARK_MESSAGE_ID, "Inactive": true,
        "Description": "The server was unable to deliver your message (ex: unknown user, mailbox not found).",
        "Metadata": {"outreach_log_id": second.id.to_string(), "practice_id": practice.id.to_string()}});
    assert_eq!(
        app.post_postmark(SYSTEM_POSTMARK_WEBHOOK_PASSWORD, &bounce)
            .await
            .status(),
        200
    );
    let (status, .., error) = app.log_row(second.id).await;
    assert_eq!(status, "bounced");
    assert!(
        error
            .unwrap()
            .starts_with("hard bounce: The server was unable")
    );
    assert_eq!(
        app.suppressed(PATIENT_EMAIL).await,
        [(Some(practice.id), "bounced".to_string())]
    );
}

#[tokio::test]
async fn a_postmark_event_naming_another_practices_message_on_a_practice_route_is_refused() {
    let app = TestEnv::new()
        .with_system_postmark()
        .without_background()
        .spawn()
        .await;
    let practice = practice(&app).await;
    let response = app
        .http
        .post(app.url(&format!("/api/webhooks/postmark/{}", practice.id)))
        .basic_auth("postmark", Some(SYSTEM_POSTMARK_WEBHOOK_PASSWORD))
        .json(&json!({"RecordType": "Delivery", "MessageID": POSTMARK_MESSAGE_ID}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        401,
        "the platform's password opens no practice's route"
    );
}

#[tokio::test]
async fn mailgun_webhooks_verify_the_signature_accept_each_token_once_and_refuse_stale_ones() {
    let app = TestEnv::new()
        .with_system_mailgun()
        .without_background()
        .spawn()
        .await;
    let practice = practice(&app).await;
    mailgun_accepts().mount(&app.vendors).await;
    let log = app.send_through_queue(&practice, "email").await;
    let now = chrono::Utc::now().timestamp();
    let delivered = json!({"event": "delivered", "id": "evt-delivered-1", "timestamp": now as f64,
        "recipient": PATIENT_EMAIL, "message": {"headers": {"message-id": MAILGUN_MESSAGE_ID}},
        "user-variables": {"outreach_log_id": log.id.to_string(), "practice_id": practice.id.to_string()}});
    let token = "5egbgr1vjgqxtrnp65xfznchgdccwh5d6i09vijqi3whgowmn6";

    let mut forged: Value =
        serde_json::from_str(&mailgun_webhook(now, token, delivered.clone())).unwrap();
    forged["signature"]["signature"] = json!("00".repeat(32));
    assert_eq!(app.post_mailgun(forged.to_string()).await.status(), 401);
    let stale = mailgun_webhook(
        now - 10 * 3600,
        "another-token-of-fifty-characters-xxxxxxxxxxxxxxxx",
        delivered.clone(),
    );
    assert_eq!(app.post_mailgun(stale).await.status(), 401);

    let body = mailgun_webhook(now, token, delivered.clone());
    let first: Value = app.post_mailgun(body.clone()).await.json().await.unwrap();
    assert_eq!(first, json!({"received": 1, "stored": 1}));
    assert_eq!(app.log_row(log.id).await.0, "delivered");
    let redelivered: Value = app.post_mailgun(body).await.json().await.unwrap();
    assert_eq!(redelivered, json!({"received": 1, "stored": 0}));

    // The signature covers only the timestamp and token: the same ones over edited event data
    // (a complaint that would suppress the patient) must change nothing.
    let tampered = json!({"event": "complained", "id": "evt-forged", "timestamp": now as f64,
        "recipient": PATIENT_EMAIL, "user-variables": {"practice_id": practice.id.to_string()}});
    assert_eq!(
        app.post_mailgun(mailgun_webhook(now, token, tampered))
            .await
            .status(),
        401
    );
    assert!(app.suppressed(PATIENT_EMAIL).await.is_empty());
}

#[tokio::test]
async fn telnyx_delivery_updates_advance_the_log_and_a_stop_to_the_platform_number_suppresses() {
    let app = TestEnv::new()
        .with_system_telnyx()
        // One SMS a second per account would hold the second message back.
        .var("TWILIO_RATE_PER_SEC", "0")
        .without_background()
        .spawn()
        .await;
    let practice = practice(&app).await;
    telnyx_accepts().mount(&app.vendors).await;
    let log = app.send_through_queue(&practice, "sms").await;
    let now = chrono::Utc::now().timestamp();
    let finalized = json!({"data": {"event_type": "message.finalized", "id": "0ccc7b54-4df3-4bca-a65a-3da1ecc777f0",
        "occurred_at": "2026-12-03T10:16:00.000+00:00", "record_type": "event",
        "payload": {"id": TELNYX_MESSAGE_ID, "direction": "outbound",
            "to": [{"phone_number": PATIENT_PHONE, "status": "delivered"}], "errors": [],
            "cost": {"amount": "0.0040", "currency": "USD"}}},
        "meta": {"attempt": 1, "delivered_to": "https://hooks.dentite.test/api/webhooks/telnyx"}});

    assert_eq!(
        app.post_telnyx(now - 301, &finalized).await.status(),
        401,
        "outside the 300 s tolerance"
    );
    let tampered = app
        .http
        .post(app.url("/api/webhooks/telnyx"))
        .header("telnyx-timestamp", now.to_string())
        .header(
            "telnyx-signature-ed25519",
            TelnyxSigner::new().sign(&now.to_string(), b"{}"),
        )
        .body(finalized.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(tampered.status(), 401);
    let first: Value = app.post_telnyx(now, &finalized).await.json().await.unwrap();
    assert_eq!(first, json!({"received": 1, "stored": 1}));
    assert_eq!(app.log_row(log.id).await.0, "delivered");
    let price: (Option<String>, Option<String>) =
        sqlx::query_as("select price::text, price_unit from outreach_logs where id = $1")
            .bind(log.id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(price, (Some("0.0040".into()), Some("USD".into())));

    let stop = json!({"data": {"event_type": "message.received", "id": "b301ed3f-1490-491f-995f-6e64e69674d4",
        "record_type": "event", "payload": {"id": "inbound-1", "direction": "inbound", "text": "STOP",
            "from": {"phone_number": PATIENT_PHONE}, "to": [{"phone_number": SYSTEM_TELNYX_NUMBER}]}}});
    assert_eq!(app.post_telnyx(now, &stop).await.status(), 200);
    assert_eq!(
        app.suppressed(PATIENT_PHONE).await,
        [(None, "opted_out".to_string())]
    );
    // The platform's number speaks for every practice sending from it.
    let other_practice = self::practice(&app).await;
    let next = app.send_through_queue(&other_practice, "sms").await;
    assert_eq!(
        (next.status.as_str(), next.provider.as_deref()),
        ("suppressed", None),
        "nothing is sent to a number that said STOP"
    );
    assert_eq!(app.vendors.received_requests().await.unwrap().len(), 1);
}

#[test]
fn an_order_naming_a_vendor_without_an_account_stops_the_service_naming_the_variable() {
    let error = TestEnv::new()
        .with_system_accounts()
        .var("EMAIL_SYSTEM_PROVIDERS", "postmark,sendgrid")
        .load_error();
    assert!(
        error.starts_with("EMAIL_SYSTEM_PROVIDERS: postmark"),
        "{error}"
    );
}

#[tokio::test]
async fn the_openapi_document_names_the_new_webhook_routes() {
    let app = TestEnv::new().without_background().spawn().await;
    let doc: Value = app
        .http
        .get(app.url("/api/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for route in ["postmark", "mailgun", "telnyx"] {
        assert!(
            doc["paths"][format!("/api/webhooks/{route}")]["post"].is_object(),
            "{route}"
        );
        assert!(
            doc["paths"][format!("/api/webhooks/{route}/{{practiceId}}")]["post"].is_object(),
            "{route}"
        );
    }
}

#[tokio::test]
async fn a_send_after_an_opt_out_is_withheld_whichever_vendor_would_send() {
    let app = TestEnv::new()
        .with_system_accounts()
        .with_system_telnyx()
        .var("SMS_SYSTEM_PROVIDERS", "telnyx,twilio")
        .without_background()
        .spawn()
        .await;
    let practice = practice(&app).await;
    app.shared_number_opt_out(PATIENT_PHONE).await;
    telnyx_accepts().expect(0).mount(&app.vendors).await;
    let log = app.send_through_queue(&practice, "sms").await;
    assert_eq!(log.status, "suppressed");
    assert_eq!(log.provider, None, "no vendor was called");
}
