//! SendGrid Signed Event Webhook: ECDSA P-256/SHA-256 over the `X-Twilio-Email-Event-Webhook-Timestamp`
//! header string immediately followed by the raw body bytes. The signature header is base64 of an
//! ASN.1 DER `SEQUENCE { r, s }`; the key is base64 of a DER SubjectPublicKeyInfo (PEM also accepted).
//!
//! Threat model: anyone on the internet can POST to our webhook URLs, forging delivery events or
//! altering a genuine one in flight. Callers verify the exact received bytes before parsing
//! anything, with the key of the tenant the route names; errors say which check failed, never
//! what was expected. Replay protection is by deduplicating on `sg_event_id`, not here.

use base64::{Engine as _, engine::general_purpose::STANDARD};
use p256::ecdsa::{Signature, VerifyingKey, signature::MultipartVerifier};
use p256::pkcs8::DecodePublicKey;

pub use crate::providers::signature::SignatureError;

/// A SendGrid event-webhook public key: base64 of DER SubjectPublicKeyInfo (as SendGrid's UI/API
/// gives it); the PEM-wrapped form is accepted too. Anything that is not a P-256 key is rejected.
#[derive(Debug, Clone)]
pub struct SendGridVerifier {
    key: VerifyingKey,
}

impl SendGridVerifier {
    pub fn from_base64_der(key: &str) -> Result<Self, SignatureError> {
        let key = key.trim();
        // The SPKI's algorithm and curve OIDs are checked here, so Ed25519, P-384 or secp256k1
        // keys fail now instead of failing every signature later.
        let parsed = if key.starts_with("-----BEGIN") {
            VerifyingKey::from_public_key_pem(key)
        } else {
            let der = STANDARD.decode(key).map_err(|_| SignatureError::BadKey)?;
            VerifyingKey::from_public_key_der(&der)
        };
        parsed
            .map(|key| Self { key })
            .map_err(|_| SignatureError::BadKey)
    }

