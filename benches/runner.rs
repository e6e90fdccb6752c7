//! The one-command benchmark runner: starts what it needs on this machine (Postgres databases of
//! its own, a fake SendGrid on loopback, the `dentite` binary), measures each figure beside a
//! baseline taken in the same run, and prints one table.
//!
//! Run: `cargo bench --bench runner` (release build). Results go in BENCHMARKS.md by hand, with
//! the machine they ran on.

use std::{
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{Router, http::HeaderMap, routing::post};
use base64::{Engine, engine::general_purpose::STANDARD};
use p256::{
    ecdsa::{Signature, SigningKey, signature::Signer},
    elliptic_curve::Generate,
    pkcs8::EncodePublicKey,
};
use sqlx::{Connection, Executor, PgConnection, PgPool};
use tokio::net::TcpListener;
use uuid::Uuid;

#[path = "runner/capacity.rs"]
mod capacity;
#[path = "runner/vendors.rs"]
mod vendors;

const MESSAGES: i64 = 20_000;
const PRACTICES: i64 = 10_000;
const CONNECTIONS: usize = 64;
const LOAD_DURATION: Duration = Duration::from_secs(10);
const WEBHOOK_BATCHES: usize = 20;
const EVENTS_PER_BATCH: usize = 1_000;

struct Row {
    name: &'static str,
    value: f64,
    unit: &'static str,
    baseline_name: &'static str,
    baseline: f64,
}

fn server_url() -> url::Url {
    let mut url = url::Url::parse(
        &std::env::var("DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@localhost:5432/postgres".into()),
    )
    .expect("DATABASE_URL parses");
    url.set_path("/postgres");
    url
}

/// A fake SendGrid that accepts every mail send as fast as it can, counting them.
async fn fake_sendgrid() -> (String, Arc<AtomicU64>) {
    let accepted = Arc::new(AtomicU64::new(0));
    let counter = accepted.clone();
    let app = Router::new().route(
        "/v3/mail/send",
        post(move || {
            let n = counter.fetch_add(1, Ordering::Relaxed);
            async move {
                let mut headers = HeaderMap::new();
                headers.insert("x-message-id", format!("bench{n}").parse().unwrap());
                (axum::http::StatusCode::ACCEPTED, headers)
            }
        }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let uri = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (uri, accepted)
}

struct Service {
    child: Child,
    base: String,
    pool: PgPool,
    database: String,
}

impl Service {
    async fn start(sendgrid: &str, webhook_key: &str) -> Self {
        let database = format!("dentite_bench_{}", Uuid::new_v4().simple());
        Self::start_on(database, sendgrid, webhook_key, &[]).await
    }

    /// The service on a database that may exist already (it migrates what is missing).
    async fn start_on(
        database: String,
        sendgrid: &str,
        webhook_key: &str,
        env: &[(&str, &str)],
    ) -> Self {
        let mut url = server_url();
        url.set_path(&format!("/{database}"));
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(env!("CARGO_BIN_EXE_dentite"))
            .arg("serve")
            .env("DATABASE_URL", url.as_str())
            .env("BIND_ADDR", format!("127.0.0.1:{port}"))
            .env("ENCRYPTION_KEY", "11".repeat(32))
            .env("AUTH_SIGNING_KEY", "22".repeat(32))
            .env("SENDGRID_API_KEY", "SG.bench.key")
            .env("SENDGRID_FROM_EMAIL", "bench@dentite.test")
            .env("SENDGRID_API_BASE_URL", sendgrid)
            .env("SENDGRID_WEBHOOK_VERIFY_KEY", webhook_key)
            .env("SENDGRID_RATE_PER_SEC", "0")
            .env("TWILIO_RATE_PER_SEC", "0")
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .spawn()
            .expect("the dentite binary starts");
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while http
            .get(format!("{base}/readyz"))
            .send()
            .await
            .map(|r| r.status() != 200)
            .unwrap_or(true)
        {
            assert!(
                Instant::now() < deadline,
                "dentite serve did not become ready"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let pool = PgPool::connect(url.as_str()).await.unwrap();
        Self {
            child,
            base,
            pool,
            database,
        }
    }

    /// Peak resident memory of the service process so far, from /proc.
    fn peak_rss_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(f64::NAN, |kib| kib / 1024.0)
    }

    async fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.pool.close().await;
        let mut admin = PgConnection::connect(server_url().as_str()).await.unwrap();
        let statement = format!("drop database if exists \"{}\" with (force)", self.database);
        admin.execute(sqlx::AssertSqlSafe(statement)).await.unwrap();
    }
}

/// The event webhook's signing key, as SendGrid holds it, and the base64 DER public key it shows.
fn webhook_signer() -> (SigningKey, String) {
    let key = SigningKey::generate();
    let public = STANDARD.encode(key.verifying_key().to_public_key_der().unwrap().as_bytes());
    (key, public)
}

/// Batches laid out as SendGrid sends them, events for unknown messages (stored, nothing to update).
fn webhook_batches() -> Vec<Vec<serde_json::Value>> {
    (0..WEBHOOK_BATCHES)
        .map(|_| {
            (0..EVENTS_PER_BATCH)
                .map(|_| {
                    serde_json::json!({
                        "email": "pat@example.com",
                        "timestamp": chrono::Utc::now().timestamp(),
                        "event": "delivered",
                        "sg_event_id": Uuid::new_v4().simple().to_string(),
                        "sg_message_id": format!("{}.filterdrecv-1", Uuid::new_v4().simple()),
                        "response": "250 OK",
                    })
                })
                .collect()
        })
        .collect()
}

/// Signed batches posted at the running server, two at a time; events stored per second.
async fn webhook_ingest(service: &Service, key: &SigningKey) -> f64 {
    let bodies: Vec<(String, String, String)> = webhook_batches()
        .into_iter()
        .map(|events| {
            let body = format!(
                "[{}]\r\n",
                events
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(",\r\n")
            );
            let timestamp = chrono::Utc::now().timestamp().to_string();
            let signature: Signature = key.sign(&[timestamp.as_bytes(), body.as_bytes()].concat());
            (
                body,
                timestamp,
                STANDARD.encode(signature.to_der().as_bytes()),
            )
        })
        .collect();
    let http = reqwest::Client::new();
    let url = format!("{}/api/webhooks/sendgrid", service.base);
    let started = Instant::now();
    let posts = futures::stream::iter(bodies.into_iter().map(|(body, timestamp, signature)| {
        let request = http
            .post(&url)
            .header("content-type", "application/json")
            .header("X-Twilio-Email-Event-Webhook-Timestamp", timestamp)
            .header("X-Twilio-Email-Event-Webhook-Signature", signature)
            .body(body);
        async move {
            assert!(
                request.send().await.unwrap().status().is_success(),
                "a signed batch is accepted"
            )
        }
    }));
    futures::StreamExt::for_each_concurrent(posts, 2, |post| post).await;
    let elapsed = started.elapsed().as_secs_f64();
    let stored: i64 = sqlx::query_scalar("select count(*) from provider_events")
        .fetch_one(&service.pool)
        .await
        .unwrap();
    assert_eq!(stored as usize, WEBHOOK_BATCHES * EVENTS_PER_BATCH);
    stored as f64 / elapsed
}

/// The same rows written straight into Postgres, one multi-row statement per batch.
async fn webhook_baseline(service: &Service) -> f64 {
    let started = Instant::now();
    for events in webhook_batches() {
        let keys: Vec<String> = events
            .iter()
            .map(|e| format!("baseline:{}", e["sg_event_id"].as_str().unwrap()))
            .collect();
        let message_ids: Vec<&str> = events
            .iter()
            .map(|e| e["sg_message_id"].as_str().unwrap())
            .collect();
        sqlx::query(
            "insert into provider_events (event_key, provider, event_type, provider_message_id, payload, occurred_at)
             select k, 'sendgrid', 'delivered', m, p, now() from unnest($1::text[], $2::text[], $3::jsonb[]) as t(k, m, p)",
        )
        .bind(&keys)
        .bind(&message_ids)
        .bind(&events)
        .execute(&service.pool)
        .await
        .unwrap();
    }
    (WEBHOOK_BATCHES * EVENTS_PER_BATCH) as f64 / started.elapsed().as_secs_f64()
}

/// Requests per second one sequential client gets from the fake.
async fn raw_fake_rate(sendgrid: &str, requests: u64) -> f64 {
    let http = reqwest::Client::new();
    let url = format!("{sendgrid}/v3/mail/send");
    let started = Instant::now();
    for _ in 0..requests {
        http.post(&url).body("{}").send().await.unwrap();
    }
    requests as f64 / started.elapsed().as_secs_f64()
}

/// Queues `MESSAGES` messages of `channel` for one practice, releases them at once and waits
/// until the queue is empty: messages per second, end to end. `accepted` counts what the fake
/// vendor took, and must have taken each message exactly once.
async fn send_pipeline(service: &Service, channel: &str, accepted: &AtomicU64) -> f64 {
    let practice = Uuid::new_v4();
    sqlx::query("insert into practices (id, name) values ($1, 'Bench Dental')")
        .bind(practice)
        .execute(&service.pool)
        .await
        .unwrap();
    // A zone where it is mid-afternoon, so SMS are inside the sending window whenever this runs.
    sqlx::query("insert into practice_compliance (practice_id, timezone) values ($1, $2)")
        .bind(practice)
        .bind(afternoon_zone())
        .execute(&service.pool)
        .await
        .unwrap();
    sqlx::query(
        "with logs as (
             insert into outreach_logs (id, practice_id, message_type, recipient, subject, body)
             select gen_random_uuid(), $1, $3,
                    case $3 when 'sms' then '+1555' || lpad(n::text, 7, '0') else 'p' || n || '@example.com' end,
                    'Recall', 'Time for a check-up'
             from generate_series(1, $2) n returning id)
         insert into send_jobs (outreach_log_id, practice_id, run_at) select id, $1, now() + interval '1 hour' from logs",
    )
    .bind(practice)
    .bind(MESSAGES)
    .bind(channel)
    .execute(&service.pool)
    .await
    .unwrap();
    sqlx::query("insert into send_fairness (practice_id) values ($1)")
        .bind(practice)
        .execute(&service.pool)
        .await
        .unwrap();
    let before = accepted.load(Ordering::Relaxed);
    // Release the whole batch at once and wake the workers.
    let started = Instant::now();
    sqlx::query("update send_jobs set run_at = now() where practice_id = $1")
        .bind(practice)
        .execute(&service.pool)
        .await
        .unwrap();
    sqlx::query("select pg_notify('dentite_send_jobs', '')")
        .execute(&service.pool)
        .await
        .unwrap();
    loop {
        let left: i64 = sqlx::query_scalar("select count(*) from send_jobs")
            .fetch_one(&service.pool)
            .await
            .unwrap();
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    assert_eq!(
        accepted.load(Ordering::Relaxed) - before,
        MESSAGES as u64,
        "every message reached the fake once"
    );
    MESSAGES as f64 / elapsed
}

/// A zone of the tz database where it is 14:00 to 15:00 now (`Etc/GMT-N` is N hours ahead).
fn afternoon_zone() -> String {
    use chrono::Timelike;
    let offset = (14 - i64::from(chrono::Utc::now().hour()) + 12).rem_euclid(24) - 12;
    match offset {
        0 => "Etc/GMT".to_string(),
        east if east > 0 => format!("Etc/GMT-{east}"),
        west => format!("Etc/GMT+{}", -west),
    }
}

struct Load {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
}

/// `CONNECTIONS` concurrent clients hammering one URL for `LOAD_DURATION`.
async fn load(url: &str, token: Option<&str>) -> Load {
    load_with(url, token, CONNECTIONS, LOAD_DURATION).await
}

async fn load_with(url: &str, token: Option<&str>, connections: usize, duration: Duration) -> Load {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .build()
        .unwrap();
    let deadline = Instant::now() + duration;
    let tasks = (0..connections).map(|_| {
        let (http, url, token) = (http.clone(), url.to_string(), token.map(str::to_string));
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let mut request = http.get(&url);
                if let Some(token) = &token {
                    request = request.bearer_auth(token);
                }
                let started = Instant::now();
                let response = request.send().await.unwrap();
                assert!(
                    response.status().is_success(),
                    "{url}: {}",
                    response.status()
                );
                response.bytes().await.unwrap();
                latencies.push(started.elapsed());
            }
            latencies
        })
    });
    let mut latencies: Vec<Duration> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .flat_map(Result::unwrap)
        .collect();
    latencies.sort();
    let percentile = |p: f64| {
        latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)].as_secs_f64()
            * 1000.0
    };
    Load {
        rps: latencies.len() as f64 / duration.as_secs_f64(),
        p50_ms: percentile(0.50),
        p99_ms: percentile(0.99),
    }
}

