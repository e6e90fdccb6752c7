//! Compliance from the outside: the practice's sending rules, the message preview (encoding,
//! segments, cost, sending time) and the SMS length limit.

use dentite::auth::Role;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestEnv, spawn_app};

const COMPLIANCE: &str = "/api/practice-settings/messaging/compliance";
const PREVIEW: &str = "/api/outreach/messages/preview";
const MESSAGES: &str = "/api/outreach/messages";

fn settings(timezone: &str, start: &str, end: &str, daily: i64, weekly: i64) -> Value {
    json!({"timezone": timezone, "sendingWindow": {"start": start, "end": end},
           "smsCareDailyCap": daily, "smsCareWeeklyCap": weekly,
           "postalAddress": "1 Main St, Springfield, IL 62701", "contactPhone": "+15551230000",
           "contactEmail": "front@smile.test", "smsSegmentPrice": "0.0079"})
}

async fn fields(response: reqwest::Response) -> Vec<String> {
    assert_eq!(response.status(), 422);
    let body: Value = response.json().await.unwrap();
    body["error"]["fields"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect()
}

#[tokio::test]
async fn compliance_settings_default_to_new_york_eight_to_nine_and_the_legal_caps() {
    let app = spawn_app().await;
    let practice = app.create_practice_in_default_zone("Smile Dental").await;
    let owner = app.login_as(Some(practice), Role::Owner).await;
    let response = app.get(COMPLIANCE, &owner).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["timezone"], "America/New_York");
    assert_eq!(
        body["sendingWindow"],
        json!({"start": "08:00", "end": "21:00"})
    );
    assert_eq!(body["smsCareDailyCap"], 1);
    assert_eq!(body["smsCareWeeklyCap"], 3);
    assert_eq!(body["postalAddress"], Value::Null);
    app.stop().await;
}

#[tokio::test]
async fn owners_change_compliance_settings_and_staff_only_read_them() {
    let app = spawn_app().await;
    let owner = app.practice_owner().await;
    let saved = settings("America/Chicago", "09:00", "17:30", 0, 2);
    let response = app.send_json(Method::PUT, COMPLIANCE, &owner, &saved).await;
    assert_eq!(response.status(), 200);
    let staff = app.login_as(owner.practice_id, Role::Staff).await;
    let read: Value = app.get(COMPLIANCE, &staff).await.json().await.unwrap();
    assert_eq!(read, saved);
    let response = app.send_json(Method::PUT, COMPLIANCE, &staff, &saved).await;
    assert_eq!(response.status(), 403);
    app.stop().await;
}

#[tokio::test]
async fn compliance_settings_refuse_a_fake_zone_a_bad_window_raised_caps_and_a_bad_price_by_field()
{
    let app = spawn_app().await;
    let practice = app.create_practice_in_default_zone("Smile Dental").await;
    let owner = app.login_as(Some(practice), Role::Owner).await;
    let mut bad = settings("Mars/Olympus_Mons", "8am", "07:00", 2, 4);
    bad["smsSegmentPrice"] = json!("0,5");
    let response = app.send_json(Method::PUT, COMPLIANCE, &owner, &bad).await;
    assert_eq!(
        fields(response).await,
        [
            "sendingWindow.start",
            "smsCareDailyCap",
            "smsCareWeeklyCap",
            "smsSegmentPrice",
            "timezone"
        ]
    );
    let backwards = settings("America/Denver", "18:00", "09:00", 1, 3);
    let response = app
        .send_json(Method::PUT, COMPLIANCE, &owner, &backwards)
        .await;
    assert_eq!(fields(response).await, ["sendingWindow.end"]);
    let unchanged: Value = app.get(COMPLIANCE, &owner).await.json().await.unwrap();
    assert_eq!(unchanged["timezone"], "America/New_York");
    app.stop().await;
}

