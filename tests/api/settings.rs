//! `/api/practice-settings/messaging` and `/api/admin/practices`, against wiremock SendGrid and
//! Twilio that check every request they receive.

use std::time::Duration;

use dentite::{auth::Role, crypto::CredentialField};
use reqwest::{Method, Response};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use uuid::Uuid;
use wiremock::{
    Mock, MockGuard, ResponseTemplate,
    matchers::{any, basic_auth, bearer_token, body_json, method, path, query_param},
};

use crate::helpers::{
    CUSTOM_KEY, DOMAIN_ID, DOMAIN_SCOPES, Login, PRACTICE_TWILIO_NUMBER as PHONE,
    PRACTICE_TWILIO_SID as SID, PRACTICE_TWILIO_TOKEN as TOKEN, SYSTEM_SENDGRID_KEY, TestApp,
    TestEnv, account, account_mock, create_domain_mock, custom_email, domain_json,
    domain_list_mock, mail_send_mock, number, numbers_mock, save_custom_email, scopes, scopes_mock,
    sendgrid_error, spawn_app, validate_mock, verified_custom_email,
};
use crate::helpers::{store_unverified_domain, stored_envelope};

const SETTINGS: &str = "/api/practice-settings/messaging";
/// A P-256 public key as SendGrid hands out Signed Event Webhook keys (base64 DER SPKI).
const VERIFY_KEY: &str = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE83T4O/n84iotIvIW4mdBgQ/7dAfSmpqIM8kF9mN1flpVKS3GRqe62gw+2fNNRaINXvVpiglSI8eNEc6wEA3F+g==";
const MAIL_SEND: &[&str] = &["mail.send"];
const WEBHOOK_SCOPES: &[&str] = &[
    "mail.send",
    "user.webhooks.event.settings.create",
    "user.webhooks.event.settings.update",
];

fn url(suffix: &str) -> String {
    format!("{SETTINGS}{suffix}")
}

async fn read(response: Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    for secret in [CUSTOM_KEY, "custom-secret", TOKEN, SID] {
        assert!(
            !text.contains(secret),
            "a response contains a secret: {text}"
        );
    }
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn call(
    app: &TestApp,
    method: Method,
    suffix: &str,
    login: &Login,
    body: Option<Value>,
) -> (u16, Value) {
    let request = app.request(method, &url(suffix), Some(login));
    let request = match body {
        Some(body) => request.json(&body),
        None => request,
    };
    read(request.send().await.unwrap()).await
}

fn fields(body: &Value) -> Vec<String> {
    body["error"]["fields"]
        .as_object()
        .map(|f| f.keys().cloned().collect())
        .unwrap_or_default()
}

fn practice_of(login: &Login) -> Uuid {
    login.practice_id.expect("a practice user")
}

/// The whole practices row, to compare byte for byte.
/// The practice's row with its vendor accounts under `accounts` (vendor -> settings, secrets).
async fn practice_row(app: &TestApp, practice: Uuid) -> Value {
    sqlx::query_scalar(
        "select to_jsonb(p) || jsonb_build_object('accounts', coalesce((
             select jsonb_object_agg(a.vendor, jsonb_build_object('settings', a.settings, 'secrets', a.secrets))
             from practice_accounts a where a.practice_id = p.id), '{}'))
         from practices p where id = $1",
    )
        .bind(practice)
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

async fn audit_actions(app: &TestApp, practice: Uuid) -> Vec<(String, Vec<String>)> {
    sqlx::query_as(
        "select action, changed_fields from audit_log where practice_id = $1 order by id",
    )
    .bind(practice)
    .fetch_all(&app.pool)
    .await
    .unwrap()
}

fn custom_sms(token: Option<&str>) -> Value {
    let mut body = json!({"provider": "custom_twilio", "accountSid": SID, "phoneNumber": PHONE, "fallbackEnabled": true});
    if let Some(token) = token {
        body["authToken"] = json!(token);
    }
    body
}

fn twilio_error(status: u16, code: i64, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status)
        .set_body_json(json!({"code": code, "message": message, "status": status}))
}

