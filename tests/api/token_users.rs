//! A token speaks for its user as the user is now (issue 13): demotions and deletions take
//! effect on the next request, on every instance, and never as a 5xx.

use dentite::auth::Role;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::*;

const SETTINGS_EMAIL: &str = "/api/practice-settings/messaging/email";

fn settings_change() -> Value {
    json!({"provider": "system_sendgrid", "fromEmail": "desk@smile.test", "fromName": "Smile", "fallbackEnabled": true})
}

async fn code_of(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    (
        status,
        body["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

#[tokio::test]
async fn a_demoted_admins_token_can_no_longer_change_settings() {
    let app = spawn_app().await;
    let practice = app.create_practice("Smile Dental").await;
    let admin = app.login_as(Some(practice), Role::Admin).await;
    let before = app
        .send_json(Method::PUT, SETTINGS_EMAIL, &admin, &settings_change())
        .await;
    assert!(before.status().is_success(), "{}", before.status());

    sqlx::query("update users set role = 'staff' where id = $1")
        .bind(admin.user_id)
        .execute(&app.pool)
        .await
        .unwrap();
    let after = app
        .send_json(Method::PUT, SETTINGS_EMAIL, &admin, &settings_change())
        .await;
    assert_eq!(code_of(after).await, (403, "forbidden".into()));
    assert_eq!(
        app.get("/api/practice-settings/messaging", &admin)
            .await
            .status(),
        200,
        "as staff it still reads them"
    );
}

#[tokio::test]
async fn a_deleted_users_token_gets_401_for_reads_sends_and_settings_writes() {
    let app = spawn_app().await;
    let owner = app.practice_owner().await;
    let practice = owner.practice_id.unwrap();
    let patient = app
        .create_patient(practice, "pat@example.com", "+15557654321")
        .await;
    let admin = app.login_as(Some(practice), Role::Admin).await;
    assert_eq!(app.get("/api/patients", &admin).await.status(), 200);

    sqlx::query("delete from users where id = $1")
        .bind(admin.user_id)
        .execute(&app.pool)
        .await
        .unwrap();
    // The deletion reaches this instance's cache through the users trigger's notification.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let (status, code) = code_of(app.get("/api/patients", &admin).await).await;
        if status == 401 {
            assert_eq!(code, "unauthorized");
            break;
        }
        assert_eq!(
            status, 200,
            "never a 5xx while the notification is on its way"
        );
        assert!(
            std::time::Instant::now() < deadline,
            "the deletion never reached the cache"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let send = app
        .send_json(
            Method::POST,
            "/api/outreach/messages",
            &admin,
            &json!({"patientId": patient, "channel": "email", "subject": "Hi", "body": "Hello"}),
        )
        .await;
    assert_eq!(code_of(send).await, (401, "unauthorized".into()));
    let write = app
        .send_json(Method::PUT, SETTINGS_EMAIL, &admin, &settings_change())
        .await;
    assert_eq!(code_of(write).await, (401, "unauthorized".into()));
    let queued: i64 = sqlx::query_scalar("select count(*) from outreach_logs")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(queued, 0);
    // The owner, untouched, carries on.
    assert_eq!(app.get("/api/patients", &owner).await.status(), 200);
}

#[tokio::test]
async fn a_deletion_on_one_instance_reaches_the_cache_of_another() {
    let first = spawn_app().await;
    let database: String = sqlx::query_scalar("select current_database()")
        .fetch_one(&first.pool)
        .await
        .unwrap();
    let second = TestEnv::new().database(&database).spawn().await;
    let practice = first.create_practice("Smile Dental").await;
    let staff = first.login_as(Some(practice), Role::Staff).await;
    // The second instance has cached the user as it was.
    assert_eq!(second.get("/api/patients", &staff).await.status(), 200);

    sqlx::query("delete from users where id = $1")
        .bind(staff.user_id)
        .execute(&first.pool)
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let status = second.get("/api/patients", &staff).await.status();
        if status == 401 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the second instance still accepts the deleted user's token ({status})"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
