//! Credential encryption at rest.
//!
//! Format: `v1:<key id>:<base64(nonce ‖ ciphertext ‖ tag)>`, AES-256-GCM with a fresh random
//! 96-bit nonce per encryption. The key id is the first 8 hex characters of SHA-256 of the key, so
//! an envelope names the key that made it and rotation can tell old envelopes from current ones.
//! The associated data binds each ciphertext to its practice and column: an envelope copied to
//! another practice or another column does not decrypt.
//!
//! Threat model: a leaked database dump (or a SQL injection that reads rows) must not reveal
//! provider credentials. Not covered: an attacker holding the process memory or `ENCRYPTION_KEY`.
//! Random nonces are safe far beyond this service's volume (2^32 encryptions per key).

use aes_gcm::{
    Aes256Gcm, Nonce,
    aead::{Aead, Generate, KeyInit, Payload},
};
use base64::{Engine, engine::general_purpose::STANDARD};
use secrecy::SecretString;
use sha2::{Digest, Sha256};
use uuid::Uuid;

const VERSION: &str = "v1";
const NONCE_LEN: usize = 12;

/// The raw keys from configuration: the one that encrypts, and older ones that may still decrypt.
#[derive(Clone)]
pub struct KeyMaterial {
    pub current: [u8; 32],
    pub previous: Vec<[u8; 32]>,
}

impl std::fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "KeyMaterial {{ current: {}, previous: {} keys }}",
            key_id(&self.current),
            self.previous.len()
        )
    }
}

/// The database column a ciphertext belongs to; part of the associated data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialField {
    SendGridApiKey,
    TwilioAccountSid,
    TwilioAuthToken,
}

impl CredentialField {
    pub const ALL: [CredentialField; 3] = [
        Self::SendGridApiKey,
        Self::TwilioAccountSid,
        Self::TwilioAuthToken,
    ];

    /// The field of the settings request that carries it: what a practice re-enters.
    pub fn request_field(self) -> &'static str {
        match self {
            Self::SendGridApiKey => "sendgridApiKey",
            Self::TwilioAccountSid => "accountSid",
            Self::TwilioAuthToken => "authToken",
        }
    }

    /// Why a stored value that no longer decrypts stops the channel, and what fixes it.
    pub fn unreadable_message(self) -> String {
        let (what, channel) = match self {
            Self::SendGridApiKey => ("SendGrid API key", "email"),
            Self::TwilioAccountSid => ("Twilio account SID", "sms"),
            Self::TwilioAuthToken => ("Twilio auth token", "sms"),
        };
        format!(
            "the stored {what} can no longer be read (it was altered, or saved under an encryption key \
             this service no longer has); enter it again with PUT /api/practice-settings/messaging/{channel}"
        )
    }

    pub fn column(self) -> &'static str {
        match self {
            Self::SendGridApiKey => "sendgrid_api_key",
            Self::TwilioAccountSid => "twilio_account_sid",
            Self::TwilioAuthToken => "twilio_auth_token",
        }
    }
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    #[error("not an encryption envelope")]
    Malformed,
    #[error("envelope was made with key {0}, which is neither current nor previous")]
    UnknownKey(String),
    #[error(
        "ciphertext failed authentication (tampered, wrong key, or bound to another practice or field)"
    )]
    Authentication,
}

struct NamedKey {
    id: String,
    cipher: Aes256Gcm,
}

/// Encrypts with the current key, decrypts with the current or any previous key.
pub struct Keyring {
    current: NamedKey,
    previous: Vec<NamedKey>,
}

fn key_id(key: &[u8; 32]) -> String {
    hex::encode(&Sha256::digest(key)[..4])
}

fn named(key: &[u8; 32]) -> NamedKey {
    NamedKey {
        id: key_id(key),
        cipher: Aes256Gcm::new(key.into()),
    }
}

fn associated_data(practice_id: Uuid, field: CredentialField) -> String {
    format!("dentite:{VERSION}:{practice_id}:{}", field.column())
}

impl Keyring {
    pub fn new(material: &KeyMaterial) -> Self {
        Self {
            current: named(&material.current),
            previous: material.previous.iter().map(named).collect(),
        }
    }

    pub fn current_key_id(&self) -> &str {
        &self.current.id
    }

