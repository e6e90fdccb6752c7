//! What the command-line verbs do; `main.rs` only parses arguments and calls these.

use anyhow::Context;
use sqlx::PgPool;
use uuid::Uuid;

use crate::{
    auth::{self, Role},
    config::{Settings, generate_key_hex},
    crypto::{CredentialField, Keyring},
    db,
    messaging::{accounts, settings as practices},
    types::EmailAddress,
};

async fn connect(settings: &Settings) -> anyhow::Result<PgPool> {
    db::pool(settings.database_endpoints()?.queries, 4).await
}

pub async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    settings.database_endpoints()?.create_and_migrate().await
}

pub async fn create_practice(settings: &Settings, name: &str) -> anyhow::Result<Uuid> {
    Ok(practices::create(&connect(settings).await?, name).await?)
}

pub async fn create_user(
    settings: &Settings,
    email: &str,
    password: &str,
    role: Role,
    practice: Option<Uuid>,
) -> anyhow::Result<Uuid> {
    let email = EmailAddress::parse(email).map_err(anyhow::Error::msg)?;
    if password.chars().count() < 12 {
        anyhow::bail!("the password must be at least 12 characters");
    }
    Ok(auth::create_user(&connect(settings).await?, &email, password, role, practice).await?)
}

pub fn generate_keys() -> String {
    format!(
        "ENCRYPTION_KEY={}\nAUTH_SIGNING_KEY={}\n",
        generate_key_hex(),
        generate_key_hex()
    )
}

/// `keys rotate`: see [`rotate_credentials`].
pub async fn rotate_keys(settings: &Settings) -> anyhow::Result<u64> {
    let pool = connect(settings).await?;
    rotate_credentials(&pool, &Keyring::new(&settings.keys), 100).await
}

/// Re-encrypts every credential not yet under the current key, a batch of vendor accounts per
/// transaction. Re-running it changes nothing once all are current. Returns how many values
/// changed.
pub async fn rotate_credentials(
    pool: &PgPool,
    keyring: &Keyring,
    batch_size: i64,
) -> anyhow::Result<u64> {
    let mut changed = 0;
    let mut after = None;
    loop {
        let mut tx = pool.begin().await?;
        let rows = accounts::secrets_for_rotation(&mut tx, after, batch_size).await?;
        let Some(last) = rows.last() else {
            break;
        };
        after = Some((last.practice_id, last.vendor));
        for accounts::AccountSecrets {
            practice_id,
            vendor,
            secrets: sqlx::types::Json(mut secrets),
        } in rows
        {
            let mut rotated = 0;
            for (name, envelope) in secrets.iter_mut() {
                if !keyring.needs_rotation(envelope) {
                    continue;
                }
                let field = CredentialField::from_stored_name(name).with_context(|| {
                    format!("practice {practice_id} stores an unknown secret {name} for {vendor:?}")
                })?;
                let plaintext = keyring
                    .decrypt(envelope, practice_id, field)
                    .with_context(|| format!("cannot decrypt {name} of practice {practice_id}"))?;
                *envelope = keyring.encrypt(
                    secrecy::ExposeSecret::expose_secret(&plaintext),
                    practice_id,
                    field,
                );
                rotated += 1;
            }
            if rotated > 0 {
                accounts::replace_secrets(&mut tx, practice_id, vendor, &secrets).await?;
                changed += rotated;
            }
        }
        tx.commit().await?;
    }
    Ok(changed)
}
