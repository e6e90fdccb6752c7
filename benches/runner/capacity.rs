//! What one message and one webhook event cost Postgres: rows written, WAL bytes and the CPU time
//! of the database's processes, each measured over a whole workload through the API (queue,
//! send, record; then the vendor's events for those messages) and divided by its size. The
//! capacity plan in MULTI_TENANT_MESSAGING.md is built from these figures.
//!
//! WAL and the auxiliary processes (WAL writer, checkpointer, background writer) are the whole
//! cluster's: run this on a machine where nothing else writes to that Postgres.

use std::{collections::BTreeMap, time::Duration};

use base64::{Engine, engine::general_purpose::STANDARD};
use p256::ecdsa::{Signature, SigningKey, signature::Signer};
use sqlx::PgPool;
use uuid::Uuid;

use super::{Row, Service, login};

const MESSAGES: usize = 2_000;
/// Spread over this many practices: one practice's messages take turns on its counts' row (see
/// MULTI_TENANT_MESSAGING.md, "Capacity"), which measures that row, not what a message costs.
const PRACTICES: usize = 20;
const PATIENTS_PER_PRACTICE: usize = 25;
const CLIENTS: usize = 8;
const EVENTS_PER_MESSAGE: usize = 3;
const EVENTS_PER_BATCH: usize = 500;
/// An idle backend flushes its pending statistics within ten seconds; waiting longer makes the
/// row counts complete.
const STATS_FLUSH: Duration = Duration::from_secs(11);

/// What Postgres had done for one database (and, for WAL and the auxiliary processes, the
/// cluster) at one moment.
struct Snapshot {
    tuples: BTreeMap<String, i64>,
    wal_lsn: String,
    cpu_seconds: BTreeMap<i32, f64>,
}

/// The cost of one workload, divided by its size.
pub struct Cost {
    pub rows: f64,
    pub wal_bytes: f64,
    pub cpu_ms: f64,
    pub rate_per_sec: f64,
    /// Rows written per table, per unit, largest first.
    pub rows_by_table: Vec<(String, f64)>,
}

