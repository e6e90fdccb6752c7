use std::collections::HashMap;

use dentite::{AppState, Application, ServeOptions, auth::Role, config::Settings};
use reqwest::{Method, RequestBuilder, Response};
use serde_json::{Value, json};
use sqlx::{Connection, Executor, PgConnection, PgPool};
use uuid::Uuid;
use wiremock::{
    Mock, MockServer, ResponseTemplate,
    matchers::{basic_auth, bearer_token, body_json, method, path, query_param},
};

pub const PASSWORD: &str = "correct horse battery staple";

/// Where tests create their throwaway databases: TEST_DATABASE_URL, else DATABASE_URL's server,
/// else the local trust-auth Postgres.
pub fn server_url() -> String {
    let url = std::env::var("TEST_DATABASE_URL")
        .or_else(|_| std::env::var("DATABASE_URL"))
        .unwrap_or_else(|_| "postgres://postgres@localhost:5432/postgres".into());
    let mut url = url::Url::parse(&url).expect("database URL parses");
    url.set_path("/postgres");
    url.to_string()
}

pub struct TestApp {
    pub address: String,
    pub pool: PgPool,
    pub state: AppState,
    pub sendgrid: MockServer,
    pub twilio: MockServer,
    /// Postmark, Mailgun and Telnyx: their API paths do not overlap, so one fake serves all three.
    pub vendors: MockServer,
    pub http: reqwest::Client,
    database_name: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// Builder for the environment a test app starts with.
pub struct TestEnv {
    vars: HashMap<String, String>,
    background: bool,
    database_name: String,
}

impl TestEnv {
    pub fn new() -> Self {
        let vars = [
            ("ENCRYPTION_KEY", "11".repeat(32)),
            ("AUTH_SIGNING_KEY", "22".repeat(32)),
            ("BIND_ADDR", "127.0.0.1:0".to_string()),
            ("WEBHOOK_BASE_URL", "https://hooks.dentite.test".to_string()),
            ("SEND_POLL_MS", "50".to_string()),
            ("SEND_RETRY_BASE_MS", "50".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        Self {
            vars,
            background: true,
            database_name: format!("dentite_test_{}", Uuid::new_v4().simple()),
        }
    }

    pub fn var(mut self, name: &str, value: impl Into<String>) -> Self {
        self.vars.insert(name.to_string(), value.into());
        self
    }

    /// Share a database with another app (two instances of the service).
    pub fn database(mut self, name: &str) -> Self {
        self.database_name = name.to_string();
        self
    }

    pub fn without_background(mut self) -> Self {
        self.background = false;
        self
    }

    /// System SendGrid and Twilio accounts pointing at the fakes.
    pub fn with_system_accounts(self) -> Self {
        self.var("SENDGRID_API_KEY", SYSTEM_SENDGRID_KEY)
            .var("SENDGRID_FROM_EMAIL", "noreply@dentite.test")
            .var("SENDGRID_FROM_NAME", "Dentite")
            .var("TWILIO_ACCOUNT_SID", SYSTEM_TWILIO_SID)
            .var("TWILIO_AUTH_TOKEN", SYSTEM_TWILIO_TOKEN)
            .var("TWILIO_PHONE_NUMBER", SYSTEM_TWILIO_NUMBER)
    }

    /// The platform's Postmark server, sending from `SENDGRID_FROM_EMAIL` unless the test sets
    /// `SYSTEM_FROM_EMAIL`.
    pub fn with_system_postmark(self) -> Self {
        self.var("POSTMARK_SERVER_TOKEN", SYSTEM_POSTMARK_TOKEN)
            .var(
                "POSTMARK_WEBHOOK_PASSWORD",
                SYSTEM_POSTMARK_WEBHOOK_PASSWORD,
            )
            .var("SENDGRID_FROM_EMAIL", "noreply@dentite.test")
    }

    pub fn with_system_mailgun(self) -> Self {
        self.var("MAILGUN_API_KEY", SYSTEM_MAILGUN_KEY)
            .var("MAILGUN_DOMAIN", SYSTEM_MAILGUN_DOMAIN)
            .var("MAILGUN_WEBHOOK_SIGNING_KEY", SYSTEM_MAILGUN_SIGNING_KEY)
            .var("SENDGRID_FROM_EMAIL", "noreply@dentite.test")
    }

    pub fn with_system_telnyx(self) -> Self {
        self.var("TELNYX_API_KEY", SYSTEM_TELNYX_KEY)
            .var("TELNYX_PHONE_NUMBER", SYSTEM_TELNYX_NUMBER)
            .var("TELNYX_PUBLIC_KEY", TelnyxSigner::new().public_key())
    }

    /// Why the settings refuse these variables; panics if they load.
    pub fn load_error(self) -> String {
        match Settings::load(&self.vars, std::path::Path::new("/nonexistent/dev-keys")) {
            Ok(_) => panic!("the settings loaded"),
            Err(error) => error.to_string(),
        }
    }

    /// Why the application refuses to build with these variables; panics if it builds.
    pub async fn build_error(self) -> String {
        dentite::install_crypto_provider();
        let mut url = url::Url::parse(&server_url()).unwrap();
        url.set_path(&format!("/{}", self.database_name));
        let mut vars = self.vars;
        vars.insert("DATABASE_URL".to_string(), url.to_string());
        let settings = Settings::load(&vars, std::path::Path::new("/nonexistent/dev-keys"))
            .expect("test settings load");
        match Application::build(
            settings,
            ServeOptions {
                migrate: false,
                background: false,
            },
        )
        .await
        {
            Ok(_) => panic!("the application built"),
            Err(error) => format!("{error:#}"),
        }
    }

    pub async fn spawn(self) -> TestApp {
        dentite::install_crypto_provider();
        // TEST_LOG=1 shows the application's logs, as zero2prod's harness does.
        if std::env::var_os("TEST_LOG").is_some() {
            dentite::telemetry::init_tracing(dentite::config::LogFormat::Text);
        }
        let sendgrid = MockServer::start().await;
        let twilio = MockServer::start().await;
        let vendors = MockServer::start().await;
        let mut url = url::Url::parse(&server_url()).unwrap();
        url.set_path(&format!("/{}", self.database_name));
        let vars = self
            .vars
            .into_iter()
            .chain([
                ("DATABASE_URL".to_string(), url.to_string()),
                ("SENDGRID_API_BASE_URL".to_string(), sendgrid.uri()),
                ("TWILIO_API_BASE_URL".to_string(), twilio.uri()),
                ("POSTMARK_API_BASE_URL".to_string(), vendors.uri()),
                ("MAILGUN_API_BASE_URL".to_string(), vendors.uri()),
                ("TELNYX_API_BASE_URL".to_string(), vendors.uri()),
            ])
            .fold(HashMap::new(), |mut map, (k, v)| {
                map.entry(k).or_insert(v);
                map
            });
        let settings = Settings::load(&vars, std::path::Path::new("/nonexistent/dev-keys"))
            .expect("test settings load");
        let app = Application::build(
            settings,
            ServeOptions {
                migrate: true,
                background: self.background,
            },
        )
        .await
        .expect("application builds");
        let address = format!("http://{}", app.local_addr());
        let state = app.state().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(app.run_until_stopped(async {
            let _ = stopped.await;
        }));
        TestApp {
            address,
            pool: state.pool.clone(),
            state,
            sendgrid,
            twilio,
            vendors,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            database_name: self.database_name,
            stop: Some(stop),
            server: Some(server),
        }
    }
}

pub const SYSTEM_SENDGRID_KEY: &str = "SG.system-key.secret-part";
pub const SYSTEM_POSTMARK_TOKEN: &str = "00000000-1111-2222-3333-444444444444";
pub const SYSTEM_POSTMARK_WEBHOOK_PASSWORD: &str = "postmark-hook-password";
pub const SYSTEM_MAILGUN_KEY: &str = "key-system-mailgun";
pub const SYSTEM_MAILGUN_DOMAIN: &str = "mg.dentite.test";
pub const SYSTEM_MAILGUN_SIGNING_KEY: &str = "mailgun-signing-key";
pub const SYSTEM_TELNYX_KEY: &str = "KEY0123456789ABCDEF";
pub const SYSTEM_TELNYX_NUMBER: &str = "+15550001111";

/// Signs Telnyx webhooks as Telnyx does, with a fixed key (RFC 8032's first test secret), so the
/// app's `TELNYX_PUBLIC_KEY` can be set before any test signs.
pub struct TelnyxSigner(ed25519_dalek::SigningKey);

impl TelnyxSigner {
    pub fn new() -> Self {
        let secret: [u8; 32] =
            hex::decode("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
                .unwrap()
                .try_into()
                .unwrap();
        Self(ed25519_dalek::SigningKey::from_bytes(&secret))
    }

    pub fn public_key(&self) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(self.0.verifying_key().to_bytes())
    }

    /// The `telnyx-signature-ed25519` header for `body` at `timestamp`.
    pub fn sign(&self, timestamp: &str, body: &[u8]) -> String {
        use base64::Engine as _;
        use ed25519_dalek::Signer as _;
        let mut message = format!("{timestamp}|").into_bytes();
        message.extend_from_slice(body);
        base64::engine::general_purpose::STANDARD.encode(self.0.sign(&message).to_bytes())
    }
}

/// A Mailgun webhook body signed with the platform's signing key, at `timestamp` with `token`.
pub fn mailgun_webhook(timestamp: i64, token: &str, event_data: Value) -> String {
    use hmac::{KeyInit, Mac};
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(SYSTEM_MAILGUN_SIGNING_KEY.as_bytes()).unwrap();
    mac.update(format!("{timestamp}{token}").as_bytes());
    let signature = hex::encode(mac.finalize().into_bytes());
    json!({
        "signature": {"timestamp": timestamp.to_string(), "token": token, "signature": signature},
        "event-data": event_data,
    })
    .to_string()
}
pub const SYSTEM_TWILIO_SID: &str = "AC00000000000000000000000000000000";
pub const SYSTEM_TWILIO_TOKEN: &str = "00000000000000000000000000000000";
pub const SYSTEM_TWILIO_NUMBER: &str = "+15550000000";

/// A SendGrid account's event-webhook signing key, as SendGrid holds it.
pub struct SendGridSigner(p256::ecdsa::SigningKey);

impl SendGridSigner {
    pub fn new() -> Self {
        use p256::elliptic_curve::Generate;
        Self(p256::ecdsa::SigningKey::generate())
    }

    /// What SendGrid shows as the verification key: base64 of the DER SubjectPublicKeyInfo.
    pub fn public_key(&self) -> String {
        use base64::Engine as _;
        use p256::pkcs8::EncodePublicKey;
        base64::engine::general_purpose::STANDARD.encode(
            self.0
                .verifying_key()
                .to_public_key_der()
                .unwrap()
                .as_bytes(),
        )
    }

    /// `X-Twilio-Email-Event-Webhook-Signature`: ECDSA P-256/SHA-256 over the timestamp header
    /// followed by the raw body, base64 of the DER signature.
    pub fn sign(&self, timestamp: &str, body: &[u8]) -> String {
        use base64::Engine as _;
        use p256::ecdsa::{Signature, signature::Signer};
        let signature: Signature = self.0.sign(&[timestamp.as_bytes(), body].concat());
        base64::engine::general_purpose::STANDARD.encode(signature.to_der().as_bytes())
    }
}

/// A SendGrid event batch as SendGrid lays it out: `\r\n` between events and at the end.
pub fn sendgrid_batch(events: &[Value]) -> String {
    let events: Vec<String> = events.iter().map(Value::to_string).collect();
    format!("[{}]\r\n", events.join(",\r\n"))
}

pub async fn spawn_app() -> TestApp {
    TestEnv::new().spawn().await
}

/// A practice user with a token.
pub struct Login {
    pub token: String,
    pub user_id: Uuid,
    pub practice_id: Option<Uuid>,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub fn request(&self, method: Method, path: &str, login: Option<&Login>) -> RequestBuilder {
        let builder = self.http.request(method, self.url(path));
        match login {
            Some(login) => builder.bearer_auth(&login.token),
            None => builder,
        }
    }

    pub async fn get(&self, path: &str, login: &Login) -> Response {
        self.request(Method::GET, path, Some(login))
            .send()
            .await
            .unwrap()
    }

    pub async fn send_json(
        &self,
        method: Method,
        path: &str,
        login: &Login,
        body: &Value,
    ) -> Response {
        self.request(method, path, Some(login))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// A practice whose office is mid-afternoon now, so its patients without a zone of their
    /// own are inside the sending window whenever the suite runs (the default zone, New York,
    /// is asleep for part of the day). [`Self::create_practice_in_default_zone`] keeps New York.
    pub async fn create_practice(&self, name: &str) -> Uuid {
        let practice = self.create_practice_in_default_zone(name).await;
        sqlx::query("insert into practice_compliance (practice_id, timezone) values ($1, $2)")
            .bind(practice)
            .bind(zone_at_local_hour(14))
            .execute(&self.pool)
            .await
            .unwrap();
        practice
    }

    pub async fn create_practice_in_default_zone(&self, name: &str) -> Uuid {
        dentite::messaging::settings::create(&self.pool, name)
            .await
            .unwrap()
    }

    pub async fn create_user(&self, practice: Option<Uuid>, role: Role) -> (String, Uuid) {
        let email = format!("{}@practice.test", Uuid::new_v4().simple());
        let parsed = dentite::types::EmailAddress::parse(&email).unwrap();
        let id = dentite::auth::create_user(&self.pool, &parsed, PASSWORD, role, practice)
            .await
            .unwrap();
        (email, id)
    }

    pub async fn post_login(&self, email: &str, password: &str) -> Response {
        self.http
            .post(self.url("/api/auth/login"))
            .json(&json!({"email": email, "password": password}))
            .send()
            .await
            .unwrap()
    }

    /// Creates a user of the given role (in `practice`, or a platform admin) and logs in.
    pub async fn login_as(&self, practice: Option<Uuid>, role: Role) -> Login {
        let (email, user_id) = self.create_user(practice, role).await;
        let response = self.post_login(&email, PASSWORD).await;
        assert_eq!(response.status(), 200, "login of a fresh user succeeds");
        let body: Value = response.json().await.unwrap();
        Login {
            token: body["token"].as_str().unwrap().to_string(),
            user_id,
            practice_id: practice,
        }
    }

    /// Posts a genuine unsubscribe link of the practice's email to `email`, as the patient would.
    pub async fn follow_unsubscribe_link(&self, practice: Uuid, email: &str) {
        let token = self.state.unsubscribe.token(practice, email);
        let response = self
            .http
            .post(self.url(&format!("/api/unsubscribe/{token}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }

    /// `phone` opted out of the platform's shared number (STOP to the system number).
    pub async fn shared_number_opt_out(&self, phone: &str) {
        dentite::messaging::suppression::add(
            &self.pool,
            dentite::messaging::suppression::Scope::SystemSender,
            dentite::messaging::Channel::Sms,
            phone,
            dentite::messaging::suppression::SuppressionReason::OptedOut,
            dentite::messaging::suppression::SuppressionSource::SmsKeyword,
        )
        .await
        .unwrap();
    }

    /// `DELETE /api/suppressions/{id}`.
    pub async fn lift_suppression(&self, login: &Login, id: i64) -> Response {
        self.request(
            Method::DELETE,
            &format!("/api/suppressions/{id}"),
            Some(login),
        )
        .send()
        .await
        .unwrap()
    }

    /// A new practice with an owner logged in.
    /// What the settings operations take of the running service, for tests that call them
    /// directly (the domain re-check the background loop runs).
    pub fn settings_context(&self) -> dentite::providers::practice_settings::SettingsContext {
        axum::extract::FromRef::from_ref(&self.state)
    }

    pub async fn practice_owner(&self) -> Login {
        let practice = self.create_practice("Smile Dental").await;
        self.login_as(Some(practice), Role::Owner).await
    }
}

impl TestApp {
    /// Stops the app as SIGTERM would and waits until its server and background tasks end.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server
                .await
                .expect("the server task ends")
                .expect("the server stops cleanly");
        }
    }
}

impl Drop for TestApp {
    /// Drops the test's database, so runs do not pile databases up on the developer's Postgres.
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let name = self.database_name.clone();
        // No `pool.close()` here: it waits for checked-out connections, which are handed back by
        // tasks of the test's runtime, blocked in this very call. `with (force)` ends them instead.
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                if let Ok(mut admin) = PgConnection::connect(&server_url()).await {
                    let statement = format!("drop database if exists \"{name}\" with (force)");
                    let _ = admin.execute(sqlx::AssertSqlSafe(statement)).await;
                }
            });
        })
        .join()
        .ok();
    }
}

pub const CUSTOM_SENDGRID_KEY: &str = "SG.custom-key.practice-secret";
pub const CUSTOM_TWILIO_SID: &str = "AC11111111111111111111111111111111";
pub const CUSTOM_TWILIO_TOKEN: &str = "11111111111111111111111111111111";
pub const CUSTOM_TWILIO_NUMBER: &str = "+15551110000";

impl TestApp {
    /// Stores a custom SendGrid configuration directly, as a saved settings change would.
    pub async fn configure_custom_sendgrid(&self, practice: Uuid, verified: bool, fallback: bool) {
        let key = self.state.keyring.encrypt(
            CUSTOM_SENDGRID_KEY,
            practice,
            dentite::crypto::CredentialField::SendGridApiKey,
        );
        store_account(
            &self.pool,
            practice,
            "sendgrid",
            json!({"fromEmail": "desk@smile.test", "fromName": "Smile Dental",
                   "domain": "smile.test", "domainId": 42}),
            json!({"sendgrid_api_key": key}),
        )
        .await;
        sqlx::query(
            "update practices set email_provider = 'custom_sendgrid', email_domain_verified = $2,
                 email_fallback_enabled = $3, settings_version = settings_version + 1
             where id = $1",
        )
        .bind(practice)
        .bind(verified)
        .bind(fallback)
        .execute(&self.pool)
        .await
        .unwrap();
        self.state.messaging.invalidate(practice).await;
    }

