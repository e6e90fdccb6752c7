//! Scale-out as operators run it (issue #17): several instances behind PgBouncer in transaction
//! mode, with `DATABASE_POOLED=true` and LISTEN on the direct `DATABASE_LISTEN_URL`.
//!
//! Each test starts its own PgBouncer (the `pgbouncer` program, `apt-get install pgbouncer`) on a
//! free port in front of the test database. Without it installed, the tests say they are skipped
//! and pass, unless `DENTITE_POOLER_TESTS=required` (as in CI), where a missing PgBouncer fails.

use std::{
    collections::{HashMap, HashSet},
    io::Write,
    os::unix::fs::{MetadataExt, PermissionsExt},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use reqwest::Method;
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection, PgPool};
use uuid::Uuid;
use wiremock::{
    Mock, MockServer, Respond, ResponseTemplate,
    matchers::{method, path},
};

use crate::{helpers::*, process::serve};

const PGBOUNCER: (&str, &str) = ("PGBOUNCER", "/usr/sbin/pgbouncer");
/// Fewer server connections than the instances' pools hold between them, so server connections
/// change hands between clients all the time, which is what breaks session state.
const SERVER_POOL_SIZE: u32 = 6;

fn pooler_required() -> bool {
    std::env::var("DENTITE_POOLER_TESTS").is_ok_and(|v| v == "required")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free local port")
        .port()
}

/// A private PgBouncer in transaction mode in front of the tests' Postgres server.
struct PgBouncer {
    process: Child,
    dir: PathBuf,
    port: u16,
}

