//! The rules that withhold a message, from the outside: each is checked when a message is queued
//! and again when a worker hands it over, and a withheld message never reaches the vendor. Also
//! the CAN-SPAM footer, the inbound reply list and the price Twilio reports.

use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;
use wiremock::{
    Mock, ResponseTemplate,
    matchers::{method, path},
};

use crate::helpers::{
    Login, SYSTEM_SENDGRID_KEY, SYSTEM_TWILIO_NUMBER, SYSTEM_TWILIO_SID, SYSTEM_TWILIO_TOKEN,
    TestApp, TestEnv, mail_send_mock,
};

const COMPLIANCE: &str = "/api/practice-settings/messaging/compliance";
const MESSAGES: &str = "/api/outreach/messages";
const INBOUND: &str = "/api/inbound-messages";
const POSTAL_ADDRESS: &str = "1 Main St, Springfield, IL 62701";
const PHONE: &str = "+15557654321";

/// An app with system accounts whose workers run only when a test drains the queue, and a Twilio
/// rate that does not hold back a test's few messages.
async fn app_with_manual_workers() -> TestApp {
    TestEnv::new()
        .with_system_accounts()
        .var("TWILIO_RATE_PER_SEC", "50")
        .without_background()
        .spawn()
        .await
}

/// Twilio's fake accepting sends, expected `times` times.
async fn twilio_accepts(app: &TestApp, times: u64) {
    Mock::given(method("POST"))
        .and(path(format!(
            "/2010-04-01/Accounts/{SYSTEM_TWILIO_SID}/Messages.json"
        )))
        .respond_with(ResponseTemplate::new(201).set_body_json(
            json!({"sid": format!("SM{}", Uuid::new_v4().simple()), "status": "queued"}),
        ))
        .expect(times)
        .mount(&app.twilio)
        .await;
}

async fn set_postal_address(app: &TestApp, owner: &Login, postal_address: Option<&str>) {
    let settings = json!({"timezone": "America/New_York",
        "sendingWindow": {"start": "08:00", "end": "21:00"},
        "smsCareDailyCap": 1, "smsCareWeeklyCap": 3, "postalAddress": postal_address});
    let response = app
        .send_json(Method::PUT, COMPLIANCE, owner, &settings)
        .await;
    assert_eq!(response.status(), 200);
}

/// Posts a message through the API; returns its log id and the status the API answered.
async fn send_message(
    app: &TestApp,
    owner: &Login,
    patient: Uuid,
    channel: &str,
    category: &str,
) -> (Uuid, String) {
    let response = app
        .send_json(
            Method::POST,
            MESSAGES,
            owner,
            &json!({"patientId": patient, "channel": channel, "category": category,
                    "subject": "Your benefits", "body": "Hello Pat"}),
        )
        .await;
    assert_eq!(response.status(), 202);
    let body: Value = response.json().await.unwrap();
    (
        body["id"].as_str().unwrap().parse().unwrap(),
        body["status"].as_str().unwrap().to_string(),
    )
}

async fn record_consent(
    app: &TestApp,
    owner: &Login,
    patient: Uuid,
    channel: &str,
    category: &str,
    granted: bool,
) {
    let response = app
        .send_json(
            Method::POST,
            &format!("/api/patients/{patient}/consents"),
            owner,
            &json!({"channel": channel, "category": category, "granted": granted, "source": "paper_form"}),
        )
        .await;
    assert_eq!(response.status(), 201);
}

/// A log's status and error.
async fn outcome(app: &TestApp, id: Uuid) -> (String, Option<String>) {
    let (status, _, _, _, error) = app.log_row(id).await;
    (status, error)
}

fn suppressed(rule: &str) -> (String, Option<String>) {
    ("suppressed".to_string(), Some(rule.to_string()))
}