async fn snapshot(pool: &PgPool, database: &str) -> Snapshot {
    let tuples: Vec<(String, i64)> = sqlx::query_as(
        "select relname::text, (n_tup_ins + n_tup_upd + n_tup_del)::bigint from pg_stat_user_tables",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let wal_lsn: String = sqlx::query_scalar("select pg_current_wal_lsn()::text")
        .fetch_one(pool)
        .await
        .unwrap();
    let pids: Vec<i32> = sqlx::query_scalar(
        "select pid from pg_stat_activity
         where datname = $1 or backend_type in ('walwriter', 'checkpointer', 'background writer')",
    )
    .bind(database)
    .fetch_all(pool)
    .await
    .unwrap();
    Snapshot {
        tuples: tuples.into_iter().collect(),
        wal_lsn,
        cpu_seconds: pids
            .into_iter()
            .filter_map(|pid| Some((pid, cpu_seconds(pid)?)))
            .collect(),
    }
}

/// User and system CPU time a process has used, from /proc.
fn cpu_seconds(pid: i32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces; the fields after its closing parenthesis do not.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // SAFETY: sysconf reads a constant of the running system.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some(ticks / per_second)
}

async fn cost_between(pool: &PgPool, before: &Snapshot, after: &Snapshot, units: usize) -> Cost {
    let wal: i64 = sqlx::query_scalar("select pg_wal_lsn_diff($1::pg_lsn, $2::pg_lsn)::bigint")
        .bind(&after.wal_lsn)
        .bind(&before.wal_lsn)
        .fetch_one(pool)
        .await
        .unwrap();
    // A process that started during the workload counts from zero.
    let cpu: f64 = after
        .cpu_seconds
        .iter()
        .map(|(pid, seconds)| seconds - before.cpu_seconds.get(pid).copied().unwrap_or(0.0))
        .sum();
    let mut rows_by_table: Vec<(String, f64)> = after
        .tuples
        .iter()
        .map(|(table, n)| {
            let written = n - before.tuples.get(table).copied().unwrap_or(0);
            (table.clone(), written as f64 / units as f64)
        })
        .filter(|(_, per_unit)| *per_unit > 0.0)
        .collect();
    rows_by_table.sort_by(|a, b| b.1.total_cmp(&a.1));
    Cost {
        rows: rows_by_table.iter().map(|(_, n)| n).sum(),
        wal_bytes: wal as f64 / units as f64,
        cpu_ms: cpu * 1000.0 / units as f64,
        rate_per_sec: 0.0,
        rows_by_table,
    }
}

/// `MESSAGES` emails queued through the API by `CLIENTS` concurrent callers for `PRACTICES`
/// practices and sent through the system SendGrid account (the fake), then `EVENTS_PER_MESSAGE` signed events for each of them
/// (processed, delivered, open) posted to the system webhook. Returns the cost per message and
/// per event.
pub async fn message_and_event_costs(service: &Service, webhook_key: &SigningKey) -> (Cost, Cost) {
    let mut senders = Vec::new();
    for n in 0..PRACTICES {
        senders.push(sender(service, n).await);
    }

    tokio::time::sleep(STATS_FLUSH).await;
    let before = snapshot(&service.pool, &service.database).await;
    let started = std::time::Instant::now();
    queue_through_the_api(service, &senders, MESSAGES).await;
    wait_until(&service.pool, "select count(*) from send_jobs", 0).await;
    let sending = started.elapsed().as_secs_f64();
    tokio::time::sleep(STATS_FLUSH).await;
    let sent = snapshot(&service.pool, &service.database).await;
    let mut per_message = cost_between(&service.pool, &before, &sent, MESSAGES).await;
    per_message.rate_per_sec = MESSAGES as f64 / sending;

    let practices: Vec<Uuid> = senders.iter().map(|s| s.practice).collect();
    let logs: Vec<(Uuid, Uuid, String)> = sqlx::query_as(
        "select id, practice_id, provider_message_id from outreach_logs
         where practice_id = any($1) and status = 'sent'",
    )
    .bind(&practices)
    .fetch_all(&service.pool)
    .await
    .unwrap();
    assert_eq!(logs.len(), MESSAGES, "every message was sent");
    let events: Vec<serde_json::Value> = logs
        .iter()
        .flat_map(|(log, practice, message_id)| {
            ["processed", "delivered", "open"].map(|kind| {
                serde_json::json!({
                    "email": "pat@example.com",
                    "timestamp": chrono::Utc::now().timestamp(),
                    "event": kind,
                    "sg_event_id": Uuid::new_v4().simple().to_string(),
                    "sg_message_id": format!("{message_id}.filterdrecv-1"),
                    "outreach_log_id": log.to_string(),
                    "practice_id": practice.to_string(),
                })
            })
        })
        .collect();
    let started = std::time::Instant::now();
    for batch in events.chunks(EVENTS_PER_BATCH) {
        post_signed(service, webhook_key, batch).await;
    }
    let ingesting = started.elapsed().as_secs_f64();
    let opened: i64 = sqlx::query_scalar(
        "select count(*) from outreach_logs where practice_id = any($1) and status = 'opened'",
    )
    .bind(&practices)
    .fetch_one(&service.pool)
    .await
    .unwrap();
    assert_eq!(
        opened as usize, MESSAGES,
        "every message's events were applied"
    );
    tokio::time::sleep(STATS_FLUSH).await;
    let recorded = snapshot(&service.pool, &service.database).await;
    let units = MESSAGES * EVENTS_PER_MESSAGE;
    let mut per_event = cost_between(&service.pool, &sent, &recorded, units).await;
    per_event.rate_per_sec = units as f64 / ingesting;
    (per_message, per_event)
}

/// `messages` emails posted by `CLIENTS` concurrent callers, round robin over `senders`.
async fn queue_through_the_api(service: &Service, senders: &[Sender], messages: usize) {
    let http = reqwest::Client::new();
    let url = format!("{}/api/outreach/messages", service.base);
    let posts = futures::stream::iter((0..messages).map(|n| {
        let sender = &senders[n % senders.len()];
        let request = http
            .post(&url)
            .bearer_auth(&sender.token)
            .json(&serde_json::json!({
                "patientId": sender.patients[(n / senders.len()) % PATIENTS_PER_PRACTICE],
                "channel": "email",
                "subject": "Your check-up",
                "body": "Hello Pat, it is time for your check-up.",
            }));
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 202, "{}", response.text().await.unwrap());
        }
    }));
    futures::StreamExt::for_each_concurrent(posts, CLIENTS, |post| post).await;
}

