//! The settings page in a real headless Chromium, driven over WebDriver (chromedriver), against
//! the real application and the wiremock SendGrid and Twilio.
//!
//! Each test starts its own chromedriver on a free port with a fresh browser profile, so the tests
//! run in parallel; a Drop guard kills chromedriver and its Chromium even when a test panics.
//! Waits poll the page for what a user would see, with a deadline, never a fixed sleep.
//!
//! Without Chromium these tests print "skipped: chromium not installed" and pass, so `cargo test`
//! works on any machine; CI sets `DENTITE_BROWSER_TESTS=required`, which turns a missing browser
//! into a failure. `DENTITE_SCREENSHOTS=<dir>` saves the README's screenshots there.

use std::{
    io::Write,
    os::unix::process::CommandExt,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use base64::Engine;
use dentite::auth::Role;
use fantoccini::{Client, ClientBuilder, Locator, elements::Element, key::Key};
use hyper_util::client::legacy::connect::HttpConnector;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;
use wiremock::ResponseTemplate;

use crate::helpers::stored_envelope;
use crate::helpers::{
    CUSTOM_KEY, DOMAIN_ID, DOMAIN_SCOPES, Login, PASSWORD, PRACTICE_TWILIO_NUMBER,
    PRACTICE_TWILIO_SID, PRACTICE_TWILIO_TOKEN, SYSTEM_SENDGRID_KEY, TestApp, TestEnv, account,
    account_mock, create_domain_mock, domain_list_mock, mail_send_mock, number, numbers_mock,
    save_custom_email, scopes, scopes_mock, sendgrid_error, spawn_app, validate_mock,
    verified_custom_email,
};

/// Where Debian's `chromium-driver` and `chromium` put them; `DENTITE_CHROMEDRIVER` and
/// `DENTITE_CHROMIUM` point elsewhere.
const CHROMEDRIVER: (&str, &str) = ("DENTITE_CHROMEDRIVER", "/usr/bin/chromedriver");
const CHROMIUM: (&str, &str) = ("DENTITE_CHROMIUM", "/usr/bin/chromium");
/// Generous: two cores shared with a debug build of everything else.
const TIMEOUT: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(100);
const DESKTOP: (u32, u32) = (1280, 900);
const PHONE: (u32, u32) = (360, 780);

/// chromedriver and the Chromium it starts, killed together when dropped.
struct Chromedriver {
    process: Child,
    profile: PathBuf,
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        // chromedriver leads its own process group, which its Chromium processes join: one
        // signal to the group ends them all, even after a panic skipped the session's close.
        let group = -(self.process.id() as libc::pid_t);
        // SAFETY: kill(2) with a negative pid signals the process group we created; no memory
        // is shared with it.
        unsafe {
            libc::kill(group, libc::SIGKILL);
        }
        let _ = self.process.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// A signed-out browser window on the app.
struct Browser {
    client: Client,
    base: String,
    webdriver: String,
    _driver: Chromedriver,
}

/// Whether the browser tests must run (CI) or may be skipped (a machine without Chromium).
fn browser_required() -> bool {
    std::env::var("DENTITE_BROWSER_TESTS").is_ok_and(|v| v == "required")
}

fn program((variable, default): (&str, &str)) -> PathBuf {
    std::env::var_os(variable).map_or_else(|| PathBuf::from(default), PathBuf::from)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free local port")
        .port()
}

/// Where chromedriver and Chromium are installed.
struct Chromium {
    chromedriver: PathBuf,
    browser: PathBuf,
}

impl Chromium {
    /// The installed programs, or `None` (after saying the test is skipped) when they are
    /// missing and not required. Tests ask first, before they set up fakes that expect calls.
    fn installed() -> Option<Self> {
        let (chromedriver, browser) = (program(CHROMEDRIVER), program(CHROMIUM));
        let missing: Vec<String> = [&chromedriver, &browser]
            .into_iter()
            .filter(|path| !path.exists())
            .map(|path| path.display().to_string())
            .collect();
        if missing.is_empty() {
            return Some(Self {
                chromedriver,
                browser,
            });
        }
        assert!(
            !browser_required(),
            "DENTITE_BROWSER_TESTS=required but {} missing: apt-get install chromium chromium-driver",
            missing.join(" and ")
        );
        // Straight to the stderr handle, which the test harness does not capture: a skip must
        // show in an ordinary `cargo test` run, not only with --nocapture.
        let _ = writeln!(
            std::io::stderr(),
            "skipped: chromium not installed ({} missing; apt-get install chromium chromium-driver, \
             or set DENTITE_BROWSER_TESTS=required to make this a failure)",
            missing.join(", ")
        );
        None
    }

    /// A fresh browser window `size` pixels large, on the app.
    async fn open(&self, app: &TestApp, size: (u32, u32)) -> Browser {
        let port = free_port();
        let profile =
            std::env::temp_dir().join(format!("dentite-chromium-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&profile).expect("the browser profile directory is created");
        let process = Command::new(&self.chromedriver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("chromedriver starts");
        let driver = Chromedriver { process, profile };

        let capabilities = json!({
            // The page's console, read back by `close` to fail on script errors.
            "goog:loggingPrefs": {"browser": "ALL"},
            "goog:chromeOptions": {
                "binary": self.browser,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--lang=en-US",
                    format!("--window-size={},{}", size.0, size.1),
                    format!("--user-data-dir={}", driver.profile.display()),
                ],
            },
        });
        let capabilities = capabilities.as_object().unwrap().clone();
        let webdriver = format!("http://127.0.0.1:{port}");
        // chromedriver takes a moment to listen: retry the session until the deadline.
        let deadline = Instant::now() + TIMEOUT;
        let client = loop {
            match ClientBuilder::new(HttpConnector::new())
                .capabilities(capabilities.clone())
                .connect(&webdriver)
                .await
            {
                Ok(client) => break client,
                Err(error) if Instant::now() >= deadline => {
                    panic!("no WebDriver session from chromedriver on port {port}: {error}")
                }
                Err(_) => tokio::time::sleep(POLL).await,
            }
        };
        Browser {
            client,
            base: app.address.clone(),
            webdriver,
            _driver: driver,
        }
    }
}

impl Browser {
    async fn goto(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .unwrap();
    }

    /// Polls `probe` until it answers `Ok`; on the deadline, fails with what it last saw.
    async fn eventually<T>(
        &self,
        what: &str,
        mut probe: impl AsyncFnMut(&Self) -> Result<T, String>,
    ) -> T {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            match probe(self).await {
                Ok(value) => return value,
                Err(seen) if Instant::now() >= deadline => {
                    panic!("timed out waiting for {what}; last seen: {seen}")
                }
                Err(_) => tokio::time::sleep(POLL).await,
            }
        }
    }

    /// The element matching `css` once it is displayed.
    async fn visible(&self, css: &str) -> Element {
        self.eventually(&format!("{css} to be displayed"), async |b: &Self| {
            let element = b
                .client
                .find(Locator::Css(css))
                .await
                .map_err(|e| e.to_string())?;
            match element.is_displayed().await {
                Ok(true) => Ok(element),
                other => Err(format!("displayed: {other:?}")),
            }
        })
        .await
    }

    /// Waits until the text of `css` contains `needle`, and returns the whole text.
    async fn text_containing(&self, css: &str, needle: &str) -> String {
        self.eventually(&format!("{css} to contain {needle:?}"), async |b: &Self| {
            let text = b.text(css).await?;
            if text.contains(needle) {
                Ok(text)
            } else {
                Err(format!("{text:?}"))
            }
        })
        .await
    }

    async fn text(&self, css: &str) -> Result<String, String> {
        let element = self
            .client
            .find(Locator::Css(css))
            .await
            .map_err(|e| e.to_string())?;
        element.text().await.map_err(|e| e.to_string())
    }

    async fn click(&self, css: &str) {
        self.visible(css).await.click().await.unwrap();
    }

    async fn type_into(&self, css: &str, text: &str) {
        let input = self.visible(css).await;
        input.clear().await.unwrap();
        input.send_keys(text).await.unwrap();
    }

    /// Chooses the option of the `<select>` at `css` whose value is `value`.
    async fn select_value(&self, css: &str, value: &str) {
        self.visible(css)
            .await
            .select_by_value(value)
            .await
            .unwrap();
    }

    async fn attr(&self, css: &str, name: &str) -> Option<String> {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap()
            .attr(name)
            .await
            .unwrap()
    }

    /// An input's current value (the property, which scripts set, not the attribute).
    async fn value(&self, css: &str) -> Option<String> {
        let script = format!("return document.querySelector({css:?})?.value ?? null");
        self.script(&script).await.as_str().map(str::to_owned)
    }

    /// The id of the element that has focus.
    async fn focused_id(&self) -> String {
        let element = self.client.active_element().await.unwrap();
        element.attr("id").await.unwrap().unwrap_or_default()
    }

    async fn script(&self, script: &str) -> Value {
        self.client.execute(script, Vec::new()).await.unwrap()
    }

    /// Lets the page read the clipboard, so a test can check what a Copy button put there.
    /// WebDriver's Set Permission command, which fantoccini has no method for.
    async fn allow_clipboard_reading(&self) {
        let session = self.client.session_id().await.unwrap().unwrap();
        let response = reqwest::Client::new()
            .post(format!("{}/session/{session}/permissions", self.webdriver))
            .json(&json!({"descriptor": {"name": "clipboard-read"}, "state": "granted"}))
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "{:?}",
            response.text().await
        );
    }

    async fn sign_in(&self, email: &str) {
        self.goto("/").await;
        self.submit_sign_in(email).await;
    }

    /// Signs in through the form on screen, and waits for the settings.
    async fn submit_sign_in(&self, email: &str) {
        self.type_into("#sign-in-email", email).await;
        self.type_into("#sign-in-password", PASSWORD).await;
        self.click("#sign-in-submit").await;
        self.visible("#view-settings").await;
        // The settings have arrived once the key's state is written (shown or not).
        self.eventually("the settings to load", async |b: &Self| {
            let state = b
                .script("return document.getElementById('sendgrid-api-key-state').textContent")
                .await;
            match state.as_str() {
                Some(text) if !text.is_empty() => Ok(()),
                _ => Err(state.to_string()),
            }
        })
        .await;
    }

    /// A Chrome DevTools command through chromedriver (`goog/cdp/execute`).
    async fn devtools(&self, cmd: &str, params: Value) -> Value {
        let session = self.client.session_id().await.unwrap().unwrap();
        let response = reqwest::Client::new()
            .post(format!(
                "{}/session/{session}/goog/cdp/execute",
                self.webdriver
            ))
            .json(&json!({"cmd": cmd, "params": params}))
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "{cmd}: {:?}",
            response.text().await
        );
        let answer: Value = response.json().await.unwrap();
        answer["value"].clone()
    }

    /// With DENTITE_SCREENSHOTS set, saves the whole page laid out `width` pixels wide as
    /// `name`.png. WebDriver only captures the window, so the page is given a viewport as tall
    /// as its content first.
    async fn screenshot(&self, name: &str, width: u32) {
        let Some(dir) = std::env::var_os("DENTITE_SCREENSHOTS") else {
            return;
        };
        let viewport = |height: u64| json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false});
        self.devtools("Emulation.setDeviceMetricsOverride", viewport(800))
            .await;
        let height = self
            .script("return Math.ceil(document.documentElement.scrollHeight)")
            .await
            .as_u64()
            .unwrap();
        self.devtools("Emulation.setDeviceMetricsOverride", viewport(height))
            .await;
        let shot = self
            .devtools("Page.captureScreenshot", json!({"format": "png"}))
            .await;
        self.devtools("Emulation.clearDeviceMetricsOverride", json!({}))
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap())
            .unwrap();
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(PathBuf::from(dir).join(format!("{name}.png")), png).unwrap();
    }

    /// Fails on any script error the page logged, then ends the WebDriver session, and Chromium
    /// with it; dropping `self` stops chromedriver. The Drop guard alone covers a test that
    /// panicked before this.
    async fn close(self) {
        let session = self.client.session_id().await.unwrap().unwrap();
        let log: Value = reqwest::Client::new()
            .post(format!("{}/session/{session}/se/log", self.webdriver))
            .json(&json!({"type": "browser"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        // The API's 4xx answers are logged as failed loads: those are the page's expected input.
        let errors: Vec<&Value> = log["value"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|entry| entry["level"] == "SEVERE")
            .filter(|entry| {
                !entry["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("Failed to load resource"))
            })
            .collect();
        assert!(errors.is_empty(), "the page logged errors: {errors:#?}");
        let _ = self.client.clone().close().await;
    }
}

/// A practice user to sign in through the page, `owner@smile.example` and so on, as the top
/// bar and the screenshots show them.
async fn user(app: &TestApp, practice: Uuid, role: Role) -> String {
    let email = format!("{}@smile.example", role.as_str());
    let address = dentite::types::EmailAddress::parse(&email).unwrap();
    dentite::auth::create_user(&app.pool, &address, PASSWORD, role, Some(practice))
        .await
        .unwrap();
    email
}

fn practice_of(login: &Login) -> Uuid {
    login.practice_id.expect("a practice user")
}

/// The buttons and inputs a user could change something with: visible and enabled, other than
/// the tabs and Copy buttons, which only read.
const CHANGE_CONTROLS: &str = "return [...document.querySelectorAll('#view-settings input, #view-settings button')]
    .filter((e) => e.checkVisibility() && !e.matches(':disabled') && e.getAttribute('role') !== 'tab' && !e.classList.contains('copy'))
    .map((e) => e.id || e.textContent.trim())";

#[tokio::test]
async fn signing_in_opens_the_settings_and_signing_out_returns_to_sign_in() {
    let Some(chromium) = Chromium::installed() else {
        return;
    };
    let app = spawn_app().await;
    let practice = app.create_practice("Smile Dental").await;
    let email = user(&app, practice, Role::Owner).await;
    let browser = chromium.open(&app, DESKTOP).await;

    browser.goto("/").await;
    browser.type_into("#sign-in-email", &email).await;
    browser
        .type_into("#sign-in-password", "not the password")
        .await;
    browser.click("#sign-in-submit").await;
    browser
        .text_containing("#sign-in-error", "email or password is not right")
        .await;
    assert_eq!(browser.focused_id().await, "sign-in-error");

    browser.sign_in(&email).await;
    assert_eq!(browser.text("#account-email").await.unwrap(), email);
    assert_eq!(browser.text("#account-role").await.unwrap(), "owner");
    let stored = browser
        .script("return sessionStorage.getItem('dentite.session')")
        .await;
    assert!(
        stored.as_str().is_some_and(|s| s.contains("\"token\"")),
        "the token is kept for the tab: {stored}"
    );

    browser.click("#sign-out").await;
    browser.visible("#view-sign-in").await;
    assert_eq!(
        browser
            .script("return sessionStorage.getItem('dentite.session')")
            .await,
        Value::Null
    );
    browser.client.refresh().await.unwrap();
    browser.visible("#view-sign-in").await;
    browser.close().await;
}

#[tokio::test]
async fn a_session_the_api_no_longer_accepts_returns_to_sign_in_and_back_to_a_clean_page() {
    let Some(chromium) = Chromium::installed() else {
        return;
    };
    let app = spawn_app().await;
    let practice = app.create_practice("Smile Dental").await;
    let owner = user(&app, practice, Role::Owner).await;
    let browser = chromium.open(&app, DESKTOP).await;
    browser.sign_in(&owner).await;

    // A token the server does not accept (as after a key rotation): the next call is a 401.
    browser
        .script(
            "const session = JSON.parse(sessionStorage.getItem('dentite.session'));
             session.token = 'no-longer-valid';
             sessionStorage.setItem('dentite.session', JSON.stringify(session));",
        )
        .await;
    browser.click("#email-save").await;

    browser
        .text_containing("#sign-in-error", "Your session has ended")
        .await;
    assert_eq!(browser.focused_id().await, "sign-in-email");
    assert_eq!(
        browser
            .script("return sessionStorage.getItem('dentite.session')")
            .await,
        Value::Null
    );
    browser.submit_sign_in(&owner).await;
    let stale = browser
        .script("return [...document.querySelectorAll('#view-settings .error-summary')].filter((e) => e.checkVisibility()).length")
        .await;
    assert_eq!(stale, json!(0), "no message from before the session ended");
    browser.close().await;
}

#[tokio::test]
async fn an_owner_sets_up_custom_sendgrid_a_refused_key_shown_at_its_field_then_a_good_one_saved() {
    let Some(chromium) = Chromium::installed() else {
        return;
    };
    let app = spawn_app().await;
    let practice = app.create_practice("Smile Dental").await;
    let owner = user(&app, practice, Role::Owner).await;
    let refused_key = "SG.refused-key.wrong-part";
    let _refused = scopes_mock(
        refused_key,
        sendgrid_error(401, "authorization required"),
        1,
    )
    .mount_as_scoped(&app.sendgrid)
    .await;
    let _accepted = scopes_mock(CUSTOM_KEY, scopes(&["mail.send"]), 1)
        .mount_as_scoped(&app.sendgrid)
        .await;
    let browser = chromium.open(&app, DESKTOP).await;
    browser.sign_in(&owner).await;

    browser.click("#email-provider-custom").await;
    browser
        .text_containing("#sendgrid-api-key-state", "Not configured")
        .await;
    browser.type_into("#sendgrid-api-key", refused_key).await;
    browser.type_into("#from-email", "desk@smile.example").await;
    browser.type_into("#from-name", "Smile Dental").await;
    browser.click("#email-save").await;

    browser
        .text_containing(
            "#sendgrid-api-key-error",
            "SendGrid rejected this API key: authorization required",
        )
        .await;
    assert_eq!(browser.focused_id().await, "sendgrid-api-key");
    assert_eq!(
        browser
            .attr("#sendgrid-api-key", "aria-invalid")
            .await
            .as_deref(),
        Some("true")
    );
    let described_by = browser
        .attr("#sendgrid-api-key", "aria-describedby")
        .await
        .unwrap();
    assert!(described_by.contains("sendgrid-api-key-error"));
    browser.screenshot("email-refused-key", DESKTOP.0).await;

    browser.type_into("#sendgrid-api-key", CUSTOM_KEY).await;
    browser.click("#email-save").await;
    browser
        .text_containing("#email-form-status", "Email settings saved.")
        .await;
    browser
        .text_containing("#sendgrid-api-key-answer", "SendGrid accepted this key")
        .await;
    browser
        .text_containing("#sendgrid-api-key-state", "Configured, ends in part")
        .await;
    assert_eq!(
        browser
            .client
            .find(Locator::Id("sendgrid-api-key"))
            .await
            .unwrap()
            .prop("value")
            .await
            .unwrap()
            .as_deref(),
        Some(""),
        "the secret is write-only: the field is empty again"
    );
    assert_eq!(
        browser.attr("#sendgrid-api-key", "aria-invalid").await,
        None
    );
    let saved: (String,) = sqlx::query_as("select email_provider from practices where id = $1")
        .bind(practice)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(saved.0, "custom_sendgrid");

    // Removing the custom account asks first, in the page.
    browser.click("#email-remove").await;
    browser.visible("#confirm-dialog").await;
    assert_eq!(browser.focused_id().await, "confirm-cancel");
    browser.click("#confirm-accept").await;
    browser
        .text_containing("#email-form-status", "Custom configuration removed")
        .await;
    browser
        .text_containing("#email-provider-system + span", "shared account")
        .await;
    let provider: String = sqlx::query_scalar("select email_provider from practices where id = $1")
        .bind(practice)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(provider, "system_sendgrid");
    assert_eq!(
        stored_envelope(&app.pool, practice, "sendgrid_api_key").await,
        None
    );
    browser.close().await;
}

#[tokio::test]
async fn domain_set_up_shows_dns_records_to_copy_and_check_verification_shows_each_records_state() {
    let Some(chromium) = Chromium::installed() else {
        return;
    };
    let app = TestEnv::new().without_background().spawn().await;
    let owner = app.practice_owner().await;
    let practice = practice_of(&owner);
    save_custom_email(&app, &owner, DOMAIN_SCOPES).await;
    let email = user(&app, practice, Role::Admin).await;
    domain_list_mock(json!([])).mount(&app.sendgrid).await;
    create_domain_mock().mount(&app.sendgrid).await;
    let browser = chromium.open(&app, DESKTOP).await;
    browser.sign_in(&email).await;

    browser.type_into("#domain-name", "smile.example").await;
    browser.type_into("#domain-subdomain", "em").await;
    browser.click("#domain-setup").await;
    browser
        .text_containing("#domain-status", "Publish the 3 records below")
        .await;
    let table = browser
        .text_containing("#domain-records", "s1.domainkey.u7.wl.sendgrid.net")
        .await;
    for host in [
        "em.smile.example",
        "s1._domainkey.smile.example",
        "s2._domainkey.smile.example",
    ] {
        assert!(table.contains(host), "{table}");
    }
    let copy_buttons = browser
        .client
        .find_all(Locator::Css("#domain-records button.copy"))
        .await
        .unwrap();
    assert_eq!(
        copy_buttons.len(),
        6,
        "a Copy button for each host and value"
    );
    browser
        .click("#domain-records tr[data-record='dkim1'] td:nth-child(3) button.copy")
        .await;
    browser
        .text_containing(
            "#domain-records tr[data-record='dkim1'] td:nth-child(3) button.copy",
            "Copied",
        )
        .await;
    browser.allow_clipboard_reading().await;
    let copied = browser
        .script("return navigator.clipboard.readText()")
        .await;
    assert_eq!(copied, json!("s1.domainkey.u7.wl.sendgrid.net"));
    browser
        .text_containing(
            "#domain-records tr[data-record='mail_cname']",
            "Not checked yet",
        )
        .await;

    // The background re-check finds the mail CNAME missing; a reload shows what it found.
    let reason = "Expected CNAME for \"em.smile.example\" to match \"u7.wl.sendgrid.net\".";
    let background = validate_mock(DOMAIN_ID, false, Some(reason))
        .mount_as_scoped(&app.sendgrid)
        .await;
    dentite::providers::practice_settings::domain::verify(&app.settings_context(), practice, None)
        .await
        .unwrap();
    drop(background);
    browser.client.refresh().await.unwrap();
    let row = browser
        .text_containing(
            "#domain-records tr[data-record='mail_cname']",
            "Not found yet",
        )
        .await;
    assert!(row.contains(reason), "{row}");
    browser
        .text_containing("#domain-records tr[data-record='dkim1']", "Verified")
        .await;
    browser
        .text_containing("#domain-checked", "Last checked")
        .await;
    browser
        .text_containing("#domain-state", "Not verified yet")
        .await;

    let _passing = validate_mock(DOMAIN_ID, true, None)
        .mount_as_scoped(&app.sendgrid)
        .await;
    browser.click("#domain-verify").await;
    browser
        .text_containing("#domain-status", "SendGrid verified smile.example")
        .await;
    browser.text_containing("#domain-state", "Verified").await;
    browser
        .text_containing("#domain-records tr[data-record='mail_cname']", "Verified")
        .await;
    browser.close().await;
}

#[tokio::test]
async fn a_test_email_shows_which_provider_delivered_it_and_that_it_fell_back() {
    let Some(chromium) = Chromium::installed() else {
        return;
    };
    let app = TestEnv::new().with_system_accounts().spawn().await;
    let owner = app.practice_owner().await;
    verified_custom_email(&app, &owner).await;
    let email = user(&app, practice_of(&owner), Role::Owner).await;
    mail_send_mock(
        CUSTOM_KEY,
        sendgrid_error(
            401,
            "The provided authorization grant is invalid, expired, or revoked",
        ),
    )
    .mount(&app.sendgrid)
    .await;
    mail_send_mock(
        SYSTEM_SENDGRID_KEY,
        ResponseTemplate::new(202).insert_header("x-message-id", "system-1"),
    )
    .mount(&app.sendgrid)
    .await;
    let browser = chromium.open(&app, DESKTOP).await;
    browser.sign_in(&email).await;

    browser.type_into("#email-test-to", "pat@example.com").await;
    browser.click("#email-test-send").await;

    let result = browser
        .text_containing("#email-test-result", "Sent to pat@example.com.")
        .await;
    assert!(result.contains("system_sendgrid"), "{result}");
    assert!(
        result.contains("Yes: your own account failed")
            && result.contains("authorization grant is invalid"),
        "{result}"
    );
    assert!(result.contains("system-1"), "{result}");
    browser
        .text_containing("#email-last-test", "No successful test")
        .await;

    // A bad address is the API's field error, shown at the field.
    browser.type_into("#email-test-to", "pat@").await;
    browser.click("#email-test-send").await;
    browser
        .text_containing("#email-test-to-error", "is not a valid email address")
        .await;
    assert_eq!(browser.focused_id().await, "email-test-to");
    browser.close().await;
}

#[tokio::test]
async fn staff_see_every_setting_read_only_with_nothing_to_change() {
    let Some(chromium) = Chromium::installed() else {
        return;
    };
    let app = TestEnv::new().without_background().spawn().await;
    let owner = app.practice_owner().await;
    let practice = practice_of(&owner);
    verified_custom_email(&app, &owner).await;
    app.configure_custom_twilio(practice, true).await;
    let staff = user(&app, practice, Role::Staff).await;
    let browser = chromium.open(&app, DESKTOP).await;
    browser.sign_in(&staff).await;

    browser.visible("#read-only-notice").await;
    browser
        .text_containing("#sendgrid-api-key-state", "Configured, ends in part")
        .await;
    browser
        .text_containing("#domain-records", "em.smile.example")
        .await;
    assert_eq!(browser.script(CHANGE_CONTROLS).await, json!([]));
    for control in [
        "#email-save",
        "#email-remove",
        "#domain-verify",
        "#email-test-send",
    ] {
        let element = browser.client.find(Locator::Css(control)).await.unwrap();
        assert!(
            !element.is_displayed().await.unwrap(),
            "{control} is shown to staff"
        );
    }

    browser.click("#tab-sms").await;
    browser
        .text_containing("#twilio-account-sid-state", "Configured, ends in 1111")
        .await;
    assert_eq!(
        browser
            .client
            .find(Locator::Id("twilio-phone-number"))
            .await
            .unwrap()
            .prop("value")
            .await
            .unwrap()
            .as_deref(),
        Some("+15551110000")
    );
    assert_eq!(browser.script(CHANGE_CONTROLS).await, json!([]));
    browser.close().await;
}

#[tokio::test]
async fn an_owner_saves_a_custom_twilio_account_then_changes_the_fallback_without_retyping_it() {
    let Some(chromium) = Chromium::installed() else {
        return;
    };
    let app = spawn_app().await;
    let practice = app.create_practice("Smile Dental").await;
    let owner = user(&app, practice, Role::Owner).await;
    // Asked once, for the first save only: the second changes nothing Twilio must check.
    account_mock(account("active", "Full"), 1)
        .mount(&app.twilio)
        .await;
    numbers_mock(json!([number(PRACTICE_TWILIO_NUMBER, true)]), 1)
        .mount(&app.twilio)
        .await;
    let browser = chromium.open(&app, DESKTOP).await;
    browser.sign_in(&owner).await;
    browser.click("#tab-sms").await;

    browser.click("#sms-provider-custom").await;
    browser
        .type_into("#twilio-account-sid", PRACTICE_TWILIO_SID)
        .await;
    browser
        .type_into("#twilio-auth-token", PRACTICE_TWILIO_TOKEN)
        .await;
    browser
        .type_into("#twilio-phone-number", PRACTICE_TWILIO_NUMBER)
        .await;
    browser.click("#sms-save").await;
    browser
        .text_containing("#sms-form-status", "SMS settings saved.")
        .await;
    browser
        .text_containing("#twilio-phone-number-answer", "Twilio accepted the account")
        .await;
    browser
        .text_containing("#twilio-account-sid-state", "Configured, ends in cdef")
        .await;
    browser
        .text_containing("#twilio-auth-token-state", "Configured, ends in 4321")
        .await;

    browser.click("#sms-fallback").await;
    browser.click("#sms-save").await;
    browser
        .eventually("the fallback to be saved off", async |_: &Browser| {
            let saved: (bool,) =
                sqlx::query_as("select sms_fallback_enabled from practices where id = $1")
                    .bind(practice)
                    .fetch_one(&app.pool)
                    .await
                    .unwrap();
            if saved.0 {
                Err("still on".into())
            } else {
                Ok(())
            }
        })
        .await;
    browser
        .text_containing("#sms-form-status", "SMS settings saved.")
        .await;
    assert_eq!(
        browser.text("#twilio-phone-number-answer").await.unwrap(),
        "",
        "Twilio was not asked again"
    );
    browser.close().await;
}

#[tokio::test]
async fn an_owner_saves_a_telnyx_number_after_telnyx_refuses_it_at_its_field() {
    use wiremock::{
        Mock,
        matchers::{bearer_token, method, path},
    };
    let Some(chromium) = Chromium::installed() else {
        return;
    };
    let app = spawn_app().await;
    let practice = app.create_practice("Smile Dental").await;
    let owner = user(&app, practice, Role::Owner).await;
    let (key, number, profile) = ("KEY0BROWSER0TEST0ABCD", "+15557650000", "profile-browser-1");
    let numbers = |listed: Value| {
        Mock::given(method("GET"))
            .and(path("/v2/phone_numbers"))
            .and(bearer_token(key))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"data": listed})))
            .up_to_n_times(1)
    };
    numbers(json!([])).mount(&app.vendors).await;
    numbers(json!([{"phone_number": number, "messaging_profile_id": profile}]))
        .mount(&app.vendors)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/v2/messaging_profiles/{profile}")))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"data": {"name": "Smile", "enabled": true}})),
        )
        .expect(1)
        .mount(&app.vendors)
        .await;
    let browser = chromium.open(&app, DESKTOP).await;
    browser.sign_in(&owner).await;
    browser.click("#tab-sms").await;

    browser.click("#sms-provider-telnyx").await;
    browser.visible("#telnyx-fields").await;
    browser.type_into("#telnyx-api-key", key).await;
    browser.type_into("#telnyx-phone-number", number).await;
    browser
        .type_into(
            "#telnyx-public-key",
            "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=",
        )
        .await;
    browser.click("#sms-save").await;
    browser
        .text_containing(
            "#telnyx-phone-number-error",
            "is not a phone number of this Telnyx account",
        )
        .await;
    assert_eq!(browser.focused_id().await, "telnyx-phone-number");
    assert_eq!(
        browser
            .attr("#telnyx-phone-number", "aria-invalid")
            .await
            .as_deref(),
        Some("true")
    );

    browser.click("#sms-save").await;
    browser
        .text_containing("#sms-form-status", "SMS settings saved.")
        .await;
    browser
        .text_containing("#telnyx-phone-number-answer", "Telnyx accepted the account")
        .await;
    browser
        .text_containing("#telnyx-api-key-state", "ends in ABCD")
        .await;
    browser
        .text_containing(
            "#telnyx-webhook-url",
            &format!("/api/webhooks/telnyx/{practice}"),
        )
        .await;
    browser
        .text_containing("#sms-notes", "inbound webhook of messaging profile")
        .await;
    let provider: String = sqlx::query_scalar("select sms_provider from practices where id = $1")
        .bind(practice)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(provider, "custom_telnyx");
    browser.close().await;
}