#[tokio::test]
async fn marketing_sms_without_a_recorded_grant_is_suppressed_when_queued_and_sent_once_granted() {
    let app = app_with_manual_workers().await;
    twilio_accepts(&app, 1).await;
    let owner = app.practice_owner().await;
    let patient = app
        .create_patient(owner.practice_id.unwrap(), "pat@example.com", PHONE)
        .await;

    let (withheld, status) = send_message(&app, &owner, patient, "sms", "marketing").await;
    assert_eq!(status, "suppressed");
    assert_eq!(
        outcome(&app, withheld).await,
        suppressed("no_marketing_consent")
    );
    let jobs: i64 = sqlx::query_scalar("select count(*) from send_jobs")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(jobs, 0, "a withheld message is never queued");

    record_consent(&app, &owner, patient, "sms", "marketing", true).await;
    let (granted, status) = send_message(&app, &owner, patient, "sms", "marketing").await;
    assert_eq!(status, "queued");
    app.drain_queue().await;
    assert_eq!(outcome(&app, granted).await.0, "sent");
    app.stop().await;
}

#[tokio::test]
async fn a_marketing_sequence_step_is_held_to_the_marketing_rules_and_a_care_step_is_not() {
    let app = app_with_manual_workers().await;
    twilio_accepts(&app, 1).await;
    let owner = app.practice_owner().await;
    let patient = app
        .create_patient(owner.practice_id.unwrap(), "pat@example.com", PHONE)
        .await;
    let steps = json!([
        {"channel": "sms", "delayMinutes": 0, "body": "Your benefits renew soon", "category": "marketing"},
        {"channel": "sms", "delayMinutes": 0, "body": "Your cleaning is due"}
    ]);
    let created = app
        .send_json(
            Method::POST,
            "/api/sequences",
            &owner,
            &json!({"name": "Benefits", "steps": steps}),
        )
        .await;
    assert_eq!(created.status(), 201);
    let sequence: Value = created.json().await.unwrap();
    let categories: Vec<&str> = sequence["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|step| step["category"].as_str().unwrap())
        .collect();
    assert_eq!(
        categories,
        ["marketing", "care"],
        "a step without one is care"
    );
    let refused = app
        .send_json(
            Method::POST,
            "/api/sequences",
            &owner,
            &json!({"name": "Bad", "steps": [{"channel": "sms", "delayMinutes": 0, "body": "x", "category": "promo"}]}),
        )
        .await;
    assert_eq!(refused.status(), 422);
    let body: Value = refused.json().await.unwrap();
    assert!(
        body["error"]["fields"]["steps[0].category"].is_string(),
        "{body}"
    );

    let enrolled = app
        .send_json(
            Method::POST,
            &format!(
                "/api/sequences/{}/enrollments",
                sequence["id"].as_str().unwrap()
            ),
            &owner,
            &json!({"patientIds": [patient]}),
        )
        .await;
    assert!(enrolled.status().is_success(), "{}", enrolled.status());
    for _ in 0..2 {
        dentite::outreach::scheduler::enqueue_due_steps(&app.pool, 10)
            .await
            .unwrap();
        sqlx::query("update sequence_enrollments set next_run_at = now()")
            .execute(&app.pool)
            .await
            .unwrap();
    }
    app.drain_queue().await;
    let logs: Vec<(String, String, Option<String>)> =
        sqlx::query_as("select category, status, error from outreach_logs order by sequence_step")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(
        logs,
        [
            (
                "marketing".to_string(),
                "suppressed".to_string(),
                Some("no_marketing_consent".to_string())
            ),
            ("care".to_string(), "sent".to_string(), None),
        ]
    );
    app.stop().await;
}

#[tokio::test]
async fn marketing_consent_withdrawn_after_queuing_withholds_the_sms_at_hand_over() {
    let app = app_with_manual_workers().await;
    twilio_accepts(&app, 0).await;
    let owner = app.practice_owner().await;
    let patient = app
        .create_patient(owner.practice_id.unwrap(), "pat@example.com", PHONE)
        .await;
    record_consent(&app, &owner, patient, "sms", "marketing", true).await;
    let (id, status) = send_message(&app, &owner, patient, "sms", "marketing").await;
    assert_eq!(status, "queued");

    record_consent(&app, &owner, patient, "sms", "marketing", false).await;
    app.drain_queue().await;
    assert_eq!(outcome(&app, id).await, suppressed("no_marketing_consent"));
    app.stop().await;
}

#[tokio::test]
async fn marketing_email_goes_with_unknown_consent_and_a_can_spam_footer_but_not_after_a_withdrawal()
 {
    let app = app_with_manual_workers().await;
    mail_send_mock(SYSTEM_SENDGRID_KEY, ResponseTemplate::new(202))
        .mount(&app.sendgrid)
        .await;
    let owner = app.practice_owner().await;
    let practice = owner.practice_id.unwrap();
    set_postal_address(&app, &owner, Some(POSTAL_ADDRESS)).await;
    let unknown = app.create_patient(practice, "pat@example.com", PHONE).await;
    let withdrawn = app
        .create_patient(practice, "sam@example.com", "+15557654322")
        .await;
    record_consent(&app, &owner, withdrawn, "email", "marketing", false).await;

    let (sent, _) = send_message(&app, &owner, unknown, "email", "marketing").await;
    let (withheld, status) = send_message(&app, &owner, withdrawn, "email", "marketing").await;
    assert_eq!(status, "suppressed");
    app.drain_queue().await;
    assert_eq!(outcome(&app, sent).await.0, "sent");
    assert_eq!(
        outcome(&app, withheld).await,
        suppressed("no_marketing_consent")
    );

    let requests = app.sendgrid.received_requests().await.unwrap();
    let mail: Value = requests[0].body_json().unwrap();
    let text = mail["content"][0]["value"].as_str().unwrap();
    let unsubscribe = app.state.unsubscribe.url(practice, "pat@example.com");
    assert_eq!(
        mail["headers"]["List-Unsubscribe"],
        format!("<{unsubscribe}>")
    );
    assert!(text.starts_with("Hello Pat"), "{text}");
    assert!(text.contains(POSTAL_ADDRESS), "{text}");
    assert!(text.contains(&unsubscribe), "{text}");
    app.stop().await;
}

#[tokio::test]
async fn care_email_carries_no_marketing_footer() {
    let app = app_with_manual_workers().await;
    mail_send_mock(SYSTEM_SENDGRID_KEY, ResponseTemplate::new(202))
        .mount(&app.sendgrid)
        .await;
    let owner = app.practice_owner().await;
    set_postal_address(&app, &owner, Some(POSTAL_ADDRESS)).await;
    let patient = app
        .create_patient(owner.practice_id.unwrap(), "pat@example.com", PHONE)
        .await;
    send_message(&app, &owner, patient, "email", "care").await;
    app.drain_queue().await;
    let requests = app.sendgrid.received_requests().await.unwrap();
    let mail: Value = requests[0].body_json().unwrap();
    assert_eq!(mail["content"][0]["value"], "Hello Pat");
    app.stop().await;
}

#[tokio::test]
async fn marketing_email_without_a_postal_address_is_withheld_at_hand_over_and_when_queued() {
    let app = app_with_manual_workers().await;
    mail_send_mock(SYSTEM_SENDGRID_KEY, ResponseTemplate::new(202))
        .expect(0)
        .mount(&app.sendgrid)
        .await;
    let owner = app.practice_owner().await;
    set_postal_address(&app, &owner, Some(POSTAL_ADDRESS)).await;
    let patient = app
        .create_patient(owner.practice_id.unwrap(), "pat@example.com", PHONE)
        .await;
    let (queued, status) = send_message(&app, &owner, patient, "email", "marketing").await;
    assert_eq!(status, "queued");

    set_postal_address(&app, &owner, None).await;
    app.drain_queue().await;
    assert_eq!(outcome(&app, queued).await, suppressed("no_postal_address"));
    let (later, status) = send_message(&app, &owner, patient, "email", "marketing").await;
    assert_eq!(status, "suppressed");
    assert_eq!(outcome(&app, later).await, suppressed("no_postal_address"));
    app.stop().await;
}

#[tokio::test]
async fn the_daily_care_sms_cap_lets_one_of_two_queued_messages_go_and_refuses_the_next_when_queued()
 {
    let app = app_with_manual_workers().await;
    twilio_accepts(&app, 1).await;
    let owner = app.practice_owner().await;
    let patient = app
        .create_patient(owner.practice_id.unwrap(), "pat@example.com", PHONE)
        .await;
    // Both are queued before either is handed over, and claimed in one batch.
    let (first, _) = send_message(&app, &owner, patient, "sms", "care").await;
    let (second, _) = send_message(&app, &owner, patient, "sms", "care").await;
    app.drain_queue().await;
    assert_eq!(outcome(&app, first).await.0, "sent");
    assert_eq!(outcome(&app, second).await, suppressed("frequency_cap"));

    let (third, status) = send_message(&app, &owner, patient, "sms", "care").await;
    assert_eq!(status, "suppressed");
    assert_eq!(outcome(&app, third).await, suppressed("frequency_cap"));
    app.stop().await;
}

#[tokio::test]
async fn suppressed_messages_do_not_count_towards_the_cap_and_marketing_sms_is_not_capped() {
    let app = app_with_manual_workers().await;
    twilio_accepts(&app, 2).await;
    let owner = app.practice_owner().await;
    let practice = owner.practice_id.unwrap();
    let patient = app.create_patient(practice, "pat@example.com", PHONE).await;
    dentite::messaging::suppression::add(
        &app.pool,
        dentite::messaging::suppression::Scope::Practice(practice),
        dentite::messaging::Channel::Sms,
        PHONE,
        dentite::messaging::suppression::SuppressionReason::OptedOut,
        dentite::messaging::suppression::SuppressionSource::SmsKeyword,
    )
    .await
    .unwrap();
    let (opted_out, status) = send_message(&app, &owner, patient, "sms", "care").await;
    assert_eq!(status, "suppressed");
    assert_eq!(outcome(&app, opted_out).await, suppressed("opted_out"));
    dentite::messaging::suppression::remove(
        &app.pool,
        dentite::messaging::suppression::Scope::Practice(practice),
        dentite::messaging::Channel::Sms,
        PHONE,
    )
    .await
    .unwrap();

    let (care, status) = send_message(&app, &owner, patient, "sms", "care").await;
    assert_eq!(status, "queued", "the suppressed one was never handed over");
    record_consent(&app, &owner, patient, "sms", "marketing", true).await;
    let (marketing, _) = send_message(&app, &owner, patient, "sms", "marketing").await;
    app.drain_queue().await;
    assert_eq!(outcome(&app, care).await.0, "sent");
    assert_eq!(outcome(&app, marketing).await.0, "sent");
    app.stop().await;
}

#[tokio::test]
async fn test_sms_skips_the_caps_but_not_the_opt_outs() {
    let app = app_with_manual_workers().await;
    twilio_accepts(&app, 2).await;
    let owner = app.practice_owner().await;
    let practice = owner.practice_id.unwrap();
    let patient = app.create_patient(practice, "pat@example.com", PHONE).await;
    send_message(&app, &owner, patient, "sms", "care").await;
    app.drain_queue().await;
    let (capped, _) = send_message(&app, &owner, patient, "sms", "care").await;
    assert_eq!(outcome(&app, capped).await, suppressed("frequency_cap"));

    let test_sms = |app: &TestApp| {
        app.request(
            Method::POST,
            "/api/practice-settings/messaging/sms/test",
            Some(&owner),
        )
        .json(&json!({"to": PHONE}))
        .send()
    };
    let response = test_sms(&app).await.unwrap();
    assert_eq!(response.status(), 200);
    let result: Value = response.json().await.unwrap();
    assert_eq!(result["delivered"], true, "{result}");

    dentite::messaging::suppression::add(
        &app.pool,
        dentite::messaging::suppression::Scope::Practice(practice),
        dentite::messaging::Channel::Sms,
        PHONE,
        dentite::messaging::suppression::SuppressionReason::OptedOut,
        dentite::messaging::suppression::SuppressionSource::SmsKeyword,
    )
    .await
    .unwrap();
    let result: Value = test_sms(&app).await.unwrap().json().await.unwrap();
    assert_eq!(result["delivered"], false, "{result}");
    app.stop().await;
}

#[tokio::test]
async fn preview_names_the_consent_and_postal_address_rules_that_would_withhold_a_message() {
    let app = app_with_manual_workers().await;
    let owner = app.practice_owner().await;
    let patient = app
        .create_patient(owner.practice_id.unwrap(), "pat@example.com", PHONE)
        .await;
    let preview = |channel: &'static str, category: &'static str| {
        let app = &app;
        let owner = &owner;
        async move {
            let body: Value = app
                .send_json(
                    Method::POST,
                    "/api/outreach/messages/preview",
                    owner,
                    &json!({"channel": channel, "body": "Hi", "subject": "Hi",
                            "patientId": patient, "category": category}),
                )
                .await
                .json()
                .await
                .unwrap();
            body.get("wouldBeSuppressed").cloned()
        }
    };
    assert_eq!(
        preview("sms", "marketing").await,
        Some(json!("no_marketing_consent"))
    );
    assert_eq!(
        preview("email", "marketing").await,
        Some(json!("no_postal_address"))
    );
    assert_eq!(preview("sms", "care").await, None);
    app.stop().await;
}

/// Posts a signed form to a system Twilio webhook `path`.
async fn post_system_twilio(app: &TestApp, path: &str, params: &[(&str, &str)]) {
    use dentite::providers::twilio::signature::{TwilioAlgorithm, sign_twilio};
    let params: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let signature = sign_twilio(
        &format!("https://hooks.dentite.test{path}"),
        &params,
        SYSTEM_TWILIO_TOKEN.as_bytes(),
        TwilioAlgorithm::HmacSha1,
    );
    let response = app
        .http
        .post(app.url(path))
        .header("X-Twilio-Signature", signature)
        .form(&params)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

async fn reply_to_system_number(app: &TestApp, from: &str, body: &str) {
    let sid = format!("SM{}", Uuid::new_v4().simple());
    post_system_twilio(
        app,
        "/api/webhooks/twilio-incoming",
        &[
            ("AccountSid", SYSTEM_TWILIO_SID),
            ("MessageSid", &sid),
            ("From", from),
            ("To", SYSTEM_TWILIO_NUMBER),
            ("Body", body),
        ],
    )
    .await;
}

async fn inbound_page(app: &TestApp, login: &Login, query: &str) -> Value {
    let response = app.get(&format!("{INBOUND}{query}"), login).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

#[tokio::test]
async fn replies_that_are_not_keywords_are_listed_for_every_practice_with_that_patient() {
    let app = app_with_manual_workers().await;
    let first = app.practice_owner().await;
    let second = app.practice_owner().await;
    let stranger = app.practice_owner().await;
    let patient = app
        .create_patient(first.practice_id.unwrap(), "pat@example.com", PHONE)
        .await;
    app.create_patient(second.practice_id.unwrap(), "pat@example.com", PHONE)
        .await;

    reply_to_system_number(&app, PHONE, "Running 10 minutes late").await;
    reply_to_system_number(&app, PHONE, "HELP").await;
    reply_to_system_number(&app, PHONE, "Please stop texting me").await;
    reply_to_system_number(&app, "+15559990000", "Who is this?").await;

    let page = inbound_page(&app, &first, "").await;
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "keywords are not kept: {page}");
    assert_eq!(items[0]["body"], "Please stop texting me");
    assert_eq!(items[0]["optOutMatched"], true);
    assert_eq!(items[1]["body"], "Running 10 minutes late");
    assert_eq!(items[1]["optOutMatched"], false);
    assert_eq!(items[1]["patientId"], patient.to_string());
    assert_eq!(items[1]["from"], PHONE);
    assert_eq!(items[1]["to"], SYSTEM_TWILIO_NUMBER);
    assert_eq!(items[1]["provider"], "system_twilio");
    assert!(items[1]["receivedAt"].is_string());

    assert_eq!(
        inbound_page(&app, &second, "").await["items"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        inbound_page(&app, &stranger, "").await["items"],
        json!([]),
        "a reply from a number no patient of the practice has is not the practice's"
    );
    app.stop().await;
}

#[tokio::test]
async fn the_inbound_list_pages_with_a_cursor_and_filters_by_patient_and_time() {
    let app = app_with_manual_workers().await;
    let owner = app.practice_owner().await;
    let practice = owner.practice_id.unwrap();
    let pat = app.create_patient(practice, "pat@example.com", PHONE).await;
    let sam = app
        .create_patient(practice, "sam@example.com", "+15557654322")
        .await;
    for body in ["one", "two", "three"] {
        reply_to_system_number(&app, PHONE, body).await;
    }
    reply_to_system_number(&app, "+15557654322", "from sam").await;

    let first = inbound_page(&app, &owner, &format!("?patientId={pat}&limit=2")).await;
    assert_eq!(
        first["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|item| item["body"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["three", "two"]
    );
    let cursor = first["nextCursor"].as_str().unwrap();
    let rest = inbound_page(
        &app,
        &owner,
        &format!("?patientId={pat}&limit=2&cursor={cursor}"),
    )
    .await;
    assert_eq!(rest["items"][0]["body"], "one");
    assert!(rest.get("nextCursor").is_none());

    let sams = inbound_page(&app, &owner, &format!("?patientId={sam}")).await;
    assert_eq!(sams["items"].as_array().unwrap().len(), 1);
    let future = inbound_page(&app, &owner, "?since=2999-01-01T00:00:00Z").await;
    assert_eq!(future["items"], json!([]));

    let response = app
        .get(&format!("{INBOUND}?patientId=42&since=yesterday"), &owner)
        .await;
    assert_eq!(response.status(), 422);
    let body: Value = response.json().await.unwrap();
    let mut fields: Vec<&String> = body["error"]["fields"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    fields.sort();
    assert_eq!(fields, ["patientId", "since"]);
    let response = app.http.get(app.url(INBOUND)).send().await.unwrap();
    assert_eq!(response.status(), 401);
    app.stop().await;
}

#[tokio::test]
async fn the_price_of_a_signed_twilio_status_callback_is_shown_in_the_logs() {
    let app = app_with_manual_workers().await;
    twilio_accepts(&app, 1).await;
    let owner = app.practice_owner().await;
    let patient = app
        .create_patient(owner.practice_id.unwrap(), "pat@example.com", PHONE)
        .await;
    let (id, _) = send_message(&app, &owner, patient, "sms", "care").await;
    app.drain_queue().await;
    let (_, _, sid, _, _) = app.log_row(id).await;
    let sid = sid.unwrap();
    post_system_twilio(
        &app,
        "/api/webhooks/twilio",
        &[
            ("AccountSid", SYSTEM_TWILIO_SID),
            ("MessageSid", &sid),
            ("MessageStatus", "delivered"),
            ("To", PHONE),
            ("Price", "-0.00790"),
            ("PriceUnit", "USD"),
        ],
    )
    .await;
    let logs: Value = app
        .get("/api/outreach/logs", &owner)
        .await
        .json()
        .await
        .unwrap();
    let log = &logs["items"][0];
    assert_eq!(log["id"], id.to_string());
    assert_eq!(log["status"], "delivered");
    assert_eq!(log["price"], "0.00790");
    assert_eq!(log["priceUnit"], "USD");
    app.stop().await;
}
