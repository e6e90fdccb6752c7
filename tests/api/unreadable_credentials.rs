//! A stored credential that no longer decrypts (altered, or saved under a key this service no
//! longer has) is a 409 naming the field to enter again wherever a practice meets it, a failed
//! message saying so, and a 401 to the provider's webhook: never a 500. The settings read alone
//! still answers 200, with the channel's blocker saying so: it is where the practice re-enters it.

use dentite::{
    crypto::CredentialField,
    providers::twilio::signature::{TwilioAlgorithm, sign_twilio},
};
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{CUSTOM_TWILIO_SID, CUSTOM_TWILIO_TOKEN, Login, TestApp, TestEnv};

const SETTINGS: &str = "/api/practice-settings/messaging";

/// Replaces the stored value with one encrypted for another practice: well formed, but it fails
/// authentication here, as an altered ciphertext does.
async fn make_unreadable(app: &TestApp, practice: Uuid, field: CredentialField, value: &str) {
    let foreign = app.state.keyring.encrypt(value, Uuid::new_v4(), field);
    sqlx::query(
        "update practice_accounts set secrets = jsonb_set(secrets, array[$1], to_jsonb($2::text))
         where practice_id = $3 and secrets ? $1",
    )
    .bind(field.stored_name())
    .bind(foreign)
    .bind(practice)
    .execute(&app.pool)
    .await
    .unwrap();
    app.state.messaging.invalidate(practice).await;
}

async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    login: &Login,
    body: Option<Value>,
) -> (u16, Value) {
    let request = app.request(method, &format!("{SETTINGS}{path}"), Some(login));
    let request = match body {
        Some(body) => request.json(&body),
        None => request,
    };
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// The settings page still opens, the secret shows as stored but unreadable, and the channel's
/// blocker says to enter it again.
fn assert_still_opens_and_says_what_to_do(answer: &(u16, Value), channel: &str) {
    let (status, body) = answer;
    assert_eq!(*status, 200, "{body}");
    let blocker = body[channel]["customBlocker"].as_str().unwrap_or_default();
    assert!(blocker.contains("enter it again"), "{body}");
}

fn assert_names(answer: &(u16, Value), field: &str) {
    let (status, body) = answer;
    assert_eq!(*status, 409, "{body}");
    assert_eq!(body["error"]["code"], "conflict", "{body}");
    let message = body["error"]["fields"][field].as_str().unwrap_or_default();
    assert!(message.contains("enter it again"), "{body}");
}

#[tokio::test]
async fn an_unreadable_twilio_token_is_a_409_naming_it_a_failed_send_and_a_401_to_the_webhook() {
    let app = TestEnv::new()
        .with_system_accounts()
        .without_background()
        .spawn()
        .await;
    let owner = app.practice_owner().await;
    let practice = owner.practice_id.unwrap();
    app.configure_custom_twilio(practice, false).await;
    make_unreadable(
        &app,
        practice,
        CredentialField::TwilioAuthToken,
        CUSTOM_TWILIO_TOKEN,
    )
    .await;

    assert_still_opens_and_says_what_to_do(&call(&app, Method::GET, "", &owner, None).await, "sms");
    assert_names(
        &call(&app, Method::GET, "/status", &owner, None).await,
        "authToken",
    );
    assert_names(
        &call(
            &app,
            Method::POST,
            "/sms/test",
            &owner,
            Some(json!({"to": "+15551234567"})),
        )
        .await,
        "authToken",
    );

    let patient = app
        .create_patient(practice, "pat@example.com", "+15557654321")
        .await;
    let log = app.queue_message(&owner, patient, "sms").await;
    app.drain_queue().await;
    let (status, _, _, _, error) = app.log_row(log).await;
    assert_eq!(status, "failed");
    assert!(
        error
            .as_deref()
            .is_some_and(|e| e.contains("Twilio auth token") && e.contains("enter it again")),
        "{error:?}"
    );
    assert!(
        app.twilio.received_requests().await.unwrap().is_empty(),
        "nothing reached Twilio"
    );

    let path = format!("/api/webhooks/twilio/{practice}");
    let params: Vec<(String, String)> = [
        ("AccountSid", CUSTOM_TWILIO_SID),
        ("MessageSid", "SM0123456789abcdef0123456789abcdef"),
        ("MessageStatus", "delivered"),
    ]
    .map(|(n, v)| (n.to_string(), v.to_string()))
    .into();
    let signature = sign_twilio(
        &format!("https://hooks.dentite.test{path}"),
        &params,
        CUSTOM_TWILIO_TOKEN.as_bytes(),
        TwilioAlgorithm::HmacSha1,
    );
    let webhook = app
        .http
        .post(app.url(&path))
        .header("X-Twilio-Signature", signature)
        .form(&params)
        .send()
        .await
        .unwrap();
    assert_eq!(webhook.status(), 401);
}

#[tokio::test]
async fn an_unreadable_sendgrid_key_is_a_409_naming_it_on_reads_tests_validation_and_domains() {
    let app = TestEnv::new().with_system_accounts().spawn().await;
    let owner = app.practice_owner().await;
    let practice = owner.practice_id.unwrap();
    app.configure_custom_sendgrid(practice, true, false).await;
    make_unreadable(
        &app,
        practice,
        CredentialField::SendGridApiKey,
        "SG.custom-key.practice-secret",
    )
    .await;

    assert_still_opens_and_says_what_to_do(
        &call(&app, Method::GET, "", &owner, None).await,
        "email",
    );
    assert_names(
        &call(&app, Method::GET, "/status", &owner, None).await,
        "sendgridApiKey",
    );
    assert_names(
        &call(
            &app,
            Method::POST,
            "/email/test",
            &owner,
            Some(json!({"to": "pat@example.com"})),
        )
        .await,
        "sendgridApiKey",
    );
    assert_names(
        &call(
            &app,
            Method::POST,
            "/email/validate",
            &owner,
            Some(json!({})),
        )
        .await,
        "sendgridApiKey",
    );
    assert_names(
        &call(&app, Method::POST, "/email/domain/verify", &owner, None).await,
        "sendgridApiKey",
    );
    assert!(
        app.sendgrid.received_requests().await.unwrap().is_empty(),
        "nothing reached SendGrid"
    );
}
