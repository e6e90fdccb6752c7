//! The migration that moves SendGrid and Twilio accounts off `practices` into
//! `practice_accounts`, run on a database filled before it.

use dentite::{
    crypto::{CredentialField, KeyMaterial, Keyring},
    messaging::settings::PracticeMessagingConfig,
    providers::{Vendor, sendgrid::SendGridAccount, twilio::TwilioAccount},
};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::MigrationDatabase;

/// The last migration before the move.
const BEFORE: i64 = 20261203000300;
const SENDGRID_KEY: &str = "SG.stored-before.secret";
const TWILIO_SID: &str = "AC22222222222222222222222222222222";
const TWILIO_TOKEN: &str = "22222222222222222222222222222222";
const VERIFY_KEY: &str = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEstoredbefore";

fn keyring() -> Keyring {
    Keyring::new(&KeyMaterial {
        current: [0x5a; 32],
        previous: vec![],
    })
}

async fn practice(pool: &PgPool, name: &str) -> Uuid {
    let id = Uuid::new_v4();
    sqlx::query("insert into practices (id, name) values ($1, $2)")
        .bind(id)
        .bind(name)
        .execute(pool)
        .await
        .unwrap();
    id
}

/// Every monitored column of a practice, before and after.
async fn monitored(pool: &PgPool, practice: Uuid) -> Value {
    sqlx::query_scalar(
        "select jsonb_build_object('email_provider', email_provider, 'sms_provider', sms_provider,
             'email_domain_verified', email_domain_verified, 'email_last_tested_at', email_last_tested_at,
             'sms_last_tested_at', sms_last_tested_at, 'email_domain_last_checked_at', email_domain_last_checked_at,
             'email_fallback_enabled', email_fallback_enabled, 'sms_fallback_enabled', sms_fallback_enabled,
             'settings_version', settings_version)
         from practices where id = $1",
    )
    .bind(practice)
    .fetch_one(pool)
    .await
    .unwrap()
}

fn decrypt(keyring: &Keyring, config: &PracticeMessagingConfig, field: CredentialField) -> String {
    keyring
        .decrypt(config.envelope(field).expect("moved"), config.id, field)
        .expect("still bound to its practice and field")
        .expose_secret()
        .to_string()
}

