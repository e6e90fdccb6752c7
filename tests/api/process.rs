//! The real binary as operators run it: the CLI, and what `serve` writes to its log.

use std::{
    io::Write,
    process::{Command, Stdio},
    time::Duration,
};

use serde_json::{Value, json};
use wiremock::{Mock, MockServer, ResponseTemplate, matchers::method};

use crate::helpers::*;

fn dentite(database_url: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_dentite"));
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", database_url)
        .env("ENCRYPTION_KEY", "33".repeat(32))
        .env("AUTH_SIGNING_KEY", "44".repeat(32))
        .current_dir(std::env::temp_dir());
    command
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn run_ok(command: &mut Command, stdin: &str) -> String {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

#[tokio::test]
async fn a_user_created_with_the_cli_logs_in_to_the_served_binary_and_secrets_never_reach_the_log()
{
    // The app only provides a fresh database here; the binary under test is a separate process.
    let app = TestEnv::new().without_background().spawn().await;
    let database: String = sqlx::query_scalar("select current_database()")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let mut url = url::Url::parse(&app.state.settings.database_url).unwrap();
    url.set_path(&format!("/{database}"));
    let database_url = url.to_string();

    let practice = run_ok(
        dentite(&database_url).args(["practice", "create", "--name", "Smile Dental"]),
        "",
    );
    run_ok(
        dentite(&database_url).args([
            "user",
            "create",
            "--practice",
            &practice,
            "--email",
            "owner@smile.test",
            "--role",
            "owner",
            "--password-stdin",
        ]),
        "a long enough password\n",
    );
    let bad = dentite(&database_url)
        .args([
            "user",
            "create",
            "--practice",
            &practice,
            "--email",
            "not-an-email",
            "--role",
            "owner",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert_eq!(
        String::from_utf8_lossy(&bad.stderr).lines().count(),
        1,
        "one-line reason"
    );

    // Providers that refuse everything, so every error path logs what it logs.
    let sendgrid = MockServer::start().await;
    let twilio = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(401).set_body_string("{\"errors\":[{\"message\":\"bad key\"}]}"),
        )
        .mount(&sendgrid)
        .await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(401)
                .set_body_json(json!({"code": 20003, "message": "Authenticate"})),
        )
        .mount(&twilio)
        .await;
    let log_path = std::env::temp_dir().join(format!("dentite-serve-{}.log", uuid::Uuid::new_v4()));
    let twilio_uri = twilio.uri();
    let env = [
        ("RUST_LOG", "debug"),
        ("TWILIO_ACCOUNT_SID", SYSTEM_TWILIO_SID),
        ("TWILIO_AUTH_TOKEN", SYSTEM_TWILIO_TOKEN),
        ("TWILIO_PHONE_NUMBER", SYSTEM_TWILIO_NUMBER),
        ("TWILIO_API_BASE_URL", twilio_uri.as_str()),
        ("TWILIO_RATE_PER_SEC", "0"),
    ];
    let log_file = std::fs::File::create(&log_path).unwrap();
    let (mut server, base) = serve(&database_url, &sendgrid, &env, log_file.into()).await;
    let http = reqwest::Client::new();
    let login: Value = http
        .post(format!("{base}/api/auth/login"))
        .json(&json!({"email": "owner@smile.test", "password": "a long enough password"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["token"]
        .as_str()
        .expect("the CLI user logs in")
        .to_string();

    let practice_id: uuid::Uuid = practice.parse().unwrap();
    let keyring = dentite::crypto::Keyring::new(&dentite::crypto::KeyMaterial {
        current: [0x33; 32],
        previous: vec![],
    });
    let custom_key = keyring.encrypt(
        CUSTOM_SENDGRID_KEY,
        practice_id,
        dentite::crypto::CredentialField::SendGridApiKey,
    );
    store_account(
        &app.pool,
        practice_id,
        "sendgrid",
        json!({"fromEmail": "desk@smile.test"}),
        json!({"sendgrid_api_key": custom_key}),
    )
    .await;
    sqlx::query(
        "update practices set email_provider = 'custom_sendgrid', email_domain_verified = true
         where id = $1",
    )
    .bind(practice_id)
    .execute(&app.pool)
    .await
    .unwrap();
    let patient = app
        .create_patient(practice_id, "pat@example.com", "+15557654321")
        .await;
    for channel in ["email", "sms"] {
        let response = http
            .post(format!("{base}/api/outreach/messages"))
            .bearer_auth(&token)
            .json(&json!({"patientId": patient, "channel": channel, "subject": "Hi", "body": "Hello"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202);
    }
    let attempted = async {
        while sendgrid.received_requests().await.unwrap().len() < 2
            || twilio.received_requests().await.unwrap().is_empty()
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(20), attempted)
        .await
        .expect("both channels were attempted");

    server.kill().unwrap();
    server.wait().unwrap();
    let log = std::fs::read_to_string(&log_path).unwrap();
    std::fs::remove_file(&log_path).unwrap();
    assert!(
        log.contains(&format!("Using custom SendGrid for practice {practice_id}")),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "Falling back to system SendGrid for practice {practice_id}"
        )),
        "{log}"
    );
    for secret in [
        CUSTOM_SENDGRID_KEY,
        SYSTEM_SENDGRID_KEY,
        SYSTEM_TWILIO_TOKEN,
        "a long enough password",
        &"33".repeat(32),
        &"44".repeat(32),
    ] {
        assert!(!log.contains(secret), "a secret reached the log");
    }
}

/// Starts `dentite serve` on a free port against `database_url` with the system SendGrid at
/// `sendgrid`, its log going to `log`; returns the child and its base URL once it is ready.
pub async fn serve(
    database_url: &str,
    sendgrid: &MockServer,
    extra: &[(&str, &str)],
    log: Stdio,
) -> (std::process::Child, String) {
    let port = free_port();
    let mut command = dentite(database_url);
    command
        .args(["serve"])
        .env("BIND_ADDR", format!("127.0.0.1:{port}"))
        .env("SENDGRID_API_KEY", SYSTEM_SENDGRID_KEY)
        .env("SENDGRID_FROM_EMAIL", "noreply@dentite.test")
        .env("SENDGRID_API_BASE_URL", sendgrid.uri())
        .env("SENDGRID_RATE_PER_SEC", "0")
        .env("SEND_POLL_MS", "50")
        .stdout(Stdio::null())
        .stderr(log);
    for (name, value) in extra {
        command.env(name, value);
    }
    let child = command.spawn().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let ready = async {
        while http
            .get(format!("{base}/readyz"))
            .send()
            .await
            .map(|r| r.status() != 200)
            .unwrap_or(true)
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), ready)
        .await
        .expect("serve becomes ready");
    (child, base)
}

#[tokio::test]
async fn the_service_killed_mid_send_and_started_again_sends_every_queued_message() {
    let app = TestEnv::new().without_background().spawn().await;
    let database: String = sqlx::query_scalar("select current_database()")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let mut url = url::Url::parse(&app.state.settings.database_url).unwrap();
    url.set_path(&format!("/{database}"));
    let sendgrid = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(202).set_delay(Duration::from_millis(25)))
        .mount(&sendgrid)
        .await;
    let practice = app.create_practice("Smile Dental").await;
    let patient = app
        .create_patient(practice, "pat@example.com", "+15557654321")
        .await;
    app.enqueue_emails(practice, patient, 200).await;

    let lease = [("SEND_LEASE_SECS", "2"), ("SEND_WORKERS", "4")];
    let (mut first, _) = serve(url.as_str(), &sendgrid, &lease, Stdio::null()).await;
    let some_sent = async {
        while sendgrid.received_requests().await.unwrap().len() < 40 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), some_sent)
        .await
        .expect("sending started");
    first.kill().unwrap(); // SIGKILL: no graceful shutdown
    first.wait().unwrap();
    let pending: i64 = sqlx::query_scalar("select count(*) from send_jobs")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(pending > 0, "the kill interrupted the run");

    let (mut second, _) = serve(url.as_str(), &sendgrid, &lease, Stdio::null()).await;
    let drained = async {
        loop {
            let left: i64 =
                sqlx::query_scalar("select count(*) from outreach_logs where status <> 'sent'")
                    .fetch_one(&app.pool)
                    .await
                    .unwrap();
            if left == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(60), drained)
        .await
        .expect("every queued message ends sent");
    second.kill().unwrap();
    second.wait().unwrap();

    let mut sends = std::collections::HashMap::<String, usize>::new();
    for request in sendgrid.received_requests().await.unwrap() {
        let body: Value = serde_json::from_slice(&request.body).unwrap();
        *sends
            .entry(
                body["custom_args"]["outreach_log_id"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            )
            .or_default() += 1;
    }
    assert_eq!(sends.len(), 200);
    // At-least-once: only messages in flight at the kill may go twice; each of the 4 workers
    // sends its claimed batch (at most 16) concurrently.
    let duplicates: usize = sends.values().map(|n| n - 1).sum();
    assert!(duplicates <= 4 * 16, "{duplicates} duplicates");
}
