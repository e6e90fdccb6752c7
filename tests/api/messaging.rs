use std::time::Duration;

use dentite::messaging::{
    Channel, OutgoingMessage,
    circuit::{CircuitKey, Health},
    delivery::DeliveryResult,
};
use serde_json::json;
use uuid::Uuid;
use wiremock::{
    Mock, ResponseTemplate,
    matchers::{basic_auth, bearer_token, body_partial_json, body_string_contains, method, path},
};

use crate::helpers::*;

fn message(practice: Uuid, channel: Channel, to: &str) -> OutgoingMessage {
    OutgoingMessage {
        outreach_log_id: Uuid::new_v4(),
        practice_id: practice,
        channel,
        to: to.to_string(),
        subject: Some("Reminder".into()),
        body: "Your benefits expire soon".into(),
        headers: Default::default(),
    }
}

fn sendgrid_accepts(key: &str, message_id: &str) -> Mock {
    Mock::given(method("POST"))
        .and(path("/v3/mail/send"))
        .and(bearer_token(key))
        .respond_with(ResponseTemplate::new(202).insert_header("X-Message-Id", message_id))
}

async fn system_app() -> TestApp {
    TestEnv::new()
        .with_system_accounts()
        .without_background()
        .spawn()
        .await
}

#[tokio::test]
async fn a_practice_without_custom_settings_sends_through_the_system_sendgrid_with_our_custom_args()
{
    let app = system_app().await;
    let practice = app.create_practice("Smile Dental").await;
    let msg = message(practice, Channel::Email, "pat@example.com");
    Mock::given(method("POST"))
        .and(path("/v3/mail/send"))
        .and(bearer_token(SYSTEM_SENDGRID_KEY))
        .and(body_partial_json(serde_json::json!({
            "from": {"email": "noreply@dentite.test"},
            "content": [{"type": "text/plain", "value": "Your benefits expire soon"}],
            "custom_args": {"outreach_log_id": msg.outreach_log_id.to_string(), "practice_id": practice.to_string()},
        })))
        .respond_with(ResponseTemplate::new(202).insert_header("X-Message-Id", "sys-1"))
        .expect(1)
        .mount(&app.sendgrid)
        .await;

    let delivery = app.state.messaging.deliver(&msg, true).await.unwrap();
    assert_eq!(delivery.provider.unwrap().as_str(), "system_sendgrid");
    assert!(
        matches!(delivery.result, DeliveryResult::Sent { provider_message_id: Some(ref id) } if id == "sys-1")
    );
}

#[tokio::test]
async fn a_verified_custom_sendgrid_is_used_and_an_unverified_one_is_not() {
    let app = system_app().await;
    let verified = app.create_practice("Verified").await;
    let unverified = app.create_practice("Unverified").await;
    app.configure_custom_sendgrid(verified, true, true).await;
    app.configure_custom_sendgrid(unverified, false, true).await;
    sendgrid_accepts(CUSTOM_SENDGRID_KEY, "custom-1")
        .expect(1)
        .mount(&app.sendgrid)
        .await;
    sendgrid_accepts(SYSTEM_SENDGRID_KEY, "sys-1")
        .expect(1)
        .mount(&app.sendgrid)
        .await;

    let custom = app
        .state
        .messaging
        .deliver(&message(verified, Channel::Email, "a@example.com"), true)
        .await
        .unwrap();
    assert_eq!(custom.provider.unwrap().as_str(), "custom_sendgrid");
    let system = app
        .state
        .messaging
        .deliver(&message(unverified, Channel::Email, "b@example.com"), true)
        .await
        .unwrap();
    assert_eq!(system.provider.unwrap().as_str(), "system_sendgrid");
    assert!(!system.fell_back);
}