/// Saves an active, full Twilio account owning an SMS-capable `PHONE`.
async fn save_custom_sms(app: &TestApp, owner: &Login) -> Value {
    let _account = account_mock(account("active", "Full"), 1)
        .mount_as_scoped(&app.twilio)
        .await;
    let _numbers = numbers_mock(json!([number(PHONE, true)]), 1)
        .mount_as_scoped(&app.twilio)
        .await;
    let (status, body) = call(
        app,
        Method::PUT,
        "/sms",
        owner,
        Some(custom_sms(Some(TOKEN))),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Makes every call to either provider fail the test.
async fn forbid_provider_calls(app: &TestApp) -> (MockGuard, MockGuard) {
    let refuse = || {
        Mock::given(any())
            .respond_with(ResponseTemplate::new(500))
            .expect(0)
    };
    (
        refuse().mount_as_scoped(&app.sendgrid).await,
        refuse().mount_as_scoped(&app.twilio).await,
    )
}

/// Sends a test email to pat@example.com, which must be answered with 200.
async fn send_test_email(app: &TestApp, owner: &Login) -> Value {
    let to = json!({"to": "pat@example.com"});
    let (status, body) = call(app, Method::POST, "/email/test", owner, Some(to)).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// `(delivered, provider, fellBack)` of a test send.
fn outcome(body: &Value) -> (bool, &str, bool) {
    (
        body["delivered"] == true,
        body["provider"].as_str().unwrap_or(""),
        body["fellBack"] == true,
    )
}

#[tokio::test]
async fn a_new_practice_reads_system_providers_with_nothing_configured() {
    let app = spawn_app().await;
    let owner = app.practice_owner().await;

    let (status, body) = call(&app, Method::GET, "", &owner, None).await;

    assert_eq!(status, 200);
    assert_eq!(body["email"]["provider"], "system_sendgrid");
    assert_eq!(body["email"]["sendgridApiKeyConfigured"], false);
    assert_eq!(body["email"]["sendgridApiKeyLast4"], Value::Null);
    assert_eq!(body["email"]["webhookVerifyKeyConfigured"], false);
    assert_eq!(
        body["email"]["webhookUrl"],
        format!(
            "https://hooks.dentite.test/api/webhooks/sendgrid/{}",
            practice_of(&owner)
        )
    );
    assert_eq!(body["email"]["domain"], Value::Null);
    assert_eq!(body["sms"]["provider"], "system_twilio");
    assert_eq!(body["sms"]["twilioAccountSidConfigured"], false);
    assert_eq!(body["sms"]["twilioAuthTokenConfigured"], false);
    assert_eq!(body["sms"]["fallbackEnabled"], true);
}

#[tokio::test]
async fn saving_a_custom_sendgrid_key_checks_it_first_then_stores_it_encrypted_and_audits_field_names_only()
 {
    let app = spawn_app().await;
    let owner = app.practice_owner().await;
    let practice = practice_of(&owner);

    let body = save_custom_email(&app, &owner, MAIL_SEND).await;

    let email = &body["settings"]["email"];
    assert_eq!(email["provider"], "custom_sendgrid");
    assert_eq!(
        (
            &email["sendgridApiKeyConfigured"],
            &email["sendgridApiKeyLast4"]
        ),
        (&json!(true), &json!("part"))
    );
    assert_eq!(
        (&email["fromEmail"], &email["fromName"]),
        (&json!("desk@smile.example"), &json!("Smile Dental"))
    );
    assert_eq!(
        email["customBlocker"],
        "custom SendGrid domain is not verified"
    );
    let stored = stored_envelope(&app.pool, practice, "sendgrid_api_key")
        .await
        .unwrap();
    assert!(
        stored.starts_with("v1:") && !stored.contains("custom-secret"),
        "{stored}"
    );
    let decrypted = app
        .state
        .keyring
        .decrypt(&stored, practice, CredentialField::SendGridApiKey)
        .unwrap();
    assert_eq!(decrypted.expose_secret(), CUSTOM_KEY);
    assert_eq!(
        audit_actions(&app, practice).await,
        [(
            "email.update".to_string(),
            ["provider", "sendgridApiKey", "fromEmail", "fromName"]
                .map(String::from)
                .to_vec()
        )]
    );
    let audit_text: String =
        sqlx::query_scalar("select string_agg(to_jsonb(a)::text, ' ') from audit_log a")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert!(
        !audit_text.contains("custom-secret") && !audit_text.contains("desk@smile.example"),
        "{audit_text}"
    );
    let (_, read_back) = call(&app, Method::GET, "", &owner, None).await;
    assert_eq!(read_back["email"], body["settings"]["email"]);
}

#[tokio::test]
async fn every_bad_email_field_is_named_in_one_422() {
    let app = spawn_app().await;
    let owner = app.practice_owner().await;
    let _none = forbid_provider_calls(&app).await;

    let bad = json!({"provider": "custom_sendgrid", "sendgridApiKey": "sk_live_123", "fromEmail": "desk@", "fromName": "Smile\r\nBcc: x@y.z",
                     "fallbackEnabled": true, "webhookVerifyKey": "bm90IGEga2V5"});
    let (status, body) = call(&app, Method::PUT, "/email", &owner, Some(bad)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("validation_failed"))
    );
    assert_eq!(
        fields(&body),
        [
            "fromEmail",
            "fromName",
            "sendgridApiKey",
            "webhookVerifyKey"
        ]
    );
    assert!(
        !body.to_string().contains("sk_live_123"),
        "a bad key is not echoed: {body}"
    );

    let (status, body) = call(
        &app,
        Method::PUT,
        "/email",
        &owner,
        Some(json!({"provider": "mailgun"})),
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(
        fields(&body),
        ["fallbackEnabled", "fromEmail", "fromName", "provider"]
    );
    assert_eq!(
        body["error"]["fields"]["provider"],
        "must be system_sendgrid, custom_sendgrid, custom_mailgun or custom_postmark"
    );
}

#[tokio::test]
async fn a_display_name_carrying_an_address_and_a_domain_that_is_not_public_are_refused() {
    let app = spawn_app().await;
    let owner = app.practice_owner().await;
    let _none = forbid_provider_calls(&app).await;

    for from_name in [
        "\"Evil\" <ceo@bank.test>",
        "ceo@bank.test",
        "Smile\u{2028}Dental",
    ] {
        let bad = json!({"provider": "system_sendgrid", "fromEmail": "desk@smile.test", "fromName": from_name, "fallbackEnabled": true});
        let (status, body) = call(&app, Method::PUT, "/email", &owner, Some(bad)).await;
        assert_eq!(status, 422, "{from_name:?}: {body}");
        assert_eq!(fields(&body), ["fromName"], "{from_name:?}");
    }
    for domain in ["127.0.0.1", "localhost", "com", "mail.localhost"] {
        let (status, body) = call(
            &app,
            Method::POST,
            "/email/domain",
            &owner,
            Some(json!({"domain": domain})),
        )
        .await;
        assert_eq!(status, 422, "{domain}: {body}");
        assert_eq!(fields(&body), ["domain"], "{domain}");
    }
}

#[tokio::test]
async fn custom_sendgrid_without_a_key_given_or_stored_is_a_422_on_sendgrid_api_key() {
    let app = spawn_app().await;
    let owner = app.practice_owner().await;
    let _none = forbid_provider_calls(&app).await;

    let (status, body) = call(
        &app,
        Method::PUT,
        "/email",
        &owner,
        Some(custom_email(None)),
    )
    .await;

    assert_eq!(status, 422);
    assert_eq!(fields(&body), ["sendgridApiKey"]);
    assert_eq!(
        body["error"]["fields"]["sendgridApiKey"],
        "is required with custom_sendgrid: no key is stored yet"
    );
}

#[tokio::test]
async fn system_sendgrid_refuses_custom_only_fields_instead_of_ignoring_them() {
    let app = spawn_app().await;
    let owner = app.practice_owner().await;

    let body = json!({"provider": "system_sendgrid", "sendgridApiKey": CUSTOM_KEY, "webhookVerifyKey": VERIFY_KEY,
                      "fromEmail": "desk@smile.example", "fromName": "Smile", "fallbackEnabled": true});
    let (status, body) = call(&app, Method::PUT, "/email", &owner, Some(body)).await;

    assert_eq!(status, 422);
    assert_eq!(fields(&body), ["sendgridApiKey", "webhookVerifyKey"]);
}

#[tokio::test]
async fn a_key_sendgrid_refuses_is_provider_rejected_and_leaves_the_practice_row_unchanged() {
    let app = spawn_app().await;
    let owner = app.practice_owner().await;
    let before = practice_row(&app, practice_of(&owner)).await;
    scopes_mock(CUSTOM_KEY, sendgrid_error(401, "authorization required"), 1)
        .mount(&app.sendgrid)
        .await;

    let (status, body) = call(
        &app,
        Method::PUT,
        "/email",
        &owner,
        Some(custom_email(Some(CUSTOM_KEY))),
    )
    .await;

    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("provider_rejected"))
    );
    assert_eq!(
        body["error"]["fields"]["sendgridApiKey"],
        "SendGrid rejected this API key: authorization required"
    );
    assert_eq!(practice_row(&app, practice_of(&owner)).await, before);
    assert!(audit_actions(&app, practice_of(&owner)).await.is_empty());
}

#[tokio::test]
async fn a_key_without_mail_send_is_provider_rejected() {
    let app = spawn_app().await;
    let owner = app.practice_owner().await;
    scopes_mock(CUSTOM_KEY, scopes(&["whitelabel.read"]), 1)
        .mount(&app.sendgrid)
        .await;

    let (status, body) = call(
        &app,
        Method::PUT,
        "/email",
        &owner,
        Some(custom_email(Some(CUSTOM_KEY))),
    )
    .await;

    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("provider_rejected"))
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("mail.send"),
        "{body}"
    );
}

#[tokio::test]
async fn sendgrid_failing_or_too_slow_is_503_and_leaves_the_practice_row_unchanged() {
    let app = TestEnv::new()
        .var("PROVIDER_TIMEOUT_MS", "300")
        .spawn()
        .await;
    let owner = app.practice_owner().await;
    let before = practice_row(&app, practice_of(&owner)).await;

    for response in [
        sendgrid_error(500, "internal server error"),
        scopes(MAIL_SEND).set_delay(Duration::from_secs(2)),
    ] {
        let _scopes = scopes_mock(CUSTOM_KEY, response, 1)
            .mount_as_scoped(&app.sendgrid)
            .await;
        let (status, body) = call(
            &app,
            Method::PUT,
            "/email",
            &owner,
            Some(custom_email(Some(CUSTOM_KEY))),
        )
        .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (503, Some("unavailable")),
            "{body}"
        );
        assert_eq!(practice_row(&app, practice_of(&owner)).await, before);
    }
}