#[tokio::test]
async fn moving_sendgrid_and_twilio_accounts_keeps_every_value_and_every_envelope_decrypts() {
    let database = MigrationDatabase::migrated_to(BEFORE).await;
    let pool = database.pool.clone();
    let keyring = keyring();
    let custom = practice(&pool, "Custom Dental").await;
    let sender_only = practice(&pool, "Sender Dental").await;
    let untouched = practice(&pool, "Plain Dental").await;
    let records = json!([
        {"name": "mail_cname", "type": "cname", "host": "em.smile.example", "data": "u7.wl.sendgrid.net",
         "valid": false, "reason": null},
        {"name": "dkim1", "type": "cname", "host": "s1._domainkey.smile.example",
         "data": "s1.domainkey.u7.wl.sendgrid.net", "valid": true, "reason": null},
    ]);
    sqlx::query(
        "update practices set email_provider = 'custom_sendgrid', sendgrid_api_key = $2,
             sendgrid_from_email = 'desk@smile.example', sendgrid_from_name = 'Smile Dental',
             sendgrid_domain = 'smile.example', sendgrid_domain_subdomain = 'em', sendgrid_domain_id = 77,
             sendgrid_domain_records = $3, sendgrid_domain_created_at = '2026-11-30T10:00:00.123456Z',
             email_domain_verified = false, email_domain_last_checked_at = '2026-12-01T08:00:00Z',
             sendgrid_webhook_verify_key = $4, sendgrid_webhook_id = 'wh-9',
             email_fallback_enabled = false, email_last_tested_at = '2026-12-01T09:00:00Z',
             sms_provider = 'custom_twilio', twilio_account_sid = $5, twilio_auth_token = $6,
             twilio_phone_number = '+15551239999', sms_help_reply_enabled = true,
             sms_last_tested_at = '2026-12-01T09:30:00Z', settings_version = 7
         where id = $1",
    )
    .bind(custom)
    .bind(keyring.encrypt(SENDGRID_KEY, custom, CredentialField::SendGridApiKey))
    .bind(&records)
    .bind(VERIFY_KEY)
    .bind(keyring.encrypt(TWILIO_SID, custom, CredentialField::TwilioAccountSid))
    .bind(keyring.encrypt(TWILIO_TOKEN, custom, CredentialField::TwilioAuthToken))
    .execute(&pool)
    .await
    .unwrap();
    // A practice on the platform's accounts that named its sender.
    sqlx::query(
        "update practices set sendgrid_from_email = 'hello@sender.example', sendgrid_from_name = 'Sender Dental'
         where id = $1",
    )
    .bind(sender_only)
    .execute(&pool)
    .await
    .unwrap();
    // An account of another vendor, stored before, stays as it was.
    sqlx::query(
        "insert into practice_accounts (practice_id, vendor, settings, secrets)
         values ($1, 'postmark', '{\"fromEmail\": \"pm@smile.example\"}', '{}')",
    )
    .bind(custom)
    .execute(&pool)
    .await
    .unwrap();
    let before: Vec<Value> =
        futures::future::join_all([custom, sender_only, untouched].map(|p| monitored(&pool, p)))
            .await;

    database.migrate().await;

    let after: Vec<Value> =
        futures::future::join_all([custom, sender_only, untouched].map(|p| monitored(&pool, p)))
            .await;
    assert_eq!(after, before, "the monitored columns are untouched");

    let config = PracticeMessagingConfig::load(&pool, custom)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        SendGridAccount::of(&config),
        SendGridAccount {
            from_email: Some("desk@smile.example".into()),
            from_name: Some("Smile Dental".into()),
            webhook_verify_key: Some(VERIFY_KEY.into()),
            webhook_id: Some("wh-9".into()),
            domain: Some("smile.example".into()),
            domain_subdomain: Some("em".into()),
            domain_id: Some(77),
            domain_records: serde_json::from_value(records).unwrap(),
            domain_created_at: Some("2026-11-30T10:00:00.123456Z".parse().unwrap()),
        }
    );
    assert_eq!(
        TwilioAccount::of(&config),
        TwilioAccount {
            phone_number: Some("+15551239999".into()),
            help_reply_enabled: true,
        }
    );
    assert_eq!(
        decrypt(&keyring, &config, CredentialField::SendGridApiKey),
        SENDGRID_KEY
    );
    assert_eq!(
        decrypt(&keyring, &config, CredentialField::TwilioAccountSid),
        TWILIO_SID
    );
    assert_eq!(
        decrypt(&keyring, &config, CredentialField::TwilioAuthToken),
        TWILIO_TOKEN
    );
    assert!(config.accounts.get(Vendor::Postmark).is_some());

    let sender = PracticeMessagingConfig::load(&pool, sender_only)
        .await
        .unwrap()
        .unwrap();
    let sender_account = SendGridAccount::of(&sender);
    assert_eq!(
        (
            sender_account.from_email.as_deref(),
            sender_account.from_name.as_deref(),
            sender_account.domain_id
        ),
        (Some("hello@sender.example"), Some("Sender Dental"), None)
    );
    assert!(sender.accounts.get(Vendor::Twilio).is_none());

    let accounts: Vec<(Uuid, String)> = sqlx::query_as(
        "select practice_id, vendor from practice_accounts order by practice_id, vendor",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(
        !accounts.iter().any(|(practice, _)| *practice == untouched),
        "a practice with nothing of its own gains no account: {accounts:?}"
    );
    assert_eq!(accounts.len(), 4, "{accounts:?}");

    // `keys rotate` finds the moved envelopes where they now are.
    let rotating = Keyring::new(&KeyMaterial {
        current: [0x6b; 32],
        previous: vec![[0x5a; 32]],
    });
    assert_eq!(
        dentite::cli::rotate_credentials(&pool, &rotating, 10)
            .await
            .unwrap(),
        3
    );
    database.drop().await;
}