#[tokio::test]
async fn custom_twilio_sends_form_encoded_with_basic_auth_and_the_practice_status_callback() {
    let app = system_app().await;
    let practice = app.create_practice("Smile Dental").await;
    app.configure_custom_twilio(practice, true).await;
    Mock::given(method("POST"))
        .and(path(format!(
            "/2010-04-01/Accounts/{CUSTOM_TWILIO_SID}/Messages.json"
        )))
        .and(basic_auth(CUSTOM_TWILIO_SID, CUSTOM_TWILIO_TOKEN))
        .and(body_string_contains("From=%2B15551110000"))
        .and(body_string_contains("To=%2B15557654321"))
        .and(body_string_contains(format!(
            "StatusCallback=https%3A%2F%2Fhooks.dentite.test%2Fapi%2Fwebhooks%2Ftwilio%2F{practice}"
        )))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(serde_json::json!({"sid": "SM123", "status": "queued"})),
        )
        .expect(1)
        .mount(&app.twilio)
        .await;
    let delivery = app
        .state
        .messaging
        .deliver(&message(practice, Channel::Sms, "+15557654321"), true)
        .await
        .unwrap();
    assert_eq!(delivery.provider.unwrap().as_str(), "custom_twilio");
    assert!(
        matches!(delivery.result, DeliveryResult::Sent { provider_message_id: Some(ref id) } if id == "SM123")
    );
}