#[tokio::test]
async fn a_change_that_omits_the_key_keeps_the_stored_one_without_asking_sendgrid() {
    let app = spawn_app().await;
    let owner = app.practice_owner().await;
    save_custom_email(&app, &owner, MAIL_SEND).await;
    let before = practice_row(&app, practice_of(&owner)).await;
    let _none = forbid_provider_calls(&app).await;

    let mut change = custom_email(None);
    change["fromName"] = json!("Smile Dental Downtown");
    let (status, body) = call(&app, Method::PUT, "/email", &owner, Some(change)).await;

    assert_eq!(status, 200, "{body}");
    assert_eq!(body["settings"]["email"]["sendgridApiKeyLast4"], "part");
    assert_eq!(
        practice_row(&app, practice_of(&owner)).await["sendgrid_api_key"],
        before["sendgrid_api_key"]
    );
    assert_eq!(
        audit_actions(&app, practice_of(&owner)).await[1],
        ("email.update".to_string(), vec!["fromName".to_string()])
    );
}

#[tokio::test]
async fn a_key_allowed_to_manage_webhooks_gets_a_signed_event_webhook_whose_key_is_stored() {
    let app = spawn_app().await;
    let owner = app.practice_owner().await;
    let hook = format!(
        "https://hooks.dentite.test/api/webhooks/sendgrid/{}",
        practice_of(&owner)
    );
    Mock::given(method("POST"))
        .and(path("/v3/user/webhooks/event/settings"))
        .and(bearer_token(CUSTOM_KEY))
        .and(wiremock::matchers::body_partial_json(
            json!({"enabled": true, "url": hook, "delivered": true, "bounce": true}),
        ))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(json!({"id": "wh-1", "url": hook, "enabled": true})),
        )
        .expect(1)
        .mount(&app.sendgrid)
        .await;
    Mock::given(method("PATCH"))
        .and(path("/v3/user/webhooks/event/settings/signed/wh-1"))
        .and(bearer_token(CUSTOM_KEY))
        .and(body_json(json!({"enabled": true})))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"id": "wh-1", "public_key": VERIFY_KEY})),
        )
        .expect(1)
        .mount(&app.sendgrid)
        .await;

    let body = save_custom_email(&app, &owner, WEBHOOK_SCOPES).await;

    assert_eq!(body["notes"], json!([]));
    assert_eq!(
        body["settings"]["email"]["webhookVerifyKeyConfigured"],
        true
    );
    assert_eq!(body["settings"]["email"]["eventWebhookId"], "wh-1");
    let row = practice_row(&app, practice_of(&owner)).await;
    let sendgrid = &row["accounts"]["sendgrid"]["settings"];
    assert_eq!(
        (&sendgrid["webhookVerifyKey"], &sendgrid["webhookId"]),
        (&json!(VERIFY_KEY), &json!("wh-1"))
    );
}

#[tokio::test]
async fn a_key_not_allowed_to_manage_webhooks_gets_a_note_saying_what_to_paste() {
    let app = spawn_app().await;
    let owner = app.practice_owner().await;

    let body = save_custom_email(&app, &owner, MAIL_SEND).await;

    let note = body["notes"][0].as_str().unwrap();
    assert!(
        note.contains("lacks user.webhooks.event.settings.create"),
        "{note}"
    );
    assert!(
        note.contains(&format!("/api/webhooks/sendgrid/{}", practice_of(&owner)))
            && note.contains("webhookVerifyKey"),
        "{note}"
    );
}

#[tokio::test]
async fn a_pasted_webhook_verify_key_is_stored_and_reported_as_configured() {
    let app = spawn_app().await;
    let owner = app.practice_owner().await;
    save_custom_email(&app, &owner, MAIL_SEND).await;

    let mut change = custom_email(None);
    change["webhookVerifyKey"] = json!(VERIFY_KEY);
    let (status, body) = call(&app, Method::PUT, "/email", &owner, Some(change)).await;

    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (
            &body["settings"]["email"]["webhookVerifyKeyConfigured"],
            &body["notes"]
        ),
        (&json!(true), &json!([]))
    );
    assert_eq!(
        practice_row(&app, practice_of(&owner)).await["accounts"]["sendgrid"]["settings"]["webhookVerifyKey"],
        VERIFY_KEY
    );
}

#[tokio::test]
async fn saving_a_custom_twilio_account_checks_credentials_and_number_then_stores_them_encrypted() {
    let app = spawn_app().await;
    let owner = app.practice_owner().await;
    let practice = practice_of(&owner);

    let body = save_custom_sms(&app, &owner).await;

    let sms = &body["settings"]["sms"];
    assert_eq!(
        (&sms["provider"], &sms["phoneNumber"]),
        (&json!("custom_twilio"), &json!(PHONE))
    );
    assert_eq!(
        (&sms["twilioAccountSidLast4"], &sms["twilioAuthTokenLast4"]),
        (&json!("cdef"), &json!("4321"))
    );
    assert_eq!(body["notes"], json!([]));
    let sid = stored_envelope(&app.pool, practice, "twilio_account_sid")
        .await
        .unwrap();
    let token = stored_envelope(&app.pool, practice, "twilio_auth_token")
        .await
        .unwrap();
    assert!(
        sid.starts_with("v1:")
            && !sid.contains(SID)
            && token.starts_with("v1:")
            && !token.contains(TOKEN)
    );
    assert_eq!(
        app.state
            .keyring
            .decrypt(&token, practice, CredentialField::TwilioAuthToken)
            .unwrap()
            .expose_secret(),
        TOKEN
    );
    assert_eq!(
        audit_actions(&app, practice).await,
        [(
            "sms.update".to_string(),
            ["provider", "accountSid", "authToken", "phoneNumber"]
                .map(String::from)
                .to_vec()
        )]
    );
}

#[tokio::test]
async fn every_bad_sms_field_is_named_in_one_422() {
    let app = spawn_app().await;
    let owner = app.practice_owner().await;
    let _none = forbid_provider_calls(&app).await;

    let bad = json!({"provider": "custom_twilio", "accountSid": "SK123", "authToken": "short", "phoneNumber": "555-1234", "fallbackEnabled": true});
    let (status, body) = call(&app, Method::PUT, "/sms", &owner, Some(bad)).await;

    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("validation_failed"))
    );
    assert_eq!(fields(&body), ["accountSid", "authToken", "phoneNumber"]);
}

#[tokio::test]
async fn custom_twilio_without_a_token_given_or_stored_is_a_422_on_auth_token() {
    let app = spawn_app().await;
    let owner = app.practice_owner().await;
    let _none = forbid_provider_calls(&app).await;

    let (status, body) = call(&app, Method::PUT, "/sms", &owner, Some(custom_sms(None))).await;

    assert_eq!(status, 422);
    assert_eq!(
        body["error"]["fields"],
        json!({"authToken": "is required with custom_twilio: no auth token is stored yet"})
    );
}

#[tokio::test]
async fn twilio_refusing_or_unreachable_leaves_the_practice_row_unchanged() {
    let app = spawn_app().await;
    let owner = app.practice_owner().await;
    let before = practice_row(&app, practice_of(&owner)).await;
    let cases = [
        (
            twilio_error(401, 20003, "Authenticate"),
            (422, "provider_rejected"),
            Some(
                "Twilio rejected this Account SID and auth token: Authenticate (Twilio error 20003)",
            ),
        ),
        (
            twilio_error(503, 20500, "Service Unavailable"),
            (503, "unavailable"),
            None,
        ),
    ];

    for (response, (expected_status, expected_code), field_message) in cases {
        let _account = account_mock(response, 1).mount_as_scoped(&app.twilio).await;
        let (status, body) = call(
            &app,
            Method::PUT,
            "/sms",
            &owner,
            Some(custom_sms(Some(TOKEN))),
        )
        .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (expected_status, Some(expected_code))
        );
        assert_eq!(body["error"]["fields"]["authToken"].as_str(), field_message);
        assert_eq!(practice_row(&app, practice_of(&owner)).await, before);
    }
}

