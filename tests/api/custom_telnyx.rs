//! A practice's own Telnyx number: saved through the settings API only once Telnyx confirms the
//! key owns the number and its messaging profile is enabled, sent through with the practice's
//! key and webhook route, its webhooks verified with the practice's own public key, erased by
//! `DELETE /sms` and re-encrypted by `keys rotate`.

use dentite::crypto::{CredentialField, KeyMaterial, Keyring};
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;
use wiremock::{
    Mock, MockBuilder, ResponseTemplate,
    matchers::{bearer_token, body_partial_json, method, path, query_param},
};

use crate::helpers::*;

const PRACTICE_TELNYX_KEY: &str = "KEY017F3F2BC1A5E0PRACTICE";
const PRACTICE_TELNYX_NUMBER: &str = "+15557650000";
const PROFILE: &str = "40017f3f-2bc1-4a5e-8c2e-5a3e0b0b7a11";
const SETTINGS: &str = "/api/practice-settings/messaging";

/// The practice's own Telnyx account signs with a key of its own, not the platform's.
fn practice_signer() -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&[42; 32])
}

fn practice_public_key() -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(practice_signer().verifying_key().to_bytes())
}

fn telnyx_account(overrides: Value) -> Value {
    let mut body = json!({
        "provider": "custom_telnyx",
        "telnyxApiKey": PRACTICE_TELNYX_KEY,
        "telnyxPublicKey": practice_public_key(),
        "phoneNumber": PRACTICE_TELNYX_NUMBER,
        "fallbackEnabled": false,
    });
    body.as_object_mut()
        .unwrap()
        .extend(overrides.as_object().unwrap().clone());
    body
}

/// `GET /v2/phone_numbers?filter[phone_number]=<digits>` with the practice's key.
fn number_lookup() -> MockBuilder {
    Mock::given(method("GET"))
        .and(path("/v2/phone_numbers"))
        .and(query_param("filter[phone_number]", "15557650000"))
        .and(bearer_token(PRACTICE_TELNYX_KEY))
}

fn owns_number(profile: Option<&str>) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({"data": [
        {"id": "1293384261075731499", "record_type": "phone_number", "phone_number": PRACTICE_TELNYX_NUMBER,
         "status": "active", "messaging_profile_id": profile}
    ], "meta": {"total_results": 1}}))
}

fn profile_lookup(enabled: bool) -> Mock {
    Mock::given(method("GET"))
        .and(path(format!("/v2/messaging_profiles/{PROFILE}")))
        .and(bearer_token(PRACTICE_TELNYX_KEY))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"data": {
            "id": PROFILE, "record_type": "messaging_profile", "name": "Smile Dental", "enabled": enabled
        }})))
}

impl TestApp {
    async fn put_sms(&self, owner: &Login, body: &Value) -> (u16, Value) {
        let response = self
            .send_json(Method::PUT, &format!("{SETTINGS}/sms"), owner, body)
            .await;
        (response.status().as_u16(), response.json().await.unwrap())
    }

    async fn settings(&self, owner: &Login) -> Value {
        self.get(SETTINGS, owner).await.json().await.unwrap()
    }

    /// Saves the practice's Telnyx account, Telnyx confirming the number and its profile.
    async fn save_custom_telnyx(&self, owner: &Login) -> Value {
        number_lookup()
            .respond_with(owns_number(Some(PROFILE)))
            .up_to_n_times(1)
            .mount(&self.vendors)
            .await;
        profile_lookup(true)
            .up_to_n_times(1)
            .mount(&self.vendors)
            .await;
        let (status, body) = self.put_sms(owner, &telnyx_account(json!({}))).await;
        assert_eq!(status, 200, "{body}");
        body
    }