#[tokio::test]
async fn an_owner_saves_a_postmark_server_after_a_refused_token_is_shown_at_its_field() {
    use wiremock::{
        Mock,
        matchers::{header, method, path},
    };
    let Some(chromium) = Chromium::installed() else {
        return;
    };
    let app = spawn_app().await;
    let practice = app.create_practice("Smile Dental").await;
    let owner = user(&app, practice, Role::Owner).await;
    let (bad, good) = ("not-a-real-token", "b7bc2f4a-e38e-4336-af7d-token0000042");
    Mock::given(method("GET"))
        .and(path("/server"))
        .and(header("X-Postmark-Server-Token", bad))
        .respond_with(
            ResponseTemplate::new(401)
                .set_body_json(json!({"ErrorCode": 10, "Message": "Invalid API token"})),
        )
        .mount(&app.vendors)
        .await;
    Mock::given(method("GET"))
        .and(path("/server"))
        .and(header("X-Postmark-Server-Token", good))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"Name": "Smile", "DeliveryType": "Live"})),
        )
        .expect(1)
        .mount(&app.vendors)
        .await;
    Mock::given(method("POST"))
        .and(path("/webhooks"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ID": 77})))
        .expect(1)
        .mount(&app.vendors)
        .await;
    let browser = chromium.open(&app, DESKTOP).await;
    browser.sign_in(&owner).await;

    browser.click("#email-provider-postmark").await;
    browser.visible("#postmark-fields").await;
    browser.type_into("#postmark-server-token", bad).await;
    browser
        .type_into("#from-email", "desk@smiledental.com")
        .await;
    browser.type_into("#from-name", "Smile Dental").await;
    browser.click("#email-save").await;
    browser
        .text_containing(
            "#postmark-server-token-error",
            "Postmark rejected this server token: Invalid API token",
        )
        .await;
    assert_eq!(browser.focused_id().await, "postmark-server-token");

    browser.type_into("#postmark-server-token", good).await;
    browser.click("#email-save").await;
    browser
        .text_containing("#email-form-status", "Email settings saved.")
        .await;
    browser
        .text_containing("#postmark-server-token-state", "ends in 0042")
        .await;
    browser
        .text_containing("#email-blocker", "send a test email")
        .await;
    browser
        .text_containing(
            "#postmark-webhook-url",
            &format!("/api/webhooks/postmark/{practice}"),
        )
        .await;
    let password = browser.text("#postmark-webhook-password").await.unwrap();
    assert_eq!(password.len(), 43, "{password}");
    browser.close().await;
}

#[tokio::test]
async fn an_owner_changes_the_sending_rules_after_an_unknown_time_zone_is_shown_at_its_field() {
    let Some(chromium) = Chromium::installed() else {
        return;
    };
    let app = spawn_app().await;
    let practice = app.create_practice_in_default_zone("Smile Dental").await;
    let owner = user(&app, practice, Role::Owner).await;
    let staff = user(&app, practice, Role::Staff).await;
    let browser = chromium.open(&app, DESKTOP).await;
    browser.sign_in(&owner).await;
    browser.click("#nav-rules").await;
    browser.visible("#rules-form").await;
    browser
        .eventually("the stored rules to be shown", async |b: &Browser| match b
            .value("#rules-timezone")
            .await
            .as_deref()
        {
            Some("America/New_York") => Ok(()),
            other => Err(format!("{other:?}")),
        })
        .await;

    browser
        .type_into("#rules-timezone", "Mars/Olympus_Mons")
        .await;
    browser.click("#rules-save").await;
    browser
        .text_containing("#rules-timezone-error", "Must be an IANA time zone")
        .await;
    assert_eq!(browser.focused_id().await, "rules-timezone");

    browser
        .type_into("#rules-timezone", "America/Chicago")
        .await;
    browser
        .type_into(
            "#rules-postal-address",
            "1 Main Street, Springfield, IL 62701",
        )
        .await;
    browser.type_into("#rules-segment-price", "0.0079").await;
    browser.click("#rules-save").await;
    browser
        .text_containing("#rules-status", "Sending rules saved.")
        .await;
    let saved: (String, Option<String>) = sqlx::query_as(
        "select timezone, postal_address from practice_compliance where practice_id = $1",
    )
    .bind(practice)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        saved,
        (
            "America/Chicago".to_string(),
            Some("1 Main Street, Springfield, IL 62701".to_string())
        )
    );
    browser.close().await;

    let browser = chromium.open(&app, DESKTOP).await;
    browser.sign_in(&staff).await;
    browser.click("#nav-rules").await;
    browser
        .eventually("the rules to be shown read-only", async |b: &Browser| {
            let disabled = b.attr("#rules-form-body", "disabled").await;
            let zone = b.value("#rules-timezone").await;
            match (disabled, zone.as_deref()) {
                (Some(_), Some("America/Chicago")) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        })
        .await;
    assert_eq!(
        browser.script("return getComputedStyle(document.getElementById('rules-save').parentElement).display").await,
        json!("none"),
        "staff are offered no save"
    );
    browser.close().await;
}

#[tokio::test]
async fn an_owner_saves_a_mailgun_domain_after_an_unknown_one_is_shown_at_its_field_then_sees_its_records()
 {
    use wiremock::{
        Mock,
        matchers::{method, path},
    };
    let Some(chromium) = Chromium::installed() else {
        return;
    };
    let app = spawn_app().await;
    let practice = app.create_practice("Smile Dental").await;
    let owner = user(&app, practice, Role::Owner).await;
    Mock::given(method("GET"))
        .and(path("/v4/domains/mg.wrong.example"))
        .respond_with(
            ResponseTemplate::new(404).set_body_json(json!({"message": "Domain not found"})),
        )
        .mount(&app.vendors)
        .await;
    Mock::given(method("GET"))
        .and(path("/v4/domains/mg.smile.example"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "domain": {"name": "mg.smile.example", "state": "unverified", "is_disabled": false},
            "sending_dns_records": [{"record_type": "TXT", "name": "mg.smile.example",
                "value": "v=spf1 include:mailgun.org ~all", "valid": "unknown"}]
        })))
        .mount(&app.vendors)
        .await;
    Mock::given(method("GET"))
        .and(path("/v5/accounts/http_signing_key"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"http_signing_key": "signing"})),
        )
        .mount(&app.vendors)
        .await;
    Mock::given(method("POST"))
        .and(path("/v3/domains/mg.smile.example/webhooks"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"message": "created"})))
        .mount(&app.vendors)
        .await;
    let browser = chromium.open(&app, DESKTOP).await;
    browser.sign_in(&owner).await;

    browser.click("#email-provider-mailgun").await;
    browser.visible("#mailgun-fields").await;
    browser
        .type_into("#mailgun-api-key", "key-browser-test-0042")
        .await;
    browser
        .type_into("#mailgun-domain", "mg.wrong.example")
        .await;
    browser
        .type_into("#from-email", "desk@mg.smile.example")
        .await;
    browser.type_into("#from-name", "Smile Dental").await;
    browser.click("#email-save").await;
    browser
        .text_containing(
            "#mailgun-domain-error",
            "is not a domain of this Mailgun account in the us region",
        )
        .await;
    assert_eq!(browser.focused_id().await, "mailgun-domain");

    browser
        .type_into("#mailgun-domain", "mg.smile.example")
        .await;
    browser.click("#email-save").await;
    browser
        .text_containing("#email-form-status", "Email settings saved.")
        .await;
    browser
        .text_containing("#mailgun-api-key-state", "ends in 0042")
        .await;
    browser
        .text_containing("#domain-records", "v=spf1 include:mailgun.org ~all")
        .await;
    browser
        .text_containing("#domain-state", "Not verified yet")
        .await;
    assert_eq!(
        browser
            .script("return getComputedStyle(document.getElementById('domain-remove')).display")
            .await,
        json!("none"),
        "a Mailgun domain leaves with its account"
    );
    browser.close().await;
}