    /// ECDSA P-256/SHA-256 over `timestamp` bytes followed by the raw `body` bytes.
    ///
    /// High-S signatures are accepted: both official SendGrid vectors are high-S, and p256 keeps
    /// `NORMALIZE_S` off for this curve, so no normalisation step is needed.
    pub fn verify(
        &self,
        timestamp: &str,
        body: &[u8],
        signature_b64: &str,
    ) -> Result<(), SignatureError> {
        if signature_b64.is_empty() {
            return Err(SignatureError::MissingSignature);
        }
        if timestamp.is_empty() || !timestamp.bytes().all(|b| b.is_ascii_digit()) {
            return Err(SignatureError::BadTimestamp);
        }
        let der = STANDARD
            .decode(signature_b64)
            .map_err(|_| SignatureError::MalformedSignature)?;
        let signature =
            Signature::from_der(&der).map_err(|_| SignatureError::MalformedSignature)?;
        // Multipart hashing avoids copying a body of up to 768 KB just to prepend the timestamp.
        self.key
            .multipart_verify(&[timestamp.as_bytes(), body], &signature)
            .map_err(|_| SignatureError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::{SigningKey, signature::Signer};
    use p256::elliptic_curve::Generate;
    use p256::pkcs8::EncodePublicKey;

    // sendgrid/sendgrid-python test/unit/test_eventwebhook.py and sendgrid/sendgrid-nodejs
    // packages/eventwebhook/src/eventwebhook.spec.js (identical single-event vector).
    const SG_KEY: &str = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE83T4O/n84iotIvIW4mdBgQ/7dAfSmpqIM8kF9mN1flpVKS3GRqe62gw+2fNNRaINXvVpiglSI8eNEc6wEA3F+g==";
    const SG_SIGNATURE: &str = "MEUCIGHQVtGj+Y3LkG9fLcxf3qfI10QysgDWmMOVmxG0u6ZUAiEAyBiXDWzM+uOe5W0JuG+luQAbPIqHh89M15TluLtEZtM=";
    const SG_TIMESTAMP: &str = "1600112502";
    const SG_PAYLOAD: &str = concat!(
        r#"[{"email":"hello@world.com","event":"dropped","reason":"Bounced Address","#,
        r#""sg_event_id":"ZHJvcC0xMDk5NDkxOS1MUnpYbF9OSFN0T0doUTRrb2ZTbV9BLTA","#,
        r#""sg_message_id":"LRzXl_NHStOGhQ4kofSm_A.filterdrecv-p3mdw1-756b745b58-kmzbl-18-5F5FC76C-9.0","#,
        r#""smtp-id":"<LRzXl_NHStOGhQ4kofSm_A@ismtpd0039p1iad1.sendgrid.net>","timestamp":1600112492}]"#,
        "\r\n",
    );
    // Same two files: the SDKs' "invalid key" and "bad signature" (valid DER, wrong values).
    const SG_OTHER_KEY: &str = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEqTxd43gyp8IOEto2LdIfjRQrIbsd4SXZkLW6jDutdhXSJCWHw8REntlo7aNDthvj+y7GjUuFDb/R1NGe1OPzpA==";
    const SG_OTHER_SIGNATURE: &str = "MEUCIQCtIHJeH93Y+qpYeWrySphQgpNGNr/U+UyUlBkU6n7RAwIgJTz2C+8a8xonZGi6BpSzoQsbVRamr2nlxFDWYNH3j/0=";

    // sendgrid/sendgrid-nodejs packages/eventwebhook/src/eventwebhook.spec.js, multi-event vector:
    // JSON.stringify(events) with "},{" replaced by "},\r\n{", plus a trailing "\r\n".
    const SG_MULTI_KEY: &str = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEQ4LIFtWztlsF7skFqOncjD1lun4H5w8XOhyOArHW9RcIx/FfEzx6cikC/yPfUvwaX/JScE7Fc9CJD2afQ9Ok3Q==";
    const SG_MULTI_SIGNATURE: &str = "MEYCIQC/I4o6vCgqRYrTljjoVWB/GRWNtxeePlLMHr3x9ETeRQIhAIpV+03nREPTTHWSW0wIOA0EoMPdcNgXa70yCaqDJlu5";
    const SG_MULTI_TIMESTAMP: &str = "1619651159";
    const SG_MULTI_PAYLOAD: &str = concat!(
        r#"[{"email":"invalid@gmail.com","event":"processed","send_at":0,"#,
        r#""sg_event_id":"cHJvY2Vzc2VkLTE5OTQyMTEyLXFOd0JMZ1BRUWpXNkRKdktRd1NBYnctMA","#,
        r#""sg_message_id":"qNwBLgPQQjW6DJvKQwSAbw.filterdrecv-canary-547b64655b-cw6zx-1-6089EA4A-56.0","#,
        r#""smtp-id":"<qNwBLgPQQjW6DJvKQwSAbw@ismtpd0178p1mdw1.sendgrid.net>","timestamp":1619651146},"#,
        "\r\n",
        r#"{"email":"invalid@gmail.com","event":"bounce","ip":"167.89.101.76","#,
        r#""reason":"552 5.2.2 The email account that you tried to reach is over quota and inactive. "#,
        r#"Please direct the recipient to https://support.google.com/mail/?p=OverQuotaPerm c17si1130468pgv.34 - gsmtp","#,
        r#""sg_event_id":"Ym91bmNlLTAtMTk5NDIxMTItcU53QkxnUFFRalc2REp2S1F3U0Fidy0w","#,
        r#""sg_message_id":"qNwBLgPQQjW6DJvKQwSAbw.filterdrecv-canary-547b64655b-cw6zx-1-6089EA4A-56.0","#,
        r#""smtp-id":"<qNwBLgPQQjW6DJvKQwSAbw@ismtpd0178p1mdw1.sendgrid.net>","status":"5.2.2","#,
        r#""timestamp":1619651147,"tls":1,"type":"blocked"}]"#,
        "\r\n",
    );

    fn sendgrid() -> SendGridVerifier {
        SendGridVerifier::from_base64_der(SG_KEY).unwrap()
    }

    fn fresh_key_pair() -> (SigningKey, SendGridVerifier) {
        let signing = SigningKey::generate();
        let spki = signing.verifying_key().to_public_key_der().unwrap();
        let verifier =
            SendGridVerifier::from_base64_der(&STANDARD.encode(spki.as_bytes())).unwrap();
        (signing, verifier)
    }

    fn sign_sendgrid(key: &SigningKey, timestamp: &str, body: &[u8]) -> String {
        let signature: Signature = key.sign(&[timestamp.as_bytes(), body].concat());
        STANDARD.encode(signature.to_der().as_bytes())
    }

    #[test]
    fn official_sendgrid_vector_with_high_s_signature_verifies() {
        let der = STANDARD.decode(SG_SIGNATURE).unwrap();
        let signature = Signature::from_der(&der).unwrap();
        assert_ne!(
            signature.normalize_s(),
            signature,
            "vector should be high-S"
        );

        assert_eq!(
            sendgrid().verify(SG_TIMESTAMP, SG_PAYLOAD.as_bytes(), SG_SIGNATURE),
            Ok(())
        );
    }

    #[test]
    fn official_sendgrid_multi_event_vector_with_crlf_between_events_verifies() {
        let verifier = SendGridVerifier::from_base64_der(SG_MULTI_KEY).unwrap();
        let der = STANDARD.decode(SG_MULTI_SIGNATURE).unwrap();
        let signature = Signature::from_der(&der).unwrap();
        assert_ne!(
            signature.normalize_s(),
            signature,
            "vector should be high-S"
        );

        assert_eq!(
            verifier.verify(
                SG_MULTI_TIMESTAMP,
                SG_MULTI_PAYLOAD.as_bytes(),
                SG_MULTI_SIGNATURE
            ),
            Ok(())
        );
    }

    #[test]
    fn pem_wrapped_sendgrid_key_is_accepted() {
        let pem = format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n{}\n-----END PUBLIC KEY-----\n",
            &SG_KEY[..64],
            &SG_KEY[64..]
        );
        let verifier = SendGridVerifier::from_base64_der(&pem).unwrap();
        assert_eq!(
            verifier.verify(SG_TIMESTAMP, SG_PAYLOAD.as_bytes(), SG_SIGNATURE),
            Ok(())
        );
    }

    #[test]
    fn sendgrid_body_without_its_trailing_crlf_fails() {
        let truncated = &SG_PAYLOAD.as_bytes()[..SG_PAYLOAD.len() - 2];
        assert_eq!(
            sendgrid().verify(SG_TIMESTAMP, truncated, SG_SIGNATURE),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn sendgrid_body_with_one_flipped_byte_fails() {
        let mut body = SG_PAYLOAD.as_bytes().to_vec();
        body[20] ^= 0x01;
        assert_eq!(
            sendgrid().verify(SG_TIMESTAMP, &body, SG_SIGNATURE),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn sendgrid_signature_checked_with_another_accounts_key_fails() {
        let verifier = SendGridVerifier::from_base64_der(SG_OTHER_KEY).unwrap();
        assert_eq!(
            verifier.verify(SG_TIMESTAMP, SG_PAYLOAD.as_bytes(), SG_SIGNATURE),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn official_sendgrid_bad_signature_vector_fails() {
        assert_eq!(
            sendgrid().verify(SG_TIMESTAMP, SG_PAYLOAD.as_bytes(), SG_OTHER_SIGNATURE),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn sendgrid_signature_is_bound_to_its_timestamp() {
        assert_eq!(
            sendgrid().verify("1600112503", SG_PAYLOAD.as_bytes(), SG_SIGNATURE),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn sendgrid_non_numeric_or_empty_timestamp_is_bad_timestamp() {
        for timestamp in [
            "timestamp",
            "",
            " 1600112502",
            "-1600112502",
            "1600112502.0",
        ] {
            assert_eq!(
                sendgrid().verify(timestamp, SG_PAYLOAD.as_bytes(), SG_SIGNATURE),
                Err(SignatureError::BadTimestamp),
                "{timestamp:?}"
            );
        }
    }

    #[test]
    fn empty_sendgrid_signature_is_missing() {
        assert_eq!(
            sendgrid().verify(SG_TIMESTAMP, SG_PAYLOAD.as_bytes(), ""),
            Err(SignatureError::MissingSignature)
        );
    }

    #[test]
    fn garbage_or_truncated_sendgrid_signature_is_malformed() {
        let der = STANDARD.decode(SG_SIGNATURE).unwrap();
        let truncated = STANDARD.encode(&der[..der.len() - 1]);
        // A raw 64-byte r||s signature is not DER; SendGrid always sends DER.
        let raw = STANDARD.encode(Signature::from_der(&der).unwrap().to_bytes());
        for signature in ["not base64!", "aGVsbG8=", truncated.as_str(), raw.as_str()] {
            assert_eq!(
                sendgrid().verify(SG_TIMESTAMP, SG_PAYLOAD.as_bytes(), signature),
                Err(SignatureError::MalformedSignature),
                "{signature:?}"
            );
        }
    }

    #[test]
    fn freshly_generated_p256_key_round_trips() {
        let (signing, verifier) = fresh_key_pair();
        let body = b"[{\"event\":\"delivered\"}]\r\n";
        let signature = sign_sendgrid(&signing, "1700000000", body);

        assert_eq!(verifier.verify("1700000000", body, &signature), Ok(()));
        assert_eq!(
            verifier.verify("1700000000", &body[..body.len() - 1], &signature),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn signature_from_a_different_fresh_key_fails() {
        let (signing, _) = fresh_key_pair();
        let (_, other_verifier) = fresh_key_pair();
        let signature = sign_sendgrid(&signing, "1700000000", b"[]");
        assert_eq!(
            other_verifier.verify("1700000000", b"[]", &signature),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn keys_that_are_not_p256_are_bad_keys() {
        let not_p256 = [
            // Ed25519 SPKI
            "MCowBQYDK2VwAyEAPPKx9NE/qxewKVfh2RZ881dDzpyKVMeDYH+X6bspbko=",
            // P-384 SPKI
            "MHYwEAYHKoZIzj0CAQYFK4EEACIDYgAEwGwADZ9IB1Cor8waKfzNhJjXbNNZAX1rhdvQ/O9nQap+6sg7DlzZm+UONA9tWVt59UQJh3Rof25VU9WEgGVVihL1+8zSghYyd2tIpi+gdqS/U09zdwPpokVy37OrDgzw",
            // secp256k1 SPKI: same point size as P-256, different curve OID
            "MFYwEAYHKoZIzj0CAQYFK4EEAAoDQgAE3Xbqw4hOal2EyU7ybxlvkSw0Gvtq9HNTdCxB1jxc8Vubpv9KxcHUlfgFtxpPrfSuKHm6pFc7yPd5yk4Mijjaqw==",
            // P-256 SPKI cut short
            &SG_KEY[..60],
            "not a key",
            "",
            "-----BEGIN PUBLIC KEY-----\ngarbage\n-----END PUBLIC KEY-----",
        ];
        for key in not_p256 {
            assert_eq!(
                SendGridVerifier::from_base64_der(key).map(|_| ()),
                Err(SignatureError::BadKey),
                "{key:?}"
            );
        }
    }
}