/// Messages per second queued and sent for one practice alone, by the same `CLIENTS` callers.
pub async fn one_practice_rate(service: &Service) -> f64 {
    let alone = [sender(service, PRACTICES).await];
    let started = std::time::Instant::now();
    queue_through_the_api(service, &alone, MESSAGES).await;
    wait_until(&service.pool, "select count(*) from send_jobs", 0).await;
    MESSAGES as f64 / started.elapsed().as_secs_f64()
}

/// A practice on the system accounts, its owner's token and its patients.
struct Sender {
    practice: Uuid,
    token: String,
    patients: Vec<Uuid>,
}

async fn sender(service: &Service, n: usize) -> Sender {
    let practice = Uuid::new_v4();
    sqlx::query("insert into practices (id, name) values ($1, 'Capacity Dental ' || $2)")
        .bind(practice)
        .bind(n as i32)
        .execute(&service.pool)
        .await
        .unwrap();
    let patients: Vec<Uuid> = (0..PATIENTS_PER_PRACTICE).map(|_| Uuid::new_v4()).collect();
    sqlx::query(
        "insert into patients (id, practice_id, first_name, last_name, email, phone)
         select id, $2, 'Pat', 'Lee', 'pat' || n || '@example.com', '+1555' || lpad(n::text, 7, '0')
         from unnest($1::uuid[]) with ordinality as t(id, n)",
    )
    .bind(&patients)
    .bind(practice)
    .execute(&service.pool)
    .await
    .unwrap();
    let token = login(
        service,
        &format!("owner{n}@capacity.test"),
        dentite::auth::Role::Owner,
        Some(practice),
    )
    .await;
    Sender {
        practice,
        token,
        patients,
    }
}

async fn post_signed(service: &Service, key: &SigningKey, events: &[serde_json::Value]) {
    let body = serde_json::to_string(events).unwrap();
    let timestamp = chrono::Utc::now().timestamp().to_string();
    let signature: Signature = key.sign(&[timestamp.as_bytes(), body.as_bytes()].concat());
    let response = reqwest::Client::new()
        .post(format!("{}/api/webhooks/sendgrid", service.base))
        .header("content-type", "application/json")
        .header("X-Twilio-Email-Event-Webhook-Timestamp", timestamp)
        .header(
            "X-Twilio-Email-Event-Webhook-Signature",
            STANDARD.encode(signature.to_der().as_bytes()),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
}

async fn wait_until(pool: &PgPool, count: &'static str, expected: i64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    while sqlx::query_scalar::<_, i64>(count)
        .fetch_one(pool)
        .await
        .unwrap()
        != expected
    {
        assert!(
            std::time::Instant::now() < deadline,
            "{count} never reached {expected}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The cost rows of the table, and each cost's rows per table on standard error for the plan.
pub fn rows(what: &'static str, cost: &Cost, rows: &mut Vec<Row>) {
    let name =
        |figure: &str| -> &'static str { Box::leak(format!("{what}: {figure}").into_boxed_str()) };
    for (figure, value, unit) in [
        ("rows written", cost.rows, "rows"),
        ("WAL", cost.wal_bytes, "bytes"),
    ] {
        rows.push(Row {
            name: name(figure),
            value,
            unit,
            baseline_name: "",
            baseline: f64::NAN,
        });
    }
    // Beside the wall time per unit at the rate reached, the ratio is how many cores Postgres
    // kept busy: the share of the machine left for everything else.
    rows.push(Row {
        name: name("Postgres CPU"),
        value: cost.cpu_ms,
        unit: "ms",
        baseline_name: "wall time per unit at the rate reached",
        baseline: 1000.0 / cost.rate_per_sec,
    });
    eprintln!("{what}, rows written per table:");
    for (table, per_unit) in &cost.rows_by_table {
        eprintln!("  {table}: {per_unit:.2}");
    }
}
