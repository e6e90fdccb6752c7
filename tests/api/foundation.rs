use std::time::Duration;

use dentite::auth::{Claims, Role};
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Login, PASSWORD, TestEnv, spawn_app, store_account, stored_envelope};

async fn error_code(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.expect("error bodies are JSON");
    (
        status,
        body["error"]["code"]
            .as_str()
            .expect("error.code is a string")
            .to_string(),
    )
}

#[tokio::test]
async fn a_user_logs_in_and_receives_an_eddsa_token_and_their_profile() {
    let app = spawn_app().await;
    let practice = app.create_practice("Smile Dental").await;
    let (email, user_id) = app.create_user(Some(practice), Role::Admin).await;

    let response = app.post_login(&email.to_uppercase(), PASSWORD).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["user"]["id"], user_id.to_string());
    assert_eq!(body["user"]["role"], "admin");
    assert_eq!(body["user"]["practiceId"], practice.to_string());
    assert!(body["expiresAt"].is_string());
    let header = jsonwebtoken::decode_header(body["token"].as_str().unwrap()).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::EdDSA);
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_email_get_the_same_401() {
    let app = spawn_app().await;
    let practice = app.create_practice("Smile Dental").await;
    let (email, _) = app.create_user(Some(practice), Role::Owner).await;

    let wrong = app.post_login(&email, "not the password").await;
    let unknown = app.post_login("nobody@practice.test", PASSWORD).await;
    assert_eq!(wrong.status(), 401);
    assert_eq!(unknown.status(), 401);
    let wrong: Value = wrong.json().await.unwrap();
    let unknown: Value = unknown.json().await.unwrap();
    assert_eq!(wrong, unknown);
    assert_eq!(wrong["error"]["code"], "unauthorized");
}

#[tokio::test]
async fn repeated_failed_logins_are_throttled_with_retry_after_even_for_the_right_password() {
    let app = spawn_app().await;
    let practice = app.create_practice("Smile Dental").await;
    let (email, _) = app.create_user(Some(practice), Role::Owner).await;
    for _ in 0..5 {
        assert_eq!(app.post_login(&email, "wrong password").await.status(), 401);
    }
    let throttled = app.post_login(&email, PASSWORD).await;
    assert_eq!(throttled.status(), 429);
    let retry_after: u64 = throttled.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=900).contains(&retry_after));
    assert_eq!(error_code(throttled).await.1, "rate_limited");
}

#[tokio::test]
async fn missing_tampered_and_expired_tokens_get_401_in_the_contract_shape() {
    let app = spawn_app().await;
    let owner = app.practice_owner().await;
    let path = "/api/practice-settings/messaging";
    assert_eq!(app.get(path, &owner).await.status(), 200);

    let missing = app.request(Method::GET, path, None).send().await.unwrap();
    assert_eq!(error_code(missing).await, (401, "unauthorized".into()));

    let mut tampered = owner.token.clone();
    tampered.pop();
    tampered.push(if owner.token.ends_with('A') { 'B' } else { 'A' });
    let tampered = Login {
        token: tampered,
        ..owner
    };
    assert_eq!(
        error_code(app.get(path, &tampered).await).await,
        (401, "unauthorized".into())
    );

    let now = chrono::Utc::now().timestamp();
    let claims = Claims {
        sub: tampered.user_id,
        practice: tampered.practice_id,
        role: Role::Owner,
        iat: now - 120,
        nbf: None,
        exp: now - 60,
    };
    let seed = ed25519_dalek::SigningKey::from_bytes(&[0x22; 32]);
    let der = ed25519_dalek::pkcs8::EncodePrivateKey::to_pkcs8_der(&seed).unwrap();
    let expired = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA),
        &claims,
        &jsonwebtoken::EncodingKey::from_ed_der(der.as_bytes()),
    )
    .unwrap();
    let expired = Login {
        token: expired,
        ..tampered
    };
    assert_eq!(
        error_code(app.get(path, &expired).await).await,
        (401, "unauthorized".into())
    );
}

