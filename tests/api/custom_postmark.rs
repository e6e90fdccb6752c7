//! A practice's own Postmark server: its token checked with `GET /server` before it is saved,
//! its webhook created with a password generated for the practice, used for outreach only once
//! a test send through it was accepted, its webhook route opened by that password alone, and
//! erased by `DELETE /email`.

use dentite::auth::Role;
use reqwest::Method;
use serde_json::{Value, json};
use wiremock::{
    Mock, MockBuilder, ResponseTemplate,
    matchers::{body_partial_json, header, method, path},
};

use crate::helpers::*;

const PRACTICE_TOKEN: &str = "5b3e7a52-4c1b-4f8e-9b43-practice0001";
const WEBHOOK_ID: i64 = 1234567;
const SETTINGS: &str = "/api/practice-settings/messaging";
const FROM: &str = "desk@smiledental.com";

fn postmark_account(overrides: Value) -> Value {
    let mut body = json!({
        "provider": "custom_postmark",
        "postmarkServerToken": PRACTICE_TOKEN,
        "fromEmail": FROM,
        "fromName": "Smile Dental",
        "fallbackEnabled": true,
    });
    body.as_object_mut()
        .unwrap()
        .extend(overrides.as_object().unwrap().clone());
    body
}

/// A request to Postmark's server API with the practice's token.
fn practice_call(verb: &str, route: &str) -> MockBuilder {
    Mock::given(method(verb))
        .and(path(route))
        .and(header("X-Postmark-Server-Token", PRACTICE_TOKEN))
}

fn live_server() -> ResponseTemplate {
    ResponseTemplate::new(200)
        .set_body_json(json!({"ID": 1, "Name": "Smile Dental", "DeliveryType": "Live"}))
}

fn webhook_created() -> ResponseTemplate {
    ResponseTemplate::new(200)
        .set_body_json(json!({"ID": WEBHOOK_ID, "Url": "https://hooks.dentite.test"}))
}

fn accepted(message_id: &str) -> ResponseTemplate {
    ResponseTemplate::new(200)
        .set_body_json(json!({"MessageID": message_id, "ErrorCode": 0, "Message": "OK"}))
}

impl TestApp {
    async fn put_email(&self, owner: &Login, body: &Value) -> (u16, Value) {
        let response = self
            .send_json(Method::PUT, &format!("{SETTINGS}/email"), owner, body)
            .await;
        (response.status().as_u16(), response.json().await.unwrap())
    }

    async fn email_settings(&self, login: &Login) -> Value {
        let settings: Value = self.get(SETTINGS, login).await.json().await.unwrap();
        settings["email"].clone()
    }

    async fn test_email(&self, owner: &Login) -> Value {
        self.send_json(
            Method::POST,
            &format!("{SETTINGS}/email/test"),
            owner,
            &json!({"to": "owner@smiledental.com"}),
        )
        .await
        .json()
        .await
        .unwrap()
    }

    async fn save_custom_postmark(&self, owner: &Login) -> Value {
        practice_call("GET", "/server")
            .respond_with(live_server())
            .up_to_n_times(1)
            .mount(&self.vendors)
            .await;
        practice_call("POST", "/webhooks")
            .respond_with(webhook_created())
            .up_to_n_times(1)
            .mount(&self.vendors)
            .await;
        let (status, body) = self.put_email(owner, &postmark_account(json!({}))).await;
        assert_eq!(status, 200, "{body}");
        body
    }
}

async fn app() -> TestApp {
    TestEnv::new()
        .with_system_accounts()
        .without_background()
        .spawn()
        .await
}