    /// Stores the practice's own Twilio account, encrypted, and chooses it, as a saved settings
    /// change would (without the version bump that tells the cache).
    pub async fn store_twilio_account(&self, practice: Uuid, sid: &str, token: &str, number: &str) {
        use dentite::crypto::CredentialField;
        let encrypt = |value: &str, field| self.state.keyring.encrypt(value, practice, field);
        store_account(
            &self.pool,
            practice,
            "twilio",
            json!({"phoneNumber": number}),
            json!({
                "twilio_account_sid": encrypt(sid, CredentialField::TwilioAccountSid),
                "twilio_auth_token": encrypt(token, CredentialField::TwilioAuthToken),
            }),
        )
        .await;
        sqlx::query("update practices set sms_provider = 'custom_twilio' where id = $1")
            .bind(practice)
            .execute(&self.pool)
            .await
            .unwrap();
    }

    pub async fn configure_custom_twilio(&self, practice: Uuid, fallback: bool) {
        self.store_twilio_account(
            practice,
            CUSTOM_TWILIO_SID,
            CUSTOM_TWILIO_TOKEN,
            CUSTOM_TWILIO_NUMBER,
        )
        .await;
        sqlx::query(
            "update practices set sms_provider = 'custom_twilio', sms_fallback_enabled = $2,
                 settings_version = settings_version + 1
             where id = $1",
        )
        .bind(practice)
        .bind(fallback)
        .execute(&self.pool)
        .await
        .unwrap();
        self.state.messaging.invalidate(practice).await;
    }