#[tokio::test]
async fn a_number_the_account_does_not_own_or_cannot_text_from_is_rejected_on_phone_number() {
    let app = spawn_app().await;
    let owner = app.practice_owner().await;
    let before = practice_row(&app, practice_of(&owner)).await;
    account_mock(account("active", "Full"), 2)
        .mount(&app.twilio)
        .await;
    let cases = [
        (
            json!([number("+155576543210", true)]),
            format!("{PHONE} is not a phone number of this Twilio account"),
        ),
        (
            json!([number(PHONE, false)]),
            format!("{PHONE} belongs to this Twilio account but cannot send SMS"),
        ),
    ];

    for (listed, reason) in cases {
        let _numbers = numbers_mock(listed, 1).mount_as_scoped(&app.twilio).await;
        let (status, body) = call(
            &app,
            Method::PUT,
            "/sms",
            &owner,
            Some(custom_sms(Some(TOKEN))),
        )
        .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (422, Some("provider_rejected"))
        );
        assert_eq!(body["error"]["fields"]["phoneNumber"], reason);
    }
    assert_eq!(practice_row(&app, practice_of(&owner)).await, before);
}

#[tokio::test]
async fn a_suspended_twilio_account_is_rejected_on_account_sid() {
    let app = spawn_app().await;
    let owner = app.practice_owner().await;
    account_mock(account("suspended", "Full"), 1)
        .mount(&app.twilio)
        .await;

    let (status, body) = call(
        &app,
        Method::PUT,
        "/sms",
        &owner,
        Some(custom_sms(Some(TOKEN))),
    )
    .await;

    assert_eq!(status, 422);
    assert_eq!(
        body["error"]["fields"]["accountSid"],
        "this Twilio account is suspended; only an active account can send"
    );
}

#[tokio::test]
async fn a_twilio_trial_account_is_saved_with_a_plain_warning() {
    let app = spawn_app().await;
    let owner = app.practice_owner().await;
    account_mock(account("active", "Trial"), 1)
        .mount(&app.twilio)
        .await;
    numbers_mock(json!([number(PHONE, true)]), 1)
        .mount(&app.twilio)
        .await;

    let (status, body) = call(
        &app,
        Method::PUT,
        "/sms",
        &owner,
        Some(custom_sms(Some(TOKEN))),
    )
    .await;

    assert_eq!(status, 200, "{body}");
    assert!(
        body["notes"][0]
            .as_str()
            .unwrap()
            .starts_with("This is a Twilio trial account"),
        "{body}"
    );
}

#[tokio::test]
async fn changing_only_the_sms_fallback_keeps_the_stored_credentials_without_asking_twilio() {
    let app = spawn_app().await;
    let owner = app.practice_owner().await;
    save_custom_sms(&app, &owner).await;
    let before = practice_row(&app, practice_of(&owner)).await;
    let _none = forbid_provider_calls(&app).await;

    let mut change = custom_sms(None);
    change["fallbackEnabled"] = json!(false);
    let (status, body) = call(&app, Method::PUT, "/sms", &owner, Some(change)).await;

    assert_eq!(status, 200, "{body}");
    let after = practice_row(&app, practice_of(&owner)).await;
    assert_eq!(
        (&after["twilio_account_sid"], &after["twilio_auth_token"]),
        (&before["twilio_account_sid"], &before["twilio_auth_token"])
    );
    assert_eq!(after["sms_fallback_enabled"], false);
}

#[tokio::test]
async fn a_custom_twilio_change_without_the_account_sid_keeps_the_stored_one() {
    let app = spawn_app().await;
    let owner = app.practice_owner().await;
    save_custom_sms(&app, &owner).await;
    let before = practice_row(&app, practice_of(&owner)).await;
    let _none = forbid_provider_calls(&app).await;

    // What the settings page sends: the SID is masked, so it cannot send it back.
    let change =
        json!({"provider": "custom_twilio", "phoneNumber": PHONE, "fallbackEnabled": false});
    let (status, body) = call(&app, Method::PUT, "/sms", &owner, Some(change)).await;

    assert_eq!(status, 200, "{body}");
    assert_eq!(body["settings"]["sms"]["twilioAccountSidLast4"], "cdef");
    let after = practice_row(&app, practice_of(&owner)).await;
    assert_eq!(after["twilio_account_sid"], before["twilio_account_sid"]);
    assert_eq!(after["sms_fallback_enabled"], false);
}

#[tokio::test]
async fn custom_twilio_without_an_account_sid_given_or_stored_is_a_422_on_account_sid() {
    let app = spawn_app().await;
    let owner = app.practice_owner().await;
    let _none = forbid_provider_calls(&app).await;

    let change = json!({"provider": "custom_twilio", "authToken": TOKEN, "phoneNumber": PHONE, "fallbackEnabled": true});
    let (status, body) = call(&app, Method::PUT, "/sms", &owner, Some(change)).await;

    assert_eq!(status, 422);
    assert_eq!(
        body["error"]["fields"],
        json!({"accountSid": "is required with custom_twilio"})
    );
}

#[tokio::test]
async fn deleting_email_settings_erases_the_key_domain_and_webhook_and_returns_to_system() {
    let app = spawn_app().await;
    let owner = app.practice_owner().await;
    verified_custom_email(&app, &owner).await;
    let mut change = custom_email(None);
    change["webhookVerifyKey"] = json!(VERIFY_KEY);
    assert_eq!(
        call(&app, Method::PUT, "/email", &owner, Some(change))
            .await
            .0,
        200
    );

    let (status, body) = call(&app, Method::DELETE, "/email", &owner, None).await;

    assert_eq!(status, 200, "{body}");
    assert_eq!(body["email"]["provider"], "system_sendgrid");
    assert_eq!(
        (
            &body["email"]["sendgridApiKeyConfigured"],
            &body["email"]["domain"]
        ),
        (&json!(false), &Value::Null)
    );
    let row = practice_row(&app, practice_of(&owner)).await;
    let sendgrid = &row["accounts"]["sendgrid"];
    assert_eq!(
        sendgrid["secrets"]["sendgrid_api_key"],
        Value::Null,
        "{row}"
    );
    for field in ["webhookVerifyKey", "webhookId", "domain", "domainId"] {
        assert_eq!(sendgrid["settings"][field], Value::Null, "{field}: {row}");
    }
    assert_eq!(
        audit_actions(&app, practice_of(&owner))
            .await
            .last()
            .unwrap(),
        &(
            "email.delete".to_string(),
            ["provider", "sendgridApiKey", "webhookVerifyKey", "domain"]
                .map(String::from)
                .to_vec()
        )
    );
}

#[tokio::test]
async fn deleting_sms_settings_erases_the_credentials_and_returns_to_system() {
    let app = spawn_app().await;
    let owner = app.practice_owner().await;
    save_custom_sms(&app, &owner).await;

    let (status, body) = call(&app, Method::DELETE, "/sms", &owner, None).await;

    assert_eq!(status, 200);
    assert_eq!(
        (
            &body["sms"]["provider"],
            &body["sms"]["twilioAuthTokenConfigured"]
        ),
        (&json!("system_twilio"), &json!(false))
    );
    let row = practice_row(&app, practice_of(&owner)).await;
    assert_eq!(row["accounts"]["twilio"], Value::Null, "{row}");
}

