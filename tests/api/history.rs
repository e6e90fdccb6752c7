//! The outreach counts (exact against a full scan of the logs, whoever writes them), the daily
//! series, and retention.

use chrono::{Duration, Utc};
use dentite::{
    history::counts,
    outreach::status::{OutreachStatus, StatusChange, advance},
    retention,
};
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::{TestEnv, spawn_app};

async fn json_of(response: reqwest::Response, status: u16) -> Value {
    let actual = response.status().as_u16();
    let body: Value = response.json().await.expect("responses are JSON");
    assert_eq!(actual, status, "{body}");
    body
}

/// A small deterministic generator, so a failing mix can be replayed.
struct Mix(u64);

impl Mix {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Per practice, provider and type, the last 400 days counted from the logs themselves, in the
/// order `counts::by_key` gives.
async fn scanned(pool: &PgPool) -> Vec<(Uuid, Option<String>, String, i64, i64, i64, i64)> {
    sqlx::query_as(
        "select l.practice_id, l.messaging_provider, l.message_type, count(*),
                count(*) filter (where status in ('sent', 'delivered', 'opened', 'clicked')),
                count(*) filter (where status in ('delivered', 'opened', 'clicked')),
                count(*) filter (where status in ('failed', 'undelivered', 'bounced', 'dropped'))
         from outreach_logs l join practices p on p.id = l.practice_id
         where (l.created_at at time zone 'UTC')::date > (now() at time zone 'UTC')::date - 400
         group by l.practice_id, p.name, l.messaging_provider, l.message_type
         order by p.name, l.practice_id, l.messaging_provider nulls last, l.message_type",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

async fn counted(pool: &PgPool) -> Vec<(Uuid, Option<String>, String, i64, i64, i64, i64)> {
    counts::by_key(pool, None, 400)
        .await
        .unwrap()
        .into_iter()
        .map(|k| {
            (
                k.practice_id,
                k.messaging_provider,
                k.message_type,
                k.total,
                k.sent,
                k.delivered,
                k.failed,
            )
        })
        .collect()
}

const PROVIDERS: [&str; 3] = ["custom_sendgrid", "system_sendgrid", "outbox"];

#[tokio::test]
async fn counts_equal_a_full_scan_after_concurrent_sends_fallbacks_and_repeated_out_of_order_events()
 {
    let app = TestEnv::new().without_background().spawn().await;
    let practices = [
        app.create_practice("Alpha Dental").await,
        app.create_practice("Beta Dental").await,
    ];
    // Messages created on many days, queued as the API queues them.
    let mut mix = Mix(0x9e37_79b9_7f4a_7c15);
    let mut logs = Vec::new();
    for n in 0..240 {
        let id = Uuid::new_v4();
        let practice = practices[n % 2];
        let age = Duration::days(mix.below(120) as i64) + Duration::minutes(mix.below(1440) as i64);
        let channel = if mix.below(3) == 0 { "sms" } else { "email" };
        sqlx::query(
            "insert into outreach_logs (id, practice_id, message_type, recipient, subject, body, created_at)
             values ($1, $2, $3, 'pat@example.com', 'Hi', 'Body', now() - $4::interval)",
        )
        .bind(id)
        .bind(practice)
        .bind(channel)
        .bind(format!("{} seconds", age.num_seconds()))
        .execute(&app.pool)
        .await
        .unwrap();
        logs.push(id);
    }
    // Eight writers at once, each like a worker or a webhook: claims, failed attempts that record
    // one provider, outcomes that record another (fallback), then provider events in any order,
    // repeated.
    let tasks = (0..8u64).map(|worker| {
        let pool = app.pool.clone();
        let logs = logs.clone();
        tokio::spawn(async move {
            let mut mix = Mix(0x2545_f491_4f6c_dd1d ^ (worker + 1));
            for _ in 0..120 {
                let log = logs[mix.below(logs.len() as u64) as usize];
                match mix.below(5) {
                    0 => {
                        sqlx::query("update outreach_logs set status = 'sending' where id = $1 and status = 'queued'")
                            .bind(log)
                            .execute(&pool)
                            .await
                            .unwrap();
                    }
                    1 => {
                        let provider = PROVIDERS[mix.below(3) as usize];
                        sqlx::query(
                            "update outreach_logs set status = 'queued', messaging_provider = $2
                             where id = $1 and status in ('queued', 'sending')",
                        )
                        .bind(log)
                        .bind(provider)
                        .execute(&pool)
                        .await
                        .unwrap();
                    }
                    2 => {
                        let provider = PROVIDERS[mix.below(3) as usize];
                        let outcome = ["sent", "failed", "suppressed"][mix.below(3) as usize];
                        sqlx::query(
                            "update outreach_logs set messaging_provider = $2,
                                 status = case when status in ('queued', 'sending') then $3 else status end
                             where id = $1",
                        )
                        .bind(log)
                        .bind(provider)
                        .bind(outcome)
                        .execute(&pool)
                        .await
                        .unwrap();
                    }
                    _ => {
                        let statuses = [
                            OutreachStatus::Sent,
                            OutreachStatus::Delivered,
                            OutreachStatus::Opened,
                            OutreachStatus::Clicked,
                            OutreachStatus::Bounced,
                            OutreachStatus::Undelivered,
                            OutreachStatus::SpamReported,
                        ];
                        // A batch of events about several logs, some twice, in any order.
                        let changes: Vec<StatusChange> = (0..1 + mix.below(6))
                            .map(|_| StatusChange {
                                log_id: logs[mix.below(logs.len() as u64) as usize],
                                status: statuses[mix.below(statuses.len() as u64) as usize],
                                error: None,
                            })
                            .chain(std::iter::once(StatusChange {
                                log_id: log,
                                status: OutreachStatus::Delivered,
                                error: None,
                            }))
                            .collect();
                        // The same batch twice, as a provider retrying it does.
                        for _ in 0..2 {
                            let mut tx = pool.begin().await.unwrap();
                            advance(&mut tx, &changes).await.unwrap();
                            tx.commit().await.unwrap();
                        }
                    }
                }
            }
        })
    });
    for task in futures::future::join_all(tasks).await {
        task.unwrap();
    }

    let scan = scanned(&app.pool).await;
    assert!(scan.len() >= 6, "the mix spread over keys: {scan:?}");
    assert_eq!(counted(&app.pool).await, scan);
    // Every window agrees too, not only the widest.
    for days in [1, 7, 30, 90] {
        let window: Vec<(Option<String>, String, i64, i64, i64)> = sqlx::query_as(
            "select messaging_provider, message_type, count(*),
                    count(*) filter (where status in ('delivered', 'opened', 'clicked')),
                    count(*) filter (where status in ('failed', 'undelivered', 'bounced', 'dropped'))
             from outreach_logs
             where practice_id = $1 and (created_at at time zone 'UTC')::date > (now() at time zone 'UTC')::date - $2
             group by 1, 2 order by 1 nulls last, 2",
        )
        .bind(practices[0])
        .bind(days)
        .fetch_all(&app.pool)
        .await
        .unwrap();
        let from_counts: Vec<_> = counts::by_key(&app.pool, Some(practices[0]), days)
            .await
            .unwrap()
            .into_iter()
            .map(|k| {
                (
                    k.messaging_provider,
                    k.message_type,
                    k.total,
                    k.delivered,
                    k.failed,
                )
            })
            .collect();
        assert_eq!(from_counts, window, "last {days} days");
    }
    // The daily series adds up to the window's counts.
    let daily = counts::daily(&app.pool, practices[1], 90).await.unwrap();
    let by_day: Vec<(chrono::NaiveDate, String, Option<String>, i64, i64)> = sqlx::query_as(
        "select (created_at at time zone 'UTC')::date, message_type, messaging_provider, count(*),
                count(*) filter (where status in ('sent', 'delivered', 'opened', 'clicked'))
         from outreach_logs
         where practice_id = $1 and (created_at at time zone 'UTC')::date > (now() at time zone 'UTC')::date - 90
         group by 1, 2, 3 order by 1, 2, 3 nulls last",
    )
    .bind(practices[1])
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        daily
            .into_iter()
            .map(|d| (d.day, d.message_type, d.messaging_provider, d.total, d.sent))
            .collect::<Vec<_>>(),
        by_day
    );
}

#[tokio::test]
async fn deleting_logs_keeps_them_counted() {
    let app = spawn_app().await;
    let owner = app.practice_owner().await;
    let practice = owner.practice_id.unwrap();
    sqlx::query(
        "insert into outreach_logs (id, practice_id, message_type, status, messaging_provider, recipient, body, created_at)
         select gen_random_uuid(), $1, 'email', 'delivered', 'system_sendgrid', 'x', 'y', now() - interval '3 days'
         from generate_series(1, 5)",
    )
    .bind(practice)
    .execute(&app.pool)
    .await
    .unwrap();
    sqlx::query("delete from outreach_logs")
        .execute(&app.pool)
        .await
        .unwrap();
    let usage = json_of(app.get("/api/analytics/messaging", &owner).await, 200).await;
    assert_eq!(
        usage,
        json!([{"messagingProvider": "system_sendgrid", "messageType": "email", "total": 5, "delivered": 5, "failed": 0}])
    );
}

#[tokio::test]
async fn the_daily_series_gives_each_days_counts_and_names_a_bad_days() {
    let app = spawn_app().await;
    let owner = app.practice_owner().await;
    let practice = owner.practice_id.unwrap();
    for (status, provider, age) in [
        ("delivered", Some("system_sendgrid"), 0),
        ("bounced", Some("system_sendgrid"), 0),
        ("sent", Some("system_sendgrid"), 2),
        ("suppressed", None, 2),
        ("delivered", Some("system_sendgrid"), 40),
    ] {
        sqlx::query(
            "insert into outreach_logs (id, practice_id, message_type, status, messaging_provider, recipient, body, created_at)
             values ($1, $2, 'email', $3, $4, 'x', 'y', now() - make_interval(days => $5))",
        )
        .bind(Uuid::new_v4())
        .bind(practice)
        .bind(status)
        .bind(provider)
        .bind(age)
        .execute(&app.pool)
        .await
        .unwrap();
    }
    let today = Utc::now().date_naive();
    let day = |ago: i64| (today - Duration::days(ago)).to_string();
    let series = json_of(
        app.get("/api/analytics/messaging/daily?days=30", &owner)
            .await,
        200,
    )
    .await;
    assert_eq!(
        series,
        json!([
            {"day": day(2), "messageType": "email", "messagingProvider": "system_sendgrid", "total": 1, "sent": 1, "delivered": 0, "failed": 0},
            {"day": day(2), "messageType": "email", "messagingProvider": null, "total": 1, "sent": 0, "delivered": 0, "failed": 0},
            {"day": day(0), "messageType": "email", "messagingProvider": "system_sendgrid", "total": 2, "sent": 1, "delivered": 1, "failed": 1},
        ])
    );
    let wider = json_of(
        app.get("/api/analytics/messaging/daily?days=400", &owner)
            .await,
        200,
    )
    .await;
    assert_eq!(wider[0]["day"], day(40));
    for bad in ["0", "401", "week"] {
        let body = json_of(
            app.get(
                &format!("/api/analytics/messaging/daily?days={bad}"),
                &owner,
            )
            .await,
            422,
        )
        .await;
        assert!(body["error"]["fields"]["days"].is_string(), "{bad}: {body}");
    }
    let operator = app.login_as(None, dentite::auth::Role::PlatformAdmin).await;
    assert_eq!(
        app.get("/api/analytics/messaging/daily", &operator)
            .await
            .status(),
        403
    );
    let document = json_of(
        app.http
            .get(app.url("/api/openapi.json"))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert!(document["paths"]["/api/analytics/messaging/daily"]["get"].is_object());
}

/// One row of each kind at each age, and what retention left of them.
#[tokio::test]
async fn retention_forgets_old_bodies_and_rows_keeps_young_and_unsent_ones_and_keeps_counting() {
    let app = TestEnv::new().without_background().spawn().await;
    let owner = app.practice_owner().await;
    let practice = owner.practice_id.unwrap();
    let policy = retention::RetentionPolicy {
        body_days: 90,
        log_days: 2190,
        event_days: 400,
        outbox_days: 30,
        idempotency_hours: 168,
        interval: std::time::Duration::from_secs(3600),
    };
    let log = |status: &'static str, days: i64| {
        let pool = app.pool.clone();
        async move {
            let id = Uuid::new_v4();
            sqlx::query(
                "insert into outreach_logs (id, practice_id, message_type, status, messaging_provider, recipient, subject, body, created_at)
                 values ($1, $2, 'email', $3, 'system_sendgrid', 'x', 'Subject', 'Body', now() - make_interval(days => $4))",
            )
            .bind(id)
            .bind(practice)
            .bind(status)
            .bind(days as i32)
            .execute(&pool)
            .await
            .unwrap();
            id
        }
    };
    let young = log("delivered", 89).await;
    let old = log("delivered", 91).await;
    let old_queued = log("queued", 91).await;
    let old_with_job = log("failed", 200).await;
    sqlx::query("insert into send_jobs (outreach_log_id, practice_id) values ($1, $2)")
        .bind(old_with_job)
        .bind(practice)
        .execute(&app.pool)
        .await
        .unwrap();
    let ancient = log("delivered", 2191).await;
    let almost_ancient = log("delivered", 2189).await;
    for (key, age) in [("young", 399), ("old", 401)] {
        sqlx::query(
            "insert into provider_events (event_key, provider, practice_id, event_type, payload, received_at)
             values ($1, 'sendgrid', $2, 'delivered', '{}', now() - make_interval(days => $3))",
        )
        .bind(key)
        .bind(practice)
        .bind(age)
        .execute(&app.pool)
        .await
        .unwrap();
    }
    for (recipient, age) in [("young@x.test", 29), ("old@x.test", 31)] {
        sqlx::query(
            "insert into outbox_messages (id, practice_id, channel, recipient, sender, body, created_at)
             values ($1, $2, 'email', $3, 'desk@x.test', 'Body', now() - make_interval(days => $4))",
        )
        .bind(Uuid::new_v4())
        .bind(practice)
        .bind(recipient)
        .bind(age)
        .execute(&app.pool)
        .await
        .unwrap();
    }
    for (key, hours) in [("young", 167), ("old", 169)] {
        sqlx::query(
            "insert into idempotency_keys (practice_id, key, request_hash, created_at)
             values ($1, $2, 'h', now() - make_interval(hours => $3))",
        )
        .bind(practice)
        .bind(key)
        .bind(hours)
        .execute(&app.pool)
        .await
        .unwrap();
    }
    let usage_before = json_of(
        app.get("/api/analytics/messaging?days=365", &owner).await,
        200,
    )
    .await;

    let (_stop, running) = tokio::sync::watch::channel(false);
    let purged = retention::run_once(&app.pool, &policy, &running)
        .await
        .unwrap();
    assert_eq!(
        purged,
        retention::Purged {
            // `old`, `almost_ancient` and `ancient`, which was then deleted.
            bodies: 3,
            logs: 1,
            events: 1,
            outbox: 1,
            idempotency_keys: 1,
        },
    );
    let bodies: Vec<(Uuid, Option<String>, Option<String>)> =
        sqlx::query_as("select id, subject, body from outreach_logs order by created_at desc")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    let kept = |id: Uuid| {
        bodies
            .iter()
            .find(|(log, _, _)| *log == id)
            .map(|(_, subject, body)| (subject.is_some(), body.is_some()))
    };
    assert_eq!(kept(young), Some((true, true)));
    assert_eq!(kept(old), Some((false, false)));
    assert_eq!(kept(old_queued), Some((true, true)), "not sent yet");
    assert_eq!(kept(old_with_job), Some((true, true)), "a send job is left");
    assert_eq!(kept(almost_ancient), Some((false, false)));
    assert_eq!(kept(ancient), None);
    let left: (i64, i64, i64) = sqlx::query_as(
        "select (select count(*) from provider_events where event_key = 'young'),
                (select count(*) from outbox_messages where recipient = 'young@x.test'),
                (select count(*) from idempotency_keys where key = 'young')",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(left, (1, 1, 1));
    assert_eq!(
        json_of(
            app.get("/api/analytics/messaging?days=365", &owner).await,
            200
        )
        .await,
        usage_before,
        "purged messages are still counted"
    );
    // The detail of a purged log still reads.
    let detail = json_of(
        app.get(&format!("/api/outreach/logs/{old}"), &owner).await,
        200,
    )
    .await;
    assert_eq!(detail["subject"], Value::Null);
    // A second run finds nothing left to do, and `0` keeps forever.
    assert_eq!(
        retention::run_once(&app.pool, &policy, &running)
            .await
            .unwrap(),
        retention::Purged::default()
    );
    let forever = retention::RetentionPolicy {
        body_days: 0,
        log_days: 0,
        event_days: 0,
        outbox_days: 0,
        idempotency_hours: 0,
        ..policy
    };
    log("delivered", 5000).await;
    assert_eq!(
        retention::run_once(&app.pool, &forever, &running)
            .await
            .unwrap(),
        retention::Purged::default()
    );
}

#[tokio::test]
async fn a_queued_message_whose_body_was_purged_fails_instead_of_going_out_blank() {
    let app = TestEnv::new()
        .with_system_accounts()
        .without_background()
        .spawn()
        .await;
    let practice = app.create_practice("Smile Dental").await;
    let id = Uuid::new_v4();
    sqlx::query(
        "insert into outreach_logs (id, practice_id, message_type, recipient, subject, body)
         values ($1, $2, 'email', 'pat@example.com', null, null)",
    )
    .bind(id)
    .bind(practice)
    .execute(&app.pool)
    .await
    .unwrap();
    sqlx::query("insert into send_jobs (outreach_log_id, practice_id) values ($1, $2)")
        .bind(id)
        .bind(practice)
        .execute(&app.pool)
        .await
        .unwrap();
    sqlx::query("insert into send_fairness (practice_id) values ($1)")
        .bind(practice)
        .execute(&app.pool)
        .await
        .unwrap();
    app.state.workers().run_once().await.unwrap();
    let (status, error): (String, Option<String>) =
        sqlx::query_as("select status, error from outreach_logs where id = $1")
            .bind(id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(status, "failed");
    assert!(error.unwrap().contains("purged"));
    assert_eq!(
        app.sendgrid
            .received_requests()
            .await
            .unwrap_or_default()
            .len(),
        0,
        "nothing reached SendGrid"
    );
}

#[tokio::test]
async fn retention_counts_show_in_metrics_per_kind() {
    let app = spawn_app().await;
    let (_stop, running) = tokio::sync::watch::channel(false);
    let policy = retention::RetentionPolicy {
        idempotency_hours: 1,
        ..Default::default()
    };
    let practice = app.create_practice("Smile Dental").await;
    sqlx::query(
        "insert into idempotency_keys (practice_id, key, request_hash, created_at)
         values ($1, 'k', 'h', now() - interval '2 hours')",
    )
    .bind(practice)
    .execute(&app.pool)
    .await
    .unwrap();
    retention::run_once(&app.pool, &policy, &running)
        .await
        .unwrap();
    let metrics = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("retention_purged_rows_total{kind=\"idempotency_keys\"}"),
        "{metrics}"
    );
}
