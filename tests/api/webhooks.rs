use dentite::{
    messaging::{Channel, suppression},
    providers::twilio::signature::{TwilioAlgorithm, sign_twilio},
};
use reqwest::Response;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{
    PATIENT_EMAIL, PATIENT_PHONE, SYSTEM_TWILIO_NUMBER, SYSTEM_TWILIO_SID, SYSTEM_TWILIO_TOKEN,
    SendGridSigner, TestApp, TestEnv, custom_args, insert_log, practice_with_sendgrid_key,
    sendgrid_batch as batch, sg_event, spawn_app, store_account,
};

/// Must match `WEBHOOK_BASE_URL` of `TestEnv`: Twilio signs the URL it was given, not our address.
const WEBHOOK_BASE: &str = "https://hooks.dentite.test";
const PRACTICE_TWILIO_SID: &str = "AC11111111111111111111111111111111";
const PRACTICE_TWILIO_TOKEN: &str = "abcdef0123456789abcdef0123456789";

fn now() -> String {
    chrono::Utc::now().timestamp().to_string()
}

fn practice_path(practice: Uuid) -> String {
    format!("/api/webhooks/sendgrid/{practice}")
}

/// The answer to a batch of `received` events of which `stored` were new.
fn accepted(received: usize, stored: usize) -> (u16, Value) {
    (200, json!({"received": received, "stored": stored}))
}

async fn post_sendgrid_at(
    app: &TestApp,
    path: &str,
    signer: &SendGridSigner,
    timestamp: &str,
    body: &str,
) -> Response {
    app.http
        .post(app.url(path))
        .header("content-type", "application/json")
        .header("X-Twilio-Email-Event-Webhook-Timestamp", timestamp)
        .header(
            "X-Twilio-Email-Event-Webhook-Signature",
            signer.sign(timestamp, body.as_bytes()),
        )
        .body(body.to_string())
        .send()
        .await
        .unwrap()
}

async fn post_sendgrid(app: &TestApp, path: &str, signer: &SendGridSigner, body: &str) -> Response {
    post_sendgrid_at(app, path, signer, &now(), body).await
}

/// An app whose system SendGrid webhook signs with the returned key.
async fn app_with_system_sendgrid_key() -> (TestApp, SendGridSigner) {
    let signer = SendGridSigner::new();
    let app = TestEnv::new()
        .var("SENDGRID_WEBHOOK_VERIFY_KEY", signer.public_key())
        .spawn()
        .await;
    (app, signer)
}