#[tokio::test]
async fn preview_counts_ucs2_segments_lists_the_characters_that_forced_it_and_prices_them() {
    let app = spawn_app().await;
    let owner = app.practice_owner().await;
    let saved = settings("America/New_York", "08:00", "21:00", 1, 3);
    assert_eq!(
        app.send_json(Method::PUT, COMPLIANCE, &owner, &saved)
            .await
            .status(),
        200
    );
    let body = format!("{} 🦷", "a".repeat(68)); // 71 UTF-16 units: over one UCS-2 segment
    let preview: Value = app
        .send_json(
            Method::POST,
            PREVIEW,
            &owner,
            &json!({"channel": "sms", "body": body}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(preview["encoding"], "UCS-2");
    assert_eq!(preview["characters"], 70);
    assert_eq!(preview["segments"], 2);
    assert_eq!(preview["nonGsmCharacters"], json!(["🦷"]));
    assert_eq!(preview["estimatedCost"], "0.0158");
    assert!(
        preview["scheduledFor"].is_string(),
        "SMS always gets a sending time"
    );
    let gsm: Value = app
        .send_json(
            Method::POST,
            PREVIEW,
            &owner,
            &json!({"channel": "sms", "body": "{€}".repeat(54)}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (
            gsm["encoding"].as_str(),
            gsm["characters"].as_u64(),
            gsm["segments"].as_u64()
        ),
        (Some("GSM-7"), Some(162), Some(3)),
        "extension characters count two septets: 324 septets is three 153-septet parts"
    );
    app.stop().await;
}

#[tokio::test]
async fn preview_answers_200_for_a_body_far_over_the_sms_limit() {
    let app = spawn_app().await;
    let owner = app.practice_owner().await;
    let response = app
        .send_json(
            Method::POST,
            PREVIEW,
            &owner,
            &json!({"channel": "sms", "body": "x".repeat(50_000)}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let preview: Value = response.json().await.unwrap();
    assert_eq!(preview["segments"], 327);
    assert!(
        preview.get("estimatedCost").is_none(),
        "no price configured, no cost"
    );
    app.stop().await;
}

#[tokio::test]
async fn preview_says_an_opted_out_number_would_be_suppressed() {
    let app = spawn_app().await;
    let owner = app.practice_owner().await;
    let practice = owner.practice_id.unwrap();
    let patient = app
        .create_patient(practice, "pat@example.com", "+15557654321")
        .await;
    dentite::messaging::suppression::add(
        &app.pool,
        dentite::messaging::suppression::Scope::Practice(practice),
        dentite::messaging::Channel::Sms,
        "+15557654321",
        dentite::messaging::suppression::SuppressionReason::OptedOut,
        dentite::messaging::suppression::SuppressionSource::SmsKeyword,
    )
    .await
    .unwrap();
    let preview: Value = app
        .send_json(
            Method::POST,
            PREVIEW,
            &owner,
            &json!({"channel": "sms", "body": "See you soon", "patientId": patient}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(preview["wouldBeSuppressed"], "opted_out");
    app.stop().await;
}

#[tokio::test]
async fn an_sms_over_ten_segments_is_refused_naming_body_and_ten_is_accepted() {
    let app = TestEnv::new().without_background().spawn().await;
    let owner = app.practice_owner().await;
    let patient = app
        .create_patient(
            owner.practice_id.unwrap(),
            "pat@example.com",
            "+15557654321",
        )
        .await;
    let response = app
        .send_json(
            Method::POST,
            MESSAGES,
            &owner,
            &json!({"patientId": patient, "channel": "sms", "body": "a".repeat(1531)}),
        )
        .await;
    assert_eq!(fields(response).await, ["body"]);
    let response = app
        .send_json(Method::POST, MESSAGES, &owner,
            &json!({"patientId": patient, "channel": "sms", "body": "a".repeat(1530), "category": "marketing"}))
        .await;
    assert_eq!(response.status(), 202);
    let id = response.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let log: Value = app
        .get(&format!("/api/outreach/logs/{id}"), &owner)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(log["segments"], 10);
    assert_eq!(log["category"], "marketing");
    let email = app
        .send_json(Method::POST, MESSAGES, &owner,
            &json!({"patientId": patient, "channel": "email", "subject": "Hi", "body": "a".repeat(5000)}))
        .await;
    assert_eq!(email.status(), 202, "the SMS limit does not apply to email");
    app.stop().await;
}

// Consent ledger and keywords

async fn post_system_inbound(app: &crate::helpers::TestApp, from: &str, body: &str) {
    use dentite::providers::twilio::signature::{TwilioAlgorithm, sign_twilio};
    let sid = format!("SM{}", uuid::Uuid::new_v4().simple());
    let params: Vec<(String, String)> = [
        ("AccountSid", crate::helpers::SYSTEM_TWILIO_SID),
        ("MessageSid", sid.as_str()),
        ("From", from),
        ("To", crate::helpers::SYSTEM_TWILIO_NUMBER),
        ("Body", body),
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
}

async fn consents(
    app: &crate::helpers::TestApp,
    login: &crate::helpers::Login,
    patient: uuid::Uuid,
) -> Value {
    let response = app
        .get(&format!("/api/patients/{patient}/consents"), login)
        .await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

fn grant(channel: &str, category: &str, granted: bool) -> Value {
    json!({"channel": channel, "category": category, "granted": granted, "source": "paper_form",
           "evidence": "signed intake form"})
}

#[tokio::test]
async fn consents_are_appended_newest_first_and_the_newest_of_each_pair_is_in_effect() {
    let app = spawn_app().await;
    let owner = app.practice_owner().await;
    let staff = app.login_as(owner.practice_id, Role::Staff).await;
    let patient = app
        .create_patient(
            owner.practice_id.unwrap(),
            "pat@example.com",
            "+15557654321",
        )
        .await;
    let path = format!("/api/patients/{patient}/consents");
    assert_eq!(
        consents(&app, &owner, patient).await["effective"]["sms"]["marketing"],
        "unknown"
    );
    let first = app
        .send_json(
            Method::POST,
            &path,
            &staff,
            &grant("sms", "marketing", true),
        )
        .await;
    assert_eq!(first.status(), 201);
    let second = app
        .send_json(
            Method::POST,
            &path,
            &owner,
            &grant("sms", "marketing", false),
        )
        .await;
    assert_eq!(second.status(), 201);
    let body = consents(&app, &staff, patient).await;
    assert_eq!(
        body["effective"]["sms"],
        json!({"care": "unknown", "marketing": "revoked"})
    );
    let history = body["history"].as_array().unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[0]["granted"], false);
    assert_eq!(history[1]["recordedBy"]["userId"], json!(staff.user_id));
    assert_eq!(history[1]["evidence"], "signed intake form");
    let mut bad = grant("sms", "marketing", true);
    bad["source"] = json!("carrier_pigeon");
    let response = app.send_json(Method::POST, &path, &owner, &bad).await;
    assert!(response.status().is_client_error());
    let other = app.practice_owner().await;
    let response = app.get(&path, &other).await;
    assert_eq!(
        response.status(),
        404,
        "another practice's patient does not exist"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_stop_reply_to_the_system_number_revokes_sms_consent_at_once_for_every_practices_patient()
{
    let app = TestEnv::new().with_system_accounts().spawn().await;
    let first = app.practice_owner().await;
    let second = app.practice_owner().await;
    let phone = "+15557654321";
    let a = app
        .create_patient(first.practice_id.unwrap(), "a@example.com", phone)
        .await;
    let b = app
        .create_patient(second.practice_id.unwrap(), "b@example.com", phone)
        .await;
    let path = format!("/api/patients/{a}/consents");
    app.send_json(
        Method::POST,
        &path,
        &first,
        &grant("sms", "marketing", true),
    )
    .await;
    post_system_inbound(&app, phone, "STOP").await;
    for (login, patient) in [(&first, a), (&second, b)] {
        let body = consents(&app, login, patient).await;
        assert_eq!(
            body["effective"]["sms"],
            json!({"care": "revoked", "marketing": "revoked"})
        );
        assert_eq!(body["history"][0]["source"], "sms_keyword");
        assert_eq!(body["history"][0]["recordedBy"], Value::Null);
    }
    post_system_inbound(&app, phone, "START").await;
    let body = consents(&app, &first, a).await;
    assert_eq!(
        body["effective"]["sms"],
        json!({"care": "granted", "marketing": "revoked"}),
        "START restores care only: marketing needs a new grant"
    );
    app.stop().await;
}

#[tokio::test]
async fn an_opt_out_phrase_revokes_consent_and_suppresses_the_number_but_a_negated_one_does_not() {
    let app = TestEnv::new().with_system_accounts().spawn().await;
    let owner = app.practice_owner().await;
    let practice = owner.practice_id.unwrap();
    let patient = app
        .create_patient(practice, "pat@example.com", "+15557654321")
        .await;
    post_system_inbound(&app, "+15557654321", "don't stop the reminders, thanks").await;
    assert_eq!(
        consents(&app, &owner, patient).await["effective"]["sms"]["care"],
        "unknown"
    );
    post_system_inbound(&app, "+15557654321", "Please stop texting me").await;
    assert_eq!(
        consents(&app, &owner, patient).await["effective"]["sms"]["care"],
        "revoked"
    );
    let preview: Value = app
        .send_json(
            Method::POST,
            PREVIEW,
            &owner,
            &json!({"channel": "sms", "body": "Hi", "patientId": patient}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(preview["wouldBeSuppressed"], "opted_out");
    app.stop().await;
}

#[tokio::test]
async fn the_unsubscribe_link_revokes_email_marketing_with_source_email_link() {
    let app = spawn_app().await;
    let owner = app.practice_owner().await;
    let practice = owner.practice_id.unwrap();
    let patient = app
        .create_patient(practice, "Pat@Example.com", "+15557654321")
        .await;
    let url = app.state.unsubscribe.url(practice, "pat@example.com");
    let path = url
        .strip_prefix("https://hooks.dentite.test")
        .unwrap()
        .to_string();
    let response = app.http.post(app.url(&path)).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let body = consents(&app, &owner, patient).await;
    assert_eq!(
        body["effective"]["email"],
        json!({"care": "unknown", "marketing": "revoked"})
    );
    assert_eq!(body["history"][0]["source"], "email_link");
    app.stop().await;
}
