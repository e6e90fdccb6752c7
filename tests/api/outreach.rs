//! Patients, sequences and their scheduler, outreach logs and analytics.

use chrono::{DateTime, Duration, Utc};
use dentite::{
    auth::Role,
    messaging::{
        Channel,
        suppression::{self, Scope, SuppressionReason},
    },
    outreach::{
        queue::{self, NewMessage},
        scheduler::enqueue_due_steps,
    },
};
use reqwest::Method;
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::{Login, TestApp, TestEnv, spawn_app};

async fn json_of(response: reqwest::Response, status: u16) -> Value {
    let actual = response.status().as_u16();
    let body: Value = response.json().await.expect("responses are JSON");
    assert_eq!(actual, status, "{body}");
    body
}

/// The field names of a 422.
async fn invalid_fields(response: reqwest::Response) -> Vec<String> {
    let body = json_of(response, 422).await;
    assert_eq!(body["error"]["code"], "validation_failed");
    body["error"]["fields"]
        .as_object()
        .expect("fields are named")
        .keys()
        .cloned()
        .collect()
}

async fn delete(app: &TestApp, path: &str, login: &Login) -> u16 {
    app.request(Method::DELETE, path, Some(login))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn create_patient(app: &TestApp, login: &Login, body: Value) -> Value {
    json_of(
        app.send_json(Method::POST, "/api/patients", login, &body)
            .await,
        201,
    )
    .await
}

async fn patient_id(
    app: &TestApp,
    login: &Login,
    first: &str,
    last: &str,
    email: Option<&str>,
    phone: Option<&str>,
) -> String {
    let patient = create_patient(
        app,
        login,
        json!({"firstName": first, "lastName": last, "email": email, "phone": phone}),
    )
    .await;
    patient["id"].as_str().unwrap().to_string()
}

async fn create_sequence(app: &TestApp, login: &Login, steps: Value) -> String {
    let body = json!({"name": "Recall", "steps": steps});
    let sequence = json_of(
        app.send_json(Method::POST, "/api/sequences", login, &body)
            .await,
        201,
    )
    .await;
    sequence["id"].as_str().unwrap().to_string()
}

/// A practice owner, their one-step SMS sequence (`Hi {{firstName}}`, at once), and a patient
/// Pat with a phone, not yet enrolled.
struct SmsSequence {
    owner: Login,
    sequence: String,
    pat: String,
}

async fn sms_sequence(app: &TestApp) -> SmsSequence {
    let owner = app.practice_owner().await;
    let steps = json!([{"channel": "sms", "delayMinutes": 0, "body": "Hi {{firstName}}"}]);
    let sequence = create_sequence(app, &owner, steps).await;
    let pat = patient_id(app, &owner, "Pat", "Lee", None, Some("+15551234567")).await;
    SmsSequence {
        owner,
        sequence,
        pat,
    }
}

async fn enroll(app: &TestApp, login: &Login, sequence: &str, patients: &[&str]) -> Value {
    let path = format!("/api/sequences/{sequence}/enrollments");
    json_of(
        app.send_json(Method::POST, &path, login, &json!({"patientIds": patients}))
            .await,
        200,
    )
    .await
}

async fn enrollment(
    pool: &PgPool,
    sequence: &str,
    patient: &str,
) -> (String, i32, Option<String>, Option<DateTime<Utc>>) {
    sqlx::query_as(
        "select status, next_step, stop_reason, next_run_at from sequence_enrollments
         where sequence_id = $1::uuid and patient_id = $2::uuid",
    )
    .bind(sequence)
    .bind(patient)
    .fetch_one(pool)
    .await
    .unwrap()
}

async fn make_due(pool: &PgPool) {
    sqlx::query("update sequence_enrollments set next_run_at = now() - interval '1 second' where status = 'active'")
        .execute(pool)
        .await
        .unwrap();
}

async fn queued_messages(
    pool: &PgPool,
) -> Vec<(String, String, Option<String>, String, Option<i32>)> {
    sqlx::query_as(
        "select l.message_type, l.recipient, l.subject, l.body, l.sequence_step
         from outreach_logs l join send_jobs j on j.outreach_log_id = l.id
         order by l.created_at, l.recipient",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

/// An outreach log as the workers and webhooks would have left it.
async fn seed_log(
    pool: &PgPool,
    practice: Uuid,
    channel: &str,
    status: &str,
    provider: Option<&str>,
    created_at: DateTime<Utc>,
) -> Uuid {
    let id = Uuid::new_v4();
    sqlx::query(
        "insert into outreach_logs (id, practice_id, message_type, status, messaging_provider, recipient, body, created_at, updated_at)
         values ($1, $2, $3, $4, $5, 'pat@example.com', 'Hello', $6, $6)",
    )
    .bind(id)
    .bind(practice)
    .bind(channel)
    .bind(status)
    .bind(provider)
    .bind(created_at)
    .execute(pool)
    .await
    .unwrap();
    id
}

#[tokio::test]
async fn a_patient_is_created_read_changed_and_deleted() {
    let app = spawn_app().await;
    let owner = app.practice_owner().await;
    let created = create_patient(
        &app,
        &owner,
        json!({"firstName": " Pat ", "lastName": "Lee", "email": "Pat@Example.COM"}),
    )
    .await;
    assert_eq!(created["firstName"], "Pat");
    assert_eq!(created["email"], "Pat@example.com");
    assert_eq!(created["phone"], Value::Null);
    let path = format!("/api/patients/{}", created["id"].as_str().unwrap());
    assert_eq!(json_of(app.get(&path, &owner).await, 200).await, created);

    let changed = app
        .send_json(
            Method::PATCH,
            &path,
            &owner,
            &json!({"phone": "+15551234567", "email": null}),
        )
        .await;
    let changed = json_of(changed, 200).await;
    assert_eq!(
        (changed["firstName"].as_str(), changed["email"].as_str()),
        (Some("Pat"), None)
    );
    assert_eq!(changed["phone"], "+15551234567");
    let unreachable = app
        .send_json(Method::PATCH, &path, &owner, &json!({"phone": null}))
        .await;
    assert_eq!(invalid_fields(unreachable).await, ["email", "phone"]);

    let deleted = app
        .request(Method::DELETE, &path, Some(&owner))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    assert_eq!(app.get(&path, &owner).await.status(), 404);
}

#[tokio::test]
async fn every_invalid_patient_field_is_named_in_one_422() {
    let app = spawn_app().await;
    let staff = app
        .login_as(Some(app.create_practice("Smile Dental").await), Role::Staff)
        .await;
    let bad = json!({"firstName": "  ", "email": "not-an-email", "phone": "555-1234"});
    let response = app
        .send_json(Method::POST, "/api/patients", &staff, &bad)
        .await;
    assert_eq!(
        invalid_fields(response).await,
        ["email", "firstName", "lastName", "phone"]
    );

    let unreachable = json!({"firstName": "Pat", "lastName": "Lee", "email": "", "phone": null});
    let response = app
        .send_json(Method::POST, "/api/patients", &staff, &unreachable)
        .await;
    assert_eq!(invalid_fields(response).await, ["email", "phone"]);
}

#[tokio::test]
async fn another_practices_patient_is_not_found_and_not_listed() {
    let app = spawn_app().await;
    let ours = app.practice_owner().await;
    let theirs = app.practice_owner().await;
    let id = patient_id(&app, &theirs, "Pat", "Lee", None, Some("+15551234567")).await;
    let path = format!("/api/patients/{id}");

    assert_eq!(app.get(&path, &ours).await.status(), 404);
    assert_eq!(
        app.send_json(Method::PATCH, &path, &ours, &json!({"firstName": "Mal"}))
            .await
            .status(),
        404
    );
    assert_eq!(delete(&app, &path, &ours).await, 404);
    let listed = json_of(app.get("/api/patients", &ours).await, 200).await;
    assert_eq!(listed["items"], json!([]));
    assert_eq!(
        json_of(app.get(&path, &theirs).await, 200).await["firstName"],
        "Pat"
    );
}

#[tokio::test]
async fn a_wrongly_typed_field_deep_in_a_body_is_a_422_naming_its_path() {
    let app = spawn_app().await;
    let owner = app.practice_owner().await;
    let steps = json!([
        {"channel": "email", "delayMinutes": 0, "subject": "Hi", "body": "One"},
        {"channel": "sms", "delayMinutes": "tomorrow", "body": "Two"}
    ]);
    let sequence = app
        .send_json(
            Method::POST,
            "/api/sequences",
            &owner,
            &json!({"name": "Recall", "steps": steps}),
        )
        .await;
    assert_eq!(invalid_fields(sequence).await, ["steps[1].delayMinutes"]);
    let message = json!({"patientId": 7, "channel": "email", "body": "Hi"});
    let queued = app
        .send_json(Method::POST, "/api/outreach/messages", &owner, &message)
        .await;
    assert_eq!(invalid_fields(queued).await, ["patientId"]);
}

/// Found by the hostile-input drill: a NUL in a search or a message body reached Postgres, whose
/// text cannot hold it, and failed the request with a 500.
#[tokio::test]
async fn a_nul_character_in_a_query_or_a_json_field_is_a_422_naming_it_and_stores_nothing() {
    let app = spawn_app().await;
    let owner = app.practice_owner().await;
    let pat = patient_id(&app, &owner, "Pat", "Lee", Some("pat@example.com"), None).await;

    let search = app.get("/api/patients?search=Le%00e", &owner).await;
    assert_eq!(invalid_fields(search).await, ["search"]);
    let message =
        json!({"patientId": pat, "channel": "email", "subject": "Hi", "body": "See you\u{0}soon"});
    let queued = app
        .send_json(Method::POST, "/api/outreach/messages", &owner, &message)
        .await;
    assert_eq!(invalid_fields(queued).await, ["body"]);
    let steps =
        json!([{"channel": "email", "delayMinutes": 0, "subject": "Hi", "body": "a\u{0}b"}]);
    let sequence = app
        .send_json(
            Method::POST,
            "/api/sequences",
            &owner,
            &json!({"name": "Recall", "steps": steps}),
        )
        .await;
    assert_eq!(invalid_fields(sequence).await, ["steps[0].body"]);

    let stored: (i64, i64) = sqlx::query_as(
        "select (select count(*) from outreach_logs), (select count(*) from sequences)",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(stored, (0, 0));
}

#[tokio::test]
async fn patients_are_listed_by_name_a_page_at_a_time_and_searched_case_insensitively() {
    let app = spawn_app().await;
    let owner = app.practice_owner().await;
    for (first, last) in [
        ("Ann", "Zed"),
        ("bob", "adams"),
        ("Cy", "Adams"),
        ("Dee", "Moss"),
        ("Eve", "moss"),
        ("100%", "Real"),
    ] {
        patient_id(&app, &owner, first, last, Some("x@example.com"), None).await;
    }
    let mut names = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(cursor) => format!("/api/patients?limit=4&cursor={cursor}"),
            None => "/api/patients?limit=4".to_string(),
        };
        let page = json_of(app.get(&path, &owner).await, 200).await;
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 4);
        names.extend(items.iter().map(|p| {
            format!(
                "{} {}",
                p["firstName"].as_str().unwrap(),
                p["lastName"].as_str().unwrap()
            )
        }));
        match page["nextCursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    assert_eq!(
        names,
        [
            "bob adams",
            "Cy Adams",
            "Dee Moss",
            "Eve moss",
            "100% Real",
            "Ann Zed"
        ]
    );

    let (app, owner) = (&app, &owner);
    let search = |q: &str| {
        let path = format!(
            "/api/patients?search={}",
            url::form_urlencoded::byte_serialize(q.as_bytes()).collect::<String>()
        );
        async move {
            let page = json_of(app.get(&path, owner).await, 200).await;
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["firstName"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(search("ADAMS").await, ["bob", "Cy"]);
    assert_eq!(search("mos e").await, ["Dee", "Eve"]);
    assert_eq!(search("%").await, ["100%"]);
    assert_eq!(search("nobody").await, Vec::<String>::new());

    let bad = app
        .get("/api/patients?limit=500&cursor=garbage", owner)
        .await;
    assert_eq!(invalid_fields(bad).await, ["cursor", "limit"]);
}

#[tokio::test]
async fn deleting_a_patient_keeps_their_outreach_history() {
    let app = spawn_app().await;
    let owner = app.practice_owner().await;
    let patient: Uuid = patient_id(&app, &owner, "Pat", "Lee", Some("pat@example.com"), None)
        .await
        .parse()
        .unwrap();
    let mut db = app.pool.acquire().await.unwrap();
    let message = NewMessage {
        practice_id: owner.practice_id.unwrap(),
        patient_id: Some(patient),
        channel: Channel::Email,
        recipient: "pat@example.com".into(),
        subject: Some("Hello".into()),
        body: "Time for a check-up".into(),
        sequence_enrollment_id: None,
        sequence_step: None,
        category: dentite::compliance::Category::Care,
    };
    let log = queue::enqueue(&mut db, &message).await.unwrap().id;
    drop(db);

    let deleted = app
        .request(
            Method::DELETE,
            &format!("/api/patients/{patient}"),
            Some(&owner),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    let kept = json_of(
        app.get(&format!("/api/outreach/logs/{log}"), &owner).await,
        200,
    )
    .await;
    assert_eq!(
        (kept["patientId"].clone(), kept["recipient"].clone()),
        (Value::Null, json!("pat@example.com"))
    );
}

#[tokio::test]
async fn a_sequence_with_an_unknown_placeholder_is_refused_naming_the_step_field() {
    let app = spawn_app().await;
    let owner = app.practice_owner().await;
    let body = json!({"name": "Recall", "steps": [
        {"channel": "sms", "delayMinutes": 0, "body": "Hi {{firstName}}, your {{appointmentDate}}"},
        {"channel": "email", "delayMinutes": 60, "subject": "{{ Practice }}", "body": "From {{practiceName}}"},
        {"channel": "email", "delayMinutes": -5, "body": "x"},
    ]});
    let response = app
        .send_json(Method::POST, "/api/sequences", &owner, &body)
        .await;
    let error = json_of(response, 422).await;
    let fields = error["error"]["fields"].as_object().unwrap();
    assert_eq!(
        fields.keys().collect::<Vec<_>>(),
        [
            "steps[0].body",
            "steps[1].subject",
            "steps[2].delayMinutes",
            "steps[2].subject"
        ]
    );
    assert!(
        fields["steps[0].body"]
            .as_str()
            .unwrap()
            .contains("{{appointmentDate}}"),
        "{error}"
    );
}

#[tokio::test]
async fn a_sequence_is_created_listed_changed_and_deleted() {
    let app = spawn_app().await;
    let owner = app.practice_owner().await;
    let id = create_sequence(
        &app,
        &owner,
        json!([{"channel": "email", "delayMinutes": 0, "subject": "Hi", "body": "Hello"}]),
    )
    .await;
    let path = format!("/api/sequences/{id}");
    let sequence = json_of(app.get(&path, &owner).await, 200).await;
    assert_eq!(sequence["status"], "active");
    assert_eq!(
        sequence["enrollments"],
        json!({"active": 0, "completed": 0, "stopped": 0})
    );
    assert_eq!(
        sequence["steps"],
        json!([{"channel": "email", "delayMinutes": 0, "subject": "Hi", "body": "Hello", "category": "care"}])
    );

    let renamed = app
        .send_json(
            Method::PATCH,
            &path,
            &owner,
            &json!({"name": "Winter recall", "status": "paused"}),
        )
        .await;
    let renamed = json_of(renamed, 200).await;
    assert_eq!(
        (renamed["name"].as_str(), renamed["status"].as_str()),
        (Some("Winter recall"), Some("paused"))
    );
    assert_eq!(renamed["steps"], sequence["steps"]);
    let listed = json_of(app.get("/api/sequences", &owner).await, 200).await;
    assert_eq!(listed["items"][0]["id"], id.as_str());

    let other = app.practice_owner().await;
    assert_eq!(app.get(&path, &other).await.status(), 404);
    assert_eq!(delete(&app, &path, &owner).await, 204);
    assert_eq!(app.get(&path, &owner).await.status(), 404);
}

#[tokio::test]
async fn enrolling_counts_new_and_repeated_patients_and_refuses_another_practices_patient() {
    let app = TestEnv::new().without_background().spawn().await;
    let owner = app.practice_owner().await;
    let other = app.practice_owner().await;
    let sequence = create_sequence(
        &app,
        &owner,
        json!([{"channel": "sms", "delayMinutes": 30, "body": "Hi"}]),
    )
    .await;
    let pat = patient_id(&app, &owner, "Pat", "Lee", None, Some("+15551230001")).await;
    let sam = patient_id(&app, &owner, "Sam", "Kim", None, Some("+15551230002")).await;
    let stranger = patient_id(&app, &other, "Mal", "Ory", None, Some("+15551230003")).await;

    assert_eq!(
        enroll(&app, &owner, &sequence, &[&pat]).await,
        json!({"enrolled": 1, "alreadyEnrolled": 0})
    );
    assert_eq!(
        enroll(&app, &owner, &sequence, &[&pat, &sam, &sam]).await,
        json!({"enrolled": 1, "alreadyEnrolled": 1})
    );
    let (status, step, _, next_run_at) = enrollment(&app.pool, &sequence, &sam).await;
    assert_eq!((status.as_str(), step), ("active", 0));
    let wait = next_run_at.unwrap() - Utc::now();
    assert!(
        wait > Duration::minutes(29) && wait <= Duration::minutes(30),
        "first step waits its delay: {wait}"
    );

    let path = format!("/api/sequences/{sequence}/enrollments");
    let refused = app
        .send_json(
            Method::POST,
            &path,
            &owner,
            &json!({"patientIds": [pat, stranger]}),
        )
        .await;
    assert_eq!(invalid_fields(refused).await, ["patientIds[1]"]);
    let unknown_sequence = format!("/api/sequences/{}/enrollments", Uuid::new_v4());
    assert_eq!(
        app.send_json(
            Method::POST,
            &unknown_sequence,
            &owner,
            &json!({"patientIds": [pat]})
        )
        .await
        .status(),
        404
    );
    assert_eq!(
        app.send_json(
            Method::POST,
            &path,
            &other,
            &json!({"patientIds": [stranger]})
        )
        .await
        .status(),
        404
    );
}

#[tokio::test]
async fn a_due_first_step_is_queued_once_by_two_concurrent_schedulers_and_the_enrolments_advance() {
    let app = TestEnv::new().without_background().spawn().await;
    let owner = app.practice_owner().await;
    let sequence = create_sequence(
        &app,
        &owner,
        json!([
            {"channel": "email", "delayMinutes": 0, "subject": "{{practiceName}} misses you", "body": "Hi {{firstName}} {{lastName}}"},
            {"channel": "email", "delayMinutes": 60, "subject": "Reminder", "body": "Still there, {{firstName}}?"},
        ]),
    )
    .await;
    let mut patients = Vec::new();
    for n in 0..20 {
        patients.push(
            patient_id(
                &app,
                &owner,
                &format!("P{n:02}"),
                "Lee",
                Some(&format!("p{n:02}@example.com")),
                None,
            )
            .await,
        );
    }
    let ids: Vec<&str> = patients.iter().map(String::as_str).collect();
    enroll(&app, &owner, &sequence, &ids).await;

    let scheduler = |pool: PgPool| {
        tokio::spawn(async move {
            let mut queued = 0;
            loop {
                match enqueue_due_steps(&pool, 3).await.unwrap() {
                    0 => return queued,
                    n => queued += n,
                }
            }
        })
    };
    let (a, b) = (scheduler(app.pool.clone()), scheduler(app.pool.clone()));
    assert_eq!(a.await.unwrap() + b.await.unwrap(), 20);
    assert_eq!(
        enqueue_due_steps(&app.pool, 100).await.unwrap(),
        0,
        "nothing is due twice"
    );

    let messages = queued_messages(&app.pool).await;
    let recipients: std::collections::BTreeSet<&str> =
        messages.iter().map(|m| m.1.as_str()).collect();
    assert_eq!(
        (messages.len(), recipients.len()),
        (20, 20),
        "each patient's first step is queued exactly once"
    );
    let first = messages.iter().find(|m| m.1 == "p00@example.com").unwrap();
    assert_eq!(
        first,
        &(
            "email".into(),
            "p00@example.com".into(),
            Some("Smile Dental misses you".into()),
            "Hi P00 Lee".into(),
            Some(0)
        )
    );
    let (status, step, _, next_run_at) = enrollment(&app.pool, &sequence, &patients[0]).await;
    assert_eq!((status.as_str(), step), ("active", 1));
    assert!(
        next_run_at.unwrap() - Utc::now() > Duration::minutes(59),
        "the second step waits its delay"
    );

    make_due(&app.pool).await;
    assert_eq!(enqueue_due_steps(&app.pool, 100).await.unwrap(), 20);
    let (status, step, _, next_run_at) = enrollment(&app.pool, &sequence, &patients[0]).await;
    assert_eq!((status.as_str(), step, next_run_at), ("completed", 2, None));
    let counts = json_of(
        app.get(&format!("/api/sequences/{sequence}"), &owner).await,
        200,
    )
    .await;
    assert_eq!(
        counts["enrollments"],
        json!({"active": 0, "completed": 20, "stopped": 0})
    );
}

#[tokio::test]
async fn a_paused_sequence_queues_nothing_until_it_is_resumed() {
    let app = TestEnv::new().without_background().spawn().await;
    let SmsSequence {
        owner,
        sequence,
        pat,
    } = sms_sequence(&app).await;
    let path = format!("/api/sequences/{sequence}");
    json_of(
        app.send_json(Method::PATCH, &path, &owner, &json!({"status": "paused"}))
            .await,
        200,
    )
    .await;
    enroll(&app, &owner, &sequence, &[&pat]).await;

    assert_eq!(enqueue_due_steps(&app.pool, 100).await.unwrap(), 0);
    assert_eq!(enrollment(&app.pool, &sequence, &pat).await.0, "active");
    json_of(
        app.send_json(Method::PATCH, &path, &owner, &json!({"status": "active"}))
            .await,
        200,
    )
    .await;
    assert_eq!(enqueue_due_steps(&app.pool, 100).await.unwrap(), 1);
    assert_eq!(queued_messages(&app.pool).await[0].3, "Hi Pat");
}

#[tokio::test]
async fn a_suppressed_or_unreachable_patients_enrolment_stops_without_queuing() {
    let app = TestEnv::new().without_background().spawn().await;
    let owner = app.practice_owner().await;
    let practice = owner.practice_id.unwrap();
    let sequence = create_sequence(
        &app,
        &owner,
        json!([{"channel": "sms", "delayMinutes": 0, "body": "Hi"}]),
    )
    .await;
    let opted_out = patient_id(&app, &owner, "Opt", "Out", None, Some("+15551230001")).await;
    let system_stop = patient_id(&app, &owner, "Sys", "Stop", None, Some("+15551230002")).await;
    let email_only = patient_id(&app, &owner, "Em", "Ail", Some("em@example.com"), None).await;
    suppression::add(
        &app.pool,
        Scope::Practice(practice),
        Channel::Sms,
        "+15551230001",
        SuppressionReason::OptedOut,
        dentite::messaging::suppression::SuppressionSource::SmsKeyword,
    )
    .await
    .unwrap();
    suppression::add(
        &app.pool,
        Scope::SystemSender,
        Channel::Sms,
        "+15551230002",
        SuppressionReason::OptedOut,
        dentite::messaging::suppression::SuppressionSource::SmsKeyword,
    )
    .await
    .unwrap();
    enroll(
        &app,
        &owner,
        &sequence,
        &[&opted_out, &system_stop, &email_only],
    )
    .await;

    assert_eq!(enqueue_due_steps(&app.pool, 100).await.unwrap(), 0);
    assert!(queued_messages(&app.pool).await.is_empty());
    for (patient, reason) in [
        (&opted_out, "opted_out"),
        (&system_stop, "opted_out"),
        (&email_only, "missing_phone"),
    ] {
        let (status, _, stop_reason, next_run_at) = enrollment(&app.pool, &sequence, patient).await;
        assert_eq!(
            (status.as_str(), stop_reason.as_deref(), next_run_at),
            ("stopped", Some(reason), None)
        );
    }
}

#[tokio::test]
async fn removing_an_enrolment_stops_it_and_enrolling_again_restarts_it() {
    let app = TestEnv::new().without_background().spawn().await;
    let SmsSequence {
        owner,
        sequence,
        pat,
    } = sms_sequence(&app).await;
    enroll(&app, &owner, &sequence, &[&pat]).await;

    let path = format!("/api/sequences/{sequence}/enrollments/{pat}");
    let other = app.practice_owner().await;
    assert_eq!(delete(&app, &path, &other).await, 404);
    assert_eq!(delete(&app, &path, &owner).await, 204);
    assert_eq!(
        delete(&app, &path, &owner).await,
        204,
        "stopping twice is harmless"
    );
    assert_eq!(enqueue_due_steps(&app.pool, 100).await.unwrap(), 0);
    let (status, _, reason, _) = enrollment(&app.pool, &sequence, &pat).await;
    assert_eq!(
        (status.as_str(), reason.as_deref()),
        ("stopped", Some("removed"))
    );

    assert_eq!(
        enroll(&app, &owner, &sequence, &[&pat]).await,
        json!({"enrolled": 1, "alreadyEnrolled": 0})
    );
    assert_eq!(enqueue_due_steps(&app.pool, 100).await.unwrap(), 1);
    let never_enrolled = format!("/api/sequences/{sequence}/enrollments/{}", Uuid::new_v4());
    assert_eq!(delete(&app, &never_enrolled, &owner).await, 404);
}

#[tokio::test]
async fn enrolments_are_listed_with_their_state_and_why_they_stopped() {
    let app = TestEnv::new().without_background().spawn().await;
    let SmsSequence {
        owner,
        sequence,
        pat,
    } = sms_sequence(&app).await;
    let kim = patient_id(&app, &owner, "Kim", "Ode", None, Some("+15557654321")).await;
    enroll(&app, &owner, &sequence, &[&pat]).await;
    enroll(&app, &owner, &sequence, &[&kim]).await;
    let path = format!("/api/sequences/{sequence}/enrollments");
    assert_eq!(delete(&app, &format!("{path}/{pat}"), &owner).await, 204);

    let listed = json_of(app.get(&path, &owner).await, 200).await;
    let summary: Vec<(&str, &str, Option<&str>, bool)> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["firstName"].as_str().unwrap(),
                e["status"].as_str().unwrap(),
                e["stopReason"].as_str(),
                e["nextRunAt"].is_string(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("Kim", "active", None, true),
            ("Pat", "stopped", Some("removed"), false)
        ]
    );
    let stopped = json_of(
        app.get(&format!("{path}?status=stopped"), &owner).await,
        200,
    )
    .await;
    assert_eq!(stopped["items"].as_array().unwrap().len(), 1);
    assert_eq!(stopped["items"][0]["patientId"], pat.as_str());
    let paged = json_of(app.get(&format!("{path}?limit=1"), &owner).await, 200).await;
    let rest = format!(
        "{path}?limit=1&cursor={}",
        paged["nextCursor"].as_str().unwrap()
    );
    assert_eq!(
        json_of(app.get(&rest, &owner).await, 200).await["items"][0]["firstName"],
        "Pat"
    );

    assert_eq!(
        invalid_fields(app.get(&format!("{path}?status=paused"), &owner).await).await,
        ["status"]
    );
    let other = app.practice_owner().await;
    assert_eq!(app.get(&path, &other).await.status(), 404);
}

#[tokio::test]
async fn outreach_logs_are_filtered_and_paged_newest_first() {
    let app = TestEnv::new().without_background().spawn().await;
    let staff = app
        .login_as(Some(app.create_practice("Smile Dental").await), Role::Staff)
        .await;
    let practice = staff.practice_id.unwrap();
    let now = Utc::now();
    let hours_ago = |h: i64| now - Duration::hours(h);
    let delivered_email = seed_log(
        &app.pool,
        practice,
        "email",
        "delivered",
        Some("custom_sendgrid"),
        hours_ago(1),
    )
    .await;
    let failed_sms = seed_log(
        &app.pool,
        practice,
        "sms",
        "failed",
        Some("system_twilio"),
        hours_ago(2),
    )
    .await;
    let queued_sms = seed_log(&app.pool, practice, "sms", "queued", None, hours_ago(3)).await;
    let old_email = seed_log(
        &app.pool,
        practice,
        "email",
        "sent",
        Some("system_sendgrid"),
        hours_ago(48),
    )
    .await;
    seed_log(
        &app.pool,
        app.create_practice("Elsewhere").await,
        "sms",
        "failed",
        Some("system_twilio"),
        hours_ago(1),
    )
    .await;

    let ids = |page: &Value| {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["id"].as_str().unwrap().parse::<Uuid>().unwrap())
            .collect::<Vec<_>>()
    };
    let first = json_of(app.get("/api/outreach/logs?limit=3", &staff).await, 200).await;
    assert_eq!(ids(&first), [delivered_email, failed_sms, queued_sms]);
    let next = format!(
        "/api/outreach/logs?limit=3&cursor={}",
        first["nextCursor"].as_str().unwrap()
    );
    let second = json_of(app.get(&next, &staff).await, 200).await;
    assert_eq!(
        (ids(&second), second.get("nextCursor")),
        (vec![old_email], None)
    );

    let filtered = |query: String| {
        let path = format!("/api/outreach/logs?{query}");
        let staff = &staff;
        let app = &app;
        async move { ids(&json_of(app.get(&path, staff).await, 200).await) }
    };
    assert_eq!(
        filtered("channel=sms".into()).await,
        [failed_sms, queued_sms]
    );
    assert_eq!(filtered("status=failed".into()).await, [failed_sms]);
    assert_eq!(
        filtered("provider=system_sendgrid".into()).await,
        [old_email]
    );
    let since = (now - Duration::hours(24)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let until = hours_ago(2).to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    assert_eq!(
        filtered(format!("since={since}&until={until}")).await,
        [queued_sms]
    );

    let bad = app.get("/api/outreach/logs?channel=fax&status=lost&provider=mailgun&since=yesterday&until=soon", &staff).await;
    assert_eq!(
        invalid_fields(bad).await,
        ["channel", "provider", "since", "status", "until"]
    );
}

#[tokio::test]
async fn outreach_logs_are_found_by_a_recipient_prefix_ignoring_case_and_by_category() {
    let app = TestEnv::new().without_background().spawn().await;
    let staff = app
        .login_as(Some(app.create_practice("Smile Dental").await), Role::Staff)
        .await;
    let practice = staff.practice_id.unwrap();
    let mut seeded = Vec::new();
    for (recipient, category, hours) in [
        ("Ann.Lee@Example.com", "care", 1),
        ("ann.lee@example.com", "marketing", 2),
        ("anna_b@example.com", "care", 3),
        ("+15551234567", "care", 4),
    ] {
        let log = seed_log(
            &app.pool,
            practice,
            if recipient.starts_with('+') {
                "sms"
            } else {
                "email"
            },
            "sent",
            None,
            Utc::now() - Duration::hours(hours),
        )
        .await;
        sqlx::query("update outreach_logs set recipient = $2, category = $3 where id = $1")
            .bind(log)
            .bind(recipient)
            .bind(category)
            .execute(&app.pool)
            .await
            .unwrap();
        seeded.push(log);
    }
    let [ann_care, ann_marketing, anna, phone] = seeded[..] else {
        unreachable!()
    };
    let found = async |query: &str| -> Vec<Uuid> {
        let page = json_of(
            app.get(&format!("/api/outreach/logs?{query}"), &staff)
                .await,
            200,
        )
        .await;
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["id"].as_str().unwrap().parse().unwrap())
            .collect()
    };
    assert_eq!(
        found("recipient=ANN.LEE%40example.COM").await,
        [ann_care, ann_marketing]
    );
    assert_eq!(
        found("recipient=ann").await,
        [ann_care, ann_marketing, anna]
    );
    // `_` and `%` are letters here, not wildcards.
    assert_eq!(found("recipient=ann_").await, Vec::<Uuid>::new());
    assert_eq!(found("recipient=anna_").await, [anna]);
    assert_eq!(found("recipient=%25").await, Vec::<Uuid>::new());
    assert_eq!(found("recipient=%2B1555").await, [phone]);
    assert_eq!(
        found("recipient=ann&category=marketing").await,
        [ann_marketing]
    );
    let bad = app
        .get(
            &format!(
                "/api/outreach/logs?category=promo&recipient={}",
                "a".repeat(255)
            ),
            &staff,
        )
        .await;
    assert_eq!(invalid_fields(bad).await, ["category", "recipient"]);
}

#[tokio::test]
async fn a_console_following_the_logs_hears_when_its_practices_messages_change() {
    let app = TestEnv::new().without_background().spawn().await;
    let owner = app.practice_owner().await;
    let patient = patient_id(&app, &owner, "Pat", "Lee", Some("pat@example.com"), None).await;
    let follow = app.request(Method::GET, "/api/outreach/logs/changes", None);
    assert_eq!(follow.send().await.unwrap().status(), 401);

    let mut stream = app
        .request(Method::GET, "/api/outreach/logs/changes", Some(&owner))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    assert_eq!(
        stream.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let mut heard = String::new();
    let mut until_event = async |event: &str| {
        let wanted = format!("event: {event}");
        tokio::time::timeout(std::time::Duration::from_secs(10), async {
            while !heard.contains(&wanted) {
                let chunk = stream
                    .chunk()
                    .await
                    .unwrap()
                    .expect("the stream stays open");
                heard.push_str(std::str::from_utf8(&chunk).unwrap());
            }
            heard.clear();
        })
        .await
        .unwrap_or_else(|_| panic!("no {event} event within 10 s"));
    };
    until_event("ready").await;
    let body =
        json!({"patientId": patient, "channel": "email", "subject": "Recall", "body": "Hello"});
    let queued = app
        .send_json(Method::POST, "/api/outreach/messages", &owner, &body)
        .await;
    assert_eq!(queued.status(), 202);
    until_event("changed").await;
}

#[tokio::test]
async fn a_log_shows_its_provider_events_and_another_practices_log_is_not_found() {
    let app = TestEnv::new().without_background().spawn().await;
    let staff = app
        .login_as(Some(app.create_practice("Smile Dental").await), Role::Staff)
        .await;
    let log = seed_log(
        &app.pool,
        staff.practice_id.unwrap(),
        "email",
        "opened",
        Some("system_sendgrid"),
        Utc::now(),
    )
    .await;
    for (key, event, minutes) in [("e2", "open", 5), ("e1", "delivered", 1)] {
        sqlx::query(
            "insert into provider_events (event_key, provider, practice_id, outreach_log_id, event_type, payload, occurred_at)
             values ($1, 'sendgrid', $2, $3, $4, $5, now() + make_interval(mins => $6))",
        )
        .bind(key)
        .bind(staff.practice_id)
        .bind(log)
        .bind(event)
        .bind(json!({"event": event, "sg_event_id": key}))
        .bind(minutes)
        .execute(&app.pool)
        .await
        .unwrap();
    }

    let detail = json_of(
        app.get(&format!("/api/outreach/logs/{log}"), &staff).await,
        200,
    )
    .await;
    assert_eq!(
        (
            detail["status"].as_str(),
            detail["messagingProvider"].as_str()
        ),
        (Some("opened"), Some("system_sendgrid"))
    );
    assert_eq!(detail["channel"], "email");
    let events = detail["events"].as_array().unwrap();
    assert_eq!(
        events
            .iter()
            .map(|e| e["eventType"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["delivered", "open"]
    );
    assert_eq!(events[1]["payload"]["sg_event_id"], "e2");
    assert!(events[0]["receivedAt"].is_string() && events[0]["occurredAt"].is_string());

    let other = app.practice_owner().await;
    assert_eq!(
        app.get(&format!("/api/outreach/logs/{log}"), &other)
            .await
            .status(),
        404
    );
}

#[tokio::test]
async fn messaging_analytics_count_the_seeded_logs_per_provider_and_type() {
    let app = TestEnv::new().without_background().spawn().await;
    let owner = app.practice_owner().await;
    let practice = owner.practice_id.unwrap();
    let recent = Utc::now() - Duration::days(2);
    for status in ["delivered", "opened", "clicked", "bounced", "sent"] {
        seed_log(
            &app.pool,
            practice,
            "email",
            status,
            Some("custom_sendgrid"),
            recent,
        )
        .await;
    }
    for status in ["delivered", "undelivered", "failed"] {
        seed_log(
            &app.pool,
            practice,
            "sms",
            status,
            Some("system_twilio"),
            recent,
        )
        .await;
    }
    seed_log(&app.pool, practice, "sms", "suppressed", None, recent).await;
    seed_log(
        &app.pool,
        practice,
        "email",
        "delivered",
        Some("custom_sendgrid"),
        Utc::now() - Duration::days(40),
    )
    .await;
    seed_log(
        &app.pool,
        app.create_practice("Elsewhere").await,
        "email",
        "delivered",
        Some("system_sendgrid"),
        recent,
    )
    .await;

    let usage = json_of(app.get("/api/analytics/messaging", &owner).await, 200).await;
    assert_eq!(
        usage,
        json!([
            {"messagingProvider": "custom_sendgrid", "messageType": "email", "total": 5, "delivered": 3, "failed": 1},
            {"messagingProvider": "system_twilio", "messageType": "sms", "total": 3, "delivered": 1, "failed": 2},
            {"messagingProvider": null, "messageType": "sms", "total": 1, "delivered": 0, "failed": 0},
        ])
    );
    let wider = json_of(
        app.get("/api/analytics/messaging?days=60", &owner).await,
        200,
    )
    .await;
    assert_eq!(wider[0]["total"], 6);
    for bad in ["0", "366", "month"] {
        assert_eq!(
            invalid_fields(
                app.get(&format!("/api/analytics/messaging?days={bad}"), &owner)
                    .await
            )
            .await,
            ["days"]
        );
    }
}

#[tokio::test]
async fn platform_usage_needs_a_platform_admin_and_covers_every_practice() {
    let app = TestEnv::new().without_background().spawn().await;
    let smile = app.create_practice("Smile Dental").await;
    let bright = app.create_practice("Bright Teeth").await;
    let recent = Utc::now() - Duration::hours(1);
    seed_log(
        &app.pool,
        smile,
        "email",
        "delivered",
        Some("system_sendgrid"),
        recent,
    )
    .await;
    seed_log(
        &app.pool,
        bright,
        "email",
        "bounced",
        Some("system_sendgrid"),
        recent,
    )
    .await;
    seed_log(
        &app.pool,
        bright,
        "sms",
        "delivered",
        Some("custom_twilio"),
        recent,
    )
    .await;

    let owner = app.login_as(Some(smile), Role::Owner).await;
    let refused = app.get("/api/admin/messaging/usage", &owner).await;
    assert_eq!(json_of(refused, 403).await["error"]["code"], "forbidden");
    let operator = app.login_as(None, Role::PlatformAdmin).await;
    assert_eq!(
        json_of(app.get("/api/analytics/messaging", &operator).await, 403).await["error"]["code"],
        "forbidden"
    );

    let usage = json_of(
        app.get("/api/admin/messaging/usage?days=7", &operator)
            .await,
        200,
    )
    .await;
    assert_eq!(usage["days"], 7);
    assert_eq!(
        usage["rows"],
        json!([
            {"messagingProvider": "custom_twilio", "messageType": "sms", "total": 1, "delivered": 1, "failed": 0},
            {"messagingProvider": "system_sendgrid", "messageType": "email", "total": 2, "delivered": 1, "failed": 1},
        ])
    );
    let practices = usage["practices"].as_array().unwrap();
    assert_eq!(
        practices
            .iter()
            .map(|p| p["practiceName"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["Bright Teeth", "Smile Dental"]
    );
    assert_eq!(practices[0]["practiceId"], bright.to_string());
    assert_eq!(practices[0]["rows"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn every_outreach_route_is_in_the_openapi_document() {
    let app = spawn_app().await;
    let document = json_of(
        app.http
            .get(app.url("/api/openapi.json"))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    let paths = document["paths"].as_object().unwrap();
    for (path, methods) in [
        ("/api/patients", &["post", "get"][..]),
        ("/api/patients/{id}", &["get", "patch", "delete"]),
        ("/api/sequences", &["post", "get"]),
        ("/api/sequences/{id}", &["get", "patch", "delete"]),
        ("/api/sequences/{id}/enrollments", &["post", "get"]),
        ("/api/sequences/{id}/enrollments/{patientId}", &["delete"]),
        ("/api/outreach/logs", &["get"]),
        ("/api/outreach/logs/changes", &["get"]),
        ("/api/outreach/logs/{id}", &["get"]),
        ("/api/analytics/messaging", &["get"]),
        ("/api/admin/messaging/usage", &["get"]),
    ] {
        for method in methods {
            assert!(
                paths[path].get(*method).is_some(),
                "{method} {path} is documented"
            );
        }
    }
    let schemas = document["components"]["schemas"].as_object().unwrap();
    assert!(
        schemas["Patient"]["properties"].get("firstName").is_some(),
        "schemas are camelCase"
    );
}

#[tokio::test]
async fn the_background_scheduler_queues_a_due_step_without_being_driven() {
    let app = spawn_app().await;
    let SmsSequence {
        owner,
        sequence,
        pat,
    } = sms_sequence(&app).await;
    enroll(&app, &owner, &sequence, &[&pat]).await;

    // The scheduler polls every SEND_POLL_MS (50 ms in tests): ten seconds is ample.
    let poll = app.state.settings.queue.poll_interval;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while enrollment(&app.pool, &sequence, &pat).await.0 != "completed" {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the scheduler did not queue the step"
        );
        tokio::time::sleep(poll).await;
    }
    let logs: Vec<(String, Option<i32>)> =
        sqlx::query_as("select body, sequence_step from outreach_logs")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(logs, [("Hi Pat".to_string(), Some(0))]);
}

#[tokio::test]
async fn a_later_step_waits_for_its_delay_and_then_completes_the_enrolment() {
    let app = TestEnv::new().without_background().spawn().await;
    let owner = app.practice_owner().await;
    let steps = json!([
        {"channel": "sms", "delayMinutes": 0, "body": "Hi {{firstName}}"},
        {"channel": "sms", "delayMinutes": 1, "body": "Still there, {{firstName}}?"},
    ]);
    let sequence = create_sequence(&app, &owner, steps).await;
    let pat = patient_id(&app, &owner, "Pat", "Lee", None, Some("+15551234567")).await;
    enroll(&app, &owner, &sequence, &[&pat]).await;

    assert_eq!(enqueue_due_steps(&app.pool, 100).await.unwrap(), 1);
    let (status, next_step, _, next_run_at) = enrollment(&app.pool, &sequence, &pat).await;
    assert_eq!((status.as_str(), next_step), ("active", 1));
    let wait = next_run_at.unwrap() - Utc::now();
    assert!(
        wait > chrono::Duration::seconds(50) && wait <= chrono::Duration::seconds(60),
        "{wait}"
    );
    assert_eq!(
        enqueue_due_steps(&app.pool, 100).await.unwrap(),
        0,
        "not before its delay"
    );

    // The minute passes.
    sqlx::query("update sequence_enrollments set next_run_at = now() - interval '1 second'")
        .execute(&app.pool)
        .await
        .unwrap();
    assert_eq!(enqueue_due_steps(&app.pool, 100).await.unwrap(), 1);
    assert_eq!(queued_messages(&app.pool).await[1].3, "Still there, Pat?");
    assert_eq!(enrollment(&app.pool, &sequence, &pat).await.0, "completed");
}

#[tokio::test]
async fn a_stop_reply_mid_sequence_stops_the_enrolment_before_its_next_step() {
    use dentite::providers::twilio::signature::{TwilioAlgorithm, sign_twilio};
    let app = TestEnv::new()
        .with_system_accounts()
        .without_background()
        .spawn()
        .await;
    let owner = app.practice_owner().await;
    let steps = json!([
        {"channel": "sms", "delayMinutes": 0, "body": "Hi {{firstName}}"},
        {"channel": "sms", "delayMinutes": 0, "body": "Book your cleaning"},
    ]);
    let sequence = create_sequence(&app, &owner, steps).await;
    let pat = patient_id(&app, &owner, "Pat", "Lee", None, Some("+15551234567")).await;
    enroll(&app, &owner, &sequence, &[&pat]).await;
    assert_eq!(enqueue_due_steps(&app.pool, 100).await.unwrap(), 1);

    let params: Vec<(String, String)> = [
        ("AccountSid", crate::helpers::SYSTEM_TWILIO_SID),
        ("MessageSid", "SM00000000000000000000000000000001"),
        ("From", "+15551234567"),
        ("To", crate::helpers::SYSTEM_TWILIO_NUMBER),
        ("Body", "Stop"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let signature = sign_twilio(
        "https://hooks.dentite.test/api/webhooks/twilio-incoming",
        &params,
        crate::helpers::SYSTEM_TWILIO_TOKEN.as_bytes(),
        TwilioAlgorithm::HmacSha1,
    );
    let reply = app
        .http
        .post(app.url("/api/webhooks/twilio-incoming"))
        .header("X-Twilio-Signature", signature)
        .form(&params)
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);

    assert_eq!(enqueue_due_steps(&app.pool, 100).await.unwrap(), 0);
    let (status, next_step, reason, _) = enrollment(&app.pool, &sequence, &pat).await;
    assert_eq!((status.as_str(), next_step), ("stopped", 1));
    assert!(reason.is_some());
}

#[tokio::test]
async fn ad_hoc_and_sequence_subjects_refuse_the_same_line_breaking_characters() {
    let app = spawn_app().await;
    let owner = app.practice_owner().await;
    let patient = create_patient(
        &app,
        &owner,
        json!({"firstName": "Pat", "lastName": "Lee", "email": "pat@example.com"}),
    )
    .await;
    for subject in [
        "Recall\u{85}Bcc: x",
        "Recall\u{2028}due",
        "Recall\u{2029}due",
        "Recall\tdue",
    ] {
        let message = app
            .send_json(
                Method::POST,
                "/api/outreach/messages",
                &owner,
                &json!({"patientId": patient["id"], "channel": "email", "subject": subject, "body": "Hello"}),
            )
            .await;
        assert_eq!(invalid_fields(message).await, ["subject"], "{subject:?}");
        let sequence = app
            .send_json(
                Method::POST,
                "/api/sequences",
                &owner,
                &json!({"name": "Recall", "steps": [{"channel": "email", "delayMinutes": 0, "subject": subject, "body": "Hello"}]}),
            )
            .await;
        assert_eq!(
            invalid_fields(sequence).await,
            ["steps[0].subject"],
            "{subject:?}"
        );
    }
    let queued: i64 = sqlx::query_scalar("select count(*) from outreach_logs")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(queued, 0);
}
