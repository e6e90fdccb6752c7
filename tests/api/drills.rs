//! Fault drills (issue #8): real processes and a real Postgres, each checking that no message
//! and no event is lost or handled twice beyond the documented at-least-once window.
//!
//! - a database outage while the queue sends;
//! - a database outage while SendGrid and Twilio webhooks arrive;
//! - a practice's own SendGrid account failing, then hanging, then recovering.
//!
//! The SIGKILL mid-send drill is in `process.rs`.

use std::{
    collections::{HashMap, HashSet},
    process::Stdio,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use dentite::{
    auth::Role,
    providers::twilio::signature::{TwilioAlgorithm, sign_twilio},
};
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;
use wiremock::{
    Mock, MockServer, Respond, ResponseTemplate,
    matchers::{bearer_token, method, path},
};

use crate::{helpers::*, pg_proxy::app_behind_proxy, process::serve};

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

/// A provider's view of one webhook delivery: what it posts, and the event keys it carries.
struct Delivery {
    path: String,
    headers: Vec<(&'static str, String)>,
    content_type: &'static str,
    body: String,
    event_keys: Vec<String>,
}

/// What the simulated providers saw: every answer, and the deliveries a 2xx acknowledged.
#[derive(Default)]
struct ProviderLog {
    statuses: Vec<u16>,
    unstored_acks: Vec<String>,
}

/// A direct pool to the app's database, not through the proxy: the drill's observer, which
/// keeps seeing the database while the app's connections are cut.
async fn observer(app: &TestApp) -> PgPool {
    let database = url::Url::parse(&app.state.settings.database_url).unwrap();
    let mut url = url::Url::parse(&server_url()).unwrap();
    url.set_path(database.path());
    PgPool::connect(url.as_str()).await.unwrap()
}

/// Posts one delivery until it gets a 2xx, as SendGrid does (and Twilio with retries
/// configured): a few milliseconds apart here instead of minutes. After each 2xx, checks that
/// every event of the delivery is stored at that moment.
async fn deliver_until_acknowledged(
    http: &reqwest::Client,
    base: &str,
    observer: &PgPool,
    delivery: &Delivery,
    log: &Mutex<ProviderLog>,
) {
    loop {
        let mut request = http
            .post(format!("{base}{}", delivery.path))
            .header("content-type", delivery.content_type)
            .body(delivery.body.clone());
        for (name, value) in &delivery.headers {
            request = request.header(*name, value);
        }
        let status = match request.send().await {
            Ok(response) => response.status().as_u16(),
            // The app itself is never cut; a failed connection would be a bug of its own.
            Err(e) => panic!("the app did not answer: {e}"),
        };
        log.lock().unwrap().statuses.push(status);
        if (200..300).contains(&status) {
            let stored: i64 = sqlx::query_scalar(
                "select count(*) from provider_events where event_key = any($1)",
            )
            .bind(&delivery.event_keys)
            .fetch_one(observer)
            .await
            .unwrap();
            if stored != delivery.event_keys.len() as i64 {
                log.lock()
                    .unwrap()
                    .unstored_acks
                    .extend(delivery.event_keys.iter().cloned());
            }
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Drill (issue #8): the database goes away for about two seconds while SendGrid event batches
/// and Twilio status callbacks keep arriving. The shared Postgres server cannot be stopped (other
/// tests use it), so the outage is the TCP proxy in front of it cutting every connection and
/// refusing new ones; to the app that is Postgres gone.
#[tokio::test]
async fn webhooks_during_a_database_outage_get_503_and_every_retried_event_is_stored_exactly_once()
{
    let signer = SendGridSigner::new();
    let env = TestEnv::new()
        .with_system_accounts()
        .var("SENDGRID_WEBHOOK_VERIFY_KEY", signer.public_key());
    let (app, proxy) = app_behind_proxy(env).await;
    let observer = observer(&app).await;
    let practice = app.create_practice("Smile Dental").await;

    // 60 sent emails and 30 sent texts, as the system accounts left them.
    let emails: Vec<(Uuid, String)> = (0..60)
        .map(|i| (Uuid::new_v4(), format!("p{i}@example.com")))
        .collect();
    let texts: Vec<(Uuid, String)> = (0..30)
        .map(|_| (Uuid::new_v4(), format!("SM{}", Uuid::new_v4().simple())))
        .collect();
    for (id, address) in &emails {
        insert_sent_log(
            &observer,
            *id,
            practice,
            "email",
            "system_sendgrid",
            address,
            None,
        )
        .await;
    }
    for (id, sid) in &texts {
        insert_sent_log(
            &observer,
            *id,
            practice,
            "sms",
            "system_twilio",
            "+15557654321",
            Some(sid),
        )
        .await;
    }

    // SendGrid: batches of 3 events; every 6th email hard-bounces, the others are delivered
    // and then opened (two events for one log, possibly in different batches).
    let bounced: Vec<&String> = emails
        .iter()
        .step_by(6)
        .map(|(_, address)| address)
        .collect();
    let mut events = Vec::new();
    for (i, (id, address)) in emails.iter().enumerate() {
        let args = json!({"outreach_log_id": id.to_string(), "practice_id": practice.to_string(), "email": address});
        if i % 6 == 0 {
            events.push(sendgrid_event(
                "bounce",
                json!({"type": "bounce", "reason": "550 no such user"}),
                &args,
            ));
        } else {
            events.push(sendgrid_event("delivered", json!({}), &args));
            events.push(sendgrid_event("open", json!({}), &args));
        }
    }
    let mut deliveries: Vec<Delivery> = events
        .chunks(3)
        .map(|chunk| {
            let body = sendgrid_batch(chunk);
            let timestamp = chrono::Utc::now().timestamp().to_string();
            Delivery {
                path: "/api/webhooks/sendgrid".into(),
                headers: vec![
                    (
                        "X-Twilio-Email-Event-Webhook-Signature",
                        signer.sign(&timestamp, body.as_bytes()),
                    ),
                    ("X-Twilio-Email-Event-Webhook-Timestamp", timestamp),
                ],
                content_type: "application/json",
                event_keys: chunk
                    .iter()
                    .map(|e| format!("sendgrid:{}", e["sg_event_id"].as_str().unwrap()))
                    .collect(),
                body,
            }
        })
        .collect();
    // Twilio: `sent`, then `delivered`, for every text, signed with the system auth token.
    for (_, sid) in &texts {
        for status in ["sent", "delivered"] {
            let params: Vec<(String, String)> = [
                ("AccountSid", SYSTEM_TWILIO_SID),
                ("MessageSid", sid.as_str()),
                ("SmsSid", sid.as_str()),
                ("MessageStatus", status),
                ("To", "+15557654321"),
                ("From", SYSTEM_TWILIO_NUMBER),
                ("ApiVersion", "2010-04-01"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
            let signature = sign_twilio(
                "https://hooks.dentite.test/api/webhooks/twilio",
                &params,
                SYSTEM_TWILIO_TOKEN.as_bytes(),
                TwilioAlgorithm::HmacSha1,
            );
            deliveries.push(Delivery {
                path: "/api/webhooks/twilio".into(),
                headers: vec![("X-Twilio-Signature", signature)],
                content_type: "application/x-www-form-urlencoded",
                body: serde_urlencoded::to_string(&params).unwrap(),
                event_keys: vec![format!("twilio:{sid}:{status}")],
            });
        }
    }
    let total_deliveries = deliveries.len();
    let expected_keys: HashSet<String> = deliveries
        .iter()
        .flat_map(|d| d.event_keys.iter().cloned())
        .collect();

    // Four senders, each posting its share in order, 30 ms apart, before, during and after the
    // outage.
    let log = Arc::new(Mutex::new(ProviderLog::default()));
    let acknowledged = Arc::new(AtomicUsize::new(0));
    let mut shares: Vec<Vec<Delivery>> = (0..4).map(|_| Vec::new()).collect();
    for (i, delivery) in deliveries.into_iter().enumerate() {
        shares[i % 4].push(delivery);
    }
    let senders: Vec<_> = shares
        .into_iter()
        .map(|share| {
            let (http, base, observer) = (app.http.clone(), app.address.clone(), observer.clone());
            let (log, acknowledged) = (log.clone(), acknowledged.clone());
            tokio::spawn(async move {
                for delivery in share {
                    deliver_until_acknowledged(&http, &base, &observer, &delivery, &log).await;
                    acknowledged.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(30)).await;
                }
            })
        })
        .collect();

    wait_until(
        "a fifth of the deliveries are acknowledged",
        Duration::from_secs(20),
        || {
            let done = acknowledged.load(Ordering::SeqCst);
            async move { done >= total_deliveries / 5 }
        },
    )
    .await;
    proxy.go_down();
    tokio::time::sleep(Duration::from_secs(2)).await; // the outage itself
    let during_outage = acknowledged.load(Ordering::SeqCst);
    proxy.come_back();
    tokio::time::timeout(Duration::from_secs(60), futures::future::join_all(senders))
        .await
        .expect("every delivery is acknowledged once the database is back")
        .into_iter()
        .for_each(|sender| sender.expect("a sender finishes"));

    let log = std::mem::take(&mut *log.lock().unwrap());
    let count = |wanted: u16| log.statuses.iter().filter(|&&s| s == wanted).count();
    assert!(
        count(503) > 0,
        "requests during the outage got 503: {:?}",
        log.statuses
    );
    assert_eq!(
        count(200) + count(503),
        log.statuses.len(),
        "every answer was 200 or 503"
    );
    assert_eq!(
        count(200),
        total_deliveries,
        "each delivery was acknowledged once"
    );
    assert!(
        during_outage < total_deliveries,
        "deliveries were still arriving when the database came back"
    );
    assert!(
        log.unstored_acks.is_empty(),
        "a 2xx acknowledged events that were not stored: {:?}",
        log.unstored_acks
    );

    let stored: Vec<(String, i64)> =
        sqlx::query_as("select event_key, count(*) from provider_events group by event_key")
            .fetch_all(&observer)
            .await
            .unwrap();
    assert!(
        stored.iter().all(|(_, n)| *n == 1),
        "an event was stored twice"
    );
    let stored: HashSet<String> = stored.into_iter().map(|(key, _)| key).collect();
    assert_eq!(
        stored, expected_keys,
        "every event is stored, and nothing else"
    );

    // The consequences: each email delivered and opened, or bounced and on the ledger; each
    // text delivered.
    let statuses: HashMap<Uuid, String> = sqlx::query_as("select id, status from outreach_logs")
        .fetch_all(&observer)
        .await
        .unwrap()
        .into_iter()
        .collect();
    for (i, (id, address)) in emails.iter().enumerate() {
        let expected = if i % 6 == 0 { "bounced" } else { "opened" };
        assert_eq!(statuses[id], expected, "{address}");
    }
    for (id, sid) in &texts {
        assert_eq!(statuses[id], "delivered", "{sid}");
    }
    let suppressed: Vec<String> = sqlx::query_scalar(
        "select address from suppressions where practice_id = $1 and channel = 'email' and reason = 'bounced' order by address",
    )
    .bind(practice)
    .fetch_all(&observer)
    .await
    .unwrap();
    let mut expected: Vec<String> = bounced.into_iter().cloned().collect();
    expected.sort();
    assert_eq!(
        suppressed, expected,
        "every hard bounce, and only those, is on the ledger"
    );
}

/// One SendGrid event with a fresh `sg_event_id`, our custom args flattened in as SendGrid does.
fn sendgrid_event(kind: &str, fields: Value, custom_args: &Value) -> Value {
    let mut event = json!({
        "timestamp": chrono::Utc::now().timestamp(),
        "event": kind,
        "sg_event_id": Uuid::new_v4().simple().to_string(),
    });
    let object = event.as_object_mut().unwrap();
    object.extend(custom_args.as_object().unwrap().clone());
    object.extend(fields.as_object().unwrap().clone());
    event
}

async fn insert_sent_log(
    db: &PgPool,
    id: Uuid,
    practice: Uuid,
    channel: &str,
    provider: &str,
    recipient: &str,
    provider_message_id: Option<&str>,
) {
    sqlx::query(
        "insert into outreach_logs (id, practice_id, message_type, messaging_provider, status, recipient, body, provider_message_id)
         values ($1, $2, $3, $4, 'sent', $5, 'See you soon', $6)",
    )
    .bind(id)
    .bind(practice)
    .bind(channel)
    .bind(provider)
    .bind(recipient)
    .bind(provider_message_id)
    .execute(db)
    .await
    .unwrap();
}

/// Polls `condition` every 50 ms until it holds; panics naming `what` after `timeout`.
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

/// What the practice's own SendGrid account does, switched by the drill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AccountState {
    /// Answers every send with a 500.
    Failing,
    /// Takes longer than `PROVIDER_TIMEOUT_MS` and then refuses: nothing is accepted.
    Hanging,
    /// Accepts every send.
    Healthy,
}

/// The custom account behind wiremock: answers by its current state and remembers which
/// outreach log each request carried and how it was answered.
#[derive(Clone)]
struct CustomAccount {
    state: Arc<Mutex<AccountState>>,
    answered: Arc<Mutex<Vec<(Uuid, AccountState)>>>,
}

impl CustomAccount {
    fn new() -> Self {
        Self {
            state: Arc::new(Mutex::new(AccountState::Failing)),
            answered: Arc::default(),
        }
    }

    fn switch(&self, state: AccountState) {
        *self.state.lock().unwrap() = state;
    }

    fn answered_in(&self, state: AccountState) -> Vec<Uuid> {
        self.answered
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, s)| *s == state)
            .map(|(id, _)| *id)
            .collect()
    }
}

impl Respond for CustomAccount {
    fn respond(&self, request: &wiremock::Request) -> ResponseTemplate {
        let state = *self.state.lock().unwrap();
        self.answered
            .lock()
            .unwrap()
            .push((outreach_log_of(&request.body), state));
        match state {
            AccountState::Failing => ResponseTemplate::new(500)
                .set_body_json(json!({"errors": [{"message": "internal server error"}]})),
            AccountState::Hanging => ResponseTemplate::new(503).set_delay(Duration::from_secs(3)),
            AccountState::Healthy => ResponseTemplate::new(202)
                .insert_header("X-Message-Id", Uuid::new_v4().simple().to_string()),
        }
    }
}

fn outreach_log_of(mail_send_body: &[u8]) -> Uuid {
    let body: Value = serde_json::from_slice(mail_send_body).unwrap();
    body["custom_args"]["outreach_log_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// A `dentite serve` child that is killed however the test ends.
struct Served(std::process::Child);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The value of one Prometheus series in `/metrics` text, 0 when it has not been recorded.
fn series(metrics: &str, name_and_labels: &str) -> f64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(name_and_labels)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Drill (issue #8): the practice's own SendGrid account answers 500s, then hangs past the
/// provider timeout, then recovers, while messages keep being queued. Runs the real binary, so
/// its `/metrics` are its own.
#[tokio::test]
async fn a_custom_account_failing_then_hanging_then_recovering_falls_back_opens_and_closes_its_circuit_and_sends_each_message_once()
 {
    // This app only provides the database and the keyring; the service under test is a child.
    let app = TestEnv::new().without_background().spawn().await;
    let practice = app.create_practice("Smile Dental").await;
    app.configure_custom_sendgrid(practice, true, true).await;
    let patient = app
        .create_patient(practice, "pat@example.com", "+15557654321")
        .await;
    let (email, _) = app.create_user(Some(practice), Role::Owner).await;

    let sendgrid = MockServer::start().await;
    let custom = CustomAccount::new();
    Mock::given(method("POST"))
        .and(path("/v3/mail/send"))
        .and(bearer_token(CUSTOM_SENDGRID_KEY))
        .respond_with(custom.clone())
        .mount(&sendgrid)
        .await;
    Mock::given(method("POST"))
        .and(path("/v3/mail/send"))
        .and(bearer_token(SYSTEM_SENDGRID_KEY))
        .respond_with(ResponseTemplate::new(202).insert_header("X-Message-Id", "system-account"))
        .mount(&sendgrid)
        .await;
    let database: String = sqlx::query_scalar("select current_database()")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let mut url = url::Url::parse(&server_url()).unwrap();
    url.set_path(&format!("/{database}"));
    let encryption_key = "11".repeat(32);
    // A timeout short enough for a quick drill, long enough that a loaded CI machine does not
    // time out the fakes' immediate answers (which would make a send ambiguous).
    let env = [
        ("ENCRYPTION_KEY", encryption_key.as_str()),
        ("PROVIDER_TIMEOUT_MS", "1000"),
        ("PROVIDER_CIRCUIT_COOL_DOWN_SECS", "1"),
        ("SEND_WORKERS", "2"),
    ];
    let log = if std::env::var_os("TEST_LOG").is_some() {
        Stdio::inherit()
    } else {
        Stdio::null()
    };
    let (child, base) = serve(url.as_str(), &sendgrid, &env, log).await;
    let _served = Served(child);
    let http = reqwest::Client::new();
    let login: Value = http
        .post(format!("{base}/api/auth/login"))
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["token"].as_str().unwrap().to_string();

    // The front desk queues a message every 100 ms for as long as the drill runs.
    let queueing = Arc::new(AtomicBool::new(true));
    let front_desk = {
        let (http, base, token, queueing) =
            (http.clone(), base.clone(), token.clone(), queueing.clone());
        tokio::spawn(async move {
            let mut queued = Vec::new();
            while queueing.load(Ordering::SeqCst) {
                let response = http
                    .post(format!("{base}/api/outreach/messages"))
                    .bearer_auth(&token)
                    .json(&json!({"patientId": patient, "channel": "email", "subject": "Recall", "body": "Time for a check-up"}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 202);
                let body: Value = response.json().await.unwrap();
                queued.push(body["id"].as_str().unwrap().parse::<Uuid>().unwrap());
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            queued
        })
    };
    let email_status = || {
        let (http, base, token) = (http.clone(), base.clone(), token.clone());
        async move {
            let status: Value = http
                .get(format!("{base}/api/practice-settings/messaging/status"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            (
                status["email"]["health"].as_str().unwrap().to_string(),
                status["email"]["providerInEffect"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            )
        }
    };

    // 500s: the first failures fall back one by one, then the circuit opens.
    wait_until("the circuit opens on 500s", Duration::from_secs(15), || {
        let status = email_status();
        async move { status.await.0 == "open" }
    })
    .await;
    assert_eq!(
        email_status().await,
        ("open".to_string(), "system_sendgrid".to_string()),
        "while open, the system account sends first"
    );

    // Timeouts: after the cool-down a probe goes to the custom account, hangs, and the circuit
    // stays open.
    custom.switch(AccountState::Hanging);
    wait_until(
        "a probe hangs past the timeout",
        Duration::from_secs(15),
        || {
            let probed = !custom.answered_in(AccountState::Hanging).is_empty();
            async move { probed }
        },
    )
    .await;
    let probe = custom.answered_in(AccountState::Hanging)[0];
    wait_until("the hung probe falls back", Duration::from_secs(15), || {
        let pool = app.pool.clone();
        async move {
            let status: String =
                sqlx::query_scalar("select status from outreach_logs where id = $1")
                    .bind(probe)
                    .fetch_one(&pool)
                    .await
                    .unwrap();
            status == "sent"
        }
    })
    .await;
    assert_eq!(
        email_status().await.0,
        "open",
        "a failed probe keeps the circuit open"
    );

    // Recovery: the next probe succeeds and closes the circuit; the custom account sends again.
    custom.switch(AccountState::Healthy);
    wait_until(
        "the circuit closes after recovery",
        Duration::from_secs(15),
        || {
            let status = email_status();
            async move { status.await.0 == "healthy" }
        },
    )
    .await;
    wait_until(
        "three more sends through the recovered account",
        Duration::from_secs(15),
        || {
            let recovered = custom.answered_in(AccountState::Healthy).len();
            async move { recovered >= 4 }
        },
    )
    .await;
    queueing.store(false, Ordering::SeqCst);
    let queued = front_desk.await.unwrap();
    wait_until(
        "every queued message is sent",
        Duration::from_secs(30),
        || {
            let pool = app.pool.clone();
            async move {
                let pending: i64 =
                    sqlx::query_scalar("select count(*) from outreach_logs where status <> 'sent'")
                        .fetch_one(&pool)
                        .await
                        .unwrap();
                pending == 0
            }
        },
    )
    .await;
    assert_eq!(
        email_status().await,
        ("healthy".to_string(), "custom_sendgrid".to_string())
    );

    // Exactly once: each message accepted by one account, custom or (with a reason) system.
    let mut accepted: HashMap<Uuid, Vec<&str>> = HashMap::new();
    for id in custom.answered_in(AccountState::Healthy) {
        accepted.entry(id).or_default().push("custom_sendgrid");
    }
    for request in sendgrid.received_requests().await.unwrap() {
        if request.headers["authorization"] == format!("Bearer {SYSTEM_SENDGRID_KEY}") {
            accepted
                .entry(outreach_log_of(&request.body))
                .or_default()
                .push("system_sendgrid");
        }
    }
    let rows: Vec<(Uuid, String, Option<String>)> = sqlx::query_as(
        "select id, messaging_provider, fallback_reason from outreach_logs order by created_at",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), queued.len());
    let mut reasons = HashMap::<&str, usize>::new();
    for (id, provider, reason) in &rows {
        assert_eq!(
            accepted.get(id).map(Vec::as_slice),
            Some(&[provider.as_str()][..]),
            "message {id} was accepted once, by the account its log names"
        );
        match (provider.as_str(), reason.as_deref()) {
            ("custom_sendgrid", None) => {}
            ("system_sendgrid", Some(reason)) if reason.contains("circuit open") => {
                *reasons.entry("circuit_open").or_default() += 1;
            }
            ("system_sendgrid", Some(reason)) if reason.contains("did not answer in time") => {
                *reasons.entry("timeout").or_default() += 1;
            }
            ("system_sendgrid", Some(reason)) if reason.contains("internal server error") => {
                *reasons.entry("server_error").or_default() += 1;
            }
            other => panic!("unexpected outcome for {id}: {other:?}"),
        }
    }
    for kind in ["server_error", "timeout", "circuit_open"] {
        assert!(
            reasons.get(kind).is_some_and(|&n| n > 0),
            "a fallback for {kind}: {reasons:?}"
        );
    }

    // The same story in the service's own metrics.
    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let fallbacks = series(
        &metrics,
        "messaging_fallbacks_total{channel=\"email\",reason=\"account_or_provider_failure\"}",
    ) + series(
        &metrics,
        "messaging_fallbacks_total{channel=\"email\",reason=\"circuit_open\"}",
    );
    assert_eq!(
        fallbacks as usize,
        reasons.values().sum::<usize>(),
        "every fallback is counted: {metrics}"
    );
    assert_eq!(
        series(
            &metrics,
            "messaging_fallbacks_total{channel=\"email\",reason=\"circuit_open\"}"
        ) as usize,
        reasons["circuit_open"]
    );
    for to in ["open", "closed"] {
        assert_eq!(
            series(
                &metrics,
                &format!("messaging_circuit_transitions_total{{channel=\"email\",to=\"{to}\"}}")
            ),
            1.0,
            "the circuit went {to} once: {metrics}"
        );
    }
}