/// 10,000 practices with encrypted custom credentials, and an owner of the first to log in as.
async fn seed_practices(service: &Service) -> String {
    let keyring = dentite::crypto::Keyring::new(&dentite::crypto::KeyMaterial {
        current: [0x11; 32],
        previous: vec![],
    });
    let ids: Vec<Uuid> = (0..PRACTICES).map(|_| Uuid::new_v4()).collect();
    let keys: Vec<String> = ids
        .iter()
        .map(|id| {
            keyring.encrypt(
                "SG.practice.key",
                *id,
                dentite::crypto::CredentialField::SendGridApiKey,
            )
        })
        .collect();
    sqlx::query(
        "insert into practices (id, name, email_provider, email_domain_verified)
         select id, 'Practice ' || id, 'custom_sendgrid', true from unnest($1::uuid[]) as t(id)",
    )
    .bind(&ids)
    .execute(&service.pool)
    .await
    .unwrap();
    sqlx::query(
        "insert into practice_accounts (practice_id, vendor, settings, secrets)
         select id, 'sendgrid', '{\"fromEmail\": \"desk@practice.test\"}', jsonb_build_object('sendgrid_api_key', key)
         from unnest($1::uuid[], $2::text[]) as t(id, key)",
    )
    .bind(&ids)
    .bind(&keys)
    .execute(&service.pool)
    .await
    .unwrap();
    login(
        service,
        "owner@bench.test",
        dentite::auth::Role::Owner,
        Some(ids[0]),
    )
    .await
}