#[tokio::test]
async fn the_activity_view_explains_each_message_filters_them_and_shows_a_refused_filter_at_its_field()
 {
    let Some(chromium) = Chromium::installed() else {
        return;
    };
    let app = spawn_app().await;
    let practice = app.create_practice("Smile Dental").await;
    let owner = user(&app, practice, Role::Owner).await;
    let log = |status: &str,
               provider: Option<&str>,
               fallback: Option<&str>,
               error: Option<&str>,
               to: &str| {
        let (status, provider, fallback, error, to) = (
            status.to_string(),
            provider.map(str::to_string),
            fallback.map(str::to_string),
            error.map(str::to_string),
            to.to_string(),
        );
        let pool = app.pool.clone();
        async move {
            let id = Uuid::new_v4();
            sqlx::query(
                "insert into outreach_logs (id, practice_id, message_type, messaging_provider, status, recipient, body,
                     fallback_reason, error)
                 values ($1, $2, 'email', $3, $4, $5, 'Hello', $6, $7)",
            )
            .bind(id)
            .bind(practice)
            .bind(provider)
            .bind(status)
            .bind(to)
            .bind(fallback)
            .bind(error)
            .execute(&pool)
            .await
            .unwrap();
            id
        }
    };
    let delivered = log(
        "delivered",
        Some("system_postmark"),
        Some("system SendGrid failed: SendGrid returned HTTP 503 Service Unavailable"),
        None,
        "pat@example.com",
    )
    .await;
    log(
        "suppressed",
        None,
        None,
        Some("opted_out"),
        "sam@example.com",
    )
    .await;
    log(
        "bounced",
        Some("system_sendgrid"),
        None,
        Some("hard bounce: 550 no such user"),
        "gone@example.com",
    )
    .await;
    sqlx::query(
        "insert into provider_events (event_key, route_practice_id, provider, practice_id, outreach_log_id, event_type, payload, occurred_at)
         values ('postmark:Delivery:m1', null, 'postmark', $1, $2, 'Delivery', '{}', now())",
    )
    .bind(practice)
    .bind(delivered)
    .execute(&app.pool)
    .await
    .unwrap();
    let browser = chromium.open(&app, DESKTOP).await;
    browser.sign_in(&owner).await;
    browser.click("#nav-activity").await;
    browser
        .text_containing("#activity-rows", "Withheld: the patient opted out.")
        .await;
    browser
        .text_containing("#activity-rows", "Bounced: the address does not exist")
        .await;

    browser.select_value("#activity-status", "suppressed").await;
    browser.click("#activity-apply").await;
    browser
        .eventually("only the withheld message", async |b: &Browser| {
            let rows = b.text("#activity-rows").await?;
            if rows.contains("sam@example.com") && !rows.contains("pat@example.com") {
                Ok(())
            } else {
                Err(rows)
            }
        })
        .await;

    browser.select_value("#activity-status", "").await;
    browser.click("#activity-apply").await;
    browser
        .text_containing("#activity-rows", "pat@example.com")
        .await;
    browser
        .click(&format!("tr[data-log='{delivered}'] button"))
        .await;
    browser
        .text_containing(
            "#activity-timeline",
            "Moved on: system SendGrid failed: SendGrid returned HTTP 503",
        )
        .await;
    browser
        .text_containing(
            "#activity-timeline",
            "Handed to Dentite's shared Postmark server.",
        )
        .await;
    browser
        .text_containing("#activity-timeline", "The provider reported: Delivery.")
        .await;
    assert_eq!(browser.focused_id().await, "activity-detail");

    browser.type_into("#activity-recipient", "SAM").await;
    browser.click("#activity-apply").await;
    browser
        .eventually("only the message to sam@", async |b: &Browser| {
            let rows = b.text("#activity-rows").await?;
            if rows.contains("sam@example.com") && !rows.contains("gone@example.com") {
                Ok(())
            } else {
                Err(rows)
            }
        })
        .await;
    browser.type_into("#activity-recipient", "").await;
    browser
        .select_value("#activity-provider", "system_postmark")
        .await;
    browser.click("#activity-apply").await;
    browser
        .eventually("only Postmark's message", async |b: &Browser| {
            let rows = b.text("#activity-rows").await?;
            if rows.contains("pat@example.com") && !rows.contains("gone@example.com") {
                Ok(())
            } else {
                Err(rows)
            }
        })
        .await;
    browser.select_value("#activity-provider", "").await;
    browser.click("#activity-apply").await;
    browser
        .text_containing("#activity-rows", "gone@example.com")
        .await;

    // Live: a new message and a new status appear without a reload.
    browser
        .text_containing("#activity-live", "Live: new messages and statuses appear")
        .await;
    let late = log(
        "sent",
        Some("system_sendgrid"),
        None,
        None,
        "late@example.com",
    )
    .await;
    browser
        .text_containing("#activity-rows", "late@example.com")
        .await;
    browser
        .click(&format!("tr[data-log='{late}'] button"))
        .await;
    browser
        .text_containing("#activity-outcome", "Sent: the provider took it")
        .await;
    sqlx::query("update outreach_logs set status = 'delivered' where id = $1")
        .bind(late)
        .execute(&app.pool)
        .await
        .unwrap();
    browser
        .text_containing("#activity-outcome", "Delivered.")
        .await;

    browser
        .script(
            "document.getElementById('activity-since').value = '2026-12-05';
             document.getElementById('activity-until').value = '2026-12-01';",
        )
        .await;
    browser.click("#activity-apply").await;
    browser
        .text_containing("#activity-until-error", "Must be later than since")
        .await;
    assert_eq!(browser.focused_id().await, "activity-until");
    browser.close().await;
}

