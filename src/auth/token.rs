//! Login tokens: JWTs signed with Ed25519 (EdDSA) through `jsonwebtoken`.

use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use ed25519_dalek::{SigningKey, pkcs8::EncodePrivateKey};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Role;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: Uuid,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub practice: Option<Uuid>,
    pub role: Role,
    pub iat: i64,
    /// Not valid before; absent in tokens issued before it was set, which count from `iat`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    pub exp: i64,
}

impl Claims {
    /// Whether the token is usable at `now` (Unix seconds): not before `nbf`, not after `exp`.
    fn check_time(&self, now: i64) -> Result<(), TokenError> {
        if self.nbf.is_some_and(|nbf| nbf > now) {
            return Err(TokenError::NotYetValid);
        }
        if self.exp <= now {
            return Err(TokenError::Expired);
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("token expired")]
    Expired,
    #[error("token not valid yet (nbf)")]
    NotYetValid,
    #[error("token invalid")]
    Invalid,
}

pub struct TokenSigner {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    /// Tokens already verified, by their exact text: an Ed25519 check costs more than the rest
    /// of a typical request, and a token's claims cannot change. Expiry is still checked on
    /// every use.
    verified: moka::sync::Cache<String, Claims>,
}

/// Enough for every active session of a busy instance.
const VERIFIED_CAPACITY: u64 = 10_000;

impl TokenSigner {
    pub fn from_seed(seed: &[u8; 32]) -> anyhow::Result<Self> {
        let signing = SigningKey::from_bytes(seed);
        let der = signing
            .to_pkcs8_der()
            .context("could not encode the Ed25519 signing key")?;
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.leeway = 0;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Ok(Self {
            encoding: EncodingKey::from_ed_der(der.as_bytes()),
            decoding: DecodingKey::from_ed_der(signing.verifying_key().as_bytes()),
            validation,
            verified: moka::sync::Cache::builder()
                .max_capacity(VERIFIED_CAPACITY)
                .time_to_live(Duration::from_secs(15 * 60))
                .build(),
        })
    }

    pub fn issue(
        &self,
        user_id: Uuid,
        practice_id: Option<Uuid>,
        role: Role,
        lifetime: Duration,
    ) -> anyhow::Result<(String, DateTime<Utc>)> {
        let now = Utc::now();
        let expires_at = now + lifetime;
        let claims = Claims {
            sub: user_id,
            practice: practice_id,
            role,
            iat: now.timestamp(),
            nbf: Some(now.timestamp()),
            exp: expires_at.timestamp(),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), &claims, &self.encoding)
            .context("could not sign the login token")?;
        Ok((token, expires_at))
    }

    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        if let Some(claims) = self.verified.get(token) {
            return claims.check_time(Utc::now().timestamp()).map(|()| claims);
        }
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
                jsonwebtoken::errors::ErrorKind::ImmatureSignature => TokenError::NotYetValid,
                _ => TokenError::Invalid,
            })?;
        // A token that is not valid yet is not cached: it must pass the full check once it is.
        self.verified.insert(token.to_string(), claims.clone());
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};

    use super::*;

    fn signer(seed: u8) -> TokenSigner {
        TokenSigner::from_seed(&[seed; 32]).unwrap()
    }

    #[test]
    fn an_issued_token_verifies_with_its_claims() {
        let user = Uuid::new_v4();
        let practice = Uuid::new_v4();
        let (token, _) = signer(1)
            .issue(user, Some(practice), Role::Admin, Duration::from_secs(60))
            .unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.alg, Algorithm::EdDSA);
        let claims = signer(1).verify(&token).unwrap();
        assert_eq!(
            (claims.sub, claims.practice, claims.role),
            (user, Some(practice), Role::Admin)
        );
    }

    #[test]
    fn a_token_signed_by_another_key_is_invalid() {
        let (token, _) = signer(1)
            .issue(
                Uuid::new_v4(),
                None,
                Role::PlatformAdmin,
                Duration::from_secs(60),
            )
            .unwrap();
        assert_eq!(signer(2).verify(&token).unwrap_err(), TokenError::Invalid);
    }

    #[test]
    fn a_tampered_payload_is_invalid() {
        let (token, _) = signer(1)
            .issue(
                Uuid::new_v4(),
                Some(Uuid::new_v4()),
                Role::Staff,
                Duration::from_secs(60),
            )
            .unwrap();
        let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
        let payload = String::from_utf8(URL_SAFE_NO_PAD.decode(&parts[1]).unwrap()).unwrap();
        parts[1] = URL_SAFE_NO_PAD.encode(payload.replace("staff", "owner"));
        assert_eq!(
            signer(1).verify(&parts.join(".")).unwrap_err(),
            TokenError::Invalid
        );
    }

    #[test]
    fn a_token_verified_before_is_still_refused_once_it_expires() {
        let s = signer(1);
        let now = Utc::now().timestamp();
        let claims = Claims {
            sub: Uuid::new_v4(),
            practice: None,
            role: Role::Owner,
            iat: now,
            nbf: None,
            exp: now + 1,
        };
        let token =
            jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), &claims, &s.encoding).unwrap();
        assert!(s.verify(&token).is_ok());
        std::thread::sleep(Duration::from_millis(2100));
        assert_eq!(s.verify(&token).unwrap_err(), TokenError::Expired);
    }

    #[test]
    fn an_expired_token_is_rejected_as_expired() {
        let s = signer(1);
        let now = Utc::now().timestamp();
        let claims = Claims {
            sub: Uuid::new_v4(),
            practice: None,
            role: Role::Owner,
            iat: now - 100,
            nbf: None,
            exp: now - 10,
        };
        let token =
            jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), &claims, &s.encoding).unwrap();
        assert_eq!(s.verify(&token).unwrap_err(), TokenError::Expired);
    }

    #[test]
    fn a_token_whose_nbf_is_in_the_future_is_refused_until_then() {
        let s = signer(1);
        let now = Utc::now().timestamp();
        let claims = Claims {
            sub: Uuid::new_v4(),
            practice: None,
            role: Role::Owner,
            iat: now,
            nbf: Some(now + 2),
            exp: now + 600,
        };
        let token =
            jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), &claims, &s.encoding).unwrap();
        assert_eq!(s.verify(&token).unwrap_err(), TokenError::NotYetValid);
        // Refused again: a refusal must not have been cached as a success.
        assert_eq!(s.verify(&token).unwrap_err(), TokenError::NotYetValid);
        std::thread::sleep(Duration::from_millis(3100));
        assert!(s.verify(&token).is_ok());
    }

    #[test]
    fn issued_tokens_carry_nbf() {
        let (token, _) = signer(1)
            .issue(
                Uuid::new_v4(),
                None,
                Role::PlatformAdmin,
                Duration::from_secs(60),
            )
            .unwrap();
        let claims = signer(1).verify(&token).unwrap();
        assert_eq!(claims.nbf, Some(claims.iat));
    }
}