    pub fn encrypt(&self, plaintext: &str, practice_id: Uuid, field: CredentialField) -> String {
        let nonce = Nonce::generate();
        let aad = associated_data(practice_id, field);
        let ciphertext = self
            .current
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: aad.as_bytes(),
                },
            )
            .expect("AES-GCM encryption only fails for inputs beyond 64 GiB");
        let mut sealed = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&ciphertext);
        format!("{VERSION}:{}:{}", self.current.id, STANDARD.encode(sealed))
    }

    pub fn decrypt(
        &self,
        envelope: &str,
        practice_id: Uuid,
        field: CredentialField,
    ) -> Result<SecretString, CryptoError> {
        let (key_id, sealed) = parse_envelope(envelope)?;
        let key = std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|k| k.id == key_id)
            .ok_or_else(|| CryptoError::UnknownKey(key_id.to_string()))?;
        let sealed = STANDARD
            .decode(sealed)
            .map_err(|_| CryptoError::Malformed)?;
        if sealed.len() < NONCE_LEN {
            return Err(CryptoError::Malformed);
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_from(nonce).map_err(|_| CryptoError::Malformed)?;
        let aad = associated_data(practice_id, field);
        let plaintext = key
            .cipher
            .decrypt(
                &nonce,
                Payload {
                    msg: ciphertext,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| CryptoError::Authentication)?;
        String::from_utf8(plaintext)
            .map(SecretString::from)
            .map_err(|_| CryptoError::Authentication)
    }

    pub fn encrypt_if_present(
        &self,
        plaintext: Option<&str>,
        practice_id: Uuid,
        field: CredentialField,
    ) -> Option<String> {
        plaintext.map(|p| self.encrypt(p, practice_id, field))
    }

    pub fn decrypt_if_present(
        &self,
        envelope: Option<&str>,
        practice_id: Uuid,
        field: CredentialField,
    ) -> Result<Option<SecretString>, CryptoError> {
        envelope
            .map(|e| self.decrypt(e, practice_id, field))
            .transpose()
    }

    /// Whether an envelope was made with a key other than the current one.
    pub fn needs_rotation(&self, envelope: &str) -> bool {
        parse_envelope(envelope).is_ok_and(|(id, _)| id != self.current.id)
    }
}