    async fn post_practice_telnyx(
        &self,
        practice: Uuid,
        signer: &ed25519_dalek::SigningKey,
        body: &Value,
    ) -> reqwest::Response {
        use base64::Engine as _;
        use ed25519_dalek::Signer as _;
        let body = body.to_string();
        let timestamp = chrono::Utc::now().timestamp().to_string();
        let signature = signer.sign(format!("{timestamp}|{body}").as_bytes());
        self.http
            .post(self.url(&format!("/api/webhooks/telnyx/{practice}")))
            .header("telnyx-timestamp", &timestamp)
            .header(
                "telnyx-signature-ed25519",
                base64::engine::general_purpose::STANDARD.encode(signature.to_bytes()),
            )
            .body(body)
            .send()
            .await
            .unwrap()
    }
}

async fn app() -> TestApp {
    TestEnv::new()
        .with_system_accounts()
        .var("TWILIO_RATE_PER_SEC", "0")
        .without_background()
        .spawn()
        .await
}

#[tokio::test]
async fn a_telnyx_number_the_key_owns_is_saved_masked_and_sends_with_the_practices_route() {
    let app = app().await;
    let owner = app.practice_owner().await;
    let practice = owner.practice_id.unwrap();
    let saved = app.save_custom_telnyx(&owner).await;

    let sms = &saved["settings"]["sms"];
    assert_eq!(sms["provider"], "custom_telnyx");
    assert_eq!(
        sms["telnyx"],
        json!({
            "telnyxApiKeyConfigured": true,
            "telnyxApiKeyLast4": "TICE",
            "telnyxPublicKeyConfigured": true,
            "phoneNumber": PRACTICE_TELNYX_NUMBER,
            "telnyxMessagingProfileId": PROFILE,
            "webhookUrl": format!("https://hooks.dentite.test/api/webhooks/telnyx/{practice}"),
        })
    );
    assert!(
        saved["notes"][0]
            .as_str()
            .unwrap()
            .contains("inbound webhook of messaging profile")
    );
    assert!(
        !app.settings(&owner)
            .await
            .to_string()
            .contains(PRACTICE_TELNYX_KEY)
    );
    let stored: String = sqlx::query_scalar(
        "select secrets->>'telnyx_api_key' from practice_accounts where practice_id = $1 and vendor = 'telnyx'",
    )
    .bind(practice)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert!(
        !stored.contains(PRACTICE_TELNYX_KEY),
        "the key is stored encrypted"
    );

    Mock::given(method("POST"))
        .and(path("/v2/messages"))
        .and(bearer_token(PRACTICE_TELNYX_KEY))
        .and(body_partial_json(json!({
            "from": PRACTICE_TELNYX_NUMBER,
            "to": PATIENT_PHONE,
            "messaging_profile_id": PROFILE,
            "webhook_url": format!("https://hooks.dentite.test/api/webhooks/telnyx/{practice}"),
        })))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"data": {"id": "msg-practice-1"}})),
        )
        .expect(1)
        .mount(&app.vendors)
        .await;
    let patient = app
        .create_patient(practice, PATIENT_EMAIL, PATIENT_PHONE)
        .await;
    let log = app.queue_message(&owner, patient, "sms").await;
    app.drain_queue().await;
    let (status, provider, message_id, ..) = app.log_row(log).await;
    assert_eq!(
        (status.as_str(), provider.as_deref(), message_id.as_deref()),
        ("sent", Some("custom_telnyx"), Some("msg-practice-1"))
    );

    // Its delivery update, signed by the practice's own Telnyx account.
    let update = json!({"data": {"event_type": "message.finalized", "id": "evt-practice-1", "record_type": "event",
        "payload": {"id": "msg-practice-1", "to": [{"phone_number": PATIENT_PHONE, "status": "delivered"}], "errors": []}}});
    let platform_signed = TelnyxSigner::new();
    let forged = app
        .http
        .post(app.url(&format!("/api/webhooks/telnyx/{practice}")))
        .header(
            "telnyx-timestamp",
            chrono::Utc::now().timestamp().to_string(),
        )
        .header(
            "telnyx-signature-ed25519",
            platform_signed.sign(
                &chrono::Utc::now().timestamp().to_string(),
                update.to_string().as_bytes(),
            ),
        )
        .body(update.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(
        forged.status(),
        401,
        "another account's key does not open the practice's route"
    );
    let received = app
        .post_practice_telnyx(practice, &practice_signer(), &update)
        .await;
    assert_eq!(received.status(), 200);
    assert_eq!(app.log_row(log).await.0, "delivered");

    // A STOP to the practice's own number binds that practice only.
    let stop = json!({"data": {"event_type": "message.received", "id": "evt-practice-2", "record_type": "event",
        "payload": {"id": "inbound-practice-1", "text": "stop", "from": {"phone_number": PATIENT_PHONE},
            "to": [{"phone_number": PRACTICE_TELNYX_NUMBER}]}}});
    assert_eq!(
        app.post_practice_telnyx(practice, &practice_signer(), &stop)
            .await
            .status(),
        200
    );
    let ledger: Vec<(Option<Uuid>, String)> =
        sqlx::query_as("select practice_id, reason from suppressions where address = $1")
            .bind(PATIENT_PHONE)
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(ledger, [(Some(practice), "opted_out".to_string())]);
}