    /// A patient living where it is mid-afternoon now, so SMS to them are inside the sending
    /// window whenever the suite runs (the practice's default zone is asleep for part of the day).
    pub async fn create_patient(&self, practice: Uuid, email: &str, phone: &str) -> Uuid {
        let id = Uuid::new_v4();
        sqlx::query("insert into patients (id, practice_id, first_name, last_name, email, phone, timezone) values ($1, $2, 'Pat', 'Lee', $3, $4, $5)")
            .bind(id)
            .bind(practice)
            .bind(email)
            .bind(phone)
            .bind(zone_at_local_hour(14))
            .execute(&self.pool)
            .await
            .unwrap();
        id
    }

    /// Queues a message through the API and returns its outreach log id.
    pub async fn queue_message(&self, login: &Login, patient: Uuid, channel: &str) -> Uuid {
        let response = self
            .send_json(
                Method::POST,
                "/api/outreach/messages",
                login,
                &json!({"patientId": patient, "channel": channel, "subject": "Your benefits", "body": "Hello Pat"}),
            )
            .await;
        assert_eq!(response.status(), 202);
        let body: Value = response.json().await.unwrap();
        body["id"].as_str().unwrap().parse().unwrap()
    }

    /// Queues `count` emails straight through the queue, in one transaction.
    pub async fn enqueue_emails(&self, practice: Uuid, patient: Uuid, count: usize) {
        let mut tx = self.pool.begin().await.unwrap();
        for i in 0..count {
            let message = dentite::outreach::queue::NewMessage {
                practice_id: practice,
                patient_id: Some(patient),
                channel: dentite::messaging::Channel::Email,
                recipient: format!("p{i}@example.com"),
                subject: Some("Recall".into()),
                body: "Time for a check-up".into(),
                sequence_enrollment_id: None,
                sequence_step: None,
                category: dentite::compliance::Category::Care,
            };
            dentite::outreach::queue::enqueue(&mut tx, &message)
                .await
                .unwrap();
        }
        tx.commit().await.unwrap();
    }