async fn status_of(app: &TestApp, log: Uuid) -> String {
    sqlx::query_scalar("select status from outreach_logs where id = $1")
        .bind(log)
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

async fn stored_events(app: &TestApp) -> i64 {
    sqlx::query_scalar("select count(*) from provider_events")
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

/// A refused request leaves no event behind and its log as it was.
async fn assert_nothing_changed(app: &TestApp, log: Uuid, status: &str) {
    assert_eq!(stored_events(app).await, 0, "no event is stored");
    assert_eq!(status_of(app, log).await, status);
}

/// Why the ledger refuses `address` (an email or a number) to `practice`, if it does.
async fn suppressed(
    app: &TestApp,
    practice: Uuid,
    address: &str,
    via_system: bool,
) -> Option<String> {
    let channel = if address.contains('@') {
        Channel::Email
    } else {
        Channel::Sms
    };
    suppression::check(&app.pool, practice, channel, address, via_system)
        .await
        .unwrap()
}

/// The patient behind `PATIENT_EMAIL` and `PATIENT_PHONE`, enrolled in an active sequence.
async fn enrolled_patient(app: &TestApp, practice: Uuid) -> Uuid {
    // Its next step is a day away, so the running scheduler leaves it alone during the test.
    sqlx::query_scalar(
        "with patient as (
             insert into patients (id, practice_id, first_name, last_name, email, phone)
             values (gen_random_uuid(), $1, 'Pat', 'Lee', 'Pat@Example.com', $2) returning id
         ), sequence as (
             insert into sequences (id, practice_id, name, steps) values (gen_random_uuid(), $1, 'Recall', '[]') returning id
         )
         insert into sequence_enrollments (id, sequence_id, practice_id, patient_id, next_run_at)
         select gen_random_uuid(), sequence.id, $1, patient.id, now() + interval '1 day' from patient, sequence
         returning id",
    )
    .bind(practice)
    .bind(PATIENT_PHONE)
    .fetch_one(&app.pool)
    .await
    .unwrap()
}

async fn enrollment_status(app: &TestApp, enrollment: Uuid) -> (String, Option<String>) {
    sqlx::query_as("select status, stop_reason from sequence_enrollments where id = $1")
        .bind(enrollment)
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

async fn json_body(response: Response) -> (u16, Value) {
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

#[tokio::test]
async fn a_delivered_event_found_through_our_custom_args_marks_the_log_delivered() {
    let app = spawn_app().await;
    let (practice, signer) = practice_with_sendgrid_key(&app, "Smile Dental").await;
    let log = insert_log(&app, practice, "email", "sent", "moW00FY9Sqyr2r5ekgRDLg").await;

    let body = batch(&[sg_event("delivered", custom_args(log, practice))]);
    let response = post_sendgrid(&app, &practice_path(practice), &signer, &body).await;

    assert_eq!(json_body(response).await, accepted(1, 1));
    assert_eq!(status_of(&app, log).await, "delivered");
    let (event_type, linked): (String, Option<Uuid>) =
        sqlx::query_as("select event_type, outreach_log_id from provider_events")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!((event_type.as_str(), linked), ("delivered", Some(log)));
}

#[tokio::test]
async fn an_event_without_custom_args_finds_its_log_by_the_sg_message_id_prefix() {
    let (app, signer) = app_with_system_sendgrid_key().await;
    let practice = app.create_practice("Smile Dental").await;
    let log = insert_log(&app, practice, "email", "queued", "LRzXl_NHStOGhQ4kofSm_A").await;

    let event = sg_event(
        "open",
        json!({"sg_message_id": "LRzXl_NHStOGhQ4kofSm_A.filterdrecv-p3mdw1-756b745b58-kmzbl-18-5F5FC76C-9.0"}),
    );
    let response = post_sendgrid(&app, "/api/webhooks/sendgrid", &signer, &batch(&[event])).await;

    assert_eq!(response.status(), 200);
    assert_eq!(status_of(&app, log).await, "opened");
}

#[tokio::test]
async fn forged_truncated_wrong_practice_and_keyless_requests_are_refused_and_store_nothing() {
    let app = spawn_app().await;
    let (practice, signer) = practice_with_sendgrid_key(&app, "Smile Dental").await;
    let (other_practice, _) = practice_with_sendgrid_key(&app, "Other Dental").await;
    let keyless = app.create_practice("No Key Dental").await;
    let log = insert_log(&app, practice, "email", "sent", "msg-1").await;
    let body = batch(&[sg_event("delivered", custom_args(log, practice))]);
    let path = practice_path(practice);
    let timestamp = now();

    let forged = SendGridSigner::new().sign(&timestamp, body.as_bytes());
    let valid = Some(signer.sign(&timestamp, body.as_bytes()));
    let (other, keyless, unknown) = (
        practice_path(other_practice),
        practice_path(keyless),
        practice_path(Uuid::new_v4()),
    );
    let cases = [
        ("forged key", path.as_str(), Some(forged), body.as_str()),
        (
            "truncated body",
            &path,
            valid.clone(),
            &body[..body.len() - 3],
        ),
        ("another practice's path", &other, valid.clone(), &body),
        ("practice without a key", &keyless, valid.clone(), &body),
        ("unknown practice", &unknown, valid.clone(), &body),
        (
            "malformed practice id",
            "/api/webhooks/sendgrid/not-a-uuid",
            valid.clone(),
            &body,
        ),
        (
            "system route without a system key",
            "/api/webhooks/sendgrid",
            valid.clone(),
            &body,
        ),
        ("no signature", &path, None, &body),
    ];
    for (case, path, signature, body) in cases {
        let request = app
            .http
            .post(app.url(path))
            .header("X-Twilio-Email-Event-Webhook-Timestamp", &timestamp);
        let request = match signature {
            Some(signature) => request.header("X-Twilio-Email-Event-Webhook-Signature", signature),
            None => request,
        };
        let (status, error) = json_body(request.body(body.to_string()).send().await.unwrap()).await;
        assert_eq!(
            (status, error["error"]["code"].as_str()),
            (401, Some("unauthorized")),
            "{case}"
        );
    }

    assert_nothing_changed(&app, log, "sent").await;
}

#[tokio::test]
async fn the_same_batch_delivered_twice_is_stored_and_applied_once() {
    let app = spawn_app().await;
    let (practice, signer) = practice_with_sendgrid_key(&app, "Smile Dental").await;
    let log = insert_log(&app, practice, "email", "sent", "msg-1").await;
    let path = practice_path(practice);
    let delivered = sg_event("delivered", custom_args(log, practice));
    let body = batch(&[
        delivered.clone(),
        sg_event("open", custom_args(log, practice)),
        delivered,
    ]);

    let first = post_sendgrid(&app, &path, &signer, &body).await;
    assert_eq!(json_body(first).await, accepted(3, 2));
    let again = post_sendgrid(&app, &path, &signer, &body).await;
    assert_eq!(json_body(again).await, accepted(3, 0));

    assert_eq!(stored_events(&app).await, 2);
    assert_eq!(status_of(&app, log).await, "opened");
}

#[tokio::test]
async fn statuses_only_move_forward_and_a_final_status_sticks() {
    let app = spawn_app().await;
    let (practice, signer) = practice_with_sendgrid_key(&app, "Smile Dental").await;
    let path = practice_path(practice);
    let log = insert_log(&app, practice, "email", "queued", "msg-1").await;
    let post = |kind: &str, fields: Value| {
        let body = batch(&[sg_event(kind, fields)]);
        let (app, path, signer) = (&app, &path, &signer);
        async move { assert_eq!(post_sendgrid(app, path, signer, &body).await.status(), 200) }
    };

    post("delivered", custom_args(log, practice)).await;
    post("processed", custom_args(log, practice)).await;
    assert_eq!(
        status_of(&app, log).await,
        "delivered",
        "a late processed event does not move delivered back"
    );

    let mut blocked = custom_args(log, practice);
    blocked["type"] = json!("blocked");
    blocked["reason"] = json!("550 mailbox full");
    post("bounce", blocked).await;
    post("click", custom_args(log, practice)).await;
    post("spamreport", custom_args(log, practice)).await;
    assert_eq!(
        status_of(&app, log).await,
        "bounced",
        "final statuses stick"
    );
    let error: Option<String> = sqlx::query_scalar("select error from outreach_logs where id = $1")
        .bind(log)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(
        error.as_deref(),
        Some("blocked (temporary): 550 mailbox full")
    );
    assert_eq!(
        suppressed(&app, practice, PATIENT_EMAIL, false)
            .await
            .as_deref(),
        Some("spam_reported"),
        "a blocked bounce does not suppress; the spam report does"
    );

    // Several events for one log in one batch: the highest rank wins, whatever their order.
    let second = insert_log(&app, practice, "email", "queued", "msg-2").await;
    let body = batch(&[
        sg_event("click", custom_args(second, practice)),
        sg_event("processed", custom_args(second, practice)),
        sg_event("delivered", custom_args(second, practice)),
    ]);
    assert_eq!(
        post_sendgrid(&app, &path, &signer, &body).await.status(),
        200
    );
    assert_eq!(status_of(&app, second).await, "clicked");
}

#[tokio::test]
async fn a_hard_bounce_suppresses_the_address_and_stops_the_patients_sequences() {
    let app = spawn_app().await;
    let (practice, signer) = practice_with_sendgrid_key(&app, "Smile Dental").await;
    let log = insert_log(&app, practice, "email", "sent", "msg-1").await;
    let enrollment = enrolled_patient(&app, practice).await;
    let mut bounce = sg_event("bounce", custom_args(log, practice));
    bounce["type"] = json!("bounce");
    bounce["reason"] = json!("550 5.1.1 The email account that you tried to reach does not exist");
    bounce["email"] = json!("PAT@example.com");

    let response = post_sendgrid(&app, &practice_path(practice), &signer, &batch(&[bounce])).await;

    assert_eq!(response.status(), 200);
    assert_eq!(status_of(&app, log).await, "bounced");
    assert_eq!(
        suppressed(&app, practice, PATIENT_EMAIL, true)
            .await
            .as_deref(),
        Some("bounced")
    );
    assert_eq!(
        enrollment_status(&app, enrollment).await,
        ("stopped".into(), Some("bounced".into()))
    );
    let other_practice = app.create_practice("Other Dental").await;
    assert_eq!(
        suppressed(&app, other_practice, PATIENT_EMAIL, true).await,
        None,
        "one practice's bounce is its own"
    );
}

#[tokio::test]
async fn unsubscribes_and_drops_for_bad_addresses_suppress_but_other_drops_do_not() {
    let (app, signer) = app_with_system_sendgrid_key().await;
    let practice = app.create_practice("Smile Dental").await;
    let log = insert_log(&app, practice, "email", "sent", "msg-1").await;
    let event = |kind: &str, email: &str, reason: Option<&str>| {
        let mut event = sg_event(kind, custom_args(log, practice));
        event["email"] = json!(email);
        if let Some(reason) = reason {
            event["reason"] = json!(reason);
        }
        event
    };
    let body = batch(&[
        event("group_unsubscribe", "a@example.com", None),
        event("dropped", "b@example.com", Some("Bounced Address")),
        event("dropped", "c@example.com", Some("Invalid")),
        event("dropped", "d@example.com", Some("Invalid SMTPAPI header")),
    ]);

    assert_eq!(
        post_sendgrid(&app, "/api/webhooks/sendgrid", &signer, &body)
            .await
            .status(),
        200
    );

    for (address, reason) in [
        ("a@example.com", Some("unsubscribed")),
        ("b@example.com", Some("bounced")),
        ("c@example.com", Some("invalid")),
        ("d@example.com", None),
    ] {
        assert_eq!(
            suppressed(&app, practice, address, false).await.as_deref(),
            reason,
            "{address}"
        );
    }
    assert_eq!(status_of(&app, log).await, "dropped");
}

#[tokio::test]
async fn an_event_naming_another_practice_is_kept_but_changes_nothing() {
    let app = spawn_app().await;
    let (practice, signer) = practice_with_sendgrid_key(&app, "Smile Dental").await;
    let victim = app.create_practice("Other Dental").await;
    let victims_log = insert_log(&app, victim, "email", "sent", "victim-msg").await;
    let by_custom_args = sg_event("spamreport", custom_args(victims_log, victim));
    let by_message_id = sg_event(
        "bounce",
        json!({"sg_message_id": "victim-msg.filter0", "type": "bounce"}),
    );
    let claiming_our_practice = sg_event(
        "bounce",
        json!({"outreach_log_id": victims_log.to_string(), "practice_id": practice.to_string(), "type": "bounce"}),
    );

    let body = batch(&[by_custom_args, by_message_id, claiming_our_practice]);
    let response = post_sendgrid(&app, &practice_path(practice), &signer, &body).await;

    assert_eq!(json_body(response).await, accepted(3, 3));
    assert_eq!(status_of(&app, victims_log).await, "sent");
    let linked: i64 = sqlx::query_scalar(
        "select count(*) from provider_events where outreach_log_id is not null",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(linked, 0);
    for practice in [practice, victim] {
        assert_eq!(suppressed(&app, practice, PATIENT_EMAIL, true).await, None);
    }
}

#[tokio::test]
async fn unknown_messages_and_unknown_event_types_are_kept_and_answered_200() {
    let (app, signer) = app_with_system_sendgrid_key().await;
    let mut without_id = sg_event(
        "account_status_change",
        json!({"type": "compliance_suspend"}),
    );
    without_id.as_object_mut().unwrap().remove("sg_event_id");
    let body = batch(&[
        sg_event(
            "delivered",
            json!({"sg_message_id": "nobody-knows.filter0"}),
        ),
        without_id,
    ]);

    let first = post_sendgrid(&app, "/api/webhooks/sendgrid", &signer, &body).await;
    assert_eq!(json_body(first).await, accepted(2, 2));
    let again = post_sendgrid(&app, "/api/webhooks/sendgrid", &signer, &body).await;
    assert_eq!(
        json_body(again).await,
        accepted(2, 0),
        "an event without sg_event_id dedupes by its content"
    );

    let keys: Vec<String> = sqlx::query_scalar("select event_key from provider_events order by id")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert!(
        keys[0].starts_with("sendgrid:") && keys[1].starts_with("sendgrid:sha256:"),
        "{keys:?}"
    );
}

#[tokio::test]
async fn a_timestamp_older_than_the_allowed_age_is_refused() {
    let (app, signer) = app_with_system_sendgrid_key().await;
    let body = batch(&[sg_event("delivered", json!({}))]);
    let day_and_more = (chrono::Utc::now().timestamp() - 90_001).to_string();

    let stale = post_sendgrid_at(
        &app,
        "/api/webhooks/sendgrid",
        &signer,
        &day_and_more,
        &body,
    )
    .await;
    assert_eq!(stale.status(), 401);
    let recent = (chrono::Utc::now().timestamp() - 3_600).to_string();
    let retried = post_sendgrid_at(&app, "/api/webhooks/sendgrid", &signer, &recent, &body).await;
    assert_eq!(
        retried.status(),
        200,
        "SendGrid retries for a day; an hour-old signature is fine"
    );
    assert_eq!(stored_events(&app).await, 1);
}

/// Postgres text and jsonb cannot hold NUL: a signed batch carrying one failed with a 500, so
/// SendGrid would retry it for a day and then drop every event in it.
#[tokio::test]
async fn a_signed_event_holding_nul_characters_is_stored_with_them_replaced_and_its_batch_applied()
{
    let app = spawn_app().await;
    let (practice, signer) = practice_with_sendgrid_key(&app, "Smile Dental").await;
    let log = insert_log(&app, practice, "email", "sent", "moW00FY9Sqyr2r5ekgRDLg").await;
    let mut args = custom_args(log, practice);
    args["useragent"] = json!("Mail\u{0}Client");
    let body = batch(&[
        sg_event("open", args),
        sg_event("spamreport", json!({"email": "eve\u{0}@example.com"})),
    ]);

    let response = post_sendgrid(&app, &practice_path(practice), &signer, &body).await;

    assert_eq!(json_body(response).await, accepted(2, 2));
    assert_eq!(status_of(&app, log).await, "opened");
    let useragent: String = sqlx::query_scalar(
        "select payload->>'useragent' from provider_events where event_type = 'open'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(useragent, "Mail\u{FFFD}Client");
    assert_eq!(
        suppressed(&app, practice, "eve\u{FFFD}@example.com", false)
            .await
            .as_deref(),
        Some("spam_reported")
    );
}

#[tokio::test]
async fn a_twilio_callback_holding_a_nul_character_is_stored_with_it_replaced() {
    let app = TestEnv::new().with_system_accounts().spawn().await;
    let mut params = status_params(SYSTEM_TWILIO_SID, "SMunknown", "undelivered");
    params.push(("ErrorMessage", "carrier\u{0}said no"));
    let response = post_twilio(&app, "/api/webhooks/twilio", SYSTEM_TWILIO_TOKEN, &params).await;
    assert_eq!(response.status(), 200);
    let message: String =
        sqlx::query_scalar("select payload->>'ErrorMessage' from provider_events")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(message, "carrier\u{FFFD}said no");
}

#[tokio::test]
async fn a_batch_of_a_thousand_events_is_stored_and_applied_in_one_request() {
    let app = spawn_app().await;
    let (practice, signer) = practice_with_sendgrid_key(&app, "Smile Dental").await;
    sqlx::query(
        "insert into outreach_logs (id, practice_id, message_type, messaging_provider, status, recipient, body, provider_message_id)
         select gen_random_uuid(), $1, 'email', 'custom_sendgrid', 'sent', 'p' || i || '@example.com', 'hi', 'msg' || i
         from generate_series(1, 1000) as i",
    )
    .bind(practice)
    .execute(&app.pool)
    .await
    .unwrap();
    let events: Vec<Value> = (1..=1000).map(|i| sg_event("delivered", json!({"sg_message_id": format!("msg{i}.filter0"), "email": format!("p{i}@example.com")}))).collect();

    let response = post_sendgrid(&app, &practice_path(practice), &signer, &batch(&events)).await;

    assert_eq!(json_body(response).await, accepted(1000, 1000));
    let delivered: i64 =
        sqlx::query_scalar("select count(*) from outreach_logs where status = 'delivered'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!((delivered, stored_events(&app).await), (1000, 1000));
}

#[tokio::test]
async fn malformed_json_with_a_valid_signature_is_a_400_and_stores_nothing() {
    let (app, signer) = app_with_system_sendgrid_key().await;
    for body in [
        "[{\"event\": \"delivered\"",
        "{\"event\": \"delivered\"}",
        "[1, 2]",
        "",
    ] {
        let (status, error) =
            json_body(post_sendgrid(&app, "/api/webhooks/sendgrid", &signer, body).await).await;
        assert_eq!(
            (status, error["error"]["code"].as_str()),
            (400, Some("validation_failed")),
            "{body:?}"
        );
    }
    assert_eq!(stored_events(&app).await, 0);
}

#[tokio::test]
async fn bodies_up_to_five_mib_are_accepted_and_larger_ones_refused() {
    let (app, signer) = app_with_system_sendgrid_key().await;
    let padded =
        |size: usize| batch(&[sg_event("delivered", json!({"padding": "x".repeat(size)}))]);

    let three_mib = post_sendgrid(
        &app,
        "/api/webhooks/sendgrid",
        &signer,
        &padded(3 * 1024 * 1024),
    )
    .await;
    assert_eq!(three_mib.status(), 200);
    let (status, error) = json_body(
        post_sendgrid(
            &app,
            "/api/webhooks/sendgrid",
            &signer,
            &padded(6 * 1024 * 1024),
        )
        .await,
    )
    .await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (413, Some("validation_failed"))
    );
}

#[tokio::test]
async fn a_webhook_while_the_database_is_unavailable_answers_503_not_200() {
    let signer = SendGridSigner::new();
    let app = TestEnv::new()
        .var("SENDGRID_WEBHOOK_VERIFY_KEY", signer.public_key())
        .without_background()
        .spawn()
        .await;
    app.pool.close().await;

    let response = post_sendgrid(
        &app,
        "/api/webhooks/sendgrid",
        &signer,
        &batch(&[sg_event("delivered", json!({}))]),
    )
    .await;

    let (status, error) = json_body(response).await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (503, Some("unavailable"))
    );
}

#[tokio::test]
async fn webhook_events_are_counted_by_provider_and_outcome() {
    let (app, signer) = app_with_system_sendgrid_key().await;
    let body = batch(&[sg_event("delivered", json!({}))]);
    post_sendgrid(&app, "/api/webhooks/sendgrid", &signer, &body).await;
    post_sendgrid(&app, "/api/webhooks/sendgrid", &signer, &body).await;
    post_sendgrid(
        &app,
        "/api/webhooks/sendgrid",
        &SendGridSigner::new(),
        &body,
    )
    .await;

    let metrics = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for outcome in ["stored", "duplicate", "unauthenticated"] {
        let series = format!("webhook_events_total{{provider=\"sendgrid\",outcome=\"{outcome}\"}}");
        assert!(metrics.contains(&series), "{series} in {metrics}");
    }
}

#[tokio::test]
async fn the_openapi_document_lists_every_webhook_route() {
    let app = spawn_app().await;
    let doc: Value = app
        .http
        .get(app.url("/api/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let signature_headers = [
        (
            "/api/webhooks/sendgrid",
            "X-Twilio-Email-Event-Webhook-Signature",
        ),
        (
            "/api/webhooks/sendgrid/{practiceId}",
            "X-Twilio-Email-Event-Webhook-Timestamp",
        ),
        ("/api/webhooks/twilio", "X-Twilio-Signature"),
        ("/api/webhooks/twilio/{practiceId}", "X-Twilio-Signature"),
        (
            "/api/webhooks/twilio-incoming",
            "X-Twilio-Webhooks-Signature-Settings",
        ),
        (
            "/api/webhooks/twilio-incoming/{practiceId}",
            "X-Twilio-Signature",
        ),
    ];
    for (path, header) in signature_headers {
        let parameters = doc["paths"][path]["post"]["parameters"].as_array();
        let names: Vec<&str> = parameters
            .into_iter()
            .flatten()
            .filter_map(|p| p["name"].as_str())
            .collect();
        assert!(
            names.contains(&header),
            "{path} documents {header}: {names:?}"
        );
    }
}

// Twilio

/// A practice sending SMS from its own Twilio account.
async fn practice_with_twilio(app: &TestApp, name: &str) -> Uuid {
    let practice = app.create_practice(name).await;
    app.store_twilio_account(
        practice,
        PRACTICE_TWILIO_SID,
        PRACTICE_TWILIO_TOKEN,
        "+15551230000",
    )
    .await;
    practice
}

fn form(params: &[(&str, &str)]) -> Vec<(String, String)> {
    params
        .iter()
        .map(|&(name, value)| (name.to_string(), value.to_string()))
        .collect()
}

/// Posts the form signed as Twilio would sign it for our public URL of `path`.
async fn post_twilio(app: &TestApp, path: &str, token: &str, params: &[(&str, &str)]) -> Response {
    let params = form(params);
    let signature = sign_twilio(
        &format!("{WEBHOOK_BASE}{path}"),
        &params,
        token.as_bytes(),
        TwilioAlgorithm::HmacSha1,
    );
    app.http
        .post(app.url(path))
        .header("X-Twilio-Signature", signature)
        .form(&params)
        .send()
        .await
        .unwrap()
}

async fn post_inbound(app: &TestApp, practice: Uuid, body: &str) -> Response {
    let sid = format!("SM{}", Uuid::new_v4().simple());
    let params = [
        ("AccountSid", PRACTICE_TWILIO_SID),
        ("MessageSid", &sid),
        ("From", PATIENT_PHONE),
        ("To", "+15551230000"),
        ("Body", body),
    ];
    post_twilio(
        app,
        &format!("/api/webhooks/twilio-incoming/{practice}"),
        PRACTICE_TWILIO_TOKEN,
        &params,
    )
    .await
}

/// Posts a status callback to the practice's route, signed with the practice's auth token.
async fn post_practice_status(app: &TestApp, practice: Uuid, params: &[(&str, &str)]) -> Response {
    post_twilio(
        app,
        &format!("/api/webhooks/twilio/{practice}"),
        PRACTICE_TWILIO_TOKEN,
        params,
    )
    .await
}

/// The TwiML of a successful Twilio webhook answer.
async fn twiml(response: Response) -> String {
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"].to_str().unwrap();
    assert!(content_type.starts_with("text/xml"), "{content_type}");
    response.text().await.unwrap()
}

fn status_params<'a>(account: &'a str, sid: &'a str, status: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("AccountSid", account),
        ("MessageSid", sid),
        ("SmsSid", sid),
        ("MessageStatus", status),
        ("To", PATIENT_PHONE),
        ("ApiVersion", "2010-04-01"),
    ]
}

#[tokio::test]
async fn a_twilio_status_callback_moves_the_log_forward_but_never_back() {
    let app = spawn_app().await;
    let practice = practice_with_twilio(&app, "Smile Dental").await;
    let sid = "SM0123456789abcdef0123456789abcdef";
    let log = insert_log(&app, practice, "sms", "sending", sid).await;
    let status = |status| status_params(PRACTICE_TWILIO_SID, sid, status);

    let delivered = post_practice_status(&app, practice, &status("delivered")).await;
    assert!(twiml(delivered).await.ends_with("<Response/>"));
    assert_eq!(status_of(&app, log).await, "delivered");

    let late = post_practice_status(&app, practice, &status("sent")).await;
    assert_eq!(late.status(), 200);
    assert_eq!(status_of(&app, log).await, "delivered");
    let keys: Vec<String> = sqlx::query_scalar("select event_key from provider_events order by id")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert_eq!(
        keys,
        [
            format!("twilio:{sid}:delivered"),
            format!("twilio:{sid}:sent")
        ]
    );
}

#[tokio::test]
async fn a_twilio_callback_with_a_bad_signature_is_refused_and_stores_nothing() {
    let app = TestEnv::new().with_system_accounts().spawn().await;
    let sid = "SM0123456789abcdef0123456789abcdef";
    let log = insert_log(
        &app,
        app.create_practice("Smile Dental").await,
        "sms",
        "sent",
        sid,
    )
    .await;
    let params = form(&status_params(SYSTEM_TWILIO_SID, sid, "delivered"));
    let path = "/api/webhooks/twilio";
    let sign = |url: &str, token: &str| {
        Some(sign_twilio(
            url,
            &params,
            token.as_bytes(),
            TwilioAlgorithm::HmacSha1,
        ))
    };
    let cases = [
        (
            "another token",
            sign(&format!("{WEBHOOK_BASE}{path}"), PRACTICE_TWILIO_TOKEN),
        ),
        (
            "the Host we listen on instead of WEBHOOK_BASE_URL",
            sign(&app.url(path), SYSTEM_TWILIO_TOKEN),
        ),
        (
            "another path",
            sign(
                &format!("{WEBHOOK_BASE}/api/webhooks/twilio-incoming"),
                SYSTEM_TWILIO_TOKEN,
            ),
        ),
        ("garbage", Some("not base64!".into())),
        ("no signature", None),
    ];
    for (case, signature) in cases {
        let request = app.http.post(app.url(path)).form(&params);
        let request = match signature {
            Some(signature) => request.header("X-Twilio-Signature", signature),
            None => request,
        };
        assert_eq!(request.send().await.unwrap().status(), 401, "{case}");
    }

    assert_nothing_changed(&app, log, "sent").await;
}

#[tokio::test]
async fn a_correctly_signed_callback_for_another_account_is_forbidden() {
    let app = spawn_app().await;
    let practice = practice_with_twilio(&app, "Smile Dental").await;
    let sid = "SM0123456789abcdef0123456789abcdef";
    let log = insert_log(&app, practice, "sms", "sent", sid).await;

    let params = status_params("AC99999999999999999999999999999999", sid, "undelivered");
    let response = post_practice_status(&app, practice, &params).await;

    let (status, error) = json_body(response).await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (403, Some("forbidden"))
    );
    assert_nothing_changed(&app, log, "sent").await;
}

#[tokio::test]
async fn twilio_routes_refuse_practices_without_credentials_and_malformed_forms() {
    let app = spawn_app().await;
    let keyless = app.create_practice("No Twilio Dental").await;
    let params = status_params(PRACTICE_TWILIO_SID, "SM1", "sent");
    for path in [
        format!("/api/webhooks/twilio/{keyless}"),
        "/api/webhooks/twilio/not-a-uuid".into(),
        "/api/webhooks/twilio".into(),
    ] {
        assert_eq!(
            post_twilio(&app, &path, PRACTICE_TWILIO_TOKEN, &params)
                .await
                .status(),
            401,
            "{path}"
        );
    }

    let practice = practice_with_twilio(&app, "Smile Dental").await;
    let malformed = app
        .http
        .post(app.url(&format!("/api/webhooks/twilio/{practice}")))
        .body("Body=%FF%FE")
        .send()
        .await
        .unwrap();
    assert_eq!(json_body(malformed).await.0, 400);
    let without_status = post_practice_status(
        &app,
        practice,
        &[("AccountSid", PRACTICE_TWILIO_SID), ("MessageSid", "SM1")],
    )
    .await;
    assert_eq!(json_body(without_status).await.0, 400);
    assert_eq!(stored_events(&app).await, 0);
}

#[tokio::test]
async fn twilio_error_21610_puts_the_recipient_on_the_ledger() {
    let app = spawn_app().await;
    let practice = practice_with_twilio(&app, "Smile Dental").await;
    let sid = "SM0123456789abcdef0123456789abcdef";
    let log = insert_log(&app, practice, "sms", "sent", sid).await;
    let mut params = status_params(PRACTICE_TWILIO_SID, sid, "failed");
    params.extend([
        ("ErrorCode", "21610"),
        ("ErrorMessage", "Attempt to send to unsubscribed recipient"),
    ]);

    let response = post_practice_status(&app, practice, &params).await;

    assert_eq!(response.status(), 200);
    assert_eq!(status_of(&app, log).await, "failed");
    assert_eq!(
        suppressed(&app, practice, PATIENT_PHONE, false)
            .await
            .as_deref(),
        Some("opted_out")
    );
    let error: Option<String> = sqlx::query_scalar("select error from outreach_logs where id = $1")
        .bind(log)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(
        error.as_deref(),
        Some("Twilio error 21610: Attempt to send to unsubscribed recipient")
    );
}

#[tokio::test]
async fn inbound_stop_suppresses_the_number_even_via_the_system_sender_and_start_lifts_it() {
    let app = spawn_app().await;
    let practice = practice_with_twilio(&app, "Smile Dental").await;
    let enrollment = enrolled_patient(&app, practice).await;

    let stop = post_inbound(&app, practice, "  Stop ").await;
    let reply = twiml(stop).await;
    assert!(
        reply.ends_with("<Response/>"),
        "Twilio itself confirms STOP"
    );
    for via_system_sender in [false, true] {
        assert_eq!(
            suppressed(&app, practice, PATIENT_PHONE, via_system_sender)
                .await
                .as_deref(),
            Some("opted_out")
        );
    }
    assert_eq!(
        enrollment_status(&app, enrollment).await,
        ("stopped".into(), Some("opted_out".into()))
    );

    assert_eq!(
        post_inbound(&app, practice, "stop please").await.status(),
        200
    );
    assert_eq!(post_inbound(&app, practice, "UNSTOP").await.status(), 200);
    assert_eq!(suppressed(&app, practice, PATIENT_PHONE, true).await, None);
    let kinds: Vec<String> =
        sqlx::query_scalar("select event_type from provider_events order by id")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(kinds, ["inbound_opt_out", "inbound", "inbound_opt_in"]);
}

#[tokio::test]
async fn a_redelivered_stop_does_not_undo_a_later_start() {
    let app = spawn_app().await;
    let practice = practice_with_twilio(&app, "Smile Dental").await;
    let path = format!("/api/webhooks/twilio-incoming/{practice}");
    let message = |sid: &'static str, body: &'static str| {
        [
            ("AccountSid", PRACTICE_TWILIO_SID),
            ("MessageSid", sid),
            ("From", PATIENT_PHONE),
            ("Body", body),
        ]
    };

    for (sid, body) in [("SM1", "STOP"), ("SM2", "START"), ("SM1", "STOP")] {
        assert_eq!(
            post_twilio(&app, &path, PRACTICE_TWILIO_TOKEN, &message(sid, body))
                .await
                .status(),
            200
        );
    }

    assert_eq!(suppressed(&app, practice, PATIENT_PHONE, false).await, None);
    assert_eq!(stored_events(&app).await, 2);
}

#[tokio::test]
async fn help_is_answered_with_twiml_naming_the_practice_and_how_to_opt_out_when_its_reply_is_on() {
    let app = spawn_app().await;
    let practice = practice_with_twilio(&app, "Smith & Jones Dental").await;
    store_account(
        &app.pool,
        practice,
        "twilio",
        json!({"helpReplyEnabled": true}),
        json!({}),
    )
    .await;

    let reply = twiml(post_inbound(&app, practice, "help").await).await;

    assert!(
        reply.contains("<Response><Message>Smith &amp; Jones Dental: ")
            && reply.contains("Reply STOP to opt out."),
        "{reply}"
    );
    assert_eq!(suppressed(&app, practice, PATIENT_PHONE, true).await, None);
}

#[tokio::test]
async fn stop_on_the_system_number_binds_every_practice_that_sends_from_it() {
    let app = TestEnv::new().with_system_accounts().spawn().await;
    let system_practice = app.create_practice("Smile Dental").await;
    let enrollment = enrolled_patient(&app, system_practice).await;
    let custom_practice = practice_with_twilio(&app, "Own Number Dental").await;
    let custom_enrollment = enrolled_patient(&app, custom_practice).await;
    let params = [
        ("AccountSid", SYSTEM_TWILIO_SID),
        ("MessageSid", "SM42"),
        ("From", PATIENT_PHONE),
        ("To", SYSTEM_TWILIO_NUMBER),
        ("Body", "END"),
    ];

    let response = post_twilio(
        &app,
        "/api/webhooks/twilio-incoming",
        SYSTEM_TWILIO_TOKEN,
        &params,
    )
    .await;

    assert_eq!(response.status(), 200);
    assert_eq!(
        suppressed(&app, system_practice, PATIENT_PHONE, true)
            .await
            .as_deref(),
        Some("opted_out")
    );
    assert_eq!(
        suppressed(&app, custom_practice, PATIENT_PHONE, true)
            .await
            .as_deref(),
        Some("opted_out"),
        "a fallback to the system number is suppressed too"
    );
    assert_eq!(
        suppressed(&app, custom_practice, PATIENT_PHONE, false).await,
        None,
        "the practice's own number was not opted out"
    );
    assert_eq!(enrollment_status(&app, enrollment).await.0, "stopped");
    assert_eq!(enrollment_status(&app, custom_enrollment).await.0, "active");
}

#[tokio::test]
async fn help_on_the_system_number_names_dentite_when_its_reply_is_configured() {
    let app = TestEnv::new()
        .with_system_accounts()
        .var("TWILIO_HELP_REPLY_ENABLED", "true")
        .var("TWILIO_HELP_REPLY_CONTACT", "support@dentite.test")
        .spawn()
        .await;
    let params = [
        ("AccountSid", SYSTEM_TWILIO_SID),
        ("MessageSid", "SM7"),
        ("From", PATIENT_PHONE),
        ("Body", "INFO"),
    ];
    let response = post_twilio(
        &app,
        "/api/webhooks/twilio-incoming",
        SYSTEM_TWILIO_TOKEN,
        &params,
    )
    .await;
    let reply = twiml(response).await;
    assert!(
        reply.contains("<Message>Dentite: ") && reply.contains("contact support@dentite.test."),
        "{reply}"
    );
}

#[tokio::test]
async fn an_unknown_twilio_message_is_kept_and_answered_200() {
    let app = TestEnv::new().with_system_accounts().spawn().await;
    let params = status_params(SYSTEM_TWILIO_SID, "SMunknown", "delivered");
    assert_eq!(
        post_twilio(&app, "/api/webhooks/twilio", SYSTEM_TWILIO_TOKEN, &params)
            .await
            .status(),
        200
    );
    let (linked, practice): (Option<Uuid>, Option<Uuid>) =
        sqlx::query_as("select outreach_log_id, practice_id from provider_events")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!((linked, practice), (None, None));
}

#[tokio::test]
async fn a_shared_key_signature_is_accepted_only_when_the_key_is_configured() {
    let shared_key = "shared-key-secret";
    let configured = TestEnv::new()
        .with_system_accounts()
        .var("TWILIO_WEBHOOK_SHARED_KEY", shared_key)
        .var("TWILIO_WEBHOOK_SHARED_KEY_ID", "KS1")
        .spawn()
        .await;
    let unconfigured = TestEnv::new().with_system_accounts().spawn().await;
    let path = "/api/webhooks/twilio";
    let params = form(&status_params(SYSTEM_TWILIO_SID, "SM5", "sent"));
    let signature = sign_twilio(
        &format!("{WEBHOOK_BASE}{path}"),
        &params,
        shared_key.as_bytes(),
        TwilioAlgorithm::HmacSha256,
    );
    let post = |app: &TestApp, settings: &str| {
        app.http
            .post(app.url(path))
            .header("X-Twilio-Signature", &signature)
            .header("X-Twilio-Webhooks-Signature-Settings", settings)
            .form(&params)
            .send()
    };

    assert_eq!(
        post(&configured, "key=KS1,algorithm=HMAC_SHA256")
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        post(&configured, "key=KS2,algorithm=HMAC_SHA256")
            .await
            .unwrap()
            .status(),
        401,
        "another key id"
    );
    assert_eq!(
        post(&configured, "key=KS1,algorithm=RSA")
            .await
            .unwrap()
            .status(),
        401,
        "unreadable settings"
    );
    assert_eq!(
        post(&unconfigured, "key=KS1,algorithm=HMAC_SHA256")
            .await
            .unwrap()
            .status(),
        401,
        "no shared key configured"
    );
}

#[tokio::test]
async fn the_service_refuses_to_start_with_a_sendgrid_verify_key_that_is_not_a_p256_public_key() {
    let error = TestEnv::new()
        .var("SENDGRID_WEBHOOK_VERIFY_KEY", "bm90IGEga2V5")
        .build_error()
        .await;
    assert!(error.starts_with("SENDGRID_WEBHOOK_VERIFY_KEY:"), "{error}");
}
