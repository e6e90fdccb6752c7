//! Issue 13's findings from checking our traffic against SendGrid's and Twilio's own specs: what
//! their documented payloads must do to our ledgers and logs, and what we must send them.

use dentite::{
    messaging::{Channel, suppression},
    providers::twilio::signature::{TwilioAlgorithm, sign_twilio},
};
use reqwest::{Method, Response};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::stored_account_settings;
use crate::helpers::{
    PATIENT_EMAIL, PATIENT_PHONE, SendGridSigner, TestApp, TestEnv, custom_args, insert_log,
    practice_with_sendgrid_key, sendgrid_batch as batch, sg_event, spawn_app,
};

const WEBHOOK_BASE: &str = "https://hooks.dentite.test";

// SendGrid events

async fn post_sendgrid(app: &TestApp, practice: Uuid, signer: &SendGridSigner, events: &[Value]) {
    let body = batch(events);
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
    assert_eq!(response.status(), 200);
}

/// Every reason the practice's ledger holds for the address, whichever account would send.
async fn ledger(app: &TestApp, practice: Uuid, address: &str) -> Vec<(String, Option<i64>)> {
    sqlx::query_as(
        "select reason, unsubscribe_group from suppressions
         where practice_id = $1 and address = $2 order by id",
    )
    .bind(practice)
    .bind(address)
    .fetch_all(&app.pool)
    .await
    .unwrap()
}