    /// Runs the send workers until nothing is due.
    pub async fn drain_queue(&self) {
        let workers = self.state.workers();
        while workers.run_once().await.unwrap() > 0 {}
    }

    pub async fn log_row(
        &self,
        id: Uuid,
    ) -> (
        String,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
    ) {
        sqlx::query_as("select status, messaging_provider, provider_message_id, fallback_reason, error from outreach_logs where id = $1")
            .bind(id)
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }
}

// SendGrid as the fakes answer it: each mock checks the request the real API would need (path,
// the practice's key as bearer token, query or body) and how often it is called.

/// The custom SendGrid key the settings tests save through the API.
pub const CUSTOM_KEY: &str = "SG.practice-key.custom-secret-part";
pub const DOMAIN_ID: i64 = 302183;
pub const DOMAIN_SCOPES: &[&str] = &[
    "mail.send",
    "whitelabel.create",
    "whitelabel.read",
    "whitelabel.update",
    "whitelabel.delete",
];
const SETTINGS_EMAIL: &str = "/api/practice-settings/messaging/email";

/// A `PUT /email` body choosing custom SendGrid, with `key` when given.
pub fn custom_email(key: Option<&str>) -> Value {
    let mut body = json!({"provider": "custom_sendgrid", "fromEmail": "desk@smile.example", "fromName": "Smile Dental", "fallbackEnabled": true});
    if let Some(key) = key {
        body["sendgridApiKey"] = json!(key);
    }
    body
}

pub fn scopes(granted: &[&str]) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({ "scopes": granted }))
}

