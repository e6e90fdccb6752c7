//! Sending windows from the outside: patients' time zones, messages held until the recipient's
//! window opens (never dropped, no vendor call meanwhile), the hand-over re-check, sequences, and
//! two instances releasing a held message exactly once.
//!
//! The zones are picked when the test runs (`zone_at_local_hour`), so "now" is inside the window
//! for one recipient and outside it for another whatever the time of day.

use std::time::Duration;

use chrono::{DateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use reqwest::Method;
use serde_json::{Value, json};
use wiremock::{
    Mock, MockServer, ResponseTemplate,
    matchers::{method, path},
};

use crate::helpers::{Login, SYSTEM_TWILIO_SID, TestApp, TestEnv, zone_at_local_hour};

const COMPLIANCE: &str = "/api/practice-settings/messaging/compliance";

fn twilio_sends(times: impl Into<wiremock::Times>) -> Mock {
    Mock::given(method("POST"))
        .and(path(format!(
            "/2010-04-01/Accounts/{SYSTEM_TWILIO_SID}/Messages.json"
        )))
        .respond_with(ResponseTemplate::new(201).set_body_json(
            json!({"sid": "SM0123456789abcdef0123456789abcdef", "status": "queued"}),
        ))
        .expect(times)
}

async fn system_app() -> TestApp {
    TestEnv::new()
        .with_system_accounts()
        .without_background()
        .spawn()
        .await
}

/// The practice's compliance settings with `timezone`, everything else at its default.
async fn practice_zone(app: &TestApp, owner: &Login, timezone: &str) {
    let settings = json!({"timezone": timezone, "sendingWindow": {"start": "08:00", "end": "21:00"},
                          "smsCareDailyCap": 1, "smsCareWeeklyCap": 3,
                          "postalAddress": "1 Main St, Springfield, IL 62701"});
    let response = app
        .send_json(Method::PUT, COMPLIANCE, owner, &settings)
        .await;
    assert_eq!(response.status(), 200);
}

async fn create_patient(app: &TestApp, owner: &Login, body: Value) -> reqwest::Response {
    app.send_json(Method::POST, "/api/patients", owner, &body)
        .await
}

/// A patient with a phone and an email, living in `timezone` (the practice's when `None`).
async fn patient_in(app: &TestApp, owner: &Login, timezone: Option<&str>) -> String {
    let response = create_patient(
        app,
        owner,
        json!({"firstName": "Pat", "lastName": "Lee", "email": "pat@example.com",
               "phone": "+15551234567", "timezone": timezone}),
    )
    .await;
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    body["id"].as_str().unwrap().to_string()
}

async fn send_message(app: &TestApp, owner: &Login, message: Value) -> String {
    let response = app
        .send_json(Method::POST, "/api/outreach/messages", owner, &message)
        .await;
    assert_eq!(response.status(), 202);
    let body: Value = response.json().await.unwrap();
    body["id"].as_str().unwrap().to_string()
}

async fn sms_to(app: &TestApp, owner: &Login, patient: &str) -> String {
    send_message(
        app,
        owner,
        json!({"patientId": patient, "channel": "sms", "body": "See you tomorrow"}),
    )
    .await
}

async fn log(app: &TestApp, owner: &Login, id: &str) -> Value {
    let response = app.get(&format!("/api/outreach/logs/{id}"), owner).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// Today's 08:00 in `zone` (a zone where it is now before 08:00).
fn opening_today(zone: &str) -> DateTime<Utc> {
    let zone: Tz = zone.parse().unwrap();
    let today = Utc::now().with_timezone(&zone).date_naive();
    zone.from_local_datetime(&today.and_time(NaiveTime::from_hms_opt(8, 0, 0).unwrap()))
        .unwrap()
        .with_timezone(&Utc)
}

fn instant(value: &Value) -> DateTime<Utc> {
    value.as_str().unwrap().parse().unwrap()
}

/// Pretends the night has passed for one message: its job and log fall due now and its patient
/// has moved to where it is afternoon, so the hand-over re-check lets it go.
async fn let_the_night_pass(pool: &sqlx::PgPool, log_id: &str, patient: &str) {
    sqlx::query(
        "with job as (update send_jobs set run_at = now() - interval '1 second' where outreach_log_id = $1::uuid)
         update outreach_logs set scheduled_for = now() - interval '1 second' where id = $1::uuid",
    )
    .bind(log_id)
    .execute(pool)
    .await
    .unwrap();
    sqlx::query("update patients set timezone = $2 where id = $1::uuid")
        .bind(patient)
        .bind(zone_at_local_hour(14))
        .execute(pool)
        .await
        .unwrap();
}

#[tokio::test]
async fn patients_carry_a_time_zone_which_can_be_changed_and_cleared_and_an_unknown_one_is_refused()
{
    let app = system_app().await;
    let owner = app.practice_owner().await;
    let id = patient_in(&app, &owner, Some("Asia/Tokyo")).await;
    let shown: Value = app
        .get(&format!("/api/patients/{id}"), &owner)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(shown["timezone"], "Asia/Tokyo");
    let listed: Value = app.get("/api/patients", &owner).await.json().await.unwrap();
    assert_eq!(listed["items"][0]["timezone"], "Asia/Tokyo");

    let patch = |body: Value| {
        let path = format!("/api/patients/{id}");
        let app = &app;
        let owner = &owner;
        async move { app.send_json(Method::PATCH, &path, owner, &body).await }
    };
    let moved: Value = patch(json!({"timezone": "Pacific/Auckland"}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(moved["timezone"], "Pacific/Auckland");
    let refused = patch(json!({"timezone": "Mars/Olympus_Mons"})).await;
    assert_eq!(refused.status(), 422);
    let body: Value = refused.json().await.unwrap();
    assert!(body["error"]["fields"]["timezone"].is_string(), "{body}");
    let cleared: Value = patch(json!({"timezone": null})).await.json().await.unwrap();
    assert_eq!(cleared["timezone"], Value::Null);

    let refused = create_patient(
        &app,
        &owner,
        json!({"firstName": "Sam", "lastName": "Ito", "phone": "+15559876543", "timezone": "Tokyo"}),
    )
    .await;
    assert_eq!(refused.status(), 422);
    let body: Value = refused.json().await.unwrap();
    let fields: Vec<&String> = body["error"]["fields"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(fields, ["timezone"]);
    app.stop().await;
}

#[tokio::test]
async fn an_sms_to_a_patient_whose_night_it_is_stays_queued_until_their_morning_while_the_practices_own_zone_sends_now()
 {
    let app = system_app().await;
    twilio_sends(1).mount(&app.twilio).await;
    let owner = app.practice_owner().await;
    let afternoon = zone_at_local_hour(14);
    let night = zone_at_local_hour(3);
    practice_zone(&app, &owner, &afternoon).await;
    let local = patient_in(&app, &owner, None).await;
    let abroad = patient_in(&app, &owner, Some(&night)).await;

    let sent = sms_to(&app, &owner, &local).await;
    let held = sms_to(&app, &owner, &abroad).await;
    app.drain_queue().await;

    let sent = log(&app, &owner, &sent).await;
    assert_eq!(sent["status"], "sent");
    assert_eq!(sent["deferReason"], Value::Null);
    assert_eq!(sent["scheduledFor"], Value::Null);
    let held = log(&app, &owner, &held).await;
    assert_eq!(held["status"], "queued");
    assert_eq!(held["deferReason"], "quiet_hours");
    assert_eq!(instant(&held["scheduledFor"]), opening_today(&night));
    let run_at: DateTime<Utc> =
        sqlx::query_scalar("select run_at from send_jobs where outreach_log_id = $1::uuid")
            .bind(held["id"].as_str().unwrap())
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(run_at, opening_today(&night), "the durable queue holds it");
    app.stop().await;
}

#[tokio::test]
async fn at_night_care_email_goes_out_but_marketing_email_and_care_sms_wait_with_no_vendor_call() {
    let app = system_app().await;
    twilio_sends(0).mount(&app.twilio).await;
    Mock::given(method("POST"))
        .and(path("/v3/mail/send"))
        .respond_with(ResponseTemplate::new(202).insert_header("X-Message-Id", "care"))
        .expect(1)
        .mount(&app.sendgrid)
        .await;
    let owner = app.practice_owner().await;
    // Marketing email needs the practice's postal address (CAN-SPAM) to be sent at all.
    practice_zone(&app, &owner, "America/New_York").await;
    let night = zone_at_local_hour(3);
    let patient = patient_in(&app, &owner, Some(&night)).await;
    let email = |category: &str| {
        json!({"patientId": patient, "channel": "email", "subject": "Hello",
               "body": "Hello Pat", "category": category})
    };
    let care_email = send_message(&app, &owner, email("care")).await;
    let marketing_email = send_message(&app, &owner, email("marketing")).await;
    let care_sms = sms_to(&app, &owner, &patient).await;
    app.drain_queue().await;

    assert_eq!(log(&app, &owner, &care_email).await["status"], "sent");
    for held in [marketing_email, care_sms] {
        let held = log(&app, &owner, &held).await;
        assert_eq!(held["status"], "queued");
        assert_eq!(held["deferReason"], "quiet_hours");
        assert_eq!(instant(&held["scheduledFor"]), opening_today(&night));
    }
    let listed: Value = app
        .get("/api/outreach/logs?status=queued", &owner)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["items"].as_array().unwrap().len(), 2);
    assert!(
        listed["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|item| item["deferReason"] == "quiet_hours")
    );
    app.stop().await;
}

#[tokio::test]
async fn a_job_due_while_its_patient_is_asleep_is_put_back_without_counting_an_attempt_or_sending()
{
    let app = system_app().await;
    twilio_sends(0).mount(&app.twilio).await;
    let owner = app.practice_owner().await;
    let patient = patient_in(&app, &owner, Some(&zone_at_local_hour(14))).await;
    // Queued in the afternoon; by hand-over (a back-off that landed in the night, here a move
    // to a zone where it is night) the window is closed.
    let id = send_message(
        &app,
        &owner,
        json!({"patientId": patient, "channel": "sms", "body": "Reminder"}),
    )
    .await;
    let night = zone_at_local_hour(3);
    sqlx::query("update patients set timezone = $2 where id = $1::uuid")
        .bind(&patient)
        .bind(&night)
        .execute(&app.pool)
        .await
        .unwrap();
    app.drain_queue().await;

    let held = log(&app, &owner, &id).await;
    assert_eq!(held["status"], "queued");
    assert_eq!(held["deferReason"], "quiet_hours");
    assert_eq!(instant(&held["scheduledFor"]), opening_today(&night));
    let (run_at, attempts): (DateTime<Utc>, i32) =
        sqlx::query_as("select run_at, attempts from send_jobs where outreach_log_id = $1::uuid")
            .bind(&id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(run_at, opening_today(&night));
    assert_eq!(attempts, 0);
    app.stop().await;
}

#[tokio::test]
async fn a_held_sms_is_released_and_sent_exactly_once_by_two_instances_sharing_the_database() {
    let first = TestEnv::new().with_system_accounts().spawn().await;
    let database: String = sqlx::query_scalar("select current_database()")
        .fetch_one(&first.pool)
        .await
        .unwrap();
    let second = TestEnv::new()
        .with_system_accounts()
        .database(&database)
        .spawn()
        .await;
    // Each instance has its own fake Twilio: between them they must see one request.
    let counting =
        async |server: &MockServer| server.received_requests().await.unwrap_or_default().len();
    for app in [&first, &second] {
        twilio_sends(0..=1).mount(&app.twilio).await;
    }
    let owner = first.practice_owner().await;
    let patient = patient_in(&first, &owner, Some(&zone_at_local_hour(3))).await;
    let id = sms_to(&first, &owner, &patient).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let held = log(&second, &owner, &id).await;
    assert_eq!(held["status"], "queued", "both instances' workers hold it");
    assert_eq!(
        counting(&first.twilio).await + counting(&second.twilio).await,
        0
    );

    let_the_night_pass(&first.pool, &id, &patient).await;
    let sent = async {
        loop {
            let current = log(&second, &owner, &id).await;
            if current["status"] == "sent" {
                return current;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    // Generous: under a full parallel test run a worker's next claim can take a while.
    let sent = tokio::time::timeout(Duration::from_secs(60), sent)
        .await
        .expect("one of the instances sends it");
    // Kept, as the record that it waited for the recipient's morning.
    assert_eq!(sent["deferReason"], "quiet_hours");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        counting(&first.twilio).await + counting(&second.twilio).await,
        1
    );
    let jobs: i64 = sqlx::query_scalar("select count(*) from send_jobs")
        .fetch_one(&first.pool)
        .await
        .unwrap();
    assert_eq!(jobs, 0);
    second.stop().await;
    first.stop().await;
}

#[tokio::test]
async fn a_sequence_step_falling_in_the_patients_night_is_queued_for_their_morning() {
    let app = system_app().await;
    twilio_sends(0).mount(&app.twilio).await;
    let owner = app.practice_owner().await;
    let night = zone_at_local_hour(3);
    let patient = patient_in(&app, &owner, Some(&night)).await;
    let steps = json!([{"channel": "sms", "delayMinutes": 0, "body": "Hi {{firstName}}"}]);
    let response = app
        .send_json(
            Method::POST,
            "/api/sequences",
            &owner,
            &json!({"name": "Recall", "steps": steps}),
        )
        .await;
    assert_eq!(response.status(), 201);
    let sequence: Value = response.json().await.unwrap();
    let path = format!(
        "/api/sequences/{}/enrollments",
        sequence["id"].as_str().unwrap()
    );
    let response = app
        .send_json(
            Method::POST,
            &path,
            &owner,
            &json!({"patientIds": [patient]}),
        )
        .await;
    assert_eq!(response.status(), 200);
    sqlx::query("update sequence_enrollments set next_run_at = now() - interval '1 second'")
        .execute(&app.pool)
        .await
        .unwrap();
    dentite::outreach::scheduler::enqueue_due_steps(&app.pool, 100)
        .await
        .unwrap();
    app.drain_queue().await;

    let logs: Value = app
        .get("/api/outreach/logs", &owner)
        .await
        .json()
        .await
        .unwrap();
    let step = &logs["items"][0];
    assert_eq!(step["status"], "queued");
    assert_eq!(step["deferReason"], "quiet_hours");
    assert_eq!(instant(&step["scheduledFor"]), opening_today(&night));
    app.stop().await;
}

#[tokio::test]
async fn preview_schedules_for_the_patients_zone_not_the_practices() {
    let app = system_app().await;
    let owner = app.practice_owner().await;
    practice_zone(&app, &owner, &zone_at_local_hour(14)).await;
    let night = zone_at_local_hour(3);
    let patient = patient_in(&app, &owner, Some(&night)).await;
    let preview = |body: Value| {
        let app = &app;
        let owner = &owner;
        async move {
            let response = app
                .send_json(Method::POST, "/api/outreach/messages/preview", owner, &body)
                .await;
            assert_eq!(response.status(), 200);
            response.json::<Value>().await.unwrap()
        }
    };
    let for_patient = preview(json!({"channel": "sms", "body": "Hi", "patientId": patient})).await;
    assert_eq!(instant(&for_patient["scheduledFor"]), opening_today(&night));
    let before = Utc::now();
    let for_practice = preview(json!({"channel": "sms", "body": "Hi"})).await;
    assert!(instant(&for_practice["scheduledFor"]) >= before - chrono::Duration::seconds(1));
    assert!(instant(&for_practice["scheduledFor"]) <= Utc::now());
    app.stop().await;
}

#[tokio::test]
async fn the_openapi_document_shows_patient_zones_and_why_a_log_waits() {
    let app = system_app().await;
    let doc: Value = app
        .http
        .get(app.url("/api/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let schemas = &doc["components"]["schemas"];
    for schema in ["Patient", "PatientFields", "PatientPatch"] {
        assert!(
            schemas[schema]["properties"]["timezone"].is_object(),
            "{schema}"
        );
    }
    let log = &schemas["OutreachLog"]["properties"];
    assert!(log["scheduledFor"].is_object() && log["deferReason"].is_object());
    assert_eq!(schemas["DeferReason"]["enum"], json!(["quiet_hours"]));
    app.stop().await;
}