#[tokio::test]
async fn each_role_reaches_only_the_routes_it_may_use() {
    let app = spawn_app().await;
    let practice = app.create_practice("Smile Dental").await;
    let settings = "/api/practice-settings/messaging";
    let change = serde_json::json!({"provider": "system_sendgrid", "fromEmail": "desk@smile.test", "fromName": "Smile", "fallbackEnabled": true});
    for (role, may_change) in [
        (Role::Owner, true),
        (Role::Admin, true),
        (Role::Staff, false),
    ] {
        let login = app.login_as(Some(practice), role).await;
        assert_eq!(
            app.get(settings, &login).await.status(),
            200,
            "{role:?} reads settings"
        );
        let put = app
            .send_json(Method::PUT, &format!("{settings}/email"), &login, &change)
            .await;
        assert_eq!(
            put.status().is_success(),
            may_change,
            "{role:?} changing settings"
        );
        let admin = app.get("/api/admin/practices", &login).await;
        assert_eq!(
            error_code(admin).await,
            (403, "forbidden".into()),
            "{role:?} on admin routes"
        );
    }
    let operator = app.login_as(None, Role::PlatformAdmin).await;
    assert_eq!(
        app.get("/api/admin/practices", &operator).await.status(),
        200
    );
    assert_eq!(
        error_code(app.get(settings, &operator).await).await,
        (403, "forbidden".into())
    );
}

#[tokio::test]
async fn malformed_json_and_unknown_routes_answer_in_the_contract_shape() {
    let app = spawn_app().await;
    let response = app
        .http
        .post(app.url("/api/auth/login"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(response).await,
        (400, "validation_failed".into())
    );

    let response = app
        .http
        .post(app.url("/api/auth/login"))
        .json(&serde_json::json!({"email": "a@b.co"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["error"]["fields"]
            .as_object()
            .unwrap()
            .keys()
            .any(|k| k.contains("password") || k == "body"),
        "{body}"
    );

    let unknown = app
        .http
        .get(app.url("/api/nothing-here"))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(unknown).await, (404, "not_found".into()));
}

/// Found by the hostile-input drill: Postgres text cannot hold NUL, and a login naming one
/// failed its query with a 500.
#[tokio::test]
async fn a_login_with_a_nul_character_is_a_422_naming_the_field_and_counts_no_failure() {
    let app = spawn_app().await;
    let response = app.post_login("pat\u{0}@example.com", "whatever").await;
    assert_eq!(response.status(), 422);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["error"]["fields"]["email"],
        "must not contain the NUL character (\\u0000)"
    );
    let failures: i64 = sqlx::query_scalar("select count(*) from login_throttle")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(failures, 0);
}

#[tokio::test]
async fn every_response_carries_a_request_id() {
    let app = spawn_app().await;
    let response = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(!response.headers()["x-request-id"].is_empty());
}

#[tokio::test]
async fn metrics_count_requests_by_route_template() {
    let app = spawn_app().await;
    app.http.get(app.url("/healthz")).send().await.unwrap();
    let text = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("http_requests_total"), "{text}");
    assert!(text.contains("route=\"/healthz\""), "{text}");
    assert!(
        text.contains("http_request_duration_seconds_bucket"),
        "{text}"
    );
}

#[tokio::test]
async fn the_openapi_document_is_3_1_and_lists_the_contract_routes() {
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
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    for path in ["/api/auth/login", "/healthz", "/readyz", "/metrics"] {
        assert!(doc["paths"].get(path).is_some(), "{path} documented");
    }
}

/// Found by the hostile-input drill (schemathesis' status code check): routes answered 400 for
/// a body that is not JSON, 413 for one too large and 401 without a token, undocumented.
#[tokio::test]
async fn every_route_documents_the_400_413_and_401_its_extractors_give() {
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
    let mut missing = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let responses = operation["responses"].as_object().unwrap();
            let mut expected = Vec::new();
            if operation.get("requestBody").is_some() {
                expected.extend(["400", "413"]);
            }
            if operation["security"].to_string().contains("\"bearer\"") {
                expected.push("401");
            }
            for status in expected {
                if !responses.contains_key(status) {
                    missing.push(format!("{method} {path} {status}"));
                }
            }
        }
    }
    assert!(missing.is_empty(), "undocumented: {missing:?}");
}