#[tokio::test]
async fn an_owner_adds_a_patient_after_a_refused_save_records_consent_previews_and_queues_a_text_then_deletes_them()
 {
    let Some(chromium) = Chromium::installed() else {
        return;
    };
    let app = spawn_app().await;
    let practice = app.create_practice("Smile Dental").await;
    let owner = user(&app, practice, Role::Owner).await;
    let browser = chromium.open(&app, DESKTOP).await;
    browser.sign_in(&owner).await;
    browser.click("#nav-patients").await;
    browser.visible("#patients-search-form").await;

    browser.click("#patient-new").await;
    browser.visible("#patient-form").await;
    browser.type_into("#patient-last-name", "Lee").await;
    browser.type_into("#patient-phone", "555").await;
    browser.click("#patient-save").await;
    browser.visible("#patient-first-name-error").await;
    assert_eq!(browser.focused_id().await, "patient-first-name");
    browser.visible("#patient-phone-error").await;

    browser.type_into("#patient-first-name", "Pat").await;
    browser.type_into("#patient-phone", "+15557654321").await;
    browser.click("#patient-save").await;
    browser
        .text_containing("#patient-status", "Patient added.")
        .await;
    browser.text_containing("#patients-rows", "Pat Lee").await;
    browser
        .text_containing("#consent-effective", "Not recorded")
        .await;

    browser.select_value("#consent-category", "marketing").await;
    browser.select_value("#consent-source", "paper_form").await;
    browser
        .type_into("#consent-evidence", "signed at the front desk")
        .await;
    browser.click("#consent-record").await;
    browser
        .text_containing(
            "#consent-history",
            "Granted marketing SMS, by paper form by",
        )
        .await;
    browser
        .text_containing("#consent-history", "(signed at the front desk)")
        .await;

    browser
        .type_into("#compose-body", "Your cleaning is due \u{1F600}")
        .await;
    browser
        .text_containing("#compose-preview", "UCS-2 because of \u{1F600}")
        .await;
    browser
        .text_containing("#compose-preview", "1 segment")
        .await;
    browser.click("#compose-send").await;
    browser
        .text_containing("#compose-status", "Queued. Follow it in Activity.")
        .await;
    let texts: i64 = sqlx::query_scalar(
        "select count(*) from outreach_logs where practice_id = $1 and message_type = 'sms'",
    )
    .bind(practice)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(texts, 1);

    browser.click("#patient-delete").await;
    browser.visible("#confirm-dialog").await;
    browser.click("#confirm-accept").await;
    browser.visible("#patients-empty").await;
    let left: i64 = sqlx::query_scalar("select count(*) from patients where practice_id = $1")
        .bind(practice)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(left, 0);
    browser.close().await;
}

