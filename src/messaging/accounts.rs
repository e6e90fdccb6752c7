//! `practice_accounts`: a practice's account of each vendor. Each row holds the vendor's settings
//! as JSON, shaped by the vendor's own module, and its secrets as encryption envelopes keyed by
//! [`CredentialField::stored_name`], each bound to the practice and the field.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Serialize, de::DeserializeOwned};
use sqlx::{PgConnection, PgExecutor, types::Json};
use uuid::Uuid;

use super::provider::Vendor;
use crate::crypto::CredentialField;

/// One stored account, secrets still encrypted.
#[derive(Debug, Clone, Default)]
pub struct StoredAccount {
    pub settings: serde_json::Value,
    /// Field column name -> envelope.
    pub secrets: BTreeMap<String, String>,
    /// When a test send through it was accepted since its credentials or sender last changed.
    pub sending_confirmed_at: Option<DateTime<Utc>>,
}

impl StoredAccount {
    /// The settings in the vendor's own shape; a row the shape no longer reads counts as empty,
    /// so the practice can save it again.
    pub fn settings<T: DeserializeOwned + Default>(&self) -> T {
        serde_json::from_value(self.settings.clone()).unwrap_or_default()
    }

    pub fn envelope(&self, field: CredentialField) -> Option<&str> {
        self.secrets.get(field.stored_name()).map(String::as_str)
    }
}

/// Every vendor account a practice has stored.
#[derive(Debug, Clone, Default)]
pub struct StoredAccounts(BTreeMap<Vendor, StoredAccount>);

impl StoredAccounts {
    pub fn get(&self, vendor: Vendor) -> Option<&StoredAccount> {
        self.0.get(&vendor)
    }

    /// The settings of the account of `vendor` in the vendor's own shape; empty without one.
    pub fn settings<T: DeserializeOwned + Default>(&self, vendor: Vendor) -> T {
        self.get(vendor)
            .map(StoredAccount::settings)
            .unwrap_or_default()
    }

    /// The envelope of `field`, whichever account holds it.
    pub fn envelope(&self, field: CredentialField) -> Option<&str> {
        self.0.values().find_map(|account| account.envelope(field))
    }

    pub async fn load(db: impl PgExecutor<'_>, practice_id: Uuid) -> Result<Self, sqlx::Error> {
        #[derive(sqlx::FromRow)]
        struct Row {
            vendor: Vendor,
            settings: serde_json::Value,
            secrets: Json<BTreeMap<String, String>>,
            sending_confirmed_at: Option<DateTime<Utc>>,
        }

        let rows: Vec<Row> = sqlx::query_as(
            "select vendor, settings, secrets, sending_confirmed_at from practice_accounts
             where practice_id = $1",
        )
        .bind(practice_id)
        .fetch_all(db)
        .await?;
        Ok(Self(
            rows.into_iter()
                .map(|row| {
                    let Json(secrets) = row.secrets;
                    let account = StoredAccount {
                        settings: row.settings,
                        secrets,
                        sending_confirmed_at: row.sending_confirmed_at,
                    };
                    (row.vendor, account)
                })
                .collect(),
        ))
    }
}

/// Writes a practice's account of `vendor` whole, in the caller's transaction (the settings
/// change that also bumps the practice's version and audits it). `sending_confirmed_at` is kept
/// by the caller when nothing it confirmed changed, and cleared otherwise.
pub async fn save(
    db: &mut PgConnection,
    practice_id: Uuid,
    vendor: Vendor,
    settings: &impl Serialize,
    secrets: &BTreeMap<String, String>,
    sending_confirmed_at: Option<DateTime<Utc>>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into practice_accounts (practice_id, vendor, settings, secrets, sending_confirmed_at)
         values ($1, $2, $3, $4, $5)
         on conflict (practice_id, vendor)
         do update set settings = excluded.settings, secrets = excluded.secrets,
             sending_confirmed_at = excluded.sending_confirmed_at, updated_at = now()",
    )
    .bind(practice_id)
    .bind(vendor)
    .bind(Json(settings))
    .bind(Json(secrets))
    .bind(sending_confirmed_at)
    .execute(db)
    .await?;
    Ok(())
}

/// Changes the settings of a stored account, keeping its secrets and its confirmation; does
/// nothing without one.
pub async fn update_settings(
    db: impl PgExecutor<'_>,
    practice_id: Uuid,
    vendor: Vendor,
    settings: &impl Serialize,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "update practice_accounts set settings = $3, updated_at = now()
         where practice_id = $1 and vendor = $2",
    )
    .bind(practice_id)
    .bind(vendor)
    .bind(Json(settings))
    .execute(db)
    .await?;
    Ok(())
}

/// Records that a test send through the practice's account of `vendor` was accepted; returns
/// whether it was not confirmed before (the caller then commits it as a settings change).
pub async fn confirm_sending(
    db: &mut PgConnection,
    practice_id: Uuid,
    vendor: Vendor,
) -> Result<bool, sqlx::Error> {
    let confirmed = sqlx::query(
        "update practice_accounts set sending_confirmed_at = now(), updated_at = now()
         where practice_id = $1 and vendor = $2 and sending_confirmed_at is null",
    )
    .bind(practice_id)
    .bind(vendor)
    .execute(db)
    .await?;
    Ok(confirmed.rows_affected() > 0)
}

/// Removes the practice's accounts of `vendors`; returns the vendors that had one.
pub async fn erase(
    db: &mut PgConnection,
    practice_id: Uuid,
    vendors: &[Vendor],
) -> Result<Vec<Vendor>, sqlx::Error> {
    sqlx::query_scalar(
        "delete from practice_accounts where practice_id = $1 and vendor = any($2) returning vendor",
    )
    .bind(practice_id)
    .bind(vendors.iter().map(|v| v.as_str()).collect::<Vec<_>>())
    .fetch_all(db)
    .await
}

/// One account's stored secrets, as `keys rotate` reads and rewrites them.
#[derive(Debug, sqlx::FromRow)]
pub struct AccountSecrets {
    pub practice_id: Uuid,
    pub vendor: Vendor,
    /// Field column name -> envelope.
    pub secrets: Json<BTreeMap<String, String>>,
}

/// A batch of stored secrets for `keys rotate`, after `(practice, vendor)` in key order, locked.
pub async fn secrets_for_rotation(
    db: &mut PgConnection,
    after: Option<(Uuid, Vendor)>,
    limit: i64,
) -> Result<Vec<AccountSecrets>, sqlx::Error> {
    let (after_practice, after_vendor) = after.map_or((Uuid::nil(), ""), |(p, v)| (p, v.as_str()));
    sqlx::query_as(
        "select practice_id, vendor, secrets from practice_accounts
         where (practice_id, vendor) > ($1, $2)
         order by practice_id, vendor limit $3 for update",
    )
    .bind(after_practice)
    .bind(after_vendor)
    .bind(limit)
    .fetch_all(db)
    .await
}

/// Replaces one account's secrets (re-encrypted under the current key).
pub async fn replace_secrets(
    db: &mut PgConnection,
    practice_id: Uuid,
    vendor: Vendor,
    secrets: &BTreeMap<String, String>,
) -> Result<(), sqlx::Error> {
    sqlx::query("update practice_accounts set secrets = $3 where practice_id = $1 and vendor = $2")
        .bind(practice_id)
        .bind(vendor)
        .bind(Json(secrets))
        .execute(db)
        .await?;
    Ok(())
}