#[tokio::test]
async fn serve_creates_a_missing_database_migrates_it_and_is_ready() {
    let name = format!("dentite_fresh_{}", uuid::Uuid::new_v4().simple());
    let app = TestEnv::new().database(&name).spawn().await;
    let response = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let applied: i64 = sqlx::query_scalar("select count(*) from _sqlx_migrations where success")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(applied as usize, dentite::db::MIGRATOR.iter().count());
}

#[tokio::test]
async fn migrations_run_again_on_a_migrated_database_without_change() {
    let app = spawn_app().await;
    dentite::db::migrate(&app.pool)
        .await
        .expect("second run is a no-op");
    let monitoring = "SELECT messaging_provider, message_type, COUNT(*) AS total, COUNT(*) FILTER (WHERE status='delivered') AS delivered FROM outreach_logs WHERE created_at >= now() - interval '30 days' GROUP BY 1,2";
    sqlx::query(monitoring)
        .fetch_all(&app.pool)
        .await
        .expect("the seed's monitoring query runs as written");
    tokio::time::sleep(Duration::from_millis(1)).await;
}

#[tokio::test]
async fn key_rotation_re_encrypts_every_credential_once_and_is_safe_to_run_again() {
    use dentite::crypto::{CredentialField, KeyMaterial, Keyring};
    let app = spawn_app().await;
    let old = Keyring::new(&KeyMaterial {
        current: [1; 32],
        previous: vec![],
    });
    let mut practices = Vec::new();
    for i in 0..5 {
        let practice = app.create_practice(&format!("Practice {i}")).await;
        store_account(
            &app.pool,
            practice,
            "sendgrid",
            json!({}),
            json!({"sendgrid_api_key": old.encrypt("SG.k.v", practice, CredentialField::SendGridApiKey)}),
        )
        .await;
        store_account(
            &app.pool,
            practice,
            "twilio",
            json!({}),
            json!({
                "twilio_account_sid": old.encrypt("AC0", practice, CredentialField::TwilioAccountSid),
                "twilio_auth_token": old.encrypt("token", practice, CredentialField::TwilioAuthToken),
            }),
        )
        .await;
        practices.push(practice);
    }
    let rotating = Keyring::new(&KeyMaterial {
        current: [2; 32],
        previous: vec![[1; 32]],
    });
    assert_eq!(
        dentite::cli::rotate_credentials(&app.pool, &rotating, 2)
            .await
            .unwrap(),
        15
    );
    assert_eq!(
        dentite::cli::rotate_credentials(&app.pool, &rotating, 2)
            .await
            .unwrap(),
        0
    );

    let new_only = Keyring::new(&KeyMaterial {
        current: [2; 32],
        previous: vec![],
    });
    for practice in practices {
        let key = stored_envelope(&app.pool, practice, "sendgrid_api_key")
            .await
            .unwrap();
        let token = stored_envelope(&app.pool, practice, "twilio_auth_token")
            .await
            .unwrap();
        let key = new_only
            .decrypt(&key, practice, CredentialField::SendGridApiKey)
            .unwrap();
        assert_eq!(secrecy::ExposeSecret::expose_secret(&key), "SG.k.v");
        assert!(
            new_only
                .decrypt(&token, practice, CredentialField::TwilioAuthToken)
                .is_ok()
        );
    }
}

#[tokio::test]
async fn readyz_answers_503_while_the_database_is_unreachable_and_200_when_it_returns() {
    let (app, proxy) = crate::pg_proxy::app_behind_proxy(TestEnv::new().without_background()).await;
    let readyz = || async {
        app.http
            .get(app.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(readyz().await, 200);

    proxy.go_down();
    assert_eq!(readyz().await, 503);
    let response = app
        .http
        .post(app.url("/api/auth/login"))
        .json(&serde_json::json!({"email": "a@b.co", "password": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(response).await, (503, "unavailable".into()));

    proxy.come_back();
    let recovered = async {
        while readyz().await != 200 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(15), recovered)
        .await
        .expect("ready again once the database returns");
}
