use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use wiremock::{
    Mock, ResponseTemplate,
    matchers::{bearer_token, header, method, path},
};

use crate::helpers::*;

async fn system_app(extra: &[(&str, &str)]) -> TestApp {
    let env = extra.iter().fold(
        TestEnv::new()
            .with_system_accounts()
            .without_background()
            .var("SENDGRID_RATE_PER_SEC", "0")
            .var("TWILIO_RATE_PER_SEC", "0"),
        |env, (k, v)| env.var(k, *v),
    );
    env.spawn().await
}

#[tokio::test]
async fn a_queued_email_is_sent_once_with_one_click_unsubscribe_headers_and_its_provider_recorded()
{
    let app = system_app(&[]).await;
    let owner = app.practice_owner().await;
    let patient = app
        .create_patient(
            owner.practice_id.unwrap(),
            "pat@example.com",
            "+15557654321",
        )
        .await;
    Mock::given(method("POST"))
        .and(path("/v3/mail/send"))
        .and(bearer_token(SYSTEM_SENDGRID_KEY))
        .and(wiremock::matchers::body_string_contains(
            "List-Unsubscribe-Post",
        ))
        .and(wiremock::matchers::body_string_contains(
            "https://hooks.dentite.test/api/unsubscribe/",
        ))
        .respond_with(ResponseTemplate::new(202).insert_header("X-Message-Id", "msg-1"))
        .expect(1)
        .mount(&app.sendgrid)
        .await;
    let id = app.queue_message(&owner, patient, "email").await;
    assert_eq!(app.log_row(id).await.0, "queued");
    app.drain_queue().await;
    let (status, provider, message_id, _, _) = app.log_row(id).await;
    assert_eq!(
        (status.as_str(), provider.as_deref(), message_id.as_deref()),
        ("sent", Some("system_sendgrid"), Some("msg-1"))
    );
}