#[tokio::test]
async fn validating_an_email_key_reports_its_permissions_without_saving_anything() {
    let app = spawn_app().await;
    let owner = app.practice_owner().await;
    let before = practice_row(&app, practice_of(&owner)).await;
    scopes_mock(CUSTOM_KEY, scopes(DOMAIN_SCOPES), 1)
        .mount(&app.sendgrid)
        .await;

    let (status, body) = call(
        &app,
        Method::POST,
        "/email/validate",
        &owner,
        Some(json!({"sendgridApiKey": CUSTOM_KEY})),
    )
    .await;

    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"valid": true, "reason": null, "canSend": true, "canAuthenticateDomains": true, "canCreateEventWebhook": false})
    );
    assert_eq!(practice_row(&app, practice_of(&owner)).await, before);
}

#[tokio::test]
async fn validating_a_refused_email_key_answers_valid_false_with_sendgrids_reason() {
    let app = spawn_app().await;
    let owner = app.practice_owner().await;
    scopes_mock(CUSTOM_KEY, sendgrid_error(401, "authorization required"), 1)
        .mount(&app.sendgrid)
        .await;

    let (status, body) = call(
        &app,
        Method::POST,
        "/email/validate",
        &owner,
        Some(json!({"sendgridApiKey": CUSTOM_KEY})),
    )
    .await;

    assert_eq!((status, &body["valid"]), (200, &json!(false)));
    assert_eq!(
        body["reason"],
        "SendGrid rejected this API key: authorization required"
    );
    let (status, body) = call(
        &app,
        Method::POST,
        "/email/validate",
        &owner,
        Some(json!({})),
    )
    .await;
    assert_eq!(
        (status, fields(&body)),
        (422, vec!["sendgridApiKey".to_string()])
    );
}

#[tokio::test]
async fn validating_sms_checks_the_stored_account_or_the_given_values_without_saving() {
    let app = spawn_app().await;
    let owner = app.practice_owner().await;
    save_custom_sms(&app, &owner).await;
    let before = practice_row(&app, practice_of(&owner)).await;
    account_mock(account("active", "Trial"), 2)
        .mount(&app.twilio)
        .await;
    numbers_mock(json!([number(PHONE, true)]), 1)
        .mount(&app.twilio)
        .await;
    Mock::given(method("GET"))
        .and(path(format!(
            "/2010-04-01/Accounts/{SID}/IncomingPhoneNumbers.json"
        )))
        .and(query_param("PhoneNumber", "+15550001111"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"incoming_phone_numbers": []})),
        )
        .expect(1)
        .mount(&app.twilio)
        .await;

    let (status, stored) = call(&app, Method::POST, "/sms/validate", &owner, Some(json!({}))).await;
    let (_, other) = call(
        &app,
        Method::POST,
        "/sms/validate",
        &owner,
        Some(json!({"phoneNumber": "+15550001111"})),
    )
    .await;

    assert_eq!(status, 200);
    assert_eq!(
        (&stored["valid"], &stored["trial"], &stored["accountName"]),
        (&json!(true), &json!(true), &json!("Smile Dental"))
    );
    assert_eq!(
        (&other["valid"], &other["field"]),
        (&json!(false), &json!("phoneNumber"))
    );
    assert_eq!(practice_row(&app, practice_of(&owner)).await, before);
}

#[tokio::test]
async fn validation_with_the_provider_unreachable_is_503() {
    let app = spawn_app().await;
    let owner = app.practice_owner().await;
    scopes_mock(CUSTOM_KEY, sendgrid_error(502, "bad gateway"), 1)
        .mount(&app.sendgrid)
        .await;
    account_mock(ResponseTemplate::new(500), 1)
        .mount(&app.twilio)
        .await;

    let (email, _) = call(
        &app,
        Method::POST,
        "/email/validate",
        &owner,
        Some(json!({"sendgridApiKey": CUSTOM_KEY})),
    )
    .await;
    let sms = json!({"accountSid": SID, "authToken": TOKEN, "phoneNumber": PHONE});
    let (sms, _) = call(&app, Method::POST, "/sms/validate", &owner, Some(sms)).await;

    assert_eq!((email, sms), (503, 503));
}

#[tokio::test]
async fn a_test_email_through_the_outbox_is_delivered_logged_and_sets_last_tested_at() {
    let app = spawn_app().await;
    let owner = app.practice_owner().await;

    let body = send_test_email(&app, &owner).await;

    assert_eq!(outcome(&body), (true, "outbox", false));
    assert!(
        body["providerMessageId"]
            .as_str()
            .unwrap()
            .starts_with("outbox-")
    );
    let log: (String, String, String) = sqlx::query_as(
        "select status, messaging_provider, recipient from outreach_logs where id = $1::text::uuid",
    )
    .bind(body["outreachLogId"].as_str())
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        log,
        ("sent".into(), "outbox".into(), "pat@example.com".into())
    );
    let (_, settings) = call(&app, Method::GET, "", &owner, None).await;
    assert!(settings["email"]["lastTestedAt"].is_string());
    assert!(settings["sms"]["lastTestedAt"].is_null());
}

#[tokio::test]
async fn a_test_email_through_custom_sendgrid_reports_custom_sendgrid() {
    let app = spawn_app().await;
    let owner = app.practice_owner().await;
    verified_custom_email(&app, &owner).await;
    Mock::given(method("POST"))
        .and(path("/v3/mail/send"))
        .and(bearer_token(CUSTOM_KEY))
        .and(wiremock::matchers::body_partial_json(json!({
            "personalizations": [{"to": [{"email": "pat@example.com"}]}],
            "from": {"email": "desk@smile.example", "name": "Smile Dental"},
        })))
        .respond_with(ResponseTemplate::new(202).insert_header("x-message-id", "sg-message-1"))
        .expect(1)
        .mount(&app.sendgrid)
        .await;

    let body = send_test_email(&app, &owner).await;

    assert_eq!(outcome(&body), (true, "custom_sendgrid", false));
    assert_eq!(body["providerMessageId"], "sg-message-1");
}

#[tokio::test]
async fn a_test_email_falls_back_to_the_system_account_when_custom_sendgrid_refuses_the_key() {
    let app = TestEnv::new().with_system_accounts().spawn().await;
    let owner = app.practice_owner().await;
    verified_custom_email(&app, &owner).await;
    mail_send_mock(
        CUSTOM_KEY,
        sendgrid_error(
            401,
            "The provided authorization grant is invalid, expired, or revoked",
        ),
    )
    .mount(&app.sendgrid)
    .await;
    mail_send_mock(
        SYSTEM_SENDGRID_KEY,
        ResponseTemplate::new(202).insert_header("x-message-id", "system-1"),
    )
    .mount(&app.sendgrid)
    .await;

    let body = send_test_email(&app, &owner).await;

    assert_eq!(outcome(&body), (true, "system_sendgrid", true));
    assert!(
        body["fallbackReason"]
            .as_str()
            .unwrap()
            .contains("authorization grant is invalid"),
        "{body}"
    );
    let (_, settings) = call(&app, Method::GET, "", &owner, None).await;
    assert!(
        settings["email"]["lastTestedAt"].is_null(),
        "a test that needed the fallback does not count"
    );
}

#[tokio::test]
async fn a_test_sms_through_custom_twilio_reports_custom_twilio() {
    let app = spawn_app().await;
    let owner = app.practice_owner().await;
    save_custom_sms(&app, &owner).await;
    Mock::given(method("POST"))
        .and(path(format!("/2010-04-01/Accounts/{SID}/Messages.json")))
        .and(basic_auth(SID, TOKEN))
        .respond_with(ResponseTemplate::new(201).set_body_json(
            json!({"sid": "SM0123456789abcdef0123456789abcdef", "status": "queued"}),
        ))
        .expect(1)
        .mount(&app.twilio)
        .await;

    let (status, body) = call(
        &app,
        Method::POST,
        "/sms/test",
        &owner,
        Some(json!({"to": "+15551234567"})),
    )
    .await;

    assert_eq!(status, 200, "{body}");
    assert_eq!(outcome(&body), (true, "custom_twilio", false));
    let sent = &app.twilio.received_requests().await.unwrap();
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&sent.last().unwrap().body)
        .into_owned()
        .collect();
    assert!(
        form.contains(&("From".into(), PHONE.into()))
            && form.contains(&("To".into(), "+15551234567".into())),
        "{form:?}"
    );
}

