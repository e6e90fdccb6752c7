//! Telnyx's webhook signature: Ed25519 over `timestamp|raw body`, with the account's public key
//! (base64 of its 32 raw bytes), the signature in `telnyx-signature-ed25519` (base64 of 64
//! bytes) and the timestamp in `telnyx-timestamp` (unix seconds), within 300 s either way, as
//! every official Telnyx SDK checks.

use base64::{Engine as _, engine::general_purpose::STANDARD};
use ed25519_dalek::{Signature, Verifier as _, VerifyingKey};

/// How far the signed timestamp may be from our clock, either way.
pub const TOLERANCE_SECS: u64 = 300;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the telnyx-signature-ed25519 or telnyx-timestamp header is missing")]
    Missing,
    #[error("the timestamp is not unix seconds")]
    BadTimestamp,
    #[error("the timestamp is more than 300 s away from now")]
    Stale,
    #[error("the signature is not base64 of 64 bytes")]
    BadSignature,
    #[error("the signature does not match")]
    Mismatch,
}

/// A Telnyx public key, read from its base64 form.
#[derive(Debug, Clone)]
pub struct PublicKey(VerifyingKey);

impl PublicKey {
    pub fn from_base64(value: &str) -> Result<Self, String> {
        let bytes = STANDARD
            .decode(value.trim())
            .map_err(|_| "is not base64".to_string())?;
        let raw: [u8; 32] = bytes
            .try_into()
            .map_err(|_| "must be base64 of a 32-byte Ed25519 public key".to_string())?;
        VerifyingKey::from_bytes(&raw)
            .map(Self)
            .map_err(|_| "is not a valid Ed25519 public key".to_string())
    }

    /// Checks a delivery's headers (empty when absent) and raw body at `now` (unix seconds).
    pub fn verify(
        &self,
        timestamp: &str,
        signature: &str,
        body: &[u8],
        now: i64,
    ) -> Result<(), SignatureError> {
        if timestamp.is_empty() || signature.is_empty() {
            return Err(SignatureError::Missing);
        }
        let signed_at: i64 = timestamp
            .trim()
            .parse()
            .map_err(|_| SignatureError::BadTimestamp)?;
        if now.abs_diff(signed_at) > TOLERANCE_SECS {
            return Err(SignatureError::Stale);
        }
        let signature: [u8; 64] = STANDARD
            .decode(signature.trim())
            .ok()
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or(SignatureError::BadSignature)?;
        let mut message = Vec::with_capacity(timestamp.len() + 1 + body.len());
        message.extend_from_slice(timestamp.as_bytes());
        message.push(b'|');
        message.extend_from_slice(body);
        self.0
            .verify(&message, &Signature::from_bytes(&signature))
            .map_err(|_| SignatureError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::{Signer as _, SigningKey};

    use super::*;

    /// RFC 8032, 7.1, TEST 1: a fixed secret, so these vectors can be recomputed anywhere.
    const SECRET: [u8; 32] = [
        0x9d, 0x61, 0xb1, 0x9d, 0xef, 0xfd, 0x5a, 0x60, 0xba, 0x84, 0x4a, 0xf4, 0x92, 0xec, 0x2c,
        0xc4, 0x44, 0x49, 0xc5, 0x69, 0x7b, 0x32, 0x69, 0x19, 0x70, 0x3b, 0xac, 0x03, 0x1c, 0xae,
        0x7f, 0x60,
    ];
    /// Its public key, base64 as Mission Control shows it.
    const PUBLIC_KEY: &str = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";
    const TIMESTAMP: &str = "1700000000";
    const NOW: i64 = 1_700_000_000;
    const BODY: &[u8] = br#"{"data":{"event_type":"message.finalized","id":"e1"}}"#;

    fn sign(timestamp: &str, body: &[u8]) -> String {
        let mut message = timestamp.as_bytes().to_vec();
        message.push(b'|');
        message.extend_from_slice(body);
        STANDARD.encode(SigningKey::from_bytes(&SECRET).sign(&message).to_bytes())
    }

    fn key() -> PublicKey {
        PublicKey::from_base64(PUBLIC_KEY).unwrap()
    }

    #[test]
    fn the_rfc_8032_key_signs_a_delivery_that_verifies_at_the_300_second_boundary() {
        assert_eq!(
            STANDARD.encode(SigningKey::from_bytes(&SECRET).verifying_key().to_bytes()),
            PUBLIC_KEY
        );
        let signature = sign(TIMESTAMP, BODY);
        assert_eq!(key().verify(TIMESTAMP, &signature, BODY, NOW), Ok(()));
        assert_eq!(key().verify(TIMESTAMP, &signature, BODY, NOW + 300), Ok(()));
        assert_eq!(key().verify(TIMESTAMP, &signature, BODY, NOW - 300), Ok(()));
        assert_eq!(
            key().verify(TIMESTAMP, &signature, BODY, NOW + 301),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            key().verify(TIMESTAMP, &signature, BODY, NOW - 301),
            Err(SignatureError::Stale),
            "a timestamp from the future is refused too"
        );
    }

    #[test]
    fn a_modified_body_another_timestamp_or_another_key_does_not_verify() {
        let signature = sign(TIMESTAMP, BODY);
        assert_eq!(
            key().verify(TIMESTAMP, &signature, b"{\"data\":{}}", NOW),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            key().verify("1700000001", &signature, BODY, NOW),
            Err(SignatureError::Mismatch)
        );
        let other = SigningKey::from_bytes(&[7; 32]).verifying_key();
        assert_eq!(
            PublicKey(other).verify(TIMESTAMP, &signature, BODY, NOW),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn missing_headers_bad_base64_and_wrong_lengths_are_refused() {
        let signature = sign(TIMESTAMP, BODY);
        assert_eq!(
            key().verify("", &signature, BODY, NOW),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            key().verify(TIMESTAMP, "", BODY, NOW),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            key().verify("soon", &signature, BODY, NOW),
            Err(SignatureError::BadTimestamp)
        );
        assert_eq!(
            key().verify(TIMESTAMP, "%%%", BODY, NOW),
            Err(SignatureError::BadSignature)
        );
        let short = STANDARD.encode([0u8; 63]);
        assert_eq!(
            key().verify(TIMESTAMP, &short, BODY, NOW),
            Err(SignatureError::BadSignature)
        );
        assert!(PublicKey::from_base64(&STANDARD.encode([1u8; 31])).is_err());
        assert!(PublicKey::from_base64(&STANDARD.encode([1u8; 33])).is_err());
        assert!(PublicKey::from_base64("not base64!").is_err());
    }
}
