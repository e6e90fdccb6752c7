//! Test sends go to whatever number the caller types: the account's rate limit and a per-practice
//! hourly quota, held in Postgres, bound them across instances.

use reqwest::Method;
use serde_json::{Value, json};
use wiremock::{
    Mock, MockServer, ResponseTemplate,
    matchers::{method, path},
};

use crate::helpers::{Login, SYSTEM_TWILIO_SID, TestApp, TestEnv};

const TEST_SMS: &str = "/api/practice-settings/messaging/sms/test";
/// An international number: what a toll-fraud run would target.
const PREMIUM_NUMBER: &str = "+882355512345";

async fn twilio_accepts(server: &MockServer) {
    Mock::given(method("POST"))
        .and(path(format!(
            "/2010-04-01/Accounts/{SYSTEM_TWILIO_SID}/Messages.json"
        )))
        .respond_with(ResponseTemplate::new(201).set_body_json(
            json!({"sid": "SM0123456789abcdef0123456789abcdef", "status": "queued"}),
        ))
        .mount(server)
        .await;
}

async fn messages_reaching(server: &MockServer) -> usize {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path().ends_with("/Messages.json"))
        .count()
}

/// Fires `count` test SMS at once, spread over `apps`; returns each answer's status, its
/// Retry-After and its error code.
async fn concurrent_tests(
    apps: &[&TestApp],
    login: &Login,
    count: usize,
) -> Vec<(u16, Option<u64>, Option<String>)> {
    let requests = (0..count).map(|i| {
        let app = apps[i % apps.len()];
        async move {
            let response = app
                .request(Method::POST, TEST_SMS, Some(login))
                .json(&json!({"to": PREMIUM_NUMBER}))
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok()?.parse().ok());
            let body: Value = response.json().await.unwrap();
            let code = body["error"]["code"].as_str().map(str::to_string);
            (status, retry_after, code)
        }
    });
    futures::future::join_all(requests).await
}

#[tokio::test]
async fn forty_concurrent_test_sms_over_two_instances_reach_twilio_only_up_to_the_hourly_quota() {
    let database = format!("dentite_test_{}", uuid::Uuid::new_v4().simple());
    let instance = || {
        TestEnv::new()
            .with_system_accounts()
            .without_background()
            .database(&database)
            .var("TEST_SENDS_PER_HOUR", "5")
            // The account's rate limit off, so only the quota can stop them.
            .var("TWILIO_RATE_PER_SEC", "0")
    };
    let first = instance().spawn().await;
    let second = instance().spawn().await;
    for app in [&first, &second] {
        twilio_accepts(&app.twilio).await;
    }
    let owner = first.practice_owner().await;

    let answers = concurrent_tests(&[&first, &second], &owner, 40).await;

    let reached = messages_reaching(&first.twilio).await + messages_reaching(&second.twilio).await;
    assert_eq!(reached, 5, "{answers:?}");
    assert_eq!(
        answers.iter().filter(|a| a.0 == 200).count(),
        5,
        "{answers:?}"
    );
    let refused: Vec<_> = answers.iter().filter(|a| a.0 != 200).collect();
    assert_eq!(refused.len(), 35);
    for (status, retry_after, code) in refused {
        assert_eq!(*status, 429);
        assert_eq!(code.as_deref(), Some("rate_limited"));
        assert!(
            retry_after.is_some_and(|secs| (1..=3600).contains(&secs)),
            "{retry_after:?}"
        );
    }
}

#[tokio::test]
async fn concurrent_test_sms_take_tokens_from_the_accounts_rate_limit() {
    let app = TestEnv::new()
        .with_system_accounts()
        .without_background()
        .var("TEST_SENDS_PER_HOUR", "1000")
        .var("TWILIO_RATE_PER_SEC", "1")
        .spawn()
        .await;
    twilio_accepts(&app.twilio).await;
    let owner = app.practice_owner().await;

    let answers = concurrent_tests(&[&app], &owner, 10).await;

    // One token in the bucket, one more if the burst straddles a second on a loaded machine.
    let reached = messages_reaching(&app.twilio).await;
    assert!((1..=2).contains(&reached), "{reached} reached: {answers:?}");
    let limited = answers
        .iter()
        .filter(|(status, retry_after, code)| {
            *status == 429 && retry_after.is_some() && code.as_deref() == Some("rate_limited")
        })
        .count();
    assert_eq!(limited, 10 - reached, "{answers:?}");
}