async fn log_status_and_error(app: &TestApp, log: Uuid) -> (String, Option<String>) {
    sqlx::query_as("select status, error from outreach_logs where id = $1")
        .bind(log)
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn drops_for_unsubscribed_and_spam_reporting_addresses_suppress_them_for_every_account() {
    let app = spawn_app().await;
    let (practice, signer) = practice_with_sendgrid_key(&app, "Smile Dental").await;
    let log = insert_log(&app, practice, "email", "sent", "msg-1").await;
    let dropped = |email: &str, reason: &str| {
        let mut event = sg_event("dropped", custom_args(log, practice));
        event["email"] = json!(email);
        event["reason"] = json!(reason);
        event
    };

    post_sendgrid(
        &app,
        practice,
        &signer,
        &[
            dropped("unsub@example.com", "Unsubscribed Address"),
            dropped("spam@example.com", "Spam Reporting Address"),
        ],
    )
    .await;

    for (address, reason) in [
        ("unsub@example.com", "unsubscribed"),
        ("spam@example.com", "spam_reported"),
    ] {
        for via_system in [false, true] {
            assert_eq!(
                suppression::check(&app.pool, practice, Channel::Email, address, via_system)
                    .await
                    .unwrap()
                    .as_deref(),
                Some(reason),
                "{address}, via the system account: {via_system}"
            );
        }
    }
}

#[tokio::test]
async fn a_group_resubscribe_lifts_only_what_that_groups_unsubscribe_added() {
    let app = spawn_app().await;
    let (practice, signer) = practice_with_sendgrid_key(&app, "Smile Dental").await;
    let group = |kind: &str, email: &str, id: i64| {
        let mut event = sg_event(kind, json!({"asm_group_id": id}));
        event["email"] = json!(email);
        event
    };
    post_sendgrid(
        &app,
        practice,
        &signer,
        &[
            group("group_unsubscribe", "pat@example.com", 7),
            group("group_unsubscribe", "bounced@example.com", 7),
            sg_event(
                "bounce",
                json!({"email": "bounced@example.com", "type": "bounce"}),
            ),
            group("group_unsubscribe", "spam@example.com", 7),
            sg_event("spamreport", json!({"email": "spam@example.com"})),
            group("group_unsubscribe", "other@example.com", 8),
        ],
    )
    .await;
    assert_eq!(
        ledger(&app, practice, "pat@example.com").await,
        [("unsubscribed".into(), Some(7))]
    );

    post_sendgrid(
        &app,
        practice,
        &signer,
        &[
            group("group_resubscribe", "Pat@Example.com", 7),
            group("group_resubscribe", "bounced@example.com", 7),
            group("group_resubscribe", "spam@example.com", 7),
            group("group_resubscribe", "other@example.com", 7),
        ],
    )
    .await;

    assert_eq!(ledger(&app, practice, "pat@example.com").await, []);
    assert_eq!(
        suppression::check(&app.pool, practice, Channel::Email, PATIENT_EMAIL, true)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        ledger(&app, practice, "bounced@example.com").await,
        [("bounced".into(), None)],
        "the bounce stays"
    );
    assert_eq!(
        ledger(&app, practice, "spam@example.com").await,
        [("spam_reported".into(), None)],
        "the spam report stays"
    );
    assert_eq!(
        ledger(&app, practice, "other@example.com").await,
        [("unsubscribed".into(), Some(8))],
        "another group's unsubscribe stays"
    );
}

#[tokio::test]
async fn a_blocked_bounce_is_stored_apart_from_a_hard_bounce_and_does_not_suppress() {
    let app = spawn_app().await;
    let (practice, signer) = practice_with_sendgrid_key(&app, "Smile Dental").await;
    let hard = insert_log(&app, practice, "email", "sent", "msg-hard").await;
    let blocked = insert_log(&app, practice, "email", "sent", "msg-blocked").await;
    let bounce = |log: Uuid, email: &str, kind: &str, reason: &str| {
        let mut event = sg_event("bounce", custom_args(log, practice));
        event["email"] = json!(email);
        event["type"] = json!(kind);
        event["reason"] = json!(reason);
        event
    };

    post_sendgrid(
        &app,
        practice,
        &signer,
        &[
            bounce(hard, "gone@example.com", "bounce", "550 5.1.1 user unknown"),
            bounce(
                blocked,
                PATIENT_EMAIL,
                "blocked",
                "554 5.7.1 blocked by policy",
            ),
        ],
    )
    .await;

    assert_eq!(
        log_status_and_error(&app, hard).await,
        (
            "bounced".into(),
            Some("hard bounce: 550 5.1.1 user unknown".into())
        )
    );
    assert_eq!(
        log_status_and_error(&app, blocked).await,
        (
            "bounced".into(),
            Some("blocked (temporary): 554 5.7.1 blocked by policy".into())
        )
    );
    assert_eq!(
        ledger(&app, practice, "gone@example.com").await,
        [("bounced".into(), None)]
    );
    assert_eq!(
        ledger(&app, practice, PATIENT_EMAIL).await,
        [],
        "a block is temporary"
    );
}

// Twilio

const PRACTICE_TWILIO_SID: &str = "AC11111111111111111111111111111111";
const PRACTICE_TWILIO_TOKEN: &str = "abcdef0123456789abcdef0123456789";
const PRACTICE_NUMBER: &str = "+15551230000";

/// A practice sending SMS from its own Twilio account.
async fn practice_with_twilio(app: &TestApp, name: &str) -> Uuid {
    let practice = app.create_practice(name).await;
    app.store_twilio_account(
        practice,
        PRACTICE_TWILIO_SID,
        PRACTICE_TWILIO_TOKEN,
        PRACTICE_NUMBER,
    )
    .await;
    practice
}

/// Posts the form signed as Twilio would sign it for our public URL of `path`.
async fn post_twilio(app: &TestApp, path: &str, token: &str, params: &[(&str, &str)]) -> Response {
    let params: Vec<(String, String)> = params
        .iter()
        .map(|&(name, value)| (name.to_string(), value.to_string()))
        .collect();
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

#[tokio::test]
async fn a_partially_delivered_sms_is_delivered_with_a_note_that_only_part_arrived() {
    let app = spawn_app().await;
    let practice = practice_with_twilio(&app, "Smile Dental").await;
    let sid = "SM0123456789abcdef0123456789abcdef";
    let log = insert_log(&app, practice, "sms", "sent", sid).await;

    let response = post_twilio(
        &app,
        &format!("/api/webhooks/twilio/{practice}"),
        PRACTICE_TWILIO_TOKEN,
        &[
            ("AccountSid", PRACTICE_TWILIO_SID),
            ("MessageSid", sid),
            ("MessageStatus", "partially_delivered"),
            ("To", PATIENT_PHONE),
        ],
    )
    .await;

    assert_eq!(response.status(), 200);
    let (status, error) = log_status_and_error(&app, log).await;
    assert_eq!(status, "delivered");
    assert!(
        error
            .as_deref()
            .is_some_and(|e| e.starts_with("partially delivered:")),
        "{error:?}"
    );
}

#[tokio::test]
async fn an_unusable_key_from_sendgrid_is_not_stored_and_the_practice_is_asked_to_paste_one() {
    use wiremock::{
        Mock, ResponseTemplate,
        matchers::{method, path},
    };
    let app = spawn_app().await;
    let owner = app.practice_owner().await;
    let practice = owner.practice_id.unwrap();
    Mock::given(method("POST"))
        .and(path("/v3/user/webhooks/event/settings"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": "wh-1"})))
        .expect(1)
        .mount(&app.sendgrid)
        .await;
    Mock::given(method("PATCH"))
        .and(path("/v3/user/webhooks/event/settings/signed/wh-1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"id": "wh-1", "public_key": "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE"}),
        ))
        .expect(1)
        .mount(&app.sendgrid)
        .await;

    let body = crate::helpers::save_custom_email(
        &app,
        &owner,
        &[
            "mail.send",
            "user.webhooks.event.settings.create",
            "user.webhooks.event.settings.update",
        ],
    )
    .await;

    assert_eq!(
        body["settings"]["email"]["webhookVerifyKeyConfigured"],
        false
    );
    let note = body["notes"][0].as_str().unwrap();
    assert!(
        note.contains("not a P-256 public key") && note.contains("webhookVerifyKey"),
        "{note}"
    );
    let stored = stored_account_settings(&app.pool, practice, "sendgrid").await;
    assert_eq!(stored["webhookVerifyKey"], Value::Null, "{stored}");
}

#[tokio::test]
async fn a_sequence_sms_over_ten_segments_once_filled_in_fails_without_calling_twilio() {
    let app = TestEnv::new().with_system_accounts().spawn().await;
    let owner = app.practice_owner().await;
    let practice = owner.practice_id.unwrap();
    // The template alone is 9 segments; the practice's long name makes the text 11.
    let template = format!("{{{{practiceName}}}}: {}", "a".repeat(1_350));
    sqlx::query("update practices set name = $1 where id = $2")
        .bind("Smile Dental ".repeat(14).trim_end())
        .bind(practice)
        .execute(&app.pool)
        .await
        .unwrap();
    let patient = app
        .create_patient(practice, PATIENT_EMAIL, PATIENT_PHONE)
        .await;
    let response = app
        .send_json(
            Method::POST,
            "/api/sequences",
            &owner,
            &json!({"name": "Recall", "steps": [{"channel": "sms", "delayMinutes": 0, "body": template}]}),
        )
        .await;
    assert_eq!(response.status(), 201);
    let sequence: Value = response.json().await.unwrap();
    let response = app
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
    assert_eq!(response.status(), 200);

    let mut outcome = None;
    for _ in 0..100 {
        outcome = sqlx::query_as::<_, (String, Option<String>, Option<String>)>(
            "select status, error, messaging_provider from outreach_logs where practice_id = $1",
        )
        .bind(practice)
        .fetch_optional(&app.pool)
        .await
        .unwrap()
        .filter(|(status, ..)| status == "failed");
        if outcome.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (_, error, provider) = outcome.expect("the step's log ends failed");
    assert_eq!(
        error.as_deref(),
        Some(
            "the SMS with its placeholders filled in is 11 SMS segments (GSM-7, 153 characters \
             each); an SMS may have at most 10; nothing was sent"
        )
    );
    assert_eq!(provider, None);
    assert_eq!(app.twilio.received_requests().await.unwrap().len(), 0);
}

async fn post_inbound_help(app: &TestApp, practice: Uuid) -> String {
    let sid = format!("SM{}", Uuid::new_v4().simple());
    let response = post_twilio(
        app,
        &format!("/api/webhooks/twilio-incoming/{practice}"),
        PRACTICE_TWILIO_TOKEN,
        &[
            ("AccountSid", PRACTICE_TWILIO_SID),
            ("MessageSid", &sid),
            ("From", PATIENT_PHONE),
            ("To", PRACTICE_NUMBER),
            ("Body", "HELP"),
        ],
    )
    .await;
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

const EMPTY_TWIML: &str = r#"<?xml version="1.0" encoding="UTF-8"?><Response/>"#;

#[tokio::test]
async fn help_is_left_to_twilio_by_default_on_practice_and_system_numbers() {
    let app = TestEnv::new().with_system_accounts().spawn().await;
    let practice = practice_with_twilio(&app, "Smile Dental").await;

    assert_eq!(post_inbound_help(&app, practice).await, EMPTY_TWIML);

    let response = post_twilio(
        &app,
        "/api/webhooks/twilio-incoming",
        crate::helpers::SYSTEM_TWILIO_TOKEN,
        &[
            ("AccountSid", crate::helpers::SYSTEM_TWILIO_SID),
            ("MessageSid", "SM-system-help"),
            ("From", PATIENT_PHONE),
            ("Body", "INFO"),
        ],
    )
    .await;
    assert_eq!(response.text().await.unwrap(), EMPTY_TWIML);
}

#[tokio::test]
async fn a_practice_turns_its_help_reply_on_in_the_sms_settings_and_it_names_practice_and_contact()
{
    let app = spawn_app().await;
    let owner = app.practice_owner().await;
    let practice = owner.practice_id.unwrap();
    app.configure_custom_twilio(practice, false).await;
    // The numbers and token the webhook test helpers sign with.
    sqlx::query("update practices set name = 'Smile Dental' where id = $1")
        .bind(practice)
        .execute(&app.pool)
        .await
        .unwrap();
    let settings = |enabled: bool| {
        json!({"provider": "custom_twilio", "phoneNumber": crate::helpers::CUSTOM_TWILIO_NUMBER,
               "fallbackEnabled": false, "helpReplyEnabled": enabled})
    };
    let put = |body: Value| {
        let (app, owner) = (&app, &owner);
        async move {
            let response = app
                .send_json(
                    Method::PUT,
                    "/api/practice-settings/messaging/sms",
                    owner,
                    &body,
                )
                .await;
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }
    };

    let (status, refused) = put(settings(true)).await;
    assert_eq!(status, 422, "{refused}");
    assert!(
        refused["error"]["fields"]["helpReplyEnabled"]
            .as_str()
            .is_some_and(|m| m.contains("contactPhone")),
        "{refused}"
    );

    let response = app
        .send_json(
            Method::PUT,
            "/api/practice-settings/messaging/compliance",
            &owner,
            &json!({"timezone": "America/New_York", "sendingWindow": {"start": "08:00", "end": "21:00"},
                    "smsCareDailyCap": 1, "smsCareWeeklyCap": 3, "contactPhone": "+15559870000"}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let (status, saved) = put(settings(true)).await;
    assert_eq!(status, 200, "{saved}");
    assert_eq!(saved["settings"]["sms"]["helpReplyEnabled"], true);
    let shown: Value = app
        .get("/api/practice-settings/messaging", &owner)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(shown["sms"]["helpReplyEnabled"], true);

    let reply = help_reply_from(&app, practice).await;
    assert!(
        reply.contains("<Message>Smile Dental: ")
            && reply.contains("contact +15559870000.")
            && reply.contains("Msg &amp; data rates may apply.")
            && reply.contains("Reply STOP to opt out."),
        "{reply}"
    );

    let (status, _) = put(settings(false)).await;
    assert_eq!(status, 200);
    assert_eq!(help_reply_from(&app, practice).await, EMPTY_TWIML);

    let openapi: Value = app
        .http
        .get(app.url("/api/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for schema in ["SmsSettingsRequest", "SmsSettings"] {
        assert!(
            openapi["components"]["schemas"][schema]["properties"]["helpReplyEnabled"].is_object(),
            "{schema} documents helpReplyEnabled"
        );
    }
}

/// HELP texted to the practice configured by `configure_custom_twilio`, signed with its token.
async fn help_reply_from(app: &TestApp, practice: Uuid) -> String {
    let sid = format!("SM{}", Uuid::new_v4().simple());
    let response = post_twilio(
        app,
        &format!("/api/webhooks/twilio-incoming/{practice}"),
        crate::helpers::CUSTOM_TWILIO_TOKEN,
        &[
            ("AccountSid", crate::helpers::CUSTOM_TWILIO_SID),
            ("MessageSid", &sid),
            ("From", PATIENT_PHONE),
            ("To", crate::helpers::CUSTOM_TWILIO_NUMBER),
            ("Body", "help"),
        ],
    )
    .await;
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}
