//! RFC 8058 one-click unsubscribe links. The token names the practice and the address and is
//! signed (HMAC-SHA256 with a key derived from AUTH_SIGNING_KEY), so a forged or altered link
//! changes nothing. Tokens do not expire: an old email's link must keep working.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use uuid::Uuid;

use crate::messaging::{
    Channel,
    suppression::{Scope, Suppression, SuppressionReason, SuppressionSource},
};

pub struct UnsubscribeLinks {
    key: [u8; 32],
    base_url: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsubscribe {
    pub practice_id: Uuid,
    pub email: String,
}

impl UnsubscribeLinks {
    pub fn new(signing_seed: &[u8; 32], base_url: &url::Url) -> Self {
        // A separate key, so an unsubscribe token can never be confused with anything else we sign.
        let key = Sha256::new()
            .chain_update(b"dentite unsubscribe v1")
            .chain_update(signing_seed)
            .finalize()
            .into();
        Self {
            key,
            base_url: base_url.as_str().trim_end_matches('/').to_string(),
        }
    }

    pub fn token(&self, practice_id: Uuid, email: &str) -> String {
        let payload = format!("{practice_id}\n{}", email.trim().to_lowercase());
        let signature = self.mac(payload.as_bytes()).finalize().into_bytes();
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(payload),
            URL_SAFE_NO_PAD.encode(signature)
        )
    }

    pub fn url(&self, practice_id: Uuid, email: &str) -> String {
        format!(
            "{}/api/unsubscribe/{}",
            self.base_url,
            self.token(practice_id, email)
        )
    }

    /// The practice and address a genuine token names; `None` for anything forged or altered.
    pub fn verify(&self, token: &str) -> Option<Unsubscribe> {
        let (payload, signature) = token.split_once('.')?;
        let payload = URL_SAFE_NO_PAD.decode(payload).ok()?;
        let signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
        self.mac(&payload).verify_slice(&signature).ok()?;
        let payload = String::from_utf8(payload).ok()?;
        let (practice_id, email) = payload.split_once('\n')?;
        Some(Unsubscribe {
            practice_id: practice_id.parse().ok()?,
            email: email.to_string(),
        })
    }

    fn mac(&self, payload: &[u8]) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key)
            .expect("HMAC takes keys of any length");
        mac.update(payload);
        mac
    }
}

/// The name of the practice a genuine link names; `None` once the practice is gone.
pub async fn practice_name(
    pool: &PgPool,
    request: &Unsubscribe,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("select name from practices where id = $1")
        .bind(request.practice_id)
        .fetch_optional(pool)
        .await
}

/// Carries out a genuine link's unsubscribe: the address goes on the practice's ledger, its
/// patients' email sequences stop and their email marketing consent is revoked, all or nothing.
/// `false` when the practice is gone.
pub async fn unsubscribe(pool: &PgPool, request: &Unsubscribe) -> Result<bool, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let exists: bool = sqlx::query_scalar("select exists (select 1 from practices where id = $1)")
        .bind(request.practice_id)
        .fetch_one(&mut *tx)
        .await?;
    if !exists {
        return Ok(false);
    }
    super::opt_outs::suppress(
        &mut tx,
        &[Suppression {
            scope: Scope::Practice(request.practice_id),
            channel: Channel::Email,
            address: request.email.clone(),
            reason: SuppressionReason::Unsubscribed,
            unsubscribe_group: None,
            source: SuppressionSource::UnsubscribeLink,
        }],
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn links() -> UnsubscribeLinks {
        UnsubscribeLinks::new(
            &[7; 32],
            &url::Url::parse("https://hooks.example.com/").unwrap(),
        )
    }

    #[test]
    fn a_genuine_token_names_its_practice_and_address() {
        let practice = Uuid::new_v4();
        let token = links().token(practice, "Pat@Example.com");
        assert_eq!(
            links().verify(&token),
            Some(Unsubscribe {
                practice_id: practice,
                email: "pat@example.com".into()
            })
        );
        assert!(
            links()
                .url(practice, "pat@example.com")
                .starts_with("https://hooks.example.com/api/unsubscribe/")
        );
    }

    #[test]
    fn altered_or_forged_tokens_are_refused() {
        let token = links().token(Uuid::new_v4(), "pat@example.com");
        let (payload, signature) = token.split_once('.').unwrap();
        let other = URL_SAFE_NO_PAD.encode(format!("{}\nvictim@example.com", Uuid::new_v4()));
        assert_eq!(links().verify(&format!("{other}.{signature}")), None);
        assert_eq!(links().verify(&format!("{payload}.AAAA")), None);
        assert_eq!(links().verify("garbage"), None);
        let other_key =
            UnsubscribeLinks::new(&[8; 32], &url::Url::parse("https://x.test").unwrap());
        assert_eq!(other_key.verify(&token), None);
    }
}