#[tokio::test]
async fn what_telnyx_refuses_is_named_at_its_field_and_nothing_is_saved() {
    let app = app().await;
    let owner = app.practice_owner().await;
    let before = app.settings(&owner).await;

    Mock::given(method("GET"))
        .and(path("/v2/phone_numbers"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({"errors": [
            {"code": "10009", "title": "Authentication failed", "detail": "The API key looks malformed."}
        ]})))
        .up_to_n_times(1)
        .mount(&app.vendors)
        .await;
    let (status, body) = app.put_sms(&owner, &telnyx_account(json!({}))).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("provider_rejected"))
    );
    assert!(
        body["error"]["fields"]["telnyxApiKey"]
            .as_str()
            .unwrap()
            .starts_with("Telnyx rejected this API key")
    );

    number_lookup()
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"data": []})))
        .up_to_n_times(1)
        .mount(&app.vendors)
        .await;
    let (_, body) = app.put_sms(&owner, &telnyx_account(json!({}))).await;
    assert_eq!(
        body["error"]["fields"]["phoneNumber"],
        format!("{PRACTICE_TELNYX_NUMBER} is not a phone number of this Telnyx account")
    );

    number_lookup()
        .respond_with(owns_number(Some(PROFILE)))
        .up_to_n_times(2)
        .mount(&app.vendors)
        .await;
    profile_lookup(false)
        .up_to_n_times(1)
        .mount(&app.vendors)
        .await;
    let (_, body) = app.put_sms(&owner, &telnyx_account(json!({}))).await;
    assert_eq!(
        body["error"]["fields"]["telnyxMessagingProfileId"],
        format!("the messaging profile {PROFILE} is disabled in Telnyx")
    );
    let (_, body) = app
        .put_sms(
            &owner,
            &telnyx_account(json!({"telnyxMessagingProfileId": "another-profile"})),
        )
        .await;
    assert_eq!(
        body["error"]["fields"]["telnyxMessagingProfileId"],
        format!("{PRACTICE_TELNYX_NUMBER} is on messaging profile {PROFILE}, not another-profile")
    );

    let (status, body) = app
        .put_sms(
            &owner,
            &telnyx_account(json!({"telnyxPublicKey": "bm90IGEga2V5", "accountSid": "AC0", "phoneNumber": "555"})),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("validation_failed"))
    );
    let mut named: Vec<&str> = body["error"]["fields"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    named.sort();
    assert_eq!(named, ["accountSid", "phoneNumber", "telnyxPublicKey"]);
    let (_, body) = app
        .put_sms(
            &owner,
            &json!({"provider": "custom_twilio", "fallbackEnabled": true, "telnyxApiKey": "KEY1"}),
        )
        .await;
    assert!(
        body["error"]["fields"]["telnyxApiKey"]
            .as_str()
            .unwrap()
            .contains("custom_telnyx")
    );
    let (_, body) = app
        .put_sms(&owner, &json!({"provider": "custom_telnyx", "fallbackEnabled": true, "phoneNumber": PRACTICE_TELNYX_NUMBER}))
        .await;
    assert_eq!(
        body["error"]["fields"]["telnyxApiKey"],
        "is required with custom_telnyx: no key is stored yet"
    );

    assert_eq!(app.settings(&owner).await, before, "nothing was saved");
}