#[tokio::test]
async fn an_owner_builds_a_sequence_after_a_refused_placeholder_is_shown_at_its_step_enrols_a_patient_pauses_and_stops_them()
 {
    let Some(chromium) = Chromium::installed() else {
        return;
    };
    // No scheduler: the enrolment stays at its first step for the page to show.
    let app = TestEnv::new().without_background().spawn().await;
    let practice = app.create_practice("Smile Dental").await;
    let owner = user(&app, practice, Role::Owner).await;
    let patient = app
        .create_patient(practice, "pat@example.com", "+15557654321")
        .await;
    let browser = chromium.open(&app, DESKTOP).await;
    browser.sign_in(&owner).await;
    browser.click("#nav-sequences").await;
    browser.visible("#sequences-empty").await;

    browser.click("#sequence-new").await;
    browser
        .type_into("#sequence-name", "Six-month recall")
        .await;
    browser
        .type_into("#step-0-body", "Hi {{first_name}}, your cleaning is due")
        .await;
    browser
        .text_containing("#step-0-count", "1 segment (GSM-7")
        .await;
    browser.click("#sequence-save").await;
    browser
        .text_containing("#step-0-body-error", "{{first_name}}")
        .await;
    assert_eq!(browser.focused_id().await, "step-0-body");

    browser
        .type_into(
            "#step-0-body",
            "Hi {{firstName}}, your cleaning at {{practiceName}} is due \u{1F9B7}",
        )
        .await;
    browser
        .text_containing("#step-0-count", "UCS-2 because of \u{1F9B7}")
        .await;
    browser.click("#sequence-add-step").await;
    browser.select_value("#step-1-channel", "email").await;
    browser
        .type_into("#step-1-subject", "Time for your check-up")
        .await;
    browser
        .type_into("#step-1-body", "Book online, {{firstName}}.")
        .await;
    browser.click("#sequence-save").await;
    browser
        .text_containing("#sequence-status", "Sequence created.")
        .await;
    browser
        .text_containing("#sequences-rows", "Six-month recall")
        .await;
    let steps: Value = sqlx::query_scalar("select steps from sequences where practice_id = $1")
        .bind(practice)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(steps[0]["channel"], "sms");
    assert_eq!(steps[0]["delayMinutes"], 0);
    assert_eq!(steps[1]["channel"], "email");
    assert_eq!(
        steps[1]["delayMinutes"],
        7 * 24 * 60,
        "the new step waits a week"
    );
    assert_eq!(steps[1]["subject"], "Time for your check-up");

    browser.type_into("#enrol-search", "Lee").await;
    browser.click("#enrol-search-button").await;
    browser.click("#enrol-choices input[type='checkbox']").await;
    browser.click("#enrol-submit").await;
    browser.text_containing("#enrol-status", "1 enrolled").await;
    browser
        .text_containing(
            &format!("#enrollments-rows tr[data-patient='{patient}']"),
            "Next: step 1 of 2",
        )
        .await;
    browser
        .text_containing("#sequence-state", "1 part-way through")
        .await;

    browser.click("#sequence-pause").await;
    browser.text_containing("#sequence-state", "Paused").await;
    browser
        .text_containing("#enrollments-rows", "held while the sequence is paused")
        .await;
    browser.text_containing("#sequence-pause", "Resume").await;

    browser.click("#enrollments-rows button").await;
    browser.visible("#confirm-dialog").await;
    browser.click("#confirm-accept").await;
    browser
        .text_containing(
            "#enrollments-rows",
            "Stopped: taken out of the sequence by a user.",
        )
        .await;
    let stopped: Option<String> =
        sqlx::query_scalar("select stop_reason from sequence_enrollments where patient_id = $1")
            .bind(patient)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(stopped.as_deref(), Some("removed"));
    browser.close().await;
}