#[tokio::test]
async fn a_test_to_a_malformed_recipient_is_a_422_on_to() {
    let app = spawn_app().await;
    let owner = app.practice_owner().await;

    let (email, email_body) = call(
        &app,
        Method::POST,
        "/email/test",
        &owner,
        Some(json!({"to": "+15551234567"})),
    )
    .await;
    let (sms, sms_body) = call(
        &app,
        Method::POST,
        "/sms/test",
        &owner,
        Some(json!({"to": "pat@example.com"})),
    )
    .await;

    assert_eq!((email, fields(&email_body)), (422, vec!["to".to_string()]));
    assert_eq!((sms, fields(&sms_body)), (422, vec!["to".to_string()]));
}

#[tokio::test]
async fn setting_up_a_domain_without_a_custom_key_is_a_409_saying_what_to_configure() {
    let app = spawn_app().await;
    let owner = app.practice_owner().await;
    let _none = forbid_provider_calls(&app).await;

    let (status, body) = call(
        &app,
        Method::POST,
        "/email/domain",
        &owner,
        Some(json!({"domain": "smile.example"})),
    )
    .await;

    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("conflict"))
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("configure a custom SendGrid API key first"),
        "{body}"
    );
}

#[tokio::test]
async fn a_bad_domain_or_subdomain_is_a_422_naming_the_field() {
    let app = spawn_app().await;
    let owner = app.practice_owner().await;
    let _none = forbid_provider_calls(&app).await;

    let (status, body) = call(
        &app,
        Method::POST,
        "/email/domain",
        &owner,
        Some(json!({"domain": "https://smile.example/mail", "subdomain": "em.x"})),
    )
    .await;

    assert_eq!(status, 422);
    assert_eq!(fields(&body), ["domain", "subdomain"]);
}