/// `GET /v3/scopes` asked with `key`, `times` times.
pub fn scopes_mock(key: &str, response: ResponseTemplate, times: u64) -> Mock {
    Mock::given(method("GET"))
        .and(path("/v3/scopes"))
        .and(bearer_token(key))
        .respond_with(response)
        .expect(times)
}

pub fn sendgrid_error(status: u16, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status)
        .set_body_json(json!({"errors": [{"field": null, "message": message}]}))
}

/// `POST /v3/mail/send` with `key`, once.
pub fn mail_send_mock(key: &str, response: ResponseTemplate) -> Mock {
    Mock::given(method("POST"))
        .and(path("/v3/mail/send"))
        .and(bearer_token(key))
        .respond_with(response)
        .expect(1)
}

/// Saves a custom SendGrid key whose scopes are `granted`, checking SendGrid is asked once.
pub async fn save_custom_email(app: &TestApp, owner: &Login, granted: &[&str]) -> Value {
    let _scopes = scopes_mock(CUSTOM_KEY, scopes(granted), 1)
        .mount_as_scoped(&app.sendgrid)
        .await;
    let response = app
        .send_json(
            Method::PUT,
            SETTINGS_EMAIL,
            owner,
            &custom_email(Some(CUSTOM_KEY)),
        )
        .await;
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    body
}