#[tokio::test]
async fn the_tabs_follow_the_arrow_keys() {
    let Some(chromium) = Chromium::installed() else {
        return;
    };
    let app = spawn_app().await;
    let practice = app.create_practice("Smile Dental").await;
    let owner = user(&app, practice, Role::Owner).await;
    let browser = chromium.open(&app, DESKTOP).await;
    browser.sign_in(&owner).await;

    let email_tab = browser.visible("#tab-email").await;
    email_tab.send_keys(&Key::Right.to_string()).await.unwrap();

    browser.visible("#panel-sms").await;
    assert_eq!(browser.focused_id().await, "tab-sms");
    assert_eq!(
        browser.attr("#tab-sms", "aria-selected").await.as_deref(),
        Some("true")
    );
    assert!(
        browser
            .client
            .current_url()
            .await
            .unwrap()
            .as_str()
            .ends_with("#/settings/sms")
    );
    let sms_tab = browser.visible("#tab-sms").await;
    sms_tab.send_keys(&Key::Home.to_string()).await.unwrap();
    browser.visible("#panel-email").await;
    assert_eq!(browser.focused_id().await, "tab-email");
    browser.close().await;
}

#[tokio::test]
async fn the_status_card_shows_the_provider_in_effect_health_domain_and_30_day_counts() {
    let Some(chromium) = Chromium::installed() else {
        return;
    };
    let app = TestEnv::new().without_background().spawn().await;
    let owner = app.practice_owner().await;
    let practice = practice_of(&owner);
    verified_custom_email(&app, &owner).await;
    insert_outreach_logs(&app, practice).await;
    let email = user(&app, practice, Role::Staff).await;
    let browser = chromium.open(&app, DESKTOP).await;
    browser.sign_in(&email).await;

    browser.click("#nav-analytics").await;
    let card = browser
        .text_containing("#status-email", "custom_sendgrid")
        .await;
    for expected in [
        "Provider in effect",
        "Healthy",
        "smile.example",
        "Verified",
        "Never",
    ] {
        assert!(card.contains(expected), "{expected} in {card}");
    }
    let mut counts = Vec::new();
    for name in ["sent", "delivered", "failed"] {
        let css = format!("#status-email .count-{name} .count-value");
        counts.push(browser.text(&css).await.unwrap());
    }
    assert_eq!(counts, ["3", "2", "1"]);
    browser
        .text_containing("#status-sms", "system_twilio")
        .await;
    browser
        .text_containing("#status-sms .count-failed", "1")
        .await;
    browser
        .text_containing("#usage-rows", "custom_sendgrid")
        .await;

    let bars = "return document.querySelectorAll('#daily-svg rect.chart-sent').length";
    assert!(
        browser.script(bars).await.as_u64().unwrap() > 0,
        "email bars are drawn"
    );
    let table_rows = "return document.querySelectorAll('#daily-rows tr').length";
    assert_eq!(browser.script(table_rows).await, json!(30));
    browser.select_value("#daily-days", "90").await;
    browser
        .eventually("a row per day of 90", async |b: &Browser| {
            match b.script(table_rows).await {
                rows if rows == json!(90) => Ok(()),
                rows => Err(rows.to_string()),
            }
        })
        .await;
    browser.click(".chart-table summary").await;
    let forty_days_ago = (chrono::Utc::now() - chrono::Duration::days(40))
        .date_naive()
        .to_string();
    let cells = browser
        .script(&format!(
            "return [...[...document.querySelectorAll('#daily-rows tr')]
                .find((row) => row.querySelector('th').textContent === '{forty_days_ago}')
                .querySelectorAll('td')].map((cell) => cell.textContent)"
        ))
        .await;
    assert_eq!(cells, json!(["1", "1", "0"]), "sent, delivered, failed");

    browser.click("#status-settings-link").await;
    browser.visible("#panel-email").await;
    browser.close().await;
}