#[tokio::test]
async fn setting_up_a_domain_creates_it_with_automatic_security_and_returns_records_and_instructions()
 {
    let app = TestEnv::new().without_background().spawn().await;
    let owner = app.practice_owner().await;
    save_custom_email(&app, &owner, DOMAIN_SCOPES).await;
    domain_list_mock(json!([])).mount(&app.sendgrid).await;
    create_domain_mock().mount(&app.sendgrid).await;

    let (status, body) = call(
        &app,
        Method::POST,
        "/email/domain",
        &owner,
        Some(json!({"domain": "Smile.Example", "subdomain": "em"})),
    )
    .await;

    assert_eq!(status, 201, "{body}");
    assert_eq!(
        (
            &body["domain"],
            &body["verified"],
            &body["sendgridDomainId"]
        ),
        (&json!("smile.example"), &json!(false), &json!(DOMAIN_ID))
    );
    assert_eq!(
        body["records"][0],
        json!({"name": "mail_cname", "type": "cname", "host": "em.smile.example", "data": "u7.wl.sendgrid.net", "valid": false, "reason": null})
    );
    let names: Vec<&str> = body["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["mail_cname", "dkim1", "dkim2"]);
    let instructions = body["instructions"].to_string();
    assert!(instructions.contains("Add a CNAME record with host (name) s1._domainkey.smile.example and value (points to) s1.domainkey.u7.wl.sendgrid.net"), "{instructions}");
    let (_, read) = call(&app, Method::GET, "/email/domain", &owner, None).await;
    assert_eq!(read, body);
    assert_eq!(
        audit_actions(&app, practice_of(&owner)).await[1],
        (
            "email.domain.set_up".to_string(),
            vec!["domain".to_string()]
        )
    );
}

#[tokio::test]
async fn a_domain_already_in_the_sendgrid_account_is_adopted_not_duplicated() {
    let app = TestEnv::new().without_background().spawn().await;
    let owner = app.practice_owner().await;
    save_custom_email(&app, &owner, DOMAIN_SCOPES).await;
    domain_list_mock(json!([domain_json(DOMAIN_ID, false)]))
        .mount(&app.sendgrid)
        .await;
    Mock::given(method("POST"))
        .and(path("/v3/whitelabel/domains"))
        .respond_with(ResponseTemplate::new(500))
        .expect(0)
        .mount(&app.sendgrid)
        .await;

    let (status, body) = call(
        &app,
        Method::POST,
        "/email/domain",
        &owner,
        Some(json!({"domain": "smile.example"})),
    )
    .await;

    assert_eq!(status, 200, "{body}");
    assert_eq!(body["sendgridDomainId"], DOMAIN_ID);
}

#[tokio::test]
async fn verifying_a_domain_stores_sendgrids_reasons_then_verified_once_the_records_pass() {
    let app = TestEnv::new().without_background().spawn().await;
    let owner = app.practice_owner().await;
    save_custom_email(&app, &owner, DOMAIN_SCOPES).await;
    let _list = domain_list_mock(json!([domain_json(DOMAIN_ID, false)]))
        .mount_as_scoped(&app.sendgrid)
        .await;
    assert_eq!(
        call(
            &app,
            Method::POST,
            "/email/domain",
            &owner,
            Some(json!({"domain": "smile.example"}))
        )
        .await
        .0,
        200
    );
    let reason = "Expected CNAME for \"em.smile.example\" to match \"u7.wl.sendgrid.net\".";
    validate_mock(DOMAIN_ID, false, Some(reason))
        .up_to_n_times(1)
        .mount(&app.sendgrid)
        .await;
    validate_mock(DOMAIN_ID, true, None)
        .mount(&app.sendgrid)
        .await;

    let (status, failing) = call(&app, Method::POST, "/email/domain/verify", &owner, None).await;
    assert_eq!(status, 200, "{failing}");
    assert_eq!(
        (&failing["verified"], &failing["records"][0]["reason"]),
        (&json!(false), &json!(reason))
    );
    assert_eq!(failing["records"][1]["valid"], true);
    assert!(failing["lastCheckedAt"].is_string());
    let (_, status_before) = call(&app, Method::GET, "/status", &owner, None).await;
    assert_eq!(status_before["email"]["providerInEffect"], "outbox");
    assert_eq!(
        status_before["email"]["reason"],
        "custom SendGrid domain is not verified"
    );

    let (_, passing) = call(&app, Method::POST, "/email/domain/verify", &owner, None).await;
    assert_eq!(
        (&passing["verified"], &passing["records"][0]["reason"]),
        (&json!(true), &Value::Null)
    );
    let (_, status_after) = call(&app, Method::GET, "/status", &owner, None).await;
    assert_eq!(status_after["email"]["providerInEffect"], "custom_sendgrid");
    assert_eq!(
        audit_actions(&app, practice_of(&owner))
            .await
            .last()
            .unwrap(),
        &(
            "email.domain.verify".to_string(),
            vec!["domainVerified".to_string()]
        )
    );
}

#[tokio::test]
async fn the_background_recheck_validates_only_domains_whose_turn_has_come() {
    let app = TestEnv::new().without_background().spawn().await;
    // (age of the domain, time since its last check, id): due every 15 minutes for 48 hours,
    // then hourly for a week, then never.
    let schedule = [
        ("1 hour", Some("20 minutes"), 101, true),
        ("1 hour", Some("5 minutes"), 102, false),
        ("3 days", Some("70 minutes"), 103, true),
        ("3 days", Some("30 minutes"), 104, false),
        ("10 days", None, 105, false),
        ("10 minutes", None, 106, true),
    ];
    let mut practices = Vec::new();
    for (age, since_check, id, due) in schedule {
        let owner = app.practice_owner().await;
        save_custom_email(&app, &owner, DOMAIN_SCOPES).await;
        store_unverified_domain(&app.pool, practice_of(&owner), id, age, since_check).await;
        if due {
            validate_mock(id, true, None).mount(&app.sendgrid).await;
        }
        practices.push((practice_of(&owner), due));
    }

    let checked =
        dentite::providers::sendgrid::domain::recheck_due_domains(&app.settings_context())
            .await
            .unwrap();

    assert_eq!(checked, 3);
    for (practice, due) in practices {
        let row = practice_row(&app, practice).await;
        assert_eq!(row["email_domain_verified"], due, "{row}");
    }
    let (user, action): (Option<Uuid>, String) = sqlx::query_as(
        "select user_id, action from audit_log where action = 'email.domain.verify' limit 1",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!((user, action.as_str()), (None, "email.domain.verify"));
    assert_eq!(
        dentite::providers::sendgrid::domain::recheck_due_domains(&app.settings_context())
            .await
            .unwrap(),
        0,
        "verified domains are done"
    );
}

#[tokio::test]
async fn deleting_a_domain_removes_it_at_sendgrid_and_here_even_when_sendgrid_no_longer_has_it() {
    let app = TestEnv::new().without_background().spawn().await;
    for (response, already_gone) in [
        (ResponseTemplate::new(204), false),
        (sendgrid_error(404, "resource not found"), true),
    ] {
        let owner = app.practice_owner().await;
        verified_custom_email(&app, &owner).await;
        let _delete = Mock::given(method("DELETE"))
            .and(path(format!("/v3/whitelabel/domains/{DOMAIN_ID}")))
            .and(bearer_token(CUSTOM_KEY))
            .respond_with(response)
            .expect(1)
            .mount_as_scoped(&app.sendgrid)
            .await;

        let (status, body) = call(&app, Method::DELETE, "/email/domain", &owner, None).await;

        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body,
            json!({"domain": "smile.example", "alreadyGoneAtSendgrid": already_gone})
        );
        let (status, _) = call(&app, Method::GET, "/email/domain", &owner, None).await;
        assert_eq!(status, 404);
        let row = practice_row(&app, practice_of(&owner)).await;
        assert_eq!(
            (
                &row["accounts"]["sendgrid"]["settings"]["domainId"],
                &row["email_domain_verified"]
            ),
            (&Value::Null, &json!(false))
        );
        let (_, settings) = call(&app, Method::GET, "", &owner, None).await;
        assert_eq!(
            settings["email"]["customBlocker"],
            "custom SendGrid domain is not verified"
        );
    }
}

#[tokio::test]
async fn status_reports_providers_health_domain_last_test_and_30_day_counts() {
    let app = spawn_app().await;
    let owner = app.practice_owner().await;
    let practice = practice_of(&owner);
    save_custom_sms(&app, &owner).await;
    let logs = [
        ("email", "sent", "1 day"),
        ("email", "delivered", "2 days"),
        ("email", "clicked", "3 days"),
        ("email", "bounced", "4 days"),
        ("email", "queued", "1 day"),
        ("email", "delivered", "40 days"),
        ("sms", "undelivered", "1 day"),
        ("sms", "failed", "1 day"),
    ];
    for (channel, status, age) in logs {
        sqlx::query(
            "insert into outreach_logs (id, practice_id, message_type, status, recipient, body, created_at)
             values ($1, $2, $3, $4, 'x', 'y', now() - $5::interval)",
        )
        .bind(Uuid::new_v4())
        .bind(practice)
        .bind(channel)
        .bind(status)
        .bind(age)
        .execute(&app.pool)
        .await
        .unwrap();
    }

    let (status, body) = call(&app, Method::GET, "/status", &owner, None).await;

    assert_eq!(status, 200);
    assert_eq!(
        body["email"],
        json!({"configuredProvider": "system_sendgrid", "providerInEffect": "outbox", "reason": null, "health": "healthy",
               "fallbackEnabled": true, "domain": null, "lastTestedAt": null,
               "last30Days": {"sent": 3, "delivered": 2, "failed": 1}})
    );
    assert_eq!(
        (
            &body["sms"]["configuredProvider"],
            &body["sms"]["providerInEffect"]
        ),
        (&json!("custom_twilio"), &json!("custom_twilio"))
    );
    assert_eq!(
        body["sms"]["last30Days"],
        json!({"sent": 0, "delivered": 0, "failed": 2})
    );
    for _ in 0..3 {
        app.state.messaging.circuits.record_failure(
            dentite::messaging::circuit::CircuitKey::Practice(
                practice,
                dentite::messaging::Channel::Sms,
            ),
        );
    }
    let (_, body) = call(&app, Method::GET, "/status", &owner, None).await;
    assert_eq!(
        (&body["sms"]["health"], &body["sms"]["providerInEffect"]),
        (&json!("open"), &json!("outbox"))
    );
}

#[tokio::test]
async fn the_audit_log_lists_changes_newest_first_in_pages_for_owners_and_admins_only() {
    let app = spawn_app().await;
    let owner = app.practice_owner().await;
    let practice = practice_of(&owner);
    for name in ["One", "Two", "Three"] {
        let change = json!({"provider": "system_sendgrid", "fromEmail": "desk@smile.example", "fromName": name, "fallbackEnabled": true});
        assert_eq!(
            call(&app, Method::PUT, "/email", &owner, Some(change))
                .await
                .0,
            200
        );
    }

    let (status, first) = call(&app, Method::GET, "/audit?limit=2", &owner, None).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["entries"].as_array().unwrap().len(), 2);
    assert_eq!(first["entries"][0]["changedFields"], json!(["fromName"]));
    assert_eq!(first["entries"][1]["changedFields"], json!(["fromName"]));
    assert_eq!(first["entries"][0]["userId"], owner.user_id.to_string());
    let cursor = first["nextCursor"].as_i64().unwrap();
    let (_, second) = call(
        &app,
        Method::GET,
        &format!("/audit?limit=2&cursor={cursor}"),
        &owner,
        None,
    )
    .await;
    assert_eq!(
        second["entries"][0]["changedFields"],
        json!(["fromEmail", "fromName"])
    );
    assert_eq!(second["nextCursor"], Value::Null);

    let admin = app.login_as(Some(practice), Role::Admin).await;
    assert_eq!(call(&app, Method::GET, "/audit", &admin, None).await.0, 200);
    let staff = app.login_as(Some(practice), Role::Staff).await;
    assert_eq!(call(&app, Method::GET, "/audit", &staff, None).await.0, 403);
    assert_eq!(
        call(&app, Method::GET, "/audit?limit=0", &owner, None)
            .await
            .0,
        422
    );
}