/// SendGrid's domain authentication for smile.example with its three CNAME records.
pub fn domain_json(id: i64, valid: bool) -> Value {
    let record = |host: &str, data: &str| json!({"valid": valid, "type": "cname", "host": host, "data": data});
    json!({
        "id": id, "user_id": 7, "subdomain": "em", "domain": "smile.example", "username": "smile", "ips": [],
        "custom_spf": false, "default": false, "legacy": false, "automatic_security": true, "valid": valid,
        "dns": {
            "dkim2": record("s2._domainkey.smile.example", "s2.domainkey.u7.wl.sendgrid.net"),
            "mail_cname": record("em.smile.example", "u7.wl.sendgrid.net"),
            "dkim1": record("s1._domainkey.smile.example", "s1.domainkey.u7.wl.sendgrid.net"),
        }
    })
}

/// The account's domains named smile.example, listed once.
pub fn domain_list_mock(listed: Value) -> Mock {
    Mock::given(method("GET"))
        .and(path("/v3/whitelabel/domains"))
        .and(query_param("domain", "smile.example"))
        .and(bearer_token(CUSTOM_KEY))
        .respond_with(ResponseTemplate::new(200).set_body_json(listed))
        .expect(1)
}

/// Creates smile.example with return-path label `em` and automatic security, once.
pub fn create_domain_mock() -> Mock {
    Mock::given(method("POST"))
        .and(path("/v3/whitelabel/domains"))
        .and(bearer_token(CUSTOM_KEY))
        .and(body_json(
            json!({"domain": "smile.example", "subdomain": "em", "automatic_security": true}),
        ))
        .respond_with(ResponseTemplate::new(201).set_body_json(domain_json(DOMAIN_ID, false)))
        .expect(1)
}

/// One validation of domain `id`: `valid`, with `mail_cname_reason` for its mail CNAME.
pub fn validate_mock(id: i64, valid: bool, mail_cname_reason: Option<&str>) -> Mock {
    let result = |ok: bool, reason: Option<&str>| json!({"valid": ok, "reason": reason});
    Mock::given(method("POST"))
        .and(path(format!("/v3/whitelabel/domains/{id}/validate")))
        .and(bearer_token(CUSTOM_KEY))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": id, "valid": valid,
            "validation_results": {
                "mail_cname": result(valid, mail_cname_reason),
                "dkim1": result(true, None), "dkim2": result(true, None), "spf": result(valid, None),
            }
        })))
        .expect(1)
}

/// A custom SendGrid account whose domain its SendGrid account already verified: usable at once.
pub async fn verified_custom_email(app: &TestApp, owner: &Login) {
    save_custom_email(app, owner, DOMAIN_SCOPES).await;
    let _list = domain_list_mock(json!([domain_json(DOMAIN_ID, true)]))
        .mount_as_scoped(&app.sendgrid)
        .await;
    let response = app
        .send_json(
            Method::POST,
            &format!("{SETTINGS_EMAIL}/domain"),
            owner,
            &json!({"domain": "smile.example"}),
        )
        .await;
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    assert_eq!((status, &body["verified"]), (200, &json!(true)), "{body}");
}

