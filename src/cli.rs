//! What the command-line verbs do; `main.rs` only parses arguments and calls these.

use anyhow::Context;
use sqlx::PgPool;
use uuid::Uuid;

use crate::{
    auth::{self, Role},
    config::{Settings, generate_key_hex},
    crypto::{CredentialField, Keyring},
    db,
    messaging::accounts,
    practices,
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

/// Re-encrypts every credential not yet under the current key, a batch of practices per
/// transaction. Re-running it changes nothing once all are current. Returns how many values changed.
pub async fn rotate_keys(settings: &Settings) -> anyhow::Result<u64> {
    let pool = connect(settings).await?;
    rotate_credentials(&pool, &Keyring::new(&settings.keys), 100).await
}

/// A practice id and its three encrypted credential columns.
type StoredCredentials = (Uuid, Option<String>, Option<String>, Option<String>);

pub async fn rotate_credentials(
    pool: &PgPool,
    keyring: &Keyring,
    batch_size: i64,
) -> anyhow::Result<u64> {
    let mut changed = 0;
    let mut after = Uuid::nil();
    loop {
        let mut tx = pool.begin().await?;
        let rows: Vec<StoredCredentials> = sqlx::query_as(
            "select id, sendgrid_api_key, twilio_account_sid, twilio_auth_token from practices
             where id > $1 order by id limit $2 for update",
        )
        .bind(after)
        .bind(batch_size)
        .fetch_all(&mut *tx)
        .await?;
        let Some(last) = rows.last() else { break };
        after = last.0;
        for (practice_id, sendgrid_key, account_sid, auth_token) in rows {
            let values = [sendgrid_key, account_sid, auth_token];
            for (field, envelope) in CredentialField::COLUMNS.into_iter().zip(values) {
                let Some(envelope) = envelope.filter(|e| keyring.needs_rotation(e)) else {
                    continue;
                };
                let plaintext = keyring
                    .decrypt(&envelope, practice_id, field)
                    .with_context(|| {
                        format!(
                            "cannot decrypt {} of practice {practice_id}",
                            field.column()
                        )
                    })?;
                let fresh = keyring.encrypt(
                    secrecy::ExposeSecret::expose_secret(&plaintext),
                    practice_id,
                    field,
                );
                let statement =
                    format!("update practices set {} = $1 where id = $2", field.column());
                sqlx::query(sqlx::AssertSqlSafe(statement))
                    .bind(fresh)
                    .bind(practice_id)
                    .execute(&mut *tx)
                    .await?;
                changed += 1;
            }
        }
        tx.commit().await?;
    }
    Ok(changed + rotate_account_secrets(pool, keyring, batch_size).await?)
}

/// The same for the secrets of `practice_accounts`, a batch of accounts per transaction.
async fn rotate_account_secrets(
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
                let field = CredentialField::from_column(name).with_context(|| {
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