#[tokio::test]
async fn the_service_stops_promptly_while_the_domain_recheck_loop_waits_for_its_next_turn() {
    let app = spawn_app().await;
    let owner = app.practice_owner().await;
    assert_eq!(
        call(&app, Method::GET, "/status", &owner, None).await.0,
        200
    );

    let started = std::time::Instant::now();
    app.stop().await;

    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn staff_read_settings_status_and_domain_but_may_change_validate_test_or_manage_nothing() {
    let app = TestEnv::new().without_background().spawn().await;
    let owner = app.practice_owner().await;
    let practice = practice_of(&owner);
    verified_custom_email(&app, &owner).await;
    let before = practice_row(&app, practice).await;
    let staff = app.login_as(Some(practice), Role::Staff).await;
    let operator = app.login_as(None, Role::PlatformAdmin).await;
    let _none = forbid_provider_calls(&app).await;

    for suffix in ["", "/status", "/email/domain"] {
        assert_eq!(
            call(&app, Method::GET, suffix, &staff, None).await.0,
            200,
            "staff read {suffix}"
        );
        assert_eq!(
            call(&app, Method::GET, suffix, &operator, None).await.0,
            403,
            "operator read {suffix}"
        );
    }
    let changes = [
        (Method::PUT, "/email", custom_email(Some(CUSTOM_KEY))),
        (Method::DELETE, "/email", json!({})),
        (Method::PUT, "/sms", custom_sms(Some(TOKEN))),
        (Method::DELETE, "/sms", json!({})),
        (Method::POST, "/email/validate", json!({})),
        (Method::POST, "/sms/validate", json!({})),
        (
            Method::POST,
            "/email/test",
            json!({"to": "pat@example.com"}),
        ),
        (Method::POST, "/sms/test", json!({"to": "+15551234567"})),
        (
            Method::POST,
            "/email/domain",
            json!({"domain": "smile.example"}),
        ),
        (Method::POST, "/email/domain/verify", json!({})),
        (Method::DELETE, "/email/domain", json!({})),
        (Method::GET, "/audit", json!({})),
    ];
    for (method, suffix, body) in changes {
        for login in [&staff, &operator] {
            let (status, answer) =
                call(&app, method.clone(), suffix, login, Some(body.clone())).await;
            assert_eq!(
                (status, answer["error"]["code"].as_str()),
                (403, Some("forbidden")),
                "{method} {suffix}"
            );
        }
    }
    assert_eq!(practice_row(&app, practice).await, before);
    let admin = app.login_as(Some(practice), Role::Admin).await;
    let (status, _) = call(&app, Method::DELETE, "/sms", &admin, None).await;
    assert_eq!(status, 200, "admins change settings");
}

#[tokio::test]
async fn a_token_of_one_practice_never_reads_or_changes_another_whatever_ids_the_request_carries() {
    let app = TestEnv::new().without_background().spawn().await;
    let owner_a = app.practice_owner().await;
    let owner_b = app.practice_owner().await;
    let (a, b) = (practice_of(&owner_a), practice_of(&owner_b));
    verified_custom_email(&app, &owner_b).await;
    save_custom_sms(&app, &owner_b).await;
    let b_before = practice_row(&app, b).await;

    let (_, settings) = call(
        &app,
        Method::GET,
        &format!("?practiceId={b}"),
        &owner_a,
        None,
    )
    .await;
    assert_eq!(
        (&settings["email"]["provider"], &settings["sms"]["provider"]),
        (&json!("system_sendgrid"), &json!("system_twilio"))
    );
    assert_eq!(
        call(&app, Method::GET, "/email/domain", &owner_a, None)
            .await
            .0,
        404
    );
    let mut change = json!({"provider": "system_sendgrid", "fromEmail": "a@a.example", "fromName": "A", "fallbackEnabled": false,
                            "practiceId": b, "id": b});
    change["practice"] = json!({"id": b});
    assert_eq!(
        call(
            &app,
            Method::PUT,
            &format!("/email?practiceId={b}"),
            &owner_a,
            Some(change)
        )
        .await
        .0,
        200
    );
    assert_eq!(
        call(&app, Method::DELETE, "/sms", &owner_a, None).await.0,
        200
    );
    assert_eq!(
        call(
            &app,
            Method::POST,
            "/email/domain/verify",
            &owner_a,
            Some(json!({"practiceId": b}))
        )
        .await
        .0,
        404
    );
    assert_eq!(
        call(&app, Method::DELETE, "/email/domain", &owner_a, None)
            .await
            .0,
        404
    );
    let (_, audit) = call(&app, Method::GET, "/audit", &owner_a, None).await;

    assert_eq!(practice_row(&app, b).await, b_before);
    assert_eq!(
        practice_row(&app, a).await["accounts"]["sendgrid"]["settings"]["fromEmail"],
        "a@a.example"
    );
    assert!(
        audit["entries"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["userId"] == owner_a.user_id.to_string()),
        "{audit}"
    );
}

#[tokio::test]
async fn the_admin_practice_list_shows_practices_with_their_own_accounts_when_asked() {
    let app = spawn_app().await;
    let email_owner = app.practice_owner().await;
    save_custom_email(&app, &email_owner, MAIL_SEND).await;
    let sms_owner = app.practice_owner().await;
    save_custom_sms(&app, &sms_owner).await;
    app.practice_owner().await;
    let operator = app.login_as(None, Role::PlatformAdmin).await;

    let (status, custom) = read(
        app.get("/api/admin/practices?customConfig=true", &operator)
            .await,
    )
    .await;
    let (_, all) = read(app.get("/api/admin/practices?limit=2", &operator).await).await;

    assert_eq!(status, 200, "{custom}");
    let mut listed: Vec<(String, String, String)> = custom["practices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["id"].as_str().unwrap().to_string(),
                p["emailProvider"].as_str().unwrap().into(),
                p["smsProvider"].as_str().unwrap().into(),
            )
        })
        .collect();
    listed.sort();
    let mut expected = vec![
        (
            practice_of(&email_owner).to_string(),
            "custom_sendgrid".into(),
            "system_twilio".into(),
        ),
        (
            practice_of(&sms_owner).to_string(),
            "system_sendgrid".into(),
            "custom_twilio".into(),
        ),
    ];
    expected.sort();
    assert_eq!(listed, expected);
    let first = &custom["practices"][0];
    for key in [
        "name",
        "emailDomainVerified",
        "emailLastTestedAt",
        "smsLastTestedAt",
    ] {
        assert!(first.get(key).is_some(), "{key} in {first}");
    }
    assert_eq!(
        (
            all["practices"].as_array().unwrap().len(),
            &all["nextOffset"]
        ),
        (2, &json!(2))
    );
}

#[tokio::test]
async fn every_settings_route_is_in_the_openapi_document() {
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
    let routes = [
        ("", "get"),
        ("/email", "put"),
        ("/email", "delete"),
        ("/sms", "put"),
        ("/sms", "delete"),
        ("/email/validate", "post"),
        ("/sms/validate", "post"),
        ("/email/test", "post"),
        ("/sms/test", "post"),
        ("/email/domain", "post"),
        ("/email/domain/verify", "post"),
        ("/email/domain", "get"),
        ("/email/domain", "delete"),
        ("/status", "get"),
        ("/audit", "get"),
    ];
    for (suffix, verb) in routes {
        let operation = &doc["paths"][url(suffix)][verb];
        assert!(
            operation["responses"]["200"].is_object() || operation["responses"]["201"].is_object(),
            "{verb} {suffix}"
        );
    }
    assert!(doc["paths"]["/api/admin/practices"]["get"].is_object());
    let email_request = &doc["components"]["schemas"]["EmailSettingsRequest"];
    assert!(
        email_request["required"]
            .as_array()
            .unwrap()
            .contains(&json!("fromEmail")),
        "{email_request}"
    );
}

#[tokio::test]
async fn reading_settings_not_yet_cached_while_postgres_is_unreachable_is_a_503() {
    let (app, proxy) = crate::pg_proxy::app_behind_proxy(TestEnv::new().without_background()).await;
    let owner = app.practice_owner().await;
    proxy.go_down();

    let response = app.get("/api/practice-settings/messaging", &owner).await;
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("unavailable")),
        "{body}"
    );
}
