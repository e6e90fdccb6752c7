//! Which address the login throttle counts: the TCP peer, unless the peer is a trusted proxy,
//! then the right-most address in `X-Forwarded-For` that no trusted proxy wrote.

use dentite::auth::Role;

use crate::helpers::{TestApp, TestEnv};

async fn wrong_login_via(app: &TestApp, email: &str, forwarded_for: &str) -> u16 {
    app.http
        .post(app.url("/api/auth/login"))
        .header("x-forwarded-for", forwarded_for)
        .json(&serde_json::json!({"email": email, "password": "a wrong guess"}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn throttled_addresses(app: &TestApp) -> Vec<String> {
    sqlx::query_scalar(
        "select subject from login_throttle where subject like 'ip:%' order by subject",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_allowance() {
    let app = TestEnv::new()
        .var("TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.1")
        .spawn()
        .await;
    let practice = app.create_practice("Smile Dental").await;
    let (email, _) = app.create_user(Some(practice), Role::Owner).await;

    // The client rotates what it writes itself; the proxy's appended address stays.
    for i in 0..6 {
        let status = wrong_login_via(
            &app,
            &email,
            &format!("192.0.2.{i}, 198.51.100.7, 10.0.0.3"),
        )
        .await;
        assert_eq!(status, if i < 5 { 401 } else { 429 }, "attempt {i}");
    }
    let other_client = wrong_login_via(&app, &email, "203.0.113.9").await;

    assert_eq!(
        other_client, 401,
        "another client behind the proxy is not throttled"
    );
    assert_eq!(
        throttled_addresses(&app).await,
        ["ip:198.51.100.7", "ip:203.0.113.9"]
    );
}

#[tokio::test]
async fn x_forwarded_for_from_a_peer_that_is_not_a_trusted_proxy_is_ignored() {
    let app = TestEnv::new()
        .var("TRUSTED_PROXIES", "10.0.0.0/8")
        .spawn()
        .await;
    let practice = app.create_practice("Smile Dental").await;
    let (email, _) = app.create_user(Some(practice), Role::Owner).await;

    let statuses: Vec<u16> = {
        let mut statuses = Vec::new();
        for i in 0..6 {
            statuses.push(wrong_login_via(&app, &email, &format!("198.51.100.{i}")).await);
        }
        statuses
    };

    assert_eq!(statuses, [401, 401, 401, 401, 401, 429]);
    assert_eq!(throttled_addresses(&app).await, ["ip:127.0.0.1"]);
}