#[tokio::test]
async fn a_cache_hit_reads_no_configuration_and_any_write_to_the_practice_invalidates_it() {
    let app = system_app().await;
    // Set up with the triggers off, so no notification of the set-up can arrive (and
    // invalidate) while the hits are counted.
    let practice = Uuid::new_v4();
    let mut tx = app.pool.begin().await.unwrap();
    sqlx::query("set local session_replication_role = replica")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query(
        "insert into practices (id, name, email_provider, email_domain_verified, email_fallback_enabled)
         values ($1, 'Smile Dental', 'custom_sendgrid', true, true)",
    )
    .bind(practice)
    .execute(&mut *tx)
    .await
    .unwrap();
    sqlx::query(
        "insert into practice_accounts (practice_id, vendor, settings, secrets)
         values ($1, 'sendgrid', $2, $3)",
    )
    .bind(practice)
    .bind(json!({"fromEmail": "desk@smile.test", "domain": "smile.test", "domainId": 42}))
    .bind(json!({"sendgrid_api_key": app.state.keyring.encrypt(
        CUSTOM_SENDGRID_KEY,
        practice,
        dentite::crypto::CredentialField::SendGridApiKey,
    )}))
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    sendgrid_accepts(CUSTOM_SENDGRID_KEY, "custom")
        .mount(&app.sendgrid)
        .await;
    sendgrid_accepts(SYSTEM_SENDGRID_KEY, "system")
        .mount(&app.sendgrid)
        .await;
    let send = || async {
        app.state
            .messaging
            .deliver(&message(practice, Channel::Email, "pat@example.com"), true)
            .await
    };

    assert_eq!(
        send().await.unwrap().provider.unwrap().as_str(),
        "custom_sendgrid"
    );
    let builds = app.state.messaging.builds();
    for _ in 0..3 {
        assert_eq!(
            send().await.unwrap().provider.unwrap().as_str(),
            "custom_sendgrid"
        );
    }
    assert_eq!(app.state.messaging.builds(), builds, "hits read nothing");

    // A writer that knows nothing of the cache (an operator's SQL): the trigger still notifies.
    sqlx::query("update practices set email_provider = 'system_sendgrid' where id = $1")
        .bind(practice)
        .execute(&app.pool)
        .await
        .unwrap();
    let switched = async {
        loop {
            if send().await.unwrap().provider.unwrap().as_str() == "system_sendgrid" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(5), switched)
        .await
        .expect("the notification invalidates the cache");
}

#[tokio::test]
async fn a_change_committed_by_one_instance_is_used_by_another_on_its_next_send() {
    let first = system_app().await;
    let database: String = sqlx::query_scalar("select current_database()")
        .fetch_one(&first.pool)
        .await
        .unwrap();
    let second = TestEnv::new()
        .with_system_accounts()
        .without_background()
        .database(&database)
        .spawn()
        .await;
    let practice = first.create_practice("Smile Dental").await;
    for app in [&first, &second] {
        sendgrid_accepts(CUSTOM_SENDGRID_KEY, "custom")
            .mount(&app.sendgrid)
            .await;
        sendgrid_accepts(SYSTEM_SENDGRID_KEY, "system")
            .mount(&app.sendgrid)
            .await;
    }
    let send = |app: &TestApp| {
        let msg = message(practice, Channel::Email, "pat@example.com");
        let factory = app.state.messaging.clone();
        async move {
            factory
                .deliver(&msg, true)
                .await
                .unwrap()
                .provider
                .unwrap()
                .as_str()
        }
    };
    assert_eq!(send(&second).await, "system_sendgrid");

    // The first instance writes the practice row; the trigger notifies every instance at commit.
    let key = first.state.keyring.encrypt(
        CUSTOM_SENDGRID_KEY,
        practice,
        dentite::crypto::CredentialField::SendGridApiKey,
    );
    store_account(
        &first.pool,
        practice,
        "sendgrid",
        json!({"fromEmail": "desk@smile.test"}),
        json!({"sendgrid_api_key": key}),
    )
    .await;
    sqlx::query(
        "update practices set email_provider = 'custom_sendgrid', email_domain_verified = true
         where id = $1",
    )
    .bind(practice)
    .execute(&first.pool)
    .await
    .unwrap();

    let seen = async {
        while send(&second).await != "custom_sendgrid" {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(5), seen)
        .await
        .expect("the other instance switches to custom");
}

async fn fallback_case(custom_response: ResponseTemplate) -> (String, bool, Option<String>) {
    let app = TestEnv::new()
        .with_system_accounts()
        .without_background()
        .var("PROVIDER_TIMEOUT_MS", "300")
        .spawn()
        .await;
    let practice = app.create_practice("Smile Dental").await;
    app.configure_custom_sendgrid(practice, true, true).await;
    Mock::given(method("POST"))
        .and(path("/v3/mail/send"))
        .and(bearer_token(CUSTOM_SENDGRID_KEY))
        .respond_with(custom_response)
        .expect(1)
        .mount(&app.sendgrid)
        .await;
    sendgrid_accepts(SYSTEM_SENDGRID_KEY, "system")
        .expect(1)
        .mount(&app.sendgrid)
        .await;
    let delivery = app
        .state
        .messaging
        .deliver(&message(practice, Channel::Email, "pat@example.com"), true)
        .await
        .unwrap();
    assert!(matches!(delivery.result, DeliveryResult::Sent { .. }));
    (
        delivery.provider.unwrap().as_str().to_string(),
        delivery.fell_back,
        delivery.fallback_reason,
    )
}

#[tokio::test]
async fn a_custom_account_refused_with_401_falls_back_to_the_system_account() {
    let unauthorized = ResponseTemplate::new(401).set_body_json(
        serde_json::json!({"errors": [{"message": "authorization required", "field": null}]}),
    );
    let (provider, fell_back, reason) = fallback_case(unauthorized).await;
    assert_eq!((provider.as_str(), fell_back), ("system_sendgrid", true));
    assert!(reason.unwrap().contains("authorization required"));
}

#[tokio::test]
async fn a_custom_provider_5xx_falls_back_to_the_system_account() {
    let (provider, fell_back, _) = fallback_case(ResponseTemplate::new(503)).await;
    assert_eq!((provider.as_str(), fell_back), ("system_sendgrid", true));
}

#[tokio::test]
async fn a_custom_provider_timeout_falls_back_to_the_system_account() {
    let slow = ResponseTemplate::new(202).set_delay(Duration::from_secs(2));
    let (provider, fell_back, _) = fallback_case(slow).await;
    assert_eq!((provider.as_str(), fell_back), ("system_sendgrid", true));
}

#[tokio::test]
async fn a_rejected_recipient_never_falls_back_and_neither_does_a_practice_that_forbids_it() {
    let app = system_app().await;
    let rejecting = app.create_practice("Rejecting").await;
    let strict = app.create_practice("Strict").await;
    app.configure_custom_sendgrid(rejecting, true, true).await;
    app.configure_custom_sendgrid(strict, true, false).await;
    let bad_recipient = serde_json::json!({"errors": [{"message": "Does not contain a valid address.", "field": "personalizations.0.to.0.email"}]});
    Mock::given(method("POST"))
        .and(path("/v3/mail/send"))
        .and(bearer_token(CUSTOM_SENDGRID_KEY))
        .and(body_partial_json(
            serde_json::json!({"personalizations": [{"to": [{"email": "bad@example.com"}]}]}),
        ))
        .respond_with(ResponseTemplate::new(400).set_body_json(bad_recipient))
        .expect(1)
        .mount(&app.sendgrid)
        .await;
    Mock::given(method("POST"))
        .and(path("/v3/mail/send"))
        .and(bearer_token(CUSTOM_SENDGRID_KEY))
        .and(body_partial_json(
            serde_json::json!({"personalizations": [{"to": [{"email": "pat@example.com"}]}]}),
        ))
        .respond_with(ResponseTemplate::new(401))
        .expect(1)
        .mount(&app.sendgrid)
        .await;
    sendgrid_accepts(SYSTEM_SENDGRID_KEY, "system")
        .expect(0)
        .mount(&app.sendgrid)
        .await;

    let rejected = app
        .state
        .messaging
        .deliver(&message(rejecting, Channel::Email, "bad@example.com"), true)
        .await
        .unwrap();
    assert_eq!(rejected.provider.unwrap().as_str(), "custom_sendgrid");
    assert!(matches!(
        rejected.result,
        DeliveryResult::Failed {
            retryable: false,
            ..
        }
    ));
    let forbidden = app
        .state
        .messaging
        .deliver(&message(strict, Channel::Email, "pat@example.com"), true)
        .await
        .unwrap();
    assert_eq!(forbidden.provider.unwrap().as_str(), "custom_sendgrid");
    assert!(!forbidden.fell_back);
    assert!(matches!(forbidden.result, DeliveryResult::Failed { .. }));
}

#[tokio::test]
async fn a_suppressed_address_is_not_sent_through_either_account() {
    let app = system_app().await;
    let practice = app.create_practice("Smile Dental").await;
    app.configure_custom_sendgrid(practice, true, true).await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(202))
        .expect(0)
        .mount(&app.sendgrid)
        .await;
    use dentite::messaging::suppression::{self, Scope, SuppressionReason};
    suppression::add(
        &app.pool,
        Scope::Practice(practice),
        Channel::Email,
        "Pat@Example.com",
        SuppressionReason::Bounced,
        dentite::messaging::suppression::SuppressionSource::ProviderEvent,
    )
    .await
    .unwrap();
    let delivery = app
        .state
        .messaging
        .deliver(&message(practice, Channel::Email, "pat@example.com"), true)
        .await
        .unwrap();
    assert!(delivery.provider.is_none());
    assert!(
        matches!(delivery.result, DeliveryResult::Suppressed { ref reason } if reason == "bounced")
    );
}

#[tokio::test]
async fn one_hundred_concurrent_first_sends_build_one_client() {
    let app = system_app().await;
    let practice = app.create_practice("Smile Dental").await;
    sendgrid_accepts(SYSTEM_SENDGRID_KEY, "system")
        .expect(100)
        .mount(&app.sendgrid)
        .await;
    let before = app.state.messaging.builds();
    let sends = (0..100).map(|i| {
        let factory = app.state.messaging.clone();
        let msg = message(practice, Channel::Email, &format!("p{i}@example.com"));
        tokio::spawn(async move { factory.deliver(&msg, true).await.unwrap() })
    });
    for send in futures::future::join_all(sends).await {
        assert!(matches!(send.unwrap().result, DeliveryResult::Sent { .. }));
    }
    assert_eq!(app.state.messaging.builds() - before, 1);
}

#[tokio::test]
async fn repeated_account_failures_open_the_circuit_and_route_straight_to_the_system_account() {
    let app = system_app().await;
    let practice = app.create_practice("Smile Dental").await;
    app.configure_custom_sendgrid(practice, true, true).await;
    Mock::given(method("POST"))
        .and(path("/v3/mail/send"))
        .and(bearer_token(CUSTOM_SENDGRID_KEY))
        .respond_with(ResponseTemplate::new(500))
        .expect(3)
        .mount(&app.sendgrid)
        .await;
    sendgrid_accepts(SYSTEM_SENDGRID_KEY, "system")
        .expect(5)
        .mount(&app.sendgrid)
        .await;
    for _ in 0..5 {
        let delivery = app
            .state
            .messaging
            .deliver(&message(practice, Channel::Email, "pat@example.com"), true)
            .await
            .unwrap();
        assert_eq!(delivery.provider.unwrap().as_str(), "system_sendgrid");
    }
    assert_eq!(
        app.state
            .messaging
            .circuits
            .health(CircuitKey::Practice(practice, Channel::Email)),
        Health::Open
    );
}