impl PgBouncer {
    /// Started and accepting connections, or `None` (after saying the test is skipped) when
    /// PgBouncer is not installed and not required.
    async fn start() -> Option<Self> {
        let program =
            std::env::var_os(PGBOUNCER.0).map_or_else(|| PathBuf::from(PGBOUNCER.1), PathBuf::from);
        if !program.exists() {
            assert!(
                !pooler_required(),
                "DENTITE_POOLER_TESTS=required but {} is missing: apt-get install pgbouncer",
                program.display()
            );
            // Straight to the stderr handle, which the test harness does not capture.
            let _ = writeln!(
                std::io::stderr(),
                "skipped: pgbouncer not installed ({} missing; apt-get install pgbouncer, \
                 or set DENTITE_POOLER_TESTS=required to make this a failure)",
                program.display()
            );
            return None;
        }
        let server = url::Url::parse(&server_url()).unwrap();
        let user = match server.username() {
            "" => "postgres",
            name => name,
        };
        let password = server.password().unwrap_or("");
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("dentite-pgbouncer-{}", Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        // PgBouncer refuses to run as root; as root it drops to `postgres`, which must be able
        // to read the configuration and write its log here.
        let as_root = std::fs::metadata("/proc/self").unwrap().uid() == 0;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        std::fs::write(
            dir.join("users.txt"),
            format!("\"{user}\" \"{password}\"\n"),
        )
        .unwrap();
        let ini = format!(
            "[databases]\n\
             * = host={host} port={server_port} user={user}{password_setting}\n\
             [pgbouncer]\n\
             listen_addr = 127.0.0.1\n\
             listen_port = {port}\n\
             unix_socket_dir =\n\
             auth_type = trust\n\
             auth_file = {dir}/users.txt\n\
             pool_mode = transaction\n\
             default_pool_size = {SERVER_POOL_SIZE}\n\
             max_client_conn = 1000\n\
             ignore_startup_parameters = extra_float_digits\n\
             logfile = {dir}/pgbouncer.log\n",
            host = server.host_str().unwrap_or("localhost"),
            server_port = server.port().unwrap_or(5432),
            password_setting = if password.is_empty() {
                String::new()
            } else {
                format!(" password={password}")
            },
            dir = dir.display(),
        );
        std::fs::write(dir.join("pgbouncer.ini"), ini).unwrap();
        let mut command = Command::new(&program);
        if as_root {
            command.args(["-u", "postgres"]);
        }
        let process = command
            .arg(dir.join("pgbouncer.ini"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("pgbouncer starts");
        let bouncer = Self { process, dir, port };
        let url = bouncer.url("postgres");
        let deadline = Instant::now() + Duration::from_secs(10);
        while PgConnection::connect(&url).await.is_err() {
            assert!(
                Instant::now() < deadline,
                "pgbouncer did not accept connections: {}",
                std::fs::read_to_string(bouncer.dir.join("pgbouncer.log")).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Some(bouncer)
    }

    fn url(&self, database: &str) -> String {
        let mut url = url::Url::parse(&server_url()).unwrap();
        url.set_host(Some("127.0.0.1")).unwrap();
        url.set_port(Some(self.port)).unwrap();
        url.set_path(&format!("/{database}"));
        url.to_string()
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn database_of(pool: &PgPool) -> String {
    sqlx::query_scalar("select current_database()")
        .fetch_one(pool)
        .await
        .unwrap()
}

fn direct_url(database: &str) -> String {
    let mut url = url::Url::parse(&server_url()).unwrap();
    url.set_path(&format!("/{database}"));
    url.to_string()
}

/// A `dentite serve` child with its log in a file; killed however the test ends.
struct Instance {
    child: Option<Child>,
    base: String,
    log: PathBuf,
}

impl Instance {
    async fn start(database_url: &str, sendgrid: &MockServer, env: &[(&str, &str)]) -> Self {
        let log = std::env::temp_dir().join(format!("dentite-instance-{}.log", Uuid::new_v4()));
        let file = std::fs::File::create(&log).unwrap();
        let (child, base) = serve(database_url, sendgrid, env, file.into()).await;
        Self {
            child: Some(child),
            base,
            log,
        }
    }

    /// SIGKILL: no graceful shutdown, claimed jobs left to their leases.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// SIGTERM, as an orchestrator stops an instance, and waits for it to finish.
    fn terminate(&mut self) {
        if let Some(mut child) = self.child.take() {
            let status = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status()
                .unwrap();
            assert!(status.success());
            let deadline = Instant::now() + Duration::from_secs(20);
            while child.try_wait().unwrap().is_none() {
                assert!(
                    Instant::now() < deadline,
                    "the instance stops after SIGTERM"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// SendGrid's mail send as the drill's vendor: accepts everything a little slowly and
/// remembers which outreach log each request carried and when it arrived.
#[derive(Clone, Default)]
struct CountingVendor(Arc<Mutex<Vec<Send>>>);

/// One request to the vendor: the outreach log it carried and when it arrived.
type Send = (Uuid, DateTime<Utc>);

impl CountingVendor {
    fn sends(&self) -> Vec<Send> {
        self.0.lock().unwrap().clone()
    }

    fn count(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    fn per_message(&self) -> HashMap<Uuid, usize> {
        let mut counts = HashMap::new();
        for (id, _) in self.sends() {
            *counts.entry(id).or_default() += 1;
        }
        counts
    }
}

impl Respond for CountingVendor {
    fn respond(&self, request: &wiremock::Request) -> ResponseTemplate {
        let body: Value = serde_json::from_slice(&request.body).unwrap();
        let id = body["custom_args"]["outreach_log_id"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        self.0.lock().unwrap().push((id, Utc::now()));
        ResponseTemplate::new(202)
            .insert_header("X-Message-Id", Uuid::new_v4().simple().to_string())
            .set_delay(Duration::from_millis(5))
    }
}

async fn counting_vendor() -> (MockServer, CountingVendor) {
    let server = MockServer::start().await;
    let vendor = CountingVendor::default();
    Mock::given(method("POST"))
        .and(path("/v3/mail/send"))
        .respond_with(vendor.clone())
        .mount(&server)
        .await;
    (server, vendor)
}

async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let polling = async {
        while !condition().await {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    if tokio::time::timeout(timeout, polling).await.is_err() {
        panic!("timed out after {timeout:?} waiting until {what}");
    }
}

/// Waits until each query counts what it is paired with.
async fn wait_for_counts(
    pool: &PgPool,
    what: &str,
    timeout: Duration,
    counts: &[(&'static str, i64)],
) {
    wait_until(what, timeout, || async move {
        for (query, expected) in counts {
            let n: i64 = sqlx::query_scalar(*query).fetch_one(pool).await.unwrap();
            if n != *expected {
                return false;
            }
        }
        true
    })
    .await;
}

async fn email_provider_seen_by(http: &reqwest::Client, base: &str, token: &str) -> String {
    let body: Value = http
        .get(format!("{base}/api/practice-settings/messaging"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["email"]["provider"].as_str().unwrap().to_string()
}

/// One SendGrid webhook delivery (three events for one sent log) and the keys it stores.
struct WebhookDelivery {
    body: String,
    event_keys: Vec<String>,
}

fn webhook_deliveries(practice: Uuid, logs: &[Uuid]) -> Vec<WebhookDelivery> {
    logs.iter()
        .map(|log| {
            let events: Vec<Value> = ["processed", "delivered", "open"]
                .into_iter()
                .map(|kind| {
                    json!({
                        "timestamp": Utc::now().timestamp(),
                        "event": kind,
                        "sg_event_id": Uuid::new_v4().simple().to_string(),
                        "outreach_log_id": log.to_string(),
                        "practice_id": practice.to_string(),
                        "email": "pat@example.com",
                    })
                })
                .collect();
            WebhookDelivery {
                event_keys: events
                    .iter()
                    .map(|e| format!("sendgrid:{}", e["sg_event_id"].as_str().unwrap()))
                    .collect(),
                body: sendgrid_batch(&events),
            }
        })
        .collect()
}

/// Posts each delivery to the instances in turn, as a load balancer would, moving to the next
/// instance on a refused connection or a non-2xx; after each 2xx, checks (on the direct
/// connection) that its events are stored. Returns the event keys acknowledged unstored.
async fn deliver_webhooks(
    bases: Vec<String>,
    signer: Arc<SendGridSigner>,
    observer: PgPool,
    deliveries: Vec<WebhookDelivery>,
) -> Vec<String> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let mut unstored = Vec::new();
    for (i, delivery) in deliveries.iter().enumerate() {
        let mut attempt = i;
        loop {
            let base = &bases[attempt % bases.len()];
            attempt += 1;
            let timestamp = Utc::now().timestamp().to_string();
            let answer = http
                .post(format!("{base}/api/webhooks/sendgrid"))
                .header("content-type", "application/json")
                .header(
                    "X-Twilio-Email-Event-Webhook-Signature",
                    signer.sign(&timestamp, delivery.body.as_bytes()),
                )
                .header("X-Twilio-Email-Event-Webhook-Timestamp", timestamp)
                .body(delivery.body.clone())
                .send()
                .await;
            if answer.is_ok_and(|a| a.status().is_success()) {
                let stored: i64 = sqlx::query_scalar(
                    "select count(*) from provider_events where event_key = any($1)",
                )
                .bind(&delivery.event_keys)
                .fetch_one(&observer)
                .await
                .unwrap();
                if stored != delivery.event_keys.len() as i64 {
                    unstored.extend(delivery.event_keys.iter().cloned());
                }
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    unstored
}

/// Drill (issue #17): three instances of the binary through PgBouncer in transaction mode. A
/// settings change made through one is seen by all three at once; 1,000 queued messages are sent
/// while one instance is SIGKILLed and another restarted, each reaching the vendor, and twice
/// only if it was in flight at the kill; SendGrid webhooks posted round-robin throughout are
/// acknowledged only once stored, each event stored once.
#[tokio::test]
async fn three_instances_behind_pgbouncer_share_settings_send_a_thousand_messages_through_a_kill_and_a_restart_and_store_every_acknowledged_webhook()
 {
    let Some(bouncer) = PgBouncer::start().await else {
        return;
    };
    // The database, migrated over the direct connection; the app itself serves nothing here.
    let app = TestEnv::new().without_background().spawn().await;
    let database = database_of(&app.pool).await;
    let (pooled, direct) = (bouncer.url(&database), direct_url(&database));
    let (sendgrid, vendor) = counting_vendor().await;
    let signer = Arc::new(SendGridSigner::new());
    let verify_key = signer.public_key();

    let practice = app.create_practice("Smile Dental").await;
    app.configure_custom_sendgrid(practice, true, true).await;
    let patient = app
        .create_patient(practice, "pat@example.com", "+15557654321")
        .await;
    let (email, _) = app
        .create_user(Some(practice), dentite::auth::Role::Owner)
        .await;

    let env = [
        ("DATABASE_POOLED", "true"),
        ("DATABASE_LISTEN_URL", direct.as_str()),
        // The test app's key, which encrypted the practice's SendGrid key.
        ("ENCRYPTION_KEY", &"11".repeat(32)),
        ("SENDGRID_WEBHOOK_VERIFY_KEY", verify_key.as_str()),
        ("SEND_WORKERS", "3"),
        ("SEND_LEASE_SECS", "3"),
    ];
    let mut instances = Vec::new();
    for _ in 0..3 {
        instances.push(Instance::start(&pooled, &sendgrid, &env).await);
    }
    let bases: Vec<String> = instances.iter().map(|i| i.base.clone()).collect();

    // A settings change through one instance, seen by all three at once: each has read (and
    // cached) the practice's settings before.
    let http = reqwest::Client::new();
    let login: Value = http
        .post(format!("{}/api/auth/login", bases[0]))
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["token"].as_str().unwrap().to_string();
    for base in &bases {
        assert_eq!(
            email_provider_seen_by(&http, base, &token).await,
            "custom_sendgrid"
        );
    }
    let reset = http
        .delete(format!(
            "{}/api/practice-settings/messaging/email",
            bases[1]
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert!(reset.status().is_success(), "{}", reset.status());
    let changed = Instant::now();
    for base in &bases {
        wait_until(
            "every instance sees the change",
            Duration::from_secs(2),
            || {
                let (http, base, token) = (http.clone(), base.clone(), token.clone());
                async move { email_provider_seen_by(&http, &base, &token).await == "system_sendgrid" }
            },
        )
        .await;
    }
    let propagation = changed.elapsed();

    // Webhooks for 60 sent messages, posted throughout the sending below.
    let sent_logs: Vec<Uuid> = (0..60).map(|_| Uuid::new_v4()).collect();
    for id in &sent_logs {
        sqlx::query(
            "insert into outreach_logs (id, practice_id, message_type, messaging_provider, status, recipient, body, provider_message_id)
             values ($1, $2, 'email', 'system_sendgrid', 'sent', 'pat@example.com', 'See you soon', $3)",
        )
        .bind(id)
        .bind(practice)
        .bind(Uuid::new_v4().simple().to_string())
        .execute(&app.pool)
        .await
        .unwrap();
    }
    let webhooks = tokio::spawn(deliver_webhooks(
        bases.clone(),
        signer.clone(),
        app.pool.clone(),
        webhook_deliveries(practice, &sent_logs),
    ));

    app.enqueue_emails(practice, patient, 1000).await;
    wait_until(
        "200 messages reach the vendor",
        Duration::from_secs(30),
        || {
            let n = vendor.count();
            async move { n >= 200 }
        },
    )
    .await;
    instances[2].kill();
    wait_until(
        "500 messages reach the vendor",
        Duration::from_secs(30),
        || {
            let n = vendor.count();
            async move { n >= 500 }
        },
    )
    .await;
    instances[1].terminate();
    instances[1] = Instance::start(&pooled, &sendgrid, &env).await;

    wait_for_counts(
        &app.pool,
        "every queued message is sent",
        Duration::from_secs(60),
        &[("select count(*) from outreach_logs where status not in ('sent', 'delivered', 'opened')", 0)],
    )
    .await;
    let unstored = tokio::time::timeout(Duration::from_secs(60), webhooks)
        .await
        .expect("every webhook delivery is acknowledged")
        .unwrap();

    let sends = vendor.per_message();
    assert_eq!(sends.len(), 1000, "every queued message reached the vendor");
    // At-least-once: only what the killed instance had in flight may go twice; its 3 workers
    // each send a claimed batch of at most 16.
    let duplicates: usize = sends.values().map(|n| n - 1).sum();
    assert!(duplicates <= 3 * 16, "{duplicates} duplicates");
    assert!(
        unstored.is_empty(),
        "a 2xx acknowledged events that were not stored: {unstored:?}"
    );
    let stored: Vec<(String, i64)> = sqlx::query_as(
        "select event_key, count(*) from provider_events where event_key like 'sendgrid:%' group by event_key",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(stored.len(), 3 * sent_logs.len(), "every event is stored");
    assert!(stored.iter().all(|(_, n)| *n == 1), "no event twice");
    let opened: i64 = sqlx::query_scalar(
        "select count(*) from outreach_logs where id = any($1) and status = 'opened'",
    )
    .bind(&sent_logs)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(opened, sent_logs.len() as i64);

    // Nothing the pooler cannot carry happened: no named statement left on any server
    // connection, and no instance logged a statement lost between server connections.
    let through_pooler = PgPool::connect_with(
        dentite::db::connect_options(&pooled)
            .unwrap()
            .statement_cache_capacity(0),
    )
    .await
    .unwrap();
    for _ in 0..3 * SERVER_POOL_SIZE {
        let named: i64 = sqlx::query_scalar("select count(*) from pg_prepared_statements")
            .fetch_one(&through_pooler)
            .await
            .unwrap();
        assert_eq!(named, 0, "a named prepared statement was left on a server");
    }
    for instance in &instances {
        let log = instance.log();
        assert!(
            !log.contains("prepared statement") && !log.contains("sqlx_s_"),
            "{log}"
        );
    }
    eprintln!(
        "pooler drill: settings change seen by all three in {propagation:?}; {duplicates} duplicate sends after the SIGKILL"
    );
}

/// Three instances (in-process, each with its schedulers and workers) through PgBouncer run
/// every schedule once: due sequence steps are queued once, deferred messages go out once and
/// not before their time, each due domain is re-checked once, and retention purges what is past
/// its age once, leaving the counts whole.
#[tokio::test]
async fn with_three_instances_behind_pgbouncer_every_schedule_runs_each_item_once() {
    let Some(bouncer) = PgBouncer::start().await else {
        return;
    };
    let setup = TestEnv::new()
        .with_system_accounts()
        .without_background()
        .spawn()
        .await;
    let database = database_of(&setup.pool).await;
    let (pooled, direct) = (bouncer.url(&database), direct_url(&database));
    let (vendor_server, vendor) = counting_vendor().await;

    // A sequence whose one step is due at once, for 30 patients.
    let owner = setup.practice_owner().await;
    let practice = owner.practice_id.unwrap();
    let sequence: Value = setup
        .send_json(
            Method::POST,
            "/api/sequences",
            &owner,
            &json!({"name": "Recall", "steps": [{"channel": "email", "delayMinutes": 0, "subject": "Recall", "body": "Hi {{firstName}}"}]}),
        )
        .await
        .json()
        .await
        .unwrap();
    let sequence = sequence["id"].as_str().unwrap().to_string();
    let mut patients = Vec::new();
    for i in 0..30 {
        patients.push(
            setup
                .create_patient(practice, &format!("p{i}@example.com"), "+15557654321")
                .await,
        );
    }
    let enrolled = setup
        .send_json(
            Method::POST,
            &format!("/api/sequences/{sequence}/enrollments"),
            &owner,
            &json!({"patientIds": patients}),
        )
        .await;
    assert!(enrolled.status().is_success(), "{}", enrolled.status());

    // 100 messages deferred until four seconds from now.
    setup.enqueue_emails(practice, patients[0], 100).await;
    let release: DateTime<Utc> = sqlx::query_scalar(
        "update send_jobs set run_at = now() + interval '4 seconds' returning run_at",
    )
    .fetch_all(&setup.pool)
    .await
    .unwrap()[0];
    let deferred: HashSet<Uuid> = sqlx::query_scalar("select outreach_log_id from send_jobs")
        .fetch_all(&setup.pool)
        .await
        .unwrap()
        .into_iter()
        .collect();

    // Five practices whose unverified domains are due a re-check.
    for id in 401..406 {
        let owner = setup.practice_owner().await;
        save_custom_email(&setup, &owner, DOMAIN_SCOPES).await;
        store_unverified_domain(&setup.pool, owner.practice_id.unwrap(), id, "1 hour", None).await;
        validate_mock(id, true, None).mount(&vendor_server).await;
    }

    // History for retention: 300 logs past the log age, 300 past the body age only, and 300
    // provider events past the event age, with young ones of each beside them.
    for (days, rows) in [(400, 300), (100, 300), (10, 50)] {
        sqlx::query(
            "insert into outreach_logs (id, practice_id, message_type, status, messaging_provider, recipient, subject, body, created_at)
             select gen_random_uuid(), $1, 'email', 'delivered', 'system_sendgrid', 'old@example.com', 'Recall', 'Body',
                    now() - make_interval(days => $2)
             from generate_series(1, $3)",
        )
        .bind(practice)
        .bind(days)
        .bind(rows)
        .execute(&setup.pool)
        .await
        .unwrap();
    }
    for (days, rows) in [(500, 300), (10, 50)] {
        sqlx::query(
            "insert into provider_events (event_key, provider, practice_id, event_type, payload, received_at)
             select 'retention-' || $2 || '-' || n, 'sendgrid', $1, 'delivered', '{}', now() - make_interval(days => $2)
             from generate_series(1, $3) n",
        )
        .bind(practice)
        .bind(days)
        .bind(rows)
        .execute(&setup.pool)
        .await
        .unwrap();
    }
    let delivered_before = delivered_in_a_year(&setup, &owner).await;

    let instance = || {
        TestEnv::new()
            .with_system_accounts()
            .database(&database)
            .var("DATABASE_URL", pooled.as_str())
            .var("DATABASE_LISTEN_URL", direct.as_str())
            .var("DATABASE_POOLED", "true")
            .var("SENDGRID_API_BASE_URL", vendor_server.uri())
            .var("SENDGRID_RATE_PER_SEC", "0")
            .var("SEND_WORKERS", "3")
            .var("RETENTION_BODY_DAYS", "90")
            .var("RETENTION_LOG_DAYS", "365")
            .var("RETENTION_EVENT_DAYS", "400")
            .spawn()
    };
    let (a, b, c) = tokio::join!(instance(), instance(), instance());

    wait_for_counts(
        &setup.pool,
        "the sequence's and the deferred messages are all sent",
        Duration::from_secs(30),
        &[(
            "select count(*) from outreach_logs where status = 'sent'",
            130,
        )],
    )
    .await;
    let domains = vendor_server.received_requests().await.unwrap();
    let checks: Vec<&str> = domains
        .iter()
        .filter(|r| r.url.path().ends_with("/validate"))
        .map(|r| r.url.path())
        .collect();

    let steps: Vec<(Uuid, i64)> = sqlx::query_as(
        "select e.patient_id, count(l.id) from sequence_enrollments e
         left join outreach_logs l on l.sequence_enrollment_id = e.id group by e.patient_id",
    )
    .fetch_all(&setup.pool)
    .await
    .unwrap();
    assert_eq!(steps.len(), 30);
    assert!(
        steps.iter().all(|(_, n)| *n == 1),
        "each enrolment's step is queued once: {steps:?}"
    );
    let sends = vendor.sends();
    let per_message = vendor.per_message();
    assert_eq!(per_message.len(), 130);
    assert!(
        per_message.values().all(|&n| n == 1),
        "every message is sent exactly once"
    );
    for (id, at) in &sends {
        if deferred.contains(id) {
            assert!(
                *at >= release,
                "a deferred message went out before its time"
            );
            assert!(
                *at < release + chrono::Duration::seconds(5),
                "a deferred message went out late: {at} for {release}"
            );
        }
    }
    assert_eq!(
        checks.len(),
        5,
        "each due domain is checked once: {checks:?}"
    );
    let verified: i64 =
        sqlx::query_scalar("select count(*) from practices where email_domain_verified")
            .fetch_one(&setup.pool)
            .await
            .unwrap();
    assert_eq!(verified, 5);

    // Retention ran on all three at start: what was past its age is gone or blanked, the rest
    // is untouched, and the counts still include every purged log.
    wait_for_counts(
        &setup.pool,
        "retention has purged the old history",
        Duration::from_secs(30),
        &[
            ("select count(*) from outreach_logs where recipient = 'old@example.com'", 350),
            ("select count(*) from provider_events where event_key like 'retention-%'", 50),
            (
                "select count(*) from outreach_logs where recipient = 'old@example.com' and body is not null",
                50,
            ),
        ],
    )
    .await;
    assert_eq!(
        delivered_in_a_year(&setup, &owner).await,
        delivered_before,
        "purged logs keep counting"
    );
    for instance in [a, b, c] {
        instance.stop().await;
    }
}

/// Delivered messages of the owner's practice over the last 365 days, from the counts.
async fn delivered_in_a_year(app: &TestApp, owner: &Login) -> i64 {
    let rows: Vec<Value> = app
        .get("/api/analytics/messaging?days=365", owner)
        .await
        .json()
        .await
        .unwrap();
    rows.iter()
        .map(|row| row["delivered"].as_i64().unwrap())
        .sum()
}

/// What `DATABASE_POOLED=true` changes in the driver: every statement is the unnamed one, parsed
/// and executed in one go. A connection used that way survives failed statements, reads types
/// it has not seen before, and leaves no named statement behind. Needs no PgBouncer.
#[tokio::test]
async fn without_a_statement_cache_failed_statements_and_new_types_leave_the_connection_usable() {
    let app = TestEnv::new().without_background().spawn().await;
    let database = database_of(&app.pool).await;
    let options = dentite::db::connect_options(&direct_url(&database))
        .unwrap()
        .statement_cache_capacity(0);
    let mut connection = PgConnection::connect_with(&options).await.unwrap();

    let syntax = sqlx::query("selec 1").execute(&mut connection).await;
    assert!(syntax.is_err());
    let practice = app.create_practice("Smile Dental").await;
    let duplicate = sqlx::query("insert into practices (id, name) values ($1, 'Again')")
        .bind(practice)
        .execute(&mut connection)
        .await
        .unwrap_err();
    assert!(
        matches!(&duplicate, sqlx::Error::Database(e) if e.is_unique_violation()),
        "{duplicate}"
    );
    let bad_parameter = sqlx::query("select $1::int")
        .bind("not a number")
        .execute(&mut connection)
        .await;
    assert!(bad_parameter.is_err());

    sqlx::query("create type drill_mood as enum ('calm', 'busy')")
        .execute(&mut connection)
        .await
        .unwrap();
    let (name, mood): (String, String) =
        sqlx::query_as("select name, 'busy'::drill_mood::text from practices where id = $1")
            .bind(practice)
            .fetch_one(&mut connection)
            .await
            .unwrap();
    assert_eq!((name.as_str(), mood.as_str()), ("Smile Dental", "busy"));
    let moods: Vec<String> = sqlx::query_scalar(
        "select m::text from unnest(enum_range(null::drill_mood)) m where m = any($1::text[]::drill_mood[])",
    )
    .bind(vec!["calm".to_string()])
    .fetch_all(&mut connection)
    .await
    .unwrap();
    assert_eq!(moods, ["calm"]);
    // A column of a type this connection has not seen: its catalog entry is looked up first.
    let row = sqlx::query("select 'busy'::drill_mood as mood, $1::text as name")
        .bind("Smile Dental")
        .fetch_one(&mut connection)
        .await
        .unwrap();
    use sqlx::Row;
    assert_eq!(row.try_get_unchecked::<String, _>("mood").unwrap(), "busy");
    assert_eq!(row.try_get::<String, _>("name").unwrap(), "Smile Dental");
    let mut tx = connection.begin().await.unwrap();
    let inside: i64 = sqlx::query_scalar("select $1::bigint + 1")
        .bind(41_i64)
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(inside, 42);

    let named: i64 = sqlx::query_scalar("select count(*) from pg_prepared_statements")
        .fetch_one(&mut connection)
        .await
        .unwrap();
    assert_eq!(named, 0, "no named statement was prepared");
}