#[tokio::test]
async fn validate_checks_a_telnyx_number_without_saving_and_delete_erases_the_account() {
    let app = app().await;
    let owner = app.practice_owner().await;
    let practice = owner.practice_id.unwrap();
    app.save_custom_telnyx(&owner).await;

    number_lookup()
        .respond_with(owns_number(None))
        .up_to_n_times(1)
        .mount(&app.vendors)
        .await;
    let check: Value = app
        .send_json(
            Method::POST,
            &format!("{SETTINGS}/sms/validate"),
            &owner,
            &json!({"provider": "custom_telnyx"}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(check["valid"], false);
    assert_eq!(check["field"], "phoneNumber");
    number_lookup()
        .respond_with(owns_number(Some(PROFILE)))
        .up_to_n_times(1)
        .mount(&app.vendors)
        .await;
    profile_lookup(true)
        .up_to_n_times(1)
        .mount(&app.vendors)
        .await;
    let check: Value = app
        .send_json(
            Method::POST,
            &format!("{SETTINGS}/sms/validate"),
            &owner,
            &json!({"provider": "custom_telnyx"}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(check["valid"], true, "{check}");

    let erased: Value = app
        .request(Method::DELETE, &format!("{SETTINGS}/sms"), Some(&owner))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(erased["sms"]["provider"], "system_twilio");
    assert_eq!(erased["sms"]["telnyx"]["telnyxApiKeyConfigured"], false);
    let rows: i64 =
        sqlx::query_scalar("select count(*) from practice_accounts where practice_id = $1")
            .bind(practice)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(rows, 0);
    let audited: Vec<String> = sqlx::query_scalar(
        "select unnest(changed_fields) from audit_log where practice_id = $1 and action = 'sms.delete'",
    )
    .bind(practice)
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert!(audited.contains(&"telnyx".to_string()), "{audited:?}");
}

#[tokio::test]
async fn key_rotation_re_encrypts_a_stored_telnyx_key_bound_to_its_practice() {
    let app = app().await;
    let practice = app.create_practice("Smile Dental").await;
    let old = Keyring::new(&KeyMaterial {
        current: [1; 32],
        previous: vec![],
    });
    sqlx::query(
        "insert into practice_accounts (practice_id, vendor, settings, secrets)
         values ($1, 'telnyx', '{\"phoneNumber\": \"+15557650000\"}', jsonb_build_object('telnyx_api_key', $2::text))",
    )
    .bind(practice)
    .bind(old.encrypt(PRACTICE_TELNYX_KEY, practice, CredentialField::TelnyxApiKey))
    .execute(&app.pool)
    .await
    .unwrap();
    let rotating = Keyring::new(&KeyMaterial {
        current: [2; 32],
        previous: vec![[1; 32]],
    });
    assert_eq!(
        dentite::cli::rotate_credentials(&app.pool, &rotating, 2)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        dentite::cli::rotate_credentials(&app.pool, &rotating, 2)
            .await
            .unwrap(),
        0
    );
    let envelope: String = sqlx::query_scalar(
        "select secrets->>'telnyx_api_key' from practice_accounts where practice_id = $1",
    )
    .bind(practice)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    let new_only = Keyring::new(&KeyMaterial {
        current: [2; 32],
        previous: vec![],
    });
    use secrecy::ExposeSecret as _;
    assert_eq!(
        new_only
            .decrypt(&envelope, practice, CredentialField::TelnyxApiKey)
            .unwrap()
            .expose_secret(),
        PRACTICE_TELNYX_KEY
    );
    assert!(
        new_only
            .decrypt(&envelope, Uuid::new_v4(), CredentialField::TelnyxApiKey)
            .is_err(),
        "bound to its practice"
    );
}