// Twilio as the fakes answer it, for the account the settings tests save through the API.

pub const PRACTICE_TWILIO_SID: &str = "AC1234567890abcdef1234567890abcdef";
pub const PRACTICE_TWILIO_TOKEN: &str = "fedcba0987654321fedcba0987654321";
pub const PRACTICE_TWILIO_NUMBER: &str = "+15557654321";

/// The account resource fetched with the practice's credentials, `times` times.
pub fn account_mock(response: ResponseTemplate, times: u64) -> Mock {
    Mock::given(method("GET"))
        .and(path(format!(
            "/2010-04-01/Accounts/{PRACTICE_TWILIO_SID}.json"
        )))
        .and(basic_auth(PRACTICE_TWILIO_SID, PRACTICE_TWILIO_TOKEN))
        .respond_with(response)
        .expect(times)
}

pub fn account(status: &str, kind: &str) -> ResponseTemplate {
    // The real resource carries the auth token; the client must not let it out.
    ResponseTemplate::new(200).set_body_json(
        json!({"sid": PRACTICE_TWILIO_SID, "status": status, "type": kind,
        "friendly_name": "Smile Dental", "auth_token": PRACTICE_TWILIO_TOKEN}),
    )
}

/// The account's numbers matching the practice's number, listed `times` times.
pub fn numbers_mock(numbers: Value, times: u64) -> Mock {
    Mock::given(method("GET"))
        .and(path(format!(
            "/2010-04-01/Accounts/{PRACTICE_TWILIO_SID}/IncomingPhoneNumbers.json"
        )))
        .and(query_param("PhoneNumber", PRACTICE_TWILIO_NUMBER))
        .and(basic_auth(PRACTICE_TWILIO_SID, PRACTICE_TWILIO_TOKEN))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({ "incoming_phone_numbers": numbers })),
        )
        .expect(times)
}

pub fn number(phone: &str, sms: bool) -> Value {
    json!({"sid": "PN1", "phone_number": phone, "capabilities": {"sms": sms, "voice": true}})
}

pub const PATIENT_EMAIL: &str = "pat@example.com";
pub const PATIENT_PHONE: &str = "+15557654321";

/// An outreach log as a custom account's send leaves it: `status`, with the vendor's message id.
pub async fn insert_log(
    app: &TestApp,
    practice: Uuid,
    channel: &str,
    status: &str,
    provider_message_id: &str,
) -> Uuid {
    let (provider, recipient) = match channel {
        "email" => ("custom_sendgrid", PATIENT_EMAIL),
        _ => ("custom_twilio", PATIENT_PHONE),
    };
    let id = Uuid::new_v4();
    sqlx::query(
        "insert into outreach_logs (id, practice_id, message_type, messaging_provider, status, recipient, body, provider_message_id)
         values ($1, $2, $3, $4, $5, $6, 'See you soon', $7)",
    )
    .bind(id)
    .bind(practice)
    .bind(channel)
    .bind(provider)
    .bind(status)
    .bind(recipient)
    .bind(provider_message_id)
    .execute(&app.pool)
    .await
    .unwrap();
    id
}

/// One event with a fresh `sg_event_id`; `fields` add to or replace the defaults.
pub fn sg_event(kind: &str, fields: Value) -> Value {
    let mut event = json!({
        "email": PATIENT_EMAIL,
        "timestamp": chrono::Utc::now().timestamp(),
        "event": kind,
        "sg_event_id": Uuid::new_v4().simple().to_string(),
    });
    event
        .as_object_mut()
        .unwrap()
        .extend(fields.as_object().unwrap().clone());
    event
}

/// The custom args our sends attach, as SendGrid flattens them into each event.
pub fn custom_args(log: Uuid, practice: Uuid) -> Value {
    json!({"outreach_log_id": log.to_string(), "practice_id": practice.to_string()})
}

/// A practice whose own SendGrid webhook signs with a fresh key.
pub async fn practice_with_sendgrid_key(app: &TestApp, name: &str) -> (Uuid, SendGridSigner) {
    let practice = app.create_practice(name).await;
    let signer = SendGridSigner::new();
    store_account(
        &app.pool,
        practice,
        "sendgrid",
        json!({"webhookVerifyKey": signer.public_key()}),
        json!({}),
    )
    .await;
    sqlx::query("update practices set email_provider = 'custom_sendgrid' where id = $1")
        .bind(practice)
        .execute(&app.pool)
        .await
        .unwrap();
    (practice, signer)
}

/// A fresh database of its own, for testing migrations on data stored before them.
pub struct MigrationDatabase {
    name: String,
    pub pool: PgPool,
}

