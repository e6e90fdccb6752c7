//! Mailgun's webhook signature: hex HMAC-SHA256, keyed with the account's HTTP webhook signing
//! key, over the timestamp and the token concatenated. It covers neither the event data nor the
//! URL, so the caller must also refuse a reused token and an old timestamp.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The `signature` object of a webhook body.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Signature {
    pub timestamp: String,
    pub token: String,
    pub signature: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the signature, its timestamp or its token is empty")]
    Missing,
    #[error("the signature is not hexadecimal")]
    NotHex,
    #[error("the signature does not match")]
    Mismatch,
}

/// Checks `signed` with `signing_key` in constant time; upper- and lowercase hex both pass, as
/// Mailgun's own Go SDK decodes the hex before comparing.
pub fn verify(signing_key: &[u8], signed: &Signature) -> Result<(), SignatureError> {
    if signed.timestamp.is_empty() || signed.token.is_empty() || signed.signature.is_empty() {
        return Err(SignatureError::Missing);
    }
    let expected = hex::decode(signed.signature.trim()).map_err(|_| SignatureError::NotHex)?;
    let mut mac =
        Hmac::<Sha256>::new_from_slice(signing_key).expect("HMAC takes keys of any length");
    mac.update(signed.timestamp.as_bytes());
    mac.update(signed.token.as_bytes());
    mac.verify_slice(&expected)
        .map_err(|_| SignatureError::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// mailgun-php's `tests/Api/WebhookTest.php`.
    const KEY: &[u8] = b"key-3ax6xnjp29jd6fds4gc373sgvjxteol0";
    const TIMESTAMP: &str = "1403645220";
    const TOKEN: &str = "5egbgr1vjgqxtrnp65xfznchgdccwh5d6i09vijqi3whgowmn6";
    const SIGNATURE: &str = "9cfc5c41582e51246e73c88d34db3af0a3a2692a76fbab81492842f000256d33";

    fn signed(timestamp: &str, token: &str, signature: &str) -> Signature {
        Signature {
            timestamp: timestamp.into(),
            token: token.into(),
            signature: signature.into(),
        }
    }

    #[test]
    fn the_official_mailgun_php_vector_verifies_in_either_case_of_hex() {
        assert_eq!(verify(KEY, &signed(TIMESTAMP, TOKEN, SIGNATURE)), Ok(()));
        assert_eq!(
            verify(KEY, &signed(TIMESTAMP, TOKEN, &SIGNATURE.to_uppercase())),
            Ok(())
        );
    }

    #[test]
    fn another_token_timestamp_or_key_does_not_verify() {
        assert_eq!(
            verify(KEY, &signed(TIMESTAMP, "another-token", SIGNATURE)),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(KEY, &signed("1403645221", TOKEN, SIGNATURE)),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(b"key-other", &signed(TIMESTAMP, TOKEN, SIGNATURE)),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn empty_parts_and_non_hex_signatures_are_refused_before_any_comparison() {
        assert_eq!(
            verify(KEY, &signed("", TOKEN, SIGNATURE)),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            verify(KEY, &signed(TIMESTAMP, "", SIGNATURE)),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            verify(KEY, &signed(TIMESTAMP, TOKEN, "zz")),
            Err(SignatureError::NotHex)
        );
        assert_eq!(
            verify(KEY, &signed(TIMESTAMP, TOKEN, &SIGNATURE[..62])),
            Err(SignatureError::Mismatch)
        );
    }
}
