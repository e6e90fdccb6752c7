//! The practice's suppression list, and lifting an entry.

use dentite::{
    auth::Role,
    messaging::{Channel, suppression},
};
use reqwest::{Method, Response};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Login, TestApp, TestEnv};

const PAT_EMAIL: &str = "pat@example.com";
const PAT_PHONE: &str = "+15551230001";
const STRANGER_PHONE: &str = "+15551239999";

impl TestApp {
    async fn suppressions(&self, login: &Login, query: &str) -> Response {
        self.get(&format!("/api/suppressions{query}"), login).await
    }
}

async fn items(response: Response) -> Vec<Value> {
    assert_eq!(response.status(), 200);
    let page: Value = response.json().await.unwrap();
    page["items"].as_array().unwrap().clone()
}

async fn add_patient(app: &TestApp, owner: &Login) {
    let response = app
        .send_json(
            Method::POST,
            "/api/patients",
            owner,
            &json!({"firstName": "Pat", "lastName": "Lee", "email": PAT_EMAIL, "phone": PAT_PHONE}),
        )
        .await;
    assert_eq!(response.status(), 201);
}

#[tokio::test]
async fn the_list_shows_the_practices_entries_and_the_shared_numbers_opt_outs_of_its_patients_only()
{
    let app = TestEnv::new().without_background().spawn().await;
    let owner = app.practice_owner().await;
    let practice = owner.practice_id.unwrap();
    add_patient(&app, &owner).await;
    let other = app.practice_owner().await;
    app.follow_unsubscribe_link(practice, PAT_EMAIL).await;
    app.follow_unsubscribe_link(other.practice_id.unwrap(), "someone@example.com")
        .await;
    app.shared_number_opt_out(PAT_PHONE).await;
    app.shared_number_opt_out(STRANGER_PHONE).await;

    let all = items(app.suppressions(&owner, "").await).await;
    let summary: Vec<(&str, &str, &str, &str, bool)> = all
        .iter()
        .map(|entry| {
            (
                entry["channel"].as_str().unwrap(),
                entry["address"].as_str().unwrap(),
                entry["reason"].as_str().unwrap(),
                entry["source"].as_str().unwrap(),
                entry["shared"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("sms", PAT_PHONE, "opted_out", "sms_keyword", true),
            (
                "email",
                PAT_EMAIL,
                "unsubscribed",
                "unsubscribe_link",
                false
            ),
        ],
        "newest first; another practice's entry and a stranger's opt-out are not shown"
    );

    let sms = items(app.suppressions(&owner, "?channel=sms").await).await;
    assert_eq!(sms.len(), 1);
    let found = items(app.suppressions(&owner, "?search=PAT%40EXAMPLE").await).await;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["address"], PAT_EMAIL);

    let first = app.suppressions(&owner, "?limit=1").await;
    let first: Value = first.json().await.unwrap();
    let cursor = first["nextCursor"].as_str().unwrap();
    let second = items(
        app.suppressions(&owner, &format!("?limit=1&cursor={cursor}"))
            .await,
    )
    .await;
    assert_eq!(second[0]["address"], PAT_EMAIL);

    let refused = app.suppressions(&owner, "?channel=fax&limit=0").await;
    assert_eq!(refused.status(), 422);
    let body: Value = refused.json().await.unwrap();
    let mut fields: Vec<&str> = body["error"]["fields"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort_unstable();
    assert_eq!(fields, ["channel", "limit"]);
}

#[tokio::test]
async fn an_owner_lifts_a_practice_entry_audited_while_staff_and_shared_opt_outs_are_refused() {
    let app = TestEnv::new().without_background().spawn().await;
    let owner = app.practice_owner().await;
    let practice = owner.practice_id.unwrap();
    let staff = app.login_as(Some(practice), Role::Staff).await;
    add_patient(&app, &owner).await;
    app.follow_unsubscribe_link(practice, PAT_EMAIL).await;
    app.shared_number_opt_out(PAT_PHONE).await;
    let entries = items(app.suppressions(&staff, "").await).await;
    let id_of = |channel: &str| {
        entries
            .iter()
            .find(|entry| entry["channel"] == channel)
            .unwrap()["id"]
            .as_i64()
            .unwrap()
    };
    let (email_entry, shared_entry) = (id_of("email"), id_of("sms"));

    assert_eq!(
        app.lift_suppression(&staff, email_entry).await.status(),
        403
    );
    assert_eq!(
        app.lift_suppression(&owner, shared_entry).await.status(),
        409
    );
    let other = app.practice_owner().await;
    assert_eq!(
        app.lift_suppression(&other, email_entry).await.status(),
        404
    );

    assert_eq!(
        app.lift_suppression(&owner, email_entry).await.status(),
        204
    );
    assert_eq!(
        app.lift_suppression(&owner, email_entry).await.status(),
        404
    );
    let remaining = items(app.suppressions(&owner, "").await).await;
    assert_eq!(remaining.len(), 1);
    assert_eq!(remaining[0]["shared"], true);
    assert_eq!(
        suppression::check(&app.pool, practice, Channel::Email, PAT_EMAIL, true)
            .await
            .unwrap(),
        None,
        "the address may be emailed again"
    );
    let audit: Vec<(String, Vec<String>, Option<Uuid>)> = sqlx::query_as(
        "select action, changed_fields, user_id from audit_log where practice_id = $1 and action like 'suppression.%'",
    )
    .bind(practice)
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        audit,
        [(
            "suppression.lift".to_string(),
            vec!["email".to_string()],
            Some(owner.user_id)
        )],
        "audited without the address"
    );
}