impl MigrationDatabase {
    /// Created and migrated up to and including migration `version`.
    pub async fn migrated_to(version: i64) -> Self {
        let name = format!("dentite_test_{}", Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(&server_url()).await.unwrap();
        admin
            .execute(sqlx::AssertSqlSafe(format!("create database \"{name}\"")))
            .await
            .unwrap();
        let mut url = url::Url::parse(&server_url()).unwrap();
        url.set_path(&format!("/{name}"));
        let pool = PgPool::connect(url.as_str()).await.unwrap();
        dentite::db::MIGRATOR.run_to(version, &pool).await.unwrap();
        Self { name, pool }
    }

    /// Runs every later migration.
    pub async fn migrate(&self) {
        dentite::db::MIGRATOR.run(&self.pool).await.unwrap();
    }

    pub async fn drop(self) {
        self.pool.close().await;
        let mut admin = PgConnection::connect(&server_url()).await.unwrap();
        admin
            .execute(sqlx::AssertSqlSafe(format!(
                "drop database \"{}\" with (force)",
                self.name
            )))
            .await
            .unwrap();
    }
}

/// Stores part of a practice's account of `vendor` directly, as a saved settings change would:
/// `settings` and `secrets` (field name -> envelope) are merged into what is stored.
pub async fn store_account(
    pool: &PgPool,
    practice: Uuid,
    vendor: &str,
    settings: Value,
    secrets: Value,
) {
    sqlx::query(
        "insert into practice_accounts (practice_id, vendor, settings, secrets) values ($1, $2, $3, $4)
         on conflict (practice_id, vendor) do update
         set settings = practice_accounts.settings || excluded.settings,
             secrets = practice_accounts.secrets || excluded.secrets",
    )
    .bind(practice)
    .bind(vendor)
    .bind(settings)
    .bind(secrets)
    .execute(pool)
    .await
    .unwrap();
}

/// Stores an unverified SendGrid domain authentication `domain_id` of smile.example, set up `age`
/// ago and last checked `since_check` ago (never with `None`).
pub async fn store_unverified_domain(
    pool: &PgPool,
    practice: Uuid,
    domain_id: i64,
    age: &str,
    since_check: Option<&str>,
) {
    let created_at: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("select now() - $1::interval")
            .bind(age)
            .fetch_one(pool)
            .await
            .unwrap();
    store_account(
        pool,
        practice,
        "sendgrid",
        json!({
            "domain": "smile.example",
            "domainId": domain_id,
            "domainCreatedAt": created_at,
            "domainRecords": [{"name": "mail_cname", "type": "cname", "host": "em.smile.example",
                               "data": "u7.wl.sendgrid.net", "valid": false}],
        }),
        json!({}),
    )
    .await;
    sqlx::query(
        "update practices set email_domain_verified = false,
             email_domain_last_checked_at = now() - $2::interval
         where id = $1",
    )
    .bind(practice)
    .bind(since_check)
    .execute(pool)
    .await
    .unwrap();
}

/// The stored envelope of a credential field (`sendgrid_api_key`, `twilio_auth_token`, ...).
pub async fn stored_envelope(pool: &PgPool, practice: Uuid, field: &str) -> Option<String> {
    sqlx::query_scalar(
        "select secrets ->> $2 from practice_accounts where practice_id = $1 and secrets ? $2",
    )
    .bind(practice)
    .bind(field)
    .fetch_optional(pool)
    .await
    .unwrap()
}

/// The stored settings of the practice's account of `vendor`; `null` without one.
pub async fn stored_account_settings(pool: &PgPool, practice: Uuid, vendor: &str) -> Value {
    sqlx::query_scalar(
        "select settings from practice_accounts where practice_id = $1 and vendor = $2",
    )
    .bind(practice)
    .bind(vendor)
    .fetch_optional(pool)
    .await
    .unwrap()
    .unwrap_or(Value::Null)
}

/// An IANA zone (`Etc/GMT±N`, whole hours) where the local time now is `hour` o'clock, for tests
/// that need a recipient inside or outside the sending window whenever they run.
pub fn zone_at_local_hour(hour: i64) -> String {
    use chrono::Timelike;
    let utc_hour = i64::from(chrono::Utc::now().hour());
    // Offsets run from UTC-12 to UTC+14: a 26-hour span, so every local hour has a zone.
    let offset = (hour - utc_hour + 12).rem_euclid(24) - 12;
    // The Etc zones' signs are POSIX-style: Etc/GMT-9 is nine hours ahead of UTC.
    match offset {
        0 => "Etc/GMT".to_string(),
        o if o > 0 => format!("Etc/GMT-{o}"),
        o => format!("Etc/GMT+{}", -o),
    }
}