#[tokio::test]
async fn without_system_accounts_messages_go_to_the_outbox_and_are_listed() {
    let app = TestEnv::new().without_background().spawn().await;
    let owner = app.practice_owner().await;
    let patient = app
        .create_patient(
            owner.practice_id.unwrap(),
            "pat@example.com",
            "+15557654321",
        )
        .await;
    let email = app.queue_message(&owner, patient, "email").await;
    let sms = app.queue_message(&owner, patient, "sms").await;
    app.drain_queue().await;
    assert_eq!(app.log_row(email).await.1.as_deref(), Some("outbox"));
    assert_eq!(app.log_row(sms).await.0, "sent");
    let outbox: Value = app
        .get("/api/dev/outbox", &owner)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(outbox.as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn the_same_idempotency_key_replays_the_first_answer_and_a_different_body_is_refused() {
    let app = system_app(&[]).await;
    let owner = app.practice_owner().await;
    let patient = app
        .create_patient(
            owner.practice_id.unwrap(),
            "pat@example.com",
            "+15557654321",
        )
        .await;
    let body = json!({"patientId": patient, "channel": "sms", "body": "See you Tuesday"});
    let post = |body: Value| {
        app.request(Method::POST, "/api/outreach/messages", Some(&owner))
            .header("Idempotency-Key", "key-1")
            .json(&body)
            .send()
    };
    let first = post(body.clone()).await.unwrap();
    assert_eq!(first.status(), 202);
    let first: Value = first.json().await.unwrap();
    let again = post(body.clone()).await.unwrap();
    assert_eq!(again.status(), 202);
    assert_eq!(again.json::<Value>().await.unwrap(), first);
    let count: i64 = sqlx::query_scalar("select count(*) from outreach_logs")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(count, 1);

    let different = post(json!({"patientId": patient, "channel": "sms", "body": "Something else"}))
        .await
        .unwrap();
    assert_eq!(different.status(), 422);
}

#[tokio::test]
async fn a_key_whose_first_request_is_still_in_progress_gets_409() {
    let app = system_app(&[]).await;
    let owner = app.practice_owner().await;
    let practice = owner.practice_id.unwrap();
    let patient = app
        .create_patient(practice, "pat@example.com", "+15557654321")
        .await;
    // Hold the key's lock as an in-flight first request would.
    let mut tx = app.pool.begin().await.unwrap();
    sqlx::query("select pg_advisory_xact_lock(hashtextextended($1 || ':' || $2, 0))")
        .bind(practice.to_string())
        .bind("key-busy")
        .execute(&mut *tx)
        .await
        .unwrap();
    let response = app
        .request(Method::POST, "/api/outreach/messages", Some(&owner))
        .header("Idempotency-Key", "key-busy")
        .json(&json!({"patientId": patient, "channel": "sms", "body": "Hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 409);
    tx.rollback().await.unwrap();
}

#[tokio::test]
async fn bad_messages_get_422_naming_the_field_and_other_practices_patients_are_not_found() {
    let app = system_app(&[]).await;
    let owner = app.practice_owner().await;
    let other = app.practice_owner().await;
    let patient = app
        .create_patient(
            owner.practice_id.unwrap(),
            "pat@example.com",
            "+15557654321",
        )
        .await;
    let cases = [
        (
            json!({"patientId": patient, "channel": "email", "body": "no subject"}),
            "subject",
        ),
        (
            json!({"patientId": patient, "channel": "sms", "body": "   "}),
            "body",
        ),
        (
            json!({"patientId": patient, "channel": "fax", "body": "x"}),
            "channel",
        ),
    ];
    for (body, field) in cases {
        let response = app
            .send_json(Method::POST, "/api/outreach/messages", &owner, &body)
            .await;
        assert_eq!(response.status(), 422, "{body}");
        let error: Value = response.json().await.unwrap();
        assert!(
            error["error"]["fields"]
                .as_object()
                .unwrap()
                .keys()
                .any(|k| k.contains(field)),
            "{error}"
        );
    }
    let foreign = app
        .send_json(
            Method::POST,
            "/api/outreach/messages",
            &other,
            &json!({"patientId": patient, "channel": "sms", "body": "x"}),
        )
        .await;
    assert_eq!(foreign.status(), 404);
}

#[tokio::test]
async fn a_5xx_is_retried_and_the_message_sent_once() {
    let app = system_app(&[]).await;
    let owner = app.practice_owner().await;
    let patient = app
        .create_patient(
            owner.practice_id.unwrap(),
            "pat@example.com",
            "+15557654321",
        )
        .await;
    Mock::given(method("POST"))
        .and(path("/v3/mail/send"))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(1)
        .expect(1)
        .mount(&app.sendgrid)
        .await;
    Mock::given(method("POST"))
        .and(path("/v3/mail/send"))
        .respond_with(ResponseTemplate::new(202).insert_header("X-Message-Id", "ok"))
        .expect(1)
        .mount(&app.sendgrid)
        .await;
    let id = app.queue_message(&owner, patient, "email").await;
    app.drain_queue().await;
    assert_eq!(app.log_row(id).await.0, "queued", "waiting for its retry");
    let retried = async {
        loop {
            app.drain_queue().await;
            if app.log_row(id).await.0 == "sent" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(5), retried)
        .await
        .expect("retried after back-off");
}

#[tokio::test]
async fn a_message_that_keeps_failing_ends_failed_with_the_last_reason_after_its_attempts() {
    let app = system_app(&[("SEND_MAX_ATTEMPTS", "3"), ("SEND_RETRY_BASE_MS", "10")]).await;
    let owner = app.practice_owner().await;
    let patient = app
        .create_patient(
            owner.practice_id.unwrap(),
            "pat@example.com",
            "+15557654321",
        )
        .await;
    Mock::given(method("POST"))
        .and(path("/v3/mail/send"))
        .respond_with(ResponseTemplate::new(503))
        .expect(3)
        .mount(&app.sendgrid)
        .await;
    let id = app.queue_message(&owner, patient, "email").await;
    let failed = async {
        loop {
            app.drain_queue().await;
            if app.log_row(id).await.0 == "failed" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(5), failed)
        .await
        .expect("fails after three attempts");
    assert!(app.log_row(id).await.4.unwrap().contains("503"));
}

/// The fake Twilio answers the one send it expects with a 400 and this error code.
async fn twilio_refuses_once(app: &TestApp, code: i64, message: &str) {
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(400)
                .set_body_json(json!({"code": code, "message": message, "status": 400})),
        )
        .expect(1)
        .mount(&app.twilio)
        .await;
}

#[tokio::test]
async fn a_rejected_recipient_is_not_retried() {
    let app = system_app(&[]).await;
    let owner = app.practice_owner().await;
    let patient = app
        .create_patient(
            owner.practice_id.unwrap(),
            "pat@example.com",
            "+15557654321",
        )
        .await;
    twilio_refuses_once(&app, 21211, "The 'To' number is not a valid phone number.").await;
    let id = app.queue_message(&owner, patient, "sms").await;
    app.drain_queue().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    app.drain_queue().await;
    let (status, provider, _, _, error) = app.log_row(id).await;
    assert_eq!(
        (status.as_str(), provider.as_deref()),
        ("failed", Some("system_twilio"))
    );
    assert!(error.unwrap().contains("21211"));
}

#[tokio::test]
async fn twilio_21610_on_a_send_adds_the_number_to_the_ledger_and_the_next_send_is_suppressed() {
    let app = system_app(&[]).await;
    let owner = app.practice_owner().await;
    let patient = app
        .create_patient(
            owner.practice_id.unwrap(),
            "pat@example.com",
            "+15557654321",
        )
        .await;
    twilio_refuses_once(&app, 21610, "Attempt to send to unsubscribed recipient").await;
    let first = app.queue_message(&owner, patient, "sms").await;
    app.drain_queue().await;
    assert_eq!(app.log_row(first).await.0, "failed");
    let second = app.queue_message(&owner, patient, "sms").await;
    app.drain_queue().await;
    assert_eq!(app.log_row(second).await.0, "suppressed");
}

#[tokio::test]
async fn two_worker_pools_drain_a_thousand_jobs_sending_each_exactly_once() {
    let first = system_app(&[]).await;
    let database: String = sqlx::query_scalar("select current_database()")
        .fetch_one(&first.pool)
        .await
        .unwrap();
    // A second instance of the service: same database, same (fake) SendGrid.
    let second = TestEnv::new()
        .with_system_accounts()
        .without_background()
        .var("SENDGRID_RATE_PER_SEC", "0")
        .var("SENDGRID_API_BASE_URL", first.sendgrid.uri())
        .database(&database)
        .spawn()
        .await;
    let practice = first.create_practice("Smile Dental").await;
    let patient = first
        .create_patient(practice, "pat@example.com", "+15557654321")
        .await;
    first.enqueue_emails(practice, patient, 1000).await;
    Mock::given(method("POST"))
        .and(path("/v3/mail/send"))
        .respond_with(ResponseTemplate::new(202))
        .expect(1000)
        .mount(&first.sendgrid)
        .await;
    let (a, b) = (first.state.workers(), second.state.workers());
    let drain = |w: dentite::outreach::worker::Workers| {
        tokio::spawn(async move { while w.run_once().await.unwrap() > 0 {} })
    };
    let (ra, rb) = tokio::join!(drain(a), drain(b));
    ra.unwrap();
    rb.unwrap();
    let sent: i64 = sqlx::query_scalar("select count(*) from outreach_logs where status = 'sent'")
        .fetch_one(&first.pool)
        .await
        .unwrap();
    assert_eq!(sent, 1000);
    let jobs: i64 = sqlx::query_scalar("select count(*) from send_jobs")
        .fetch_one(&first.pool)
        .await
        .unwrap();
    assert_eq!(jobs, 0);
}

#[tokio::test]
async fn a_job_whose_worker_died_is_sent_after_its_lease_runs_out() {
    let app = system_app(&[]).await;
    let owner = app.practice_owner().await;
    let patient = app
        .create_patient(
            owner.practice_id.unwrap(),
            "pat@example.com",
            "+15557654321",
        )
        .await;
    Mock::given(method("POST"))
        .and(path("/v3/mail/send"))
        .respond_with(ResponseTemplate::new(202))
        .expect(1)
        .mount(&app.sendgrid)
        .await;
    let id = app.queue_message(&owner, patient, "email").await;
    // A worker claimed it and died: leased, status sending, never finished.
    sqlx::query("update send_jobs set leased_until = now() + interval '1 hour', attempts = 1")
        .execute(&app.pool)
        .await
        .unwrap();
    sqlx::query("update outreach_logs set status = 'sending'")
        .execute(&app.pool)
        .await
        .unwrap();
    app.drain_queue().await;
    assert_eq!(
        app.log_row(id).await.0,
        "sending",
        "not taken while the lease holds"
    );
    sqlx::query("update send_jobs set leased_until = now() - interval '1 second'")
        .execute(&app.pool)
        .await
        .unwrap();
    app.drain_queue().await;
    assert_eq!(app.log_row(id).await.0, "sent");
}

#[tokio::test]
async fn one_practice_flooding_the_queue_does_not_delay_another_practices_message() {
    let app = system_app(&[]).await;
    let flooder = app.create_practice("Flooder").await;
    let flooder_patient = app
        .create_patient(flooder, "a@example.com", "+15557654321")
        .await;
    let owner = app.practice_owner().await;
    let patient = app
        .create_patient(
            owner.practice_id.unwrap(),
            "pat@example.com",
            "+15557654322",
        )
        .await;
    Mock::given(method("POST"))
        .and(path("/v3/mail/send"))
        .respond_with(ResponseTemplate::new(202))
        .mount(&app.sendgrid)
        .await;
    sqlx::query(
        "with logs as (
             insert into outreach_logs (id, practice_id, patient_id, message_type, recipient, subject, body)
             select gen_random_uuid(), $1, $2, 'email', 'a@example.com', 'Recall', 'Time for a check-up'
             from generate_series(1, 2000) returning id)
         insert into send_jobs (outreach_log_id, practice_id) select id, $1 from logs",
    )
    .bind(flooder)
    .bind(flooder_patient)
    .execute(&app.pool)
    .await
    .unwrap();
    sqlx::query("insert into send_fairness (practice_id) values ($1)")
        .bind(flooder)
        .execute(&app.pool)
        .await
        .unwrap();
    let workers = app.state.workers();
    workers.run_once().await.unwrap();
    let id = app.queue_message(&owner, patient, "email").await;
    // Within the next two claims the newcomer is served, long before the flood drains.
    workers.run_once().await.unwrap();
    workers.run_once().await.unwrap();
    assert_eq!(app.log_row(id).await.0, "sent");
    let flood_left: i64 =
        sqlx::query_scalar("select count(*) from send_jobs where practice_id = $1")
            .bind(flooder)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert!(flood_left > 1900);
}

#[tokio::test]
async fn the_rate_limit_holds_across_two_instances() {
    let first = TestEnv::new()
        .with_system_accounts()
        .without_background()
        .var("TWILIO_RATE_PER_SEC", "2")
        .spawn()
        .await;
    let database: String = sqlx::query_scalar("select current_database()")
        .fetch_one(&first.pool)
        .await
        .unwrap();
    let second = TestEnv::new()
        .with_system_accounts()
        .without_background()
        .var("TWILIO_RATE_PER_SEC", "2")
        .var("TWILIO_API_BASE_URL", first.twilio.uri())
        .database(&database)
        .spawn()
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"sid": "SM1"})))
        .mount(&first.twilio)
        .await;
    let owner = first.practice_owner().await;
    // Ten patients: the care-SMS cap lets one patient receive one a day.
    for i in 0..10 {
        let patient = first
            .create_patient(
                owner.practice_id.unwrap(),
                &format!("pat{i}@example.com"),
                &format!("+1555765432{i}"),
            )
            .await;
        first.queue_message(&owner, patient, "sms").await;
    }
    let (a, b) = (first.state.workers(), second.state.workers());
    let started = std::time::Instant::now();
    let run = |w: dentite::outreach::worker::Workers| {
        tokio::spawn(async move {
            let deadline = std::time::Instant::now() + Duration::from_millis(1500);
            while std::time::Instant::now() < deadline {
                if w.run_once().await.unwrap() == 0 {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        })
    };
    let (ra, rb) = tokio::join!(run(a), run(b));
    ra.unwrap();
    rb.unwrap();
    let elapsed = started.elapsed().as_secs_f64();
    let sent = first.twilio.received_requests().await.unwrap().len();
    // Two tokens to start with, then two a second, shared by both instances.
    assert!(
        sent as f64 <= 2.0 + 2.0 * elapsed + 1.0,
        "sent {sent} in {elapsed:.2}s"
    );
    assert!(sent >= 2, "some were sent");
}

#[tokio::test]
async fn the_unsubscribe_link_suppresses_the_address_and_a_forged_one_changes_nothing() {
    let app = system_app(&[]).await;
    let owner = app.practice_owner().await;
    let practice = owner.practice_id.unwrap();
    let link = app.state.unsubscribe.url(practice, "pat@example.com");
    let path_part = link.strip_prefix("https://hooks.dentite.test").unwrap();
    let page = app.http.get(app.url(path_part)).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("Smile Dental"));

    let forged = path_part.replace("/api/unsubscribe/", "/api/unsubscribe/x");
    assert_eq!(
        app.http
            .post(app.url(&forged))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    let count: i64 = sqlx::query_scalar("select count(*) from suppressions")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(count, 0);

    let post = app
        .http
        .post(app.url(path_part))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), 200);
    let patient = app
        .create_patient(practice, "pat@example.com", "+15557654321")
        .await;
    Mock::given(method("POST"))
        .and(header("authorization", "Bearer never"))
        .respond_with(ResponseTemplate::new(202))
        .expect(0)
        .mount(&app.sendgrid)
        .await;
    let id = app.queue_message(&owner, patient, "email").await;
    app.drain_queue().await;
    assert_eq!(app.log_row(id).await.0, "suppressed");
}

#[tokio::test]
async fn the_unsubscribe_pages_allow_no_script_and_leak_no_referrer() {
    let app = system_app(&[]).await;
    let owner = app.practice_owner().await;
    let link = app
        .state
        .unsubscribe
        .url(owner.practice_id.unwrap(), "pat@example.com");
    let path_part = link.strip_prefix("https://hooks.dentite.test").unwrap();
    let page = app.http.get(app.url(path_part)).send().await.unwrap();
    let done = app.http.post(app.url(path_part)).send().await.unwrap();
    for response in [page, done] {
        assert_eq!(response.status(), 200);
        let headers = response.headers();
        assert_eq!(
            headers["content-security-policy"],
            "default-src 'none'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
        );
        assert_eq!(headers["referrer-policy"], "no-referrer");
        assert_eq!(headers["x-content-type-options"], "nosniff");
    }
}