/// Logs in the history scenario: `BENCH_HISTORY_LOGS` (default 10 million), a fifth of them the
/// largest practice's, the rest spread over 999 others, over the last two years.
fn history_logs() -> i64 {
    std::env::var("BENCH_HISTORY_LOGS")
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(10_000_000)
}

/// The last migration before the outreach counts: the history is written under it, so that
/// applying the counts' migration measures their backfill on an existing database.
const BEFORE_COUNTS: i64 = 20261201000029;
const COUNTS_MIGRATION: i64 = 20261201000030;
const HISTORY_CONNECTIONS: usize = 4;
const RETENTION_OFF: &[(&str, &str)] = &[
    ("RETENTION_BODY_DAYS", "0"),
    ("RETENTION_LOG_DAYS", "0"),
    ("RETENTION_EVENT_DAYS", "0"),
    ("RETENTION_OUTBOX_DAYS", "0"),
    ("RETENTION_IDEMPOTENCY_HOURS", "0"),
];
const HISTORY_DURATION: Duration = Duration::from_secs(5);

/// 1,000 practices and `logs` outreach logs, set-based. Written with triggers off (as a restore
/// would), which is also why it runs before the counts exist.
async fn write_history(pool: &PgPool, logs: i64) {
    let mut db = pool.acquire().await.unwrap();
    db.execute("set session_replication_role = replica")
        .await
        .unwrap();
    sqlx::query(
        "insert into practices (id, name) select gen_random_uuid(), 'Practice ' || lpad(n::text, 4, '0')
         from generate_series(1, 1000) n",
    )
    .execute(&mut *db)
    .await
    .unwrap();
    // Ids lead with the row number so the primary key fills in order; created_at climbs with it
    // over two years; channels and statuses follow a hash of the row number, so that every
    // practice, the largest too, has all of them in the same proportions.
    sqlx::query(
        "with ids as (select array_agg(id order by name) ids from practices)
         insert into outreach_logs (id, practice_id, message_type, messaging_provider, status, recipient, subject, body,
                                    created_at, updated_at)
         select encode(int8send(n) || substr(uuid_send(gen_random_uuid()), 9), 'hex')::uuid,
                case when n % 5 = 0 then ids[1] else ids[2 + (n * 7919) % 999] end,
                channel,
                case when s = 'suppressed' then null
                     when channel = 'sms' then 'system_twilio'
                     when n % 10 = 3 then 'system_sendgrid' else 'custom_sendgrid' end,
                s,
                case when channel = 'sms' then '+1555' || lpad((n % 10000000)::text, 7, '0') else 'p' || n || '@example.com' end,
                case when channel = 'email' then 'Time for your check-up' end,
                'Hello, this is a reminder from your dental practice.',
                t, t + interval '1 minute'
         from ids, generate_series(1::bigint, $1) n,
              lateral (select abs(hashint8(n)) as h) r,
              lateral (select case when r.h % 5 < 3 then 'email' else 'sms' end as channel,
                              now() - interval '730 days' + (n::float8 / $1) * interval '730 days' as t,
                              (array['delivered','delivered','delivered','delivered','delivered','delivered','opened',
                                     'opened','clicked','sent','sent','failed','bounced','undelivered','dropped',
                                     'spam_reported','suppressed','delivered','delivered','opened'])[1 + (r.h / 5) % 20] as s) x",
    )
    .bind(logs)
    .execute(&mut *db)
    .await
    .unwrap();
    db.execute("set session_replication_role = origin; analyze")
        .await
        .unwrap();
}