#[tokio::test]
async fn an_owner_lifts_a_mistaken_suppression_after_confirming_and_a_vanished_one_is_explained() {
    let Some(chromium) = Chromium::installed() else {
        return;
    };
    let app = TestEnv::new().without_background().spawn().await;
    let owner = app.practice_owner().await;
    let practice = practice_of(&owner);
    for (first, email, phone) in [
        ("Pat", "pat@example.com", "+15551230001"),
        ("Sam", "sam@example.com", "+15551230002"),
    ] {
        let patient =
            json!({"firstName": first, "lastName": "Lee", "email": email, "phone": phone});
        let response = app
            .send_json(reqwest::Method::POST, "/api/patients", &owner, &patient)
            .await;
        assert_eq!(response.status(), 201);
    }
    app.follow_unsubscribe_link(practice, "pat@example.com")
        .await;
    app.follow_unsubscribe_link(practice, "sam@example.com")
        .await;
    app.shared_number_opt_out("+15551230001").await;
    let email = user(&app, practice, Role::Owner).await;
    let browser = chromium.open(&app, DESKTOP).await;
    browser.sign_in(&email).await;

    browser.click("#nav-suppressions").await;
    let rows = browser
        .text_containing("#suppressions-rows", "pat@example.com")
        .await;
    for expected in [
        "Unsubscribe link",
        "Replied STOP",
        "only the patient can undo it",
    ] {
        assert!(rows.contains(expected), "{expected} in {rows}");
    }
    browser
        .click("button[aria-label='Lift the suppression of pat@example.com']")
        .await;
    browser.visible("#confirm-dialog").await;
    assert_eq!(browser.focused_id().await, "confirm-cancel");
    browser.click("#confirm-accept").await;
    browser
        .eventually("pat's row to go", async |b: &Browser| {
            let text = b.text("#suppressions-rows").await?;
            if text.contains("pat@example.com") {
                Err(text)
            } else {
                Ok(())
            }
        })
        .await;

    // Someone else lifts Sam's entry meanwhile: the page says so instead of failing silently.
    let sam: i64 =
        sqlx::query_scalar("select id from suppressions where address = 'sam@example.com'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(app.lift_suppression(&owner, sam).await.status(), 204);
    browser
        .click("button[aria-label='Lift the suppression of sam@example.com']")
        .await;
    browser.click("#confirm-accept").await;
    browser
        .text_containing("#suppressions-error", "not found")
        .await;
    assert_eq!(browser.focused_id().await, "suppressions-error");

    browser.select_value("#suppressions-channel", "sms").await;
    browser.click("#suppressions-apply").await;
    browser
        .eventually("only the SMS entry", async |b: &Browser| {
            let text = b.text("#suppressions-rows").await?;
            if text.contains("sam@example.com") {
                Err(text)
            } else {
                Ok(())
            }
        })
        .await;
    browser
        .text_containing("#suppressions-rows", "+15551230001")
        .await;
    browser.close().await;
}

#[tokio::test]
async fn staff_see_the_suppressions_without_anything_to_lift() {
    let Some(chromium) = Chromium::installed() else {
        return;
    };
    let app = TestEnv::new().without_background().spawn().await;
    let practice = app.create_practice("Smile Dental").await;
    app.follow_unsubscribe_link(practice, "pat@example.com")
        .await;
    let email = user(&app, practice, Role::Staff).await;
    let browser = chromium.open(&app, DESKTOP).await;
    browser.sign_in(&email).await;
    browser.click("#nav-suppressions").await;
    browser
        .text_containing("#suppressions-rows", "pat@example.com")
        .await;
    let buttons = browser
        .script("return document.querySelectorAll('#suppressions-rows button').length")
        .await;
    assert_eq!(buttons, json!(0));
    browser.close().await;
}

#[tokio::test]
async fn the_audit_log_shows_who_changed_what_to_owners_and_is_not_offered_to_staff() {
    let Some(chromium) = Chromium::installed() else {
        return;
    };
    let app = TestEnv::new().without_background().spawn().await;
    let owner = app.practice_owner().await;
    let practice = practice_of(&owner);
    app.follow_unsubscribe_link(practice, "pat@example.com")
        .await;
    let entry: i64 = sqlx::query_scalar("select id from suppressions")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(app.lift_suppression(&owner, entry).await.status(), 204);
    let admin = user(&app, practice, Role::Admin).await;
    let browser = chromium.open(&app, DESKTOP).await;
    browser.sign_in(&admin).await;
    browser.click("#nav-audit").await;
    let rows = browser
        .text_containing("#audit-rows", "Lifted a suppression")
        .await;
    assert!(rows.contains("email"), "{rows}");
    assert!(
        !rows.contains("pat@example.com"),
        "never the values: {rows}"
    );
    browser.click("#sign-out").await;

    let staff = user(&app, practice, Role::Staff).await;
    browser.sign_in(&staff).await;
    browser.visible("#nav-suppressions").await;
    assert_eq!(
        browser
            .script("return document.getElementById('nav-audit').checkVisibility()")
            .await,
        json!(false)
    );
    browser.close().await;
}

#[tokio::test]
async fn at_360_pixels_wide_no_view_scrolls_sideways() {
    let Some(chromium) = Chromium::installed() else {
        return;
    };
    let app = TestEnv::new().without_background().spawn().await;
    let owner = app.practice_owner().await;
    let practice = practice_of(&owner);
    verified_custom_email(&app, &owner).await;
    let email = user(&app, practice, Role::Owner).await;
    let browser = chromium.open(&app, PHONE).await;
    let overflow =
        "return document.documentElement.scrollWidth - document.documentElement.clientWidth";

    browser.goto("/").await;
    browser.visible("#sign-in-form").await;
    assert_eq!(browser.script(overflow).await, json!(0), "sign-in");
    browser.sign_in(&email).await;
    browser
        .text_containing("#domain-records", "em.smile.example")
        .await;
    assert_eq!(browser.script(overflow).await, json!(0), "email tab");
    browser.click("#tab-sms").await;
    browser.visible("#panel-sms").await;
    assert_eq!(browser.script(overflow).await, json!(0), "SMS tab");
    browser.click("#nav-analytics").await;
    browser.text_containing("#status-email", "Health").await;
    assert_eq!(browser.script(overflow).await, json!(0), "analytics");
    app.follow_unsubscribe_link(practice, "a.very.long.address.of.a.patient@example.com")
        .await;
    browser.click("#nav-suppressions").await;
    browser
        .text_containing("#suppressions-rows", "a.very.long.address")
        .await;
    assert_eq!(browser.script(overflow).await, json!(0), "suppressions");
    browser.click("#nav-rules").await;
    browser.visible("#rules-form").await;
    assert_eq!(browser.script(overflow).await, json!(0), "sending rules");
    browser.click("#nav-activity").await;
    browser.visible("#activity-filter").await;
    assert_eq!(browser.script(overflow).await, json!(0), "activity");
    browser.click("#nav-patients").await;
    browser.visible("#patients-search-form").await;
    assert_eq!(browser.script(overflow).await, json!(0), "patients");
    browser.click("#nav-sequences").await;
    browser.click("#sequence-new").await;
    browser.visible("#step-0-body").await;
    assert_eq!(browser.script(overflow).await, json!(0), "sequences");
    browser.close().await;
}

/// The README's pictures: each tab and the status card on a desktop, and the Email tab on a
/// phone. Only with DENTITE_SCREENSHOTS=<dir> (the refused-key picture comes from the test of
/// that case).
#[tokio::test]
async fn screenshots_of_each_tab_for_the_readme() {
    if std::env::var_os("DENTITE_SCREENSHOTS").is_none() {
        return;
    }
    let Some(chromium) = Chromium::installed() else {
        return;
    };
    let app = TestEnv::new().without_background().spawn().await;
    let owner = app.practice_owner().await;
    let practice = practice_of(&owner);
    verified_custom_email(&app, &owner).await;
    app.configure_custom_twilio(practice, true).await;
    insert_outreach_logs(&app, practice).await;
    mail_send_mock(
        CUSTOM_KEY,
        ResponseTemplate::new(202).insert_header("x-message-id", "sg-4f9a2c"),
    )
    .mount(&app.sendgrid)
    .await;
    let email = user(&app, practice, Role::Owner).await;
    let browser = chromium.open(&app, DESKTOP).await;
    browser.sign_in(&email).await;
    browser
        .text_containing("#domain-records", "em.smile.example")
        .await;
    browser.type_into("#email-test-to", "pat@example.com").await;
    browser.click("#email-test-send").await;
    browser
        .text_containing("#email-test-result", "Sent to pat@example.com.")
        .await;
    browser
        .text_containing("#email-last-test", "Last successful test")
        .await;
    browser.screenshot("email", DESKTOP.0).await;
    browser.screenshot("email-360", PHONE.0).await;
    browser.click("#tab-sms").await;
    browser
        .text_containing("#twilio-auth-token-state", "Configured")
        .await;
    browser.screenshot("sms", DESKTOP.0).await;
    browser.click("#nav-analytics").await;
    browser.text_containing("#status-email", "Health").await;
    browser.text_containing("#usage-rows", "Email").await;
    browser.screenshot("status", DESKTOP.0).await;
    app.follow_unsubscribe_link(practice, "pat@example.com")
        .await;
    app.follow_unsubscribe_link(practice, "sam.lee@example.com")
        .await;
    browser.click("#nav-suppressions").await;
    browser
        .text_containing("#suppressions-rows", "sam.lee@example.com")
        .await;
    browser.screenshot("suppressions", DESKTOP.0).await;
    browser.click("#nav-audit").await;
    browser
        .text_containing("#audit-rows", "Changed the email account")
        .await;
    browser.screenshot("audit", DESKTOP.0).await;
    browser.click("#nav-rules").await;
    browser
        .eventually("the rules to be read", async |b: &Browser| {
            match b
                .value("#rules-timezone")
                .await
                .filter(|zone| !zone.is_empty())
            {
                Some(_) => Ok(()),
                None => Err("no time zone shown yet".into()),
            }
        })
        .await;
    browser.screenshot("rules", DESKTOP.0).await;
    browser.click("#nav-activity").await;
    browser.visible("#activity-table").await;
    browser.screenshot("activity", DESKTOP.0).await;

    let patient = app
        .create_patient(practice, "pat@example.com", "+15557654321")
        .await;
    let recall = json!({"name": "Six-month recall", "steps": [
        {"channel": "sms", "delayMinutes": 0, "body": "Hi {{firstName}}, your cleaning at {{practiceName}} is due. Reply to book."},
        {"channel": "email", "delayMinutes": 10080, "subject": "Time for your check-up",
         "body": "Book online, {{firstName}}."},
    ]});
    let created = app
        .send_json(Method::POST, "/api/sequences", &owner, &recall)
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let sequence: Value = created.json().await.unwrap();
    let enrolled = app
        .send_json(
            Method::POST,
            &format!(
                "/api/sequences/{}/enrollments",
                sequence["id"].as_str().unwrap()
            ),
            &owner,
            &json!({"patientIds": [patient]}),
        )
        .await;
    assert_eq!(enrolled.status(), StatusCode::OK);
    browser.click("#nav-patients").await;
    browser.click("#patients-rows button").await;
    browser
        .text_containing("#consent-effective", "Not recorded")
        .await;
    browser
        .type_into("#compose-body", "Your cleaning is due, Pat.")
        .await;
    browser
        .text_containing("#compose-preview", "1 segment")
        .await;
    browser.screenshot("patients", DESKTOP.0).await;
    browser.click("#nav-sequences").await;
    browser.click("#sequences-rows button").await;
    browser
        .text_containing("#enrollments-rows", "Next: step 1 of 2")
        .await;
    browser.text_containing("#step-0-count", "segment").await;
    browser.screenshot("sequences", DESKTOP.0).await;
    browser.close().await;
}

/// Messages of the last 30 days (and one older), as the status card counts them.
async fn insert_outreach_logs(app: &TestApp, practice: Uuid) {
    let logs = [
        (
            "email",
            "sent",
            "custom_sendgrid",
            "1 day",
            "sam.lee@example.com",
        ),
        (
            "email",
            "delivered",
            "custom_sendgrid",
            "2 days",
            "kim@example.com",
        ),
        (
            "email",
            "clicked",
            "custom_sendgrid",
            "3 days",
            "alex.ng@example.com",
        ),
        (
            "email",
            "bounced",
            "system_sendgrid",
            "4 days",
            "old.address@example.com",
        ),
        (
            "email",
            "delivered",
            "custom_sendgrid",
            "40 days",
            "kim@example.com",
        ),
        ("sms", "delivered", "custom_twilio", "1 day", "+15557654321"),
        ("sms", "failed", "custom_twilio", "2 days", "+15550001111"),
    ];
    for (channel, status, provider, age, recipient) in logs {
        sqlx::query(
            "insert into outreach_logs (id, practice_id, message_type, status, messaging_provider, recipient, body, created_at)
             values ($1, $2, $3, $4, $5, $6, 'See you soon', now() - $7::interval)",
        )
        .bind(Uuid::new_v4())
        .bind(practice)
        .bind(channel)
        .bind(status)
        .bind(provider)
        .bind(recipient)
        .bind(age)
        .execute(&app.pool)
        .await
        .unwrap();
    }
}
