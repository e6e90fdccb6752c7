//! Webhook event keys are scoped to the route that received them: a tenant that signs, on its own
//! route, an event carrying another tenant's ids cannot make that tenant's genuine event a
//! duplicate.

use dentite::providers::twilio::signature::{TwilioAlgorithm, sign_twilio};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{
    MigrationDatabase, SendGridSigner, TestApp, practice_with_sendgrid_key, sendgrid_batch,
    spawn_app,
};

/// `WEBHOOK_BASE_URL` of `TestEnv`: Twilio signs the URL it was given.
const WEBHOOK_BASE: &str = "https://hooks.dentite.test";
const TWILIO_SID: &str = "AC11111111111111111111111111111111";
const TWILIO_TOKEN: &str = "abcdef0123456789abcdef0123456789";
const PATIENT_EMAIL: &str = "pat@example.com";
const PATIENT_PHONE: &str = "+15557654321";

async fn practice_with_own_accounts(app: &TestApp, name: &str) -> (Uuid, SendGridSigner) {
    let (practice, signer) = practice_with_sendgrid_key(app, name).await;
    app.store_twilio_account(practice, TWILIO_SID, TWILIO_TOKEN, "+15551230000")
        .await;
    (practice, signer)
}

async fn sent_log(app: &TestApp, practice: Uuid, channel: &str, message_id: &str) -> Uuid {
    let (provider, recipient) = match channel {
        "email" => ("custom_sendgrid", PATIENT_EMAIL),
        _ => ("custom_twilio", PATIENT_PHONE),
    };
    let id = Uuid::new_v4();
    sqlx::query(
        "insert into outreach_logs (id, practice_id, message_type, messaging_provider, status, recipient, body, provider_message_id)
         values ($1, $2, $3, $4, 'sent', $5, 'See you soon', $6)",
    )
    .bind(id)
    .bind(practice)
    .bind(channel)
    .bind(provider)
    .bind(recipient)
    .bind(message_id)
    .execute(&app.pool)
    .await
    .unwrap();
    id
}