#[tokio::test]
async fn a_postmark_server_is_used_for_outreach_once_a_test_send_through_it_is_accepted() {
    let app = app().await;
    let owner = app.practice_owner().await;
    let practice = owner.practice_id.unwrap();
    let hook = format!("https://hooks.dentite.test/api/webhooks/postmark/{practice}");
    practice_call("POST", "/webhooks")
        .and(body_partial_json(json!({
            "Url": hook, "MessageStream": "outbound", "HttpAuth": {"Username": "postmark"},
            "Triggers": {"Delivery": {"Enabled": true}, "Bounce": {"Enabled": true},
                "SpamComplaint": {"Enabled": true}, "SubscriptionChange": {"Enabled": true}},
        })))
        .respond_with(webhook_created())
        .expect(1)
        .mount(&app.vendors)
        .await;
    practice_call("GET", "/server")
        .respond_with(live_server())
        .expect(1)
        .mount(&app.vendors)
        .await;
    let (status, saved) = app.put_email(&owner, &postmark_account(json!({}))).await;
    assert_eq!(status, 200, "{saved}");

    let email = &saved["settings"]["email"];
    assert_eq!(email["provider"], "custom_postmark");
    let postmark = &email["postmark"];
    assert_eq!(postmark["postmarkServerTokenLast4"], "0001");
    assert_eq!(postmark["postmarkMessageStream"], "outbound");
    assert_eq!(postmark["webhookId"], WEBHOOK_ID);
    assert_eq!(postmark["webhookUrl"], hook);
    assert_eq!(postmark["sendingConfirmedAt"], Value::Null);
    let password = postmark["webhookPassword"].as_str().unwrap().to_string();
    assert_eq!(password.len(), 43, "32 random bytes");
    let sent_password = &app.vendors.received_requests().await.unwrap()[1].body;
    let sent: Value = serde_json::from_slice(sent_password).unwrap();
    assert_eq!(
        sent["HttpAuth"]["Password"],
        password.as_str(),
        "the webhook carries the practice's password"
    );
    assert_eq!(
        email["customBlocker"],
        "custom Postmark's sender is not confirmed yet: send a test email"
    );
    assert!(saved["notes"].to_string().contains("Send a test email now"));
    let staff = app.login_as(Some(practice), Role::Staff).await;
    assert_eq!(
        app.email_settings(&staff).await["postmark"]["webhookPassword"],
        Value::Null
    );

    // Until a test is accepted, outreach goes through the platform's account.
    Mock::given(method("POST"))
        .and(path("/v3/mail/send"))
        .respond_with(ResponseTemplate::new(202).insert_header("X-Message-Id", "sys-1"))
        .expect(1)
        .mount(&app.sendgrid)
        .await;
    let patient = app
        .create_patient(practice, PATIENT_EMAIL, PATIENT_PHONE)
        .await;
    let before = app.queue_message(&owner, patient, "email").await;
    app.drain_queue().await;
    assert_eq!(
        app.log_row(before).await.1.as_deref(),
        Some("system_sendgrid")
    );

    practice_call("POST", "/email")
        .and(body_partial_json(
            json!({"From": "\"Smile Dental\" <desk@smiledental.com>", "MessageStream": "outbound"}),
        ))
        .respond_with(accepted("pm-practice-1"))
        .expect(2)
        .mount(&app.vendors)
        .await;
    let test = app.test_email(&owner).await;
    assert_eq!(
        (test["delivered"].as_bool(), test["provider"].as_str()),
        (Some(true), Some("custom_postmark"))
    );
    let email = app.email_settings(&owner).await;
    assert!(email["postmark"]["sendingConfirmedAt"].is_string());
    assert_eq!(email["customBlocker"], Value::Null);
    let after = app.queue_message(&owner, patient, "email").await;
    app.drain_queue().await;
    let (status, provider, message_id, ..) = app.log_row(after).await;
    assert_eq!(
        (status.as_str(), provider.as_deref(), message_id.as_deref()),
        ("sent", Some("custom_postmark"), Some("pm-practice-1"))
    );
    let actions: Vec<String> =
        sqlx::query_scalar("select action from audit_log where practice_id = $1 order by id")
            .bind(practice)
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(actions, ["email.update", "email.confirm"]);

    // The server's webhook, authenticated with the practice's password and nothing else.
    let delivery = json!({"RecordType": "Delivery", "MessageID": "pm-practice-1", "Recipient": PATIENT_EMAIL,
        "Metadata": {"outreach_log_id": after.to_string(), "practice_id": practice.to_string()}});
    let post = |password: String| {
        app.http
            .post(app.url(&format!("/api/webhooks/postmark/{practice}")))
            .basic_auth("postmark", Some(password))
            .json(&delivery)
            .send()
    };
    assert_eq!(
        post(SYSTEM_POSTMARK_WEBHOOK_PASSWORD.into())
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(post(password).await.unwrap().status(), 200);
    assert_eq!(app.log_row(after).await.0, "delivered");
}

#[tokio::test]
async fn what_postmark_refuses_is_named_at_its_field_and_nothing_is_saved() {
    let app = app().await;
    let owner = app.practice_owner().await;
    let before = app.email_settings(&owner).await;
    Mock::given(method("GET"))
        .and(path("/server"))
        .respond_with(
            ResponseTemplate::new(401)
                .set_body_json(json!({"ErrorCode": 10, "Message": "Invalid API token"})),
        )
        .mount(&app.vendors)
        .await;

    let (status, body) = app.put_email(&owner, &postmark_account(json!({}))).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("provider_rejected"))
    );
    assert_eq!(
        body["error"]["fields"]["postmarkServerToken"],
        "Postmark rejected this server token: Invalid API token (Postmark error 10)"
    );
    let (status, body) = app
        .put_email(&owner, &postmark_account(json!({"postmarkMessageStream": "no spaces", "sendgridApiKey": "SG.a.b", "fromEmail": "nope"})))
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
    assert_eq!(
        named,
        ["fromEmail", "postmarkMessageStream", "sendgridApiKey"]
    );
    let (_, body) = app
        .put_email(
            &owner,
            &json!({"provider": "custom_sendgrid", "sendgridApiKey": "SG.a.b", "fromEmail": FROM,
            "fromName": "Smile", "fallbackEnabled": true, "postmarkServerToken": PRACTICE_TOKEN}),
        )
        .await;
    assert!(
        body["error"]["fields"]["postmarkServerToken"]
            .as_str()
            .unwrap()
            .contains("custom_postmark")
    );
    let check: Value = app
        .send_json(
            Method::POST,
            &format!("{SETTINGS}/email/validate"),
            &owner,
            &json!({"provider": "custom_postmark", "postmarkServerToken": PRACTICE_TOKEN}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(check["valid"], false);
    assert!(
        check["reason"]
            .as_str()
            .unwrap()
            .contains("Invalid API token")
    );
    assert_eq!(
        app.email_settings(&owner).await,
        before,
        "nothing was saved"
    );
}

#[tokio::test]
async fn a_webhook_postmark_will_not_create_is_explained_a_new_sender_must_prove_itself_again_and_delete_erases_it()
 {
    let app = app().await;
    let owner = app.practice_owner().await;
    let practice = owner.practice_id.unwrap();
    practice_call("POST", "/webhooks")
        .respond_with(
            ResponseTemplate::new(422)
                .set_body_json(json!({"ErrorCode": 607, "Message": "Webhook limit reached"})),
        )
        .up_to_n_times(1)
        .mount(&app.vendors)
        .await;
    let saved = app.save_custom_postmark(&owner).await;
    assert_eq!(
        saved["settings"]["email"]["postmark"]["webhookId"],
        Value::Null
    );
    let note = saved["notes"][0].as_str().unwrap();
    assert!(
        note.contains("could not be created for you")
            && note.contains(&format!("/api/webhooks/postmark/{practice}")),
        "{note}"
    );

    practice_call("POST", "/email")
        .respond_with(accepted("pm-1"))
        .mount(&app.vendors)
        .await;
    assert_eq!(app.test_email(&owner).await["provider"], "custom_postmark");
    assert!(app.email_settings(&owner).await["postmark"]["sendingConfirmedAt"].is_string());
    practice_call("POST", "/webhooks")
        .respond_with(webhook_created())
        .mount(&app.vendors)
        .await;
    let (status, changed) = app
        .put_email(
            &owner,
            &postmark_account(
                json!({"postmarkServerToken": null, "fromEmail": "front@smiledental.com"}),
            ),
        )
        .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(
        changed["settings"]["email"]["postmark"]["sendingConfirmedAt"],
        Value::Null,
        "a new sender proves itself again"
    );
    assert_eq!(
        changed["settings"]["email"]["postmark"]["webhookId"], WEBHOOK_ID,
        "the missing webhook is made now"
    );

    let erased: Value = app
        .request(Method::DELETE, &format!("{SETTINGS}/email"), Some(&owner))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(erased["email"]["provider"], "system_sendgrid");
    assert_eq!(
        erased["email"]["postmark"]["postmarkServerTokenConfigured"],
        false
    );
    let rows: i64 =
        sqlx::query_scalar("select count(*) from practice_accounts where practice_id = $1")
            .bind(practice)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(rows, 0);
    let response = app
        .http
        .post(app.url(&format!("/api/webhooks/postmark/{practice}")))
        .basic_auth("postmark", Some("anything"))
        .json(&json!({"RecordType": "Delivery", "MessageID": "pm-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        401,
        "an erased server's route opens for nobody"
    );
}