fn parse_envelope(envelope: &str) -> Result<(&str, &str), CryptoError> {
    let mut parts = envelope.splitn(3, ':');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(VERSION), Some(key_id), Some(sealed)) if !key_id.is_empty() => Ok((key_id, sealed)),
        _ => Err(CryptoError::Malformed),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use secrecy::ExposeSecret;

    use super::*;

    fn keyring(current: u8, previous: &[u8]) -> Keyring {
        Keyring::new(&KeyMaterial {
            current: [current; 32],
            previous: previous.iter().map(|b| [*b; 32]).collect(),
        })
    }

    const FIELD: CredentialField = CredentialField::SendGridApiKey;

    #[test]
    fn round_trip_returns_the_plaintext() {
        let ring = keyring(1, &[]);
        let practice = Uuid::new_v4();
        let envelope = ring.encrypt("SG.secret-value", practice, FIELD);
        assert!(envelope.starts_with(&format!("v1:{}:", ring.current_key_id())));
        assert!(!envelope.contains("secret-value"));
        assert_eq!(
            ring.decrypt(&envelope, practice, FIELD)
                .unwrap()
                .expose_secret(),
            "SG.secret-value"
        );
    }

    #[test]
    fn any_flipped_bit_of_nonce_ciphertext_or_tag_fails() {
        let ring = keyring(1, &[]);
        let practice = Uuid::new_v4();
        let envelope = ring.encrypt("token", practice, FIELD);
        let (prefix, sealed) = envelope.rsplit_once(':').unwrap();
        let sealed = STANDARD.decode(sealed).unwrap();
        for byte in 0..sealed.len() {
            for bit in 0..8 {
                let mut tampered = sealed.clone();
                tampered[byte] ^= 1 << bit;
                let forged = format!("{prefix}:{}", STANDARD.encode(&tampered));
                assert_eq!(
                    ring.decrypt(&forged, practice, FIELD).unwrap_err(),
                    CryptoError::Authentication,
                    "byte {byte} bit {bit}"
                );
            }
        }
    }

    #[test]
    fn a_wrong_key_with_the_same_id_label_fails() {
        let practice = Uuid::new_v4();
        let envelope = keyring(1, &[]).encrypt("token", practice, FIELD);
        let relabelled = envelope.replacen(&key_id(&[1; 32]), &key_id(&[2; 32]), 1);
        assert_eq!(
            keyring(2, &[])
                .decrypt(&relabelled, practice, FIELD)
                .unwrap_err(),
            CryptoError::Authentication
        );
        assert!(matches!(
            keyring(2, &[])
                .decrypt(&envelope, practice, FIELD)
                .unwrap_err(),
            CryptoError::UnknownKey(_)
        ));
    }

    #[test]
    fn a_ciphertext_moved_to_another_practice_or_field_does_not_decrypt() {
        let ring = keyring(1, &[]);
        let practice = Uuid::new_v4();
        let envelope = ring.encrypt("token", practice, CredentialField::TwilioAuthToken);
        assert_eq!(
            ring.decrypt(&envelope, Uuid::new_v4(), CredentialField::TwilioAuthToken)
                .unwrap_err(),
            CryptoError::Authentication
        );
        assert_eq!(
            ring.decrypt(&envelope, practice, CredentialField::TwilioAccountSid)
                .unwrap_err(),
            CryptoError::Authentication
        );
    }

    #[test]
    fn one_hundred_thousand_encryptions_use_distinct_nonces() {
        let ring = keyring(1, &[]);
        let practice = Uuid::new_v4();
        let nonces: HashSet<Vec<u8>> = (0..100_000)
            .map(|_| {
                let envelope = ring.encrypt("", practice, FIELD);
                let sealed = STANDARD
                    .decode(envelope.rsplit_once(':').unwrap().1)
                    .unwrap();
                sealed[..NONCE_LEN].to_vec()
            })
            .collect();
        assert_eq!(nonces.len(), 100_000);
    }

    #[test]
    fn empty_and_64_kib_inputs_round_trip() {
        let ring = keyring(1, &[]);
        let practice = Uuid::new_v4();
        for plaintext in [String::new(), "x".repeat(64 * 1024)] {
            let envelope = ring.encrypt(&plaintext, practice, FIELD);
            assert_eq!(
                ring.decrypt(&envelope, practice, FIELD)
                    .unwrap()
                    .expose_secret(),
                plaintext
            );
        }
    }

    #[test]
    fn previous_keys_decrypt_and_are_flagged_for_rotation() {
        let practice = Uuid::new_v4();
        let old = keyring(1, &[]).encrypt("token", practice, FIELD);
        let rotated = keyring(2, &[1]);
        assert!(rotated.needs_rotation(&old));
        assert_eq!(
            rotated
                .decrypt(&old, practice, FIELD)
                .unwrap()
                .expose_secret(),
            "token"
        );
        assert!(!rotated.needs_rotation(&rotated.encrypt("token", practice, FIELD)));
    }

    #[test]
    fn malformed_envelopes_are_rejected() {
        let ring = keyring(1, &[]);
        for bad in ["", "plaintext", "v2:abcd:AAAA", "v1::AAAA", "v1:abcd"] {
            assert!(ring.decrypt(bad, Uuid::new_v4(), FIELD).is_err(), "{bad}");
        }
        let truncated = format!("v1:{}:AAAA", ring.current_key_id());
        assert_eq!(
            ring.decrypt(&truncated, Uuid::new_v4(), FIELD).unwrap_err(),
            CryptoError::Malformed
        );
    }

    #[test]
    fn optional_values_pass_through() {
        let ring = keyring(1, &[]);
        let practice = Uuid::new_v4();
        assert_eq!(ring.encrypt_if_present(None, practice, FIELD), None);
        assert!(
            ring.decrypt_if_present(None, practice, FIELD)
                .unwrap()
                .is_none()
        );
        let envelope = ring.encrypt_if_present(Some("v"), practice, FIELD);
        let back = ring
            .decrypt_if_present(envelope.as_deref(), practice, FIELD)
            .unwrap()
            .unwrap();
        assert_eq!(back.expose_secret(), "v");
        assert!(format!("{back:?}").contains("REDACTED"));
    }
}