async fn login(
    service: &Service,
    email: &str,
    role: dentite::auth::Role,
    practice: Option<Uuid>,
) -> String {
    let address = dentite::types::EmailAddress::parse(email).unwrap();
    dentite::auth::create_user(
        &service.pool,
        &address,
        "bench password 123",
        role,
        practice,
    )
    .await
    .unwrap();
    let login: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/api/auth/login", service.base))
        .json(&serde_json::json!({"email": email, "password": "bench password 123"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    login["token"]
        .as_str()
        .expect("bench user logs in")
        .to_string()
}

/// The history scenario: the counts' backfill on an existing history, then each read beside the
/// settings GET, at `HISTORY_CONNECTIONS` concurrent clients (a page load, not a flood).
async fn history_reads(sendgrid: &str, webhook_key: &str, rows: &mut Vec<Row>) {
    let logs = history_logs();
    let database = format!("dentite_bench_{}", Uuid::new_v4().simple());
    let mut url = server_url();
    let mut admin = PgConnection::connect(url.as_str()).await.unwrap();
    admin
        .execute(sqlx::AssertSqlSafe(format!(
            "create database \"{database}\""
        )))
        .await
        .unwrap();
    url.set_path(&format!("/{database}"));
    let pool = PgPool::connect(url.as_str()).await.unwrap();
    dentite::db::MIGRATOR
        .run_to(BEFORE_COUNTS, &pool)
        .await
        .unwrap();
    let started = Instant::now();
    write_history(&pool, logs).await;
    let written = started.elapsed().as_secs_f64();
    let started = Instant::now();
    dentite::db::MIGRATOR
        .run_to(COUNTS_MIGRATION, &pool)
        .await
        .unwrap();
    let backfill = started.elapsed().as_secs_f64();
    let started = Instant::now();
    dentite::db::MIGRATOR.run(&pool).await.unwrap();
    let later_migrations = started.elapsed().as_secs_f64();
    pool.close().await;
    let label =
        |what: &str| -> &'static str { Box::leak(format!("{what}, {logs} logs").into_boxed_str()) };
    rows.push(Row {
        name: label("counts backfill (the migration)"),
        value: backfill,
        unit: "s",
        baseline_name: "writing the logs, set-based",
        baseline: written,
    });
    rows.push(Row {
        name: label("the migrations after the counts' (the logs' status index)"),
        value: later_migrations,
        unit: "s",
        baseline_name: "writing the logs, set-based",
        baseline: written,
    });

    // Retention stays off: its first run would spend the measurement blanking two years of
    // bodies, which is a one-off backlog, not what a page load competes with.
    let service = Service::start_on(database, sendgrid, webhook_key, RETENTION_OFF).await;
    let practice: Uuid =
        sqlx::query_scalar("select id from practices where name = 'Practice 0001'")
            .fetch_one(&service.pool)
            .await
            .unwrap();
    let owner = login(
        &service,
        "owner@history.test",
        dentite::auth::Role::Owner,
        Some(practice),
    )
    .await;
    let operator = login(
        &service,
        "ops@history.test",
        dentite::auth::Role::PlatformAdmin,
        None,
    )
    .await;
    let get = |path: &str, token: &str| {
        let url = format!("{}{path}", service.base);
        let token = token.to_string();
        async move { load_with(&url, Some(&token), HISTORY_CONNECTIONS, HISTORY_DURATION).await }
    };
    let reads = [
        (
            "status card",
            "/api/practice-settings/messaging/status",
            &owner,
        ),
        (
            "analytics, 30 days",
            "/api/analytics/messaging?days=30",
            &owner,
        ),
        (
            "analytics, 90 days",
            "/api/analytics/messaging?days=90",
            &owner,
        ),
        (
            "daily series, 90 days",
            "/api/analytics/messaging/daily?days=90",
            &owner,
        ),
        (
            "platform usage, 30 days, 1,000 practices",
            "/api/admin/messaging/usage?days=30",
            &operator,
        ),
        ("logs, first page", "/api/outreach/logs", &owner),
        (
            "logs, filtered page (email, bounced)",
            "/api/outreach/logs?channel=email&status=bounced",
            &owner,
        ),
    ];
    for (name, path, token) in reads {
        let settings = get("/api/practice-settings/messaging", &owner).await;
        let read = get(path, token).await;
        for (percentile, value, baseline) in [
            ("p50", read.p50_ms, settings.p50_ms),
            ("p99", read.p99_ms, settings.p99_ms),
        ] {
            rows.push(Row {
                name: Box::leak(
                    format!("{name} {percentile} (largest practice: {} logs)", logs / 5)
                        .into_boxed_str(),
                ),
                value,
                unit: "ms",
                baseline_name: Box::leak(format!("settings GET {percentile}").into_boxed_str()),
                baseline,
            });
        }
    }
    service.stop().await;
}

/// Concurrent wrong-password logins in the storm: what an unauthenticated attacker can send.
const STORM_LOGINS: usize = 1_000;

/// `STORM_LOGINS` wrong-password logins at once, each from its own address (the service trusts
/// the loopback proxy, and each request names a different client in `X-Forwarded-For`) so the
/// throttle lets every one through to the password check: the worst case for memory, since only
/// the hashing bound and shedding stand between the storm and Argon2's 19 MiB per hash.
/// Measures the service's peak RSS (`VmHWM`), the status mix and the latencies.
async fn login_storm(sendgrid: &str, webhook_key: &str, rows: &mut Vec<Row>) {
    let database = format!("dentite_bench_{}", Uuid::new_v4().simple());
    let service = Service::start_on(
        database,
        sendgrid,
        webhook_key,
        &[("TRUSTED_PROXIES", "127.0.0.1")],
    )
    .await;
    let practice = dentite::messaging::settings::create(&service.pool, "Storm Dental")
        .await
        .unwrap();
    let email = "owner@storm.test";
    login(&service, email, dentite::auth::Role::Owner, Some(practice)).await;
    let idle = service.peak_rss_mib();

    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(STORM_LOGINS)
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap();
    let url = format!("{}/api/auth/login", service.base);
    let started = Instant::now();
    let attempts = (0..STORM_LOGINS).map(|i| {
        let (http, url) = (http.clone(), url.clone());
        tokio::spawn(async move {
            let client = format!("198.18.{}.{}", i / 256, i % 256);
            let sent = Instant::now();
            let status = http
                .post(&url)
                .header("x-forwarded-for", client)
                .json(&serde_json::json!({"email": email, "password": "not the password"}))
                .send()
                .await
                .map_or(0, |r| r.status().as_u16());
            (status, sent.elapsed())
        })
    });
    let mut outcomes: Vec<(u16, Duration)> = futures::future::join_all(attempts)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let wall = started.elapsed().as_secs_f64();
    let peak = service.peak_rss_mib();
    outcomes.sort_by_key(|(_, latency)| *latency);
    let percentile = |p: f64| {
        outcomes[((outcomes.len() as f64 * p) as usize).min(outcomes.len() - 1)]
            .1
            .as_secs_f64()
            * 1000.0
    };
    let count = |status: u16| outcomes.iter().filter(|(s, _)| *s == status).count() as f64;
    let label = |what: &str| -> &'static str {
        Box::leak(format!("login storm ({STORM_LOGINS} at once): {what}").into_boxed_str())
    };
    rows.push(Row {
        name: label("peak RSS of the service"),
        value: peak,
        unit: "MiB",
        baseline_name: "peak RSS before the storm",
        baseline: idle,
    });
    for (what, status) in [
        ("401 (password checked)", 401),
        ("429 (throttled)", 429),
        ("503 (shed)", 503),
        ("no answer (connection failed)", 0),
    ] {
        rows.push(Row {
            name: label(what),
            value: count(status),
            unit: "answers",
            baseline_name: "all",
            baseline: STORM_LOGINS as f64,
        });
    }
    rows.push(Row {
        name: label("p50 latency"),
        value: percentile(0.50),
        unit: "ms",
        baseline_name: "storm wall time (ms)",
        baseline: wall * 1000.0,
    });
    rows.push(Row {
        name: label("p99 latency"),
        value: percentile(0.99),
        unit: "ms",
        baseline_name: "storm wall time (ms)",
        baseline: wall * 1000.0,
    });
    service.stop().await;
}

fn print_table(rows: &[Row]) {
    println!("\n| figure | value | baseline (same run) | ratio |");
    println!("|---|---|---|---|");
    for row in rows {
        if row.baseline.is_nan() {
            println!("| {} | {:.1} {} | | |", row.name, row.value, row.unit);
            continue;
        }
        println!(
            "| {} | {:.1} {} | {}: {:.1} | {:.2} |",
            row.name,
            row.value,
            row.unit,
            row.baseline_name,
            row.baseline,
            row.value / row.baseline
        );
    }
}

/// `BENCH_ONLY` (comma-separated `core`, `login-storm`, `history`) runs just those scenarios.
fn scenario_wanted(name: &str) -> bool {
    std::env::var("BENCH_ONLY")
        .ok()
        .filter(|only| !only.trim().is_empty())
        .is_none_or(|only| only.split(',').any(|s| s.trim() == name))
}

#[tokio::main]
async fn main() {
    dentite::install_crypto_provider();
    let (sendgrid, accepted) = fake_sendgrid().await;
    let (webhook_key, webhook_public_key) = webhook_signer();
    let mut rows = Vec::new();
    if scenario_wanted("core") {
        core(
            &sendgrid,
            &accepted,
            &webhook_key,
            &webhook_public_key,
            &mut rows,
        )
        .await;
    }
    if scenario_wanted("login-storm") {
        login_storm(&sendgrid, &webhook_public_key, &mut rows).await;
    }
    if scenario_wanted("history") {
        history_reads(&sendgrid, &webhook_public_key, &mut rows).await;
    }
    if scenario_wanted("vendors") {
        vendors::send_pipelines(&webhook_public_key, &mut rows).await;
    }
    print_table(&rows);
}

/// Webhook ingest, the send pipeline, the settings read and the service's memory.
async fn core(
    sendgrid: &str,
    accepted: &AtomicU64,
    webhook_key: &SigningKey,
    webhook_public_key: &str,
    rows: &mut Vec<Row>,
) {
    let service = Service::start(sendgrid, webhook_public_key).await;

    let ingest = webhook_ingest(&service, webhook_key).await;
    let baseline = webhook_baseline(&service).await;
    rows.push(Row {
        name: "webhook ingest, signed 1,000-event batches",
        value: ingest,
        unit: "events/s",
        baseline_name: "multi-row insert per batch",
        baseline,
    });

    let raw = raw_fake_rate(sendgrid, MESSAGES as u64).await;
    let pipeline = send_pipeline(&service, "email", accepted).await;
    rows.push(Row {
        name: "send pipeline, 20,000 queued emails",
        value: pipeline,
        unit: "msg/s",
        baseline_name: "fake's raw rate, one client",
        baseline: raw,
    });

    let token = seed_practices(&service).await;
    let healthz = load(&format!("{}/healthz", service.base), None).await;
    let settings = load(
        &format!("{}/api/practice-settings/messaging", service.base),
        Some(&token),
    )
    .await;
    rows.push(Row {
        name: "GET settings, 64 connections",
        value: settings.rps,
        unit: "req/s",
        baseline_name: "/healthz",
        baseline: healthz.rps,
    });
    rows.push(Row {
        name: "GET settings p50",
        value: settings.p50_ms,
        unit: "ms",
        baseline_name: "/healthz p50",
        baseline: healthz.p50_ms,
    });
    rows.push(Row {
        name: "GET settings p99",
        value: settings.p99_ms,
        unit: "ms",
        baseline_name: "/healthz p99",
        baseline: healthz.p99_ms,
    });

    let peak = service.peak_rss_mib();
    rows.push(Row {
        name: "peak RSS of the service (10,000 practices)",
        value: peak,
        unit: "MiB",
        baseline_name: "target",
        baseline: 150.0,
    });

    let (per_message, per_event) = capacity::message_and_event_costs(&service, webhook_key).await;
    capacity::rows("per email sent through the API", &per_message, rows);
    capacity::rows("per SendGrid event", &per_event, rows);
    rows.push(Row {
        name: "emails queued and sent through the API, one practice, 8 callers",
        value: capacity::one_practice_rate(&service).await,
        unit: "msg/s",
        baseline_name: "the same over 20 practices",
        baseline: per_message.rate_per_sec,
    });
    service.stop().await;
}