async fn status_of(app: &TestApp, log: Uuid) -> String {
    sqlx::query_scalar("select status from outreach_logs where id = $1")
        .bind(log)
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

async fn post_sendgrid(
    app: &TestApp,
    practice: Uuid,
    signer: &SendGridSigner,
    events: &[Value],
) -> (u16, Value) {
    let body = sendgrid_batch(events);
    let timestamp = chrono::Utc::now().timestamp().to_string();
    let response = app
        .http
        .post(app.url(&format!("/api/webhooks/sendgrid/{practice}")))
        .header("content-type", "application/json")
        .header("X-Twilio-Email-Event-Webhook-Timestamp", &timestamp)
        .header(
            "X-Twilio-Email-Event-Webhook-Signature",
            signer.sign(&timestamp, body.as_bytes()),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

async fn post_twilio(app: &TestApp, path: &str, params: &[(&str, &str)]) -> u16 {
    let params: Vec<(String, String)> = params
        .iter()
        .map(|&(n, v)| (n.to_string(), v.to_string()))
        .collect();
    let signature = sign_twilio(
        &format!("{WEBHOOK_BASE}{path}"),
        &params,
        TWILIO_TOKEN.as_bytes(),
        TwilioAlgorithm::HmacSha1,
    );
    app.http
        .post(app.url(path))
        .header("X-Twilio-Signature", signature)
        .form(&params)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn delivered(event_id: &str, log: Uuid, practice: Uuid) -> Value {
    json!({
        "email": PATIENT_EMAIL, "timestamp": chrono::Utc::now().timestamp(), "event": "delivered",
        "sg_event_id": event_id, "sg_message_id": "b-message.filter0",
        "outreach_log_id": log.to_string(), "practice_id": practice.to_string(),
    })
}

#[tokio::test]
async fn a_sendgrid_event_id_another_tenant_posted_first_still_processes_the_genuine_event() {
    let app = spawn_app().await;
    let (attacker, attacker_signer) = practice_with_own_accounts(&app, "Attacker Dental").await;
    let (victim, victim_signer) = practice_with_own_accounts(&app, "Smile Dental").await;
    let victims_log = sent_log(&app, victim, "email", "b-message").await;
    let event_id = "ZGVsaXZlcmVkLTAtMTIzNDU2";

    let forged = post_sendgrid(
        &app,
        attacker,
        &attacker_signer,
        &[delivered(event_id, victims_log, victim)],
    )
    .await;
    assert_eq!(forged, (200, json!({"received": 1, "stored": 1})));
    assert_eq!(status_of(&app, victims_log).await, "sent");

    let genuine = post_sendgrid(
        &app,
        victim,
        &victim_signer,
        &[delivered(event_id, victims_log, victim)],
    )
    .await;
    assert_eq!(genuine, (200, json!({"received": 1, "stored": 1})));
    assert_eq!(status_of(&app, victims_log).await, "delivered");

    // Its own redelivery is still a duplicate.
    let again = post_sendgrid(
        &app,
        victim,
        &victim_signer,
        &[delivered(event_id, victims_log, victim)],
    )
    .await;
    assert_eq!(again, (200, json!({"received": 1, "stored": 0})));
}

#[tokio::test]
async fn a_twilio_status_callback_for_another_tenants_message_sid_does_not_pre_empt_its_own() {
    let app = spawn_app().await;
    let (attacker, _) = practice_with_own_accounts(&app, "Attacker Dental").await;
    let (victim, _) = practice_with_own_accounts(&app, "Smile Dental").await;
    let sid = format!("SM{}", Uuid::new_v4().simple());
    let victims_log = sent_log(&app, victim, "sms", &sid).await;
    let callback = [
        ("AccountSid", TWILIO_SID),
        ("MessageSid", sid.as_str()),
        ("MessageStatus", "delivered"),
        ("To", PATIENT_PHONE),
    ];

    assert_eq!(
        post_twilio(&app, &format!("/api/webhooks/twilio/{attacker}"), &callback).await,
        200
    );
    assert_eq!(status_of(&app, victims_log).await, "sent");
    assert_eq!(
        post_twilio(&app, &format!("/api/webhooks/twilio/{victim}"), &callback).await,
        200
    );

    assert_eq!(status_of(&app, victims_log).await, "delivered");
}

#[tokio::test]
async fn an_inbound_stop_whose_message_sid_another_tenant_posted_first_still_opts_the_patient_out()
{
    let app = spawn_app().await;
    let (attacker, _) = practice_with_own_accounts(&app, "Attacker Dental").await;
    let (victim, _) = practice_with_own_accounts(&app, "Smile Dental").await;
    let sid = format!("SM{}", Uuid::new_v4().simple());
    let stop = [
        ("AccountSid", TWILIO_SID),
        ("MessageSid", sid.as_str()),
        ("From", PATIENT_PHONE),
        ("To", "+15551230000"),
        ("Body", "STOP"),
    ];

    assert_eq!(
        post_twilio(
            &app,
            &format!("/api/webhooks/twilio-incoming/{attacker}"),
            &stop
        )
        .await,
        200
    );
    assert_eq!(
        post_twilio(
            &app,
            &format!("/api/webhooks/twilio-incoming/{victim}"),
            &stop
        )
        .await,
        200
    );

    let opted_out = dentite::messaging::suppression::check(
        &app.pool,
        victim,
        dentite::messaging::Channel::Sms,
        PATIENT_PHONE,
        false,
    )
    .await
    .unwrap();
    assert_eq!(opted_out.as_deref(), Some("opted_out"));
}

/// The migration that scopes keys, on a database that holds events stored before it.
#[tokio::test]
async fn scoping_event_keys_keeps_existing_events_and_gives_each_the_route_its_account_posts_to() {
    const BEFORE: i64 = 20261202000101;
    let database = MigrationDatabase::migrated_to(BEFORE).await;
    let pool = database.pool.clone();

    let custom = dentite::messaging::settings::create(&pool, "Custom Dental")
        .await
        .unwrap();
    let system = dentite::messaging::settings::create(&pool, "System Dental")
        .await
        .unwrap();
    sqlx::query("update practices set email_provider = 'custom_sendgrid', sms_provider = 'custom_twilio' where id = $1")
        .bind(custom)
        .execute(&pool)
        .await
        .unwrap();
    let log = |practice: Uuid, provider: &'static str| {
        let pool = pool.clone();
        async move {
            let id = Uuid::new_v4();
            sqlx::query("insert into outreach_logs (id, practice_id, message_type, messaging_provider, status, recipient, body) values ($1, $2, 'email', $3, 'sent', 'pat@example.com', 'Hi')")
                .bind(id).bind(practice).bind(provider).execute(&pool).await.unwrap();
            id
        }
    };
    // The custom practice once sent through the system account (before it had its own).
    let custom_sent = log(custom, "custom_sendgrid").await;
    let system_sent = log(custom, "system_sendgrid").await;
    let events: [(&str, &str, Option<Uuid>, Option<Uuid>); 6] = [
        (
            "sendgrid:custom-sent",
            "sendgrid",
            Some(custom),
            Some(custom_sent),
        ),
        (
            "sendgrid:system-sent",
            "sendgrid",
            Some(custom),
            Some(system_sent),
        ),
        ("sendgrid:unknown-on-custom", "sendgrid", Some(custom), None),
        ("twilio:SM1:delivered", "twilio", Some(system), None),
        ("twilio-inbound:SM2", "twilio", Some(system), None),
        ("twilio-inbound:SM3", "twilio", None, None),
    ];
    for (key, provider, practice, log) in events {
        sqlx::query("insert into provider_events (event_key, provider, practice_id, outreach_log_id, event_type, payload) values ($1, $2, $3, $4, 'delivered', '{}')")
            .bind(key).bind(provider).bind(practice).bind(log).execute(&pool).await.unwrap();
    }

    database.migrate().await;

    let routes: Vec<(String, Option<Uuid>)> =
        sqlx::query_as("select event_key, route_practice_id from provider_events order by id")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(
        routes,
        vec![
            ("sendgrid:custom-sent".into(), Some(custom)),
            ("sendgrid:system-sent".into(), None),
            ("sendgrid:unknown-on-custom".into(), Some(custom)),
            ("twilio:SM1:delivered".into(), None),
            ("twilio-inbound:SM2".into(), Some(system)),
            ("twilio-inbound:SM3".into(), None),
        ]
    );
    // A redelivery of an old event to the route it came from is still a duplicate.
    let mut db = pool.acquire().await.unwrap();
    let event = dentite::webhooks::events::NewEvent {
        key: "sendgrid:system-sent".into(),
        practice_id: Some(custom),
        outreach_log_id: Some(system_sent),
        event_type: "delivered".into(),
        provider_message_id: None,
        payload: json!({}),
        occurred_at: None,
    };
    let system_route = dentite::webhooks::Tenant::System;
    let stored = dentite::webhooks::events::append(&mut db, "sendgrid", system_route, &[event])
        .await
        .unwrap();
    assert!(stored.is_empty(), "{stored:?}");
    drop(db);
    database.drop().await;
}
