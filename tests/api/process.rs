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
    let port = free_port();
    let log_path = std::env::temp_dir().join(format!("dentite-serve-{}.log", uuid::Uuid::new_v4()));
    let mut server = dentite(&database_url)
        .args(["serve"])
        .env("BIND_ADDR", format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "debug")
        .env("SENDGRID_API_KEY", SYSTEM_SENDGRID_KEY)
        .env("SENDGRID_FROM_EMAIL", "noreply@dentite.test")
        .env("SENDGRID_API_BASE_URL", sendgrid.uri())
        .env("TWILIO_ACCOUNT_SID", SYSTEM_TWILIO_SID)
        .env("TWILIO_AUTH_TOKEN", SYSTEM_TWILIO_TOKEN)
        .env("TWILIO_PHONE_NUMBER", SYSTEM_TWILIO_NUMBER)
        .env("TWILIO_API_BASE_URL", twilio.uri())
        .env("SEND_POLL_MS", "50")
        .env("TWILIO_RATE_PER_SEC", "0")
        .stderr(std::fs::File::create(&log_path).unwrap())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();

    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
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
    sqlx::query(
        "update practices set email_provider = 'custom_sendgrid', sendgrid_api_key = $2, sendgrid_from_email = 'desk@smile.test',
             email_domain_verified = true where id = $1",
    )
    .bind(practice_id)
    .bind(custom_key)
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
