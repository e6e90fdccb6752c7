//! Fault drills: a database outage while the queue sends.

use std::{collections::HashMap, time::Duration};

use wiremock::{Mock, ResponseTemplate, matchers::method};

use crate::{helpers::*, pg_proxy::app_behind_proxy};

#[tokio::test]
async fn a_database_outage_while_sending_pauses_the_queue_and_every_message_ends_sent_exactly_once()
{
    let env = TestEnv::new()
        .with_system_accounts()
        .var("SENDGRID_RATE_PER_SEC", "0")
        .var("SEND_WORKERS", "4");
    let (app, proxy) = app_behind_proxy(env).await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(202).set_delay(Duration::from_millis(20)))
        .mount(&app.sendgrid)
        .await;
    let owner = app.practice_owner().await;
    let patient = app
        .create_patient(
            owner.practice_id.unwrap(),
            "pat@example.com",
            "+15557654321",
        )
        .await;
    let mut ids = Vec::new();
    for _ in 0..60 {
        ids.push(app.queue_message(&owner, patient, "email").await);
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    proxy.go_down();
    tokio::time::sleep(Duration::from_secs(2)).await;
    proxy.come_back();

    let all_sent = async {
        loop {
            let pending: Result<i64, _> =
                sqlx::query_scalar("select count(*) from outreach_logs where status <> 'sent'")
                    .fetch_one(&app.pool)
                    .await;
            if pending.is_ok_and(|n| n == 0) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(60), all_sent)
        .await
        .expect("every message ends sent");
    let mut sends: HashMap<String, usize> = HashMap::new();
    for request in app.sendgrid.received_requests().await.unwrap() {
        let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
        *sends
            .entry(
                body["custom_args"]["outreach_log_id"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            )
            .or_default() += 1;
    }
    assert_eq!(sends.len(), ids.len(), "every message reached the provider");
    assert!(
        sends.values().all(|&n| n == 1),
        "no message was sent twice: {sends:?}"
    );
}
