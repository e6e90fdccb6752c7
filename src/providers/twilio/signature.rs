//! Twilio `X-Twilio-Signature`: base64 HMAC over the full request URL followed by the sorted form
//! parameters as `name + value`. HMAC-SHA1 keyed with the account Auth Token by default; HMAC-SHA256
//! keyed with a webhook shared key when `X-Twilio-Webhooks-Signature-Settings` says so. JSON-body
//! webhooks sign the URL alone and put the body's SHA-256 in its `bodySHA256` query parameter.
//!
//! HMAC tags are compared in constant time. The URL must come from configuration, never from `Host`
//! or `X-Forwarded-*`, and be byte-identical to the one Twilio called (the official SDKs' extra
//! "legacy querystring" re-encoding retry is not reproduced).

use base64::{Engine as _, engine::general_purpose::STANDARD};
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub use crate::providers::signature::SignatureError;

/// Twilio `X-Twilio-Signature` HMAC variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TwilioAlgorithm {
    HmacSha1,
    HmacSha256,
}

/// Parses `X-Twilio-Webhooks-Signature-Settings: key=<id>,algorithm=HMAC_SHA256` into
/// (shared key id, algorithm). `None` if it is empty, unparsable or names an unknown algorithm.
///
/// Only an absent header means "Auth Token + HMAC-SHA1"; a present header that yields `None` must
/// be rejected, not downgraded.
pub fn parse_signature_settings(header: &str) -> Option<(String, TwilioAlgorithm)> {
    let (mut key, mut algorithm) = (None, None);
    for part in header.split(',') {
        let (name, value) = part.split_once('=')?;
        let value = value.trim();
        match name.trim() {
            "key" => key = Some(value),
            "algorithm" if value.eq_ignore_ascii_case("HMAC_SHA1") => {
                algorithm = Some(TwilioAlgorithm::HmacSha1);
            }
            "algorithm" if value.eq_ignore_ascii_case("HMAC_SHA256") => {
                algorithm = Some(TwilioAlgorithm::HmacSha256);
            }
            "algorithm" => return None,
            // Twilio may add fields to this beta header; they do not change what we verify.
            _ => {}
        }
    }
    let key = key.filter(|key| !key.is_empty())?;
    Some((key.to_owned(), algorithm?))
}

/// The string Twilio signs: `url`, then for each parameter name in ascending byte order its values
/// sorted with exact duplicates dropped, each appended as `name + value` with no separators.
pub fn twilio_signature_payload(url: &str, params: &[(String, String)]) -> String {
    let mut pairs: Vec<(&str, &str)> = params
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    // Sorting whole pairs orders by name, then each name's values; dedup drops only exact repeats.
    pairs.sort_unstable();
    pairs.dedup();
    pairs
        .into_iter()
        .fold(url.to_owned(), |mut payload, (name, value)| {
            payload.push_str(name);
            payload.push_str(value);
            payload
        })
}

/// Verifies `X-Twilio-Signature` against `url` as given and against the port variant the official
/// SDKs also try: any explicit port removed, or, when there is none, `:443`/`:80` added (Twilio's
/// signing is inconsistent about ports). Constant-time comparison of the decoded tags.
///
/// `key` is the Auth Token (HMAC-SHA1) or the shared key secret (HMAC-SHA256). An empty key is
/// refused with `Mismatch`: an unset secret must not become a key everyone knows.
pub fn verify_twilio(
    url: &str,
    params: &[(String, String)],
    signature_b64: &str,
    key: &[u8],
    algorithm: TwilioAlgorithm,
) -> Result<(), SignatureError> {
    if signature_b64.is_empty() {
        return Err(SignatureError::MissingSignature);
    }
    let claimed = STANDARD
        .decode(signature_b64)
        .map_err(|_| SignatureError::MalformedSignature)?;
    if key.is_empty() {
        return Err(SignatureError::Mismatch);
    }
    let params_part = twilio_signature_payload("", params);
    let matches = |url: &str| -> bool {
        let tag = twilio_mac(&format!("{url}{params_part}"), key, algorithm);
        tag.ct_eq(&claimed).into()
    };
    if matches(url) || port_variant(url).is_some_and(|variant| matches(&variant)) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// Verifies a Twilio `application/json` webhook: the signature covers the URL alone, and the URL's
/// `bodySHA256` query parameter must be the hex SHA-256 of the raw body.
pub fn verify_twilio_json(
    url: &str,
    body: &[u8],
    signature_b64: &str,
    key: &[u8],
    algorithm: TwilioAlgorithm,
) -> Result<(), SignatureError> {
    verify_twilio(url, &[], signature_b64, key, algorithm)?;
    let query = url.split_once('?').map_or("", |(_, rest)| {
        rest.split_once('#').map_or(rest, |(query, _)| query)
    });
    let claimed = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("bodySHA256="))
        .and_then(|hash| hex::decode(hash).ok());
    // Plain equality is fine: once the URL is authenticated both hashes are public values.
    match claimed {
        Some(hash) if hash == Sha256::digest(body).as_slice() => Ok(()),
        _ => Err(SignatureError::Mismatch),
    }
}

/// Computes an `X-Twilio-Signature` value, for tests and for our own fake Twilio.
pub fn sign_twilio(
    url: &str,
    params: &[(String, String)],
    key: &[u8],
    algorithm: TwilioAlgorithm,
) -> String {
    STANDARD.encode(twilio_mac(
        &twilio_signature_payload(url, params),
        key,
        algorithm,
    ))
}

fn twilio_mac(payload: &str, key: &[u8], algorithm: TwilioAlgorithm) -> Vec<u8> {
    match algorithm {
        TwilioAlgorithm::HmacSha1 => hmac::<Hmac<Sha1>>(key, payload.as_bytes()),
        TwilioAlgorithm::HmacSha256 => hmac::<Hmac<Sha256>>(key, payload.as_bytes()),
    }
}

fn hmac<M: Mac + KeyInit>(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut mac = <M as KeyInit>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

/// The one other form of `url` the SDKs accept (twilio-python `remove_port`/`add_port`): without
/// its explicit port if it has one, else with the scheme's default port. Edits the authority by
/// hand, because re-serialising through a URL parser would change the path and query bytes.
fn port_variant(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let authority_end = scheme.len() + 3 + rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &url[scheme.len() + 3..authority_end];
    let host_port = &authority[authority.rfind('@').map_or(0, |at| at + 1)..];
    // IPv6 literals are full of colons; only one after the closing bracket starts a port.
    match host_port
        .rfind(':')
        .filter(|&i| !host_port[i..].contains(']'))
    {
        Some(colon) => {
            let port_start = authority_end - (host_port.len() - colon);
            Some(format!("{}{}", &url[..port_start], &url[authority_end..]))
        }
        None => {
            let port = if scheme.eq_ignore_ascii_case("https") {
                443
            } else if scheme.eq_ignore_ascii_case("http") {
                80
            } else {
                return None;
            };
            Some(format!(
                "{}:{port}{}",
                &url[..authority_end],
                &url[authority_end..]
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // twilio/twilio-python tests/unit/test_request_validator.py
    const TW_TOKEN: &[u8] = b"12345";
    const TW_URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";
    const TW_EXPECTED: &str = "RSOYDt4T1cUTdK1PDd93/VVr8B8=";

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|&(name, value)| (name.to_owned(), value.to_owned()))
            .collect()
    }

    fn twilio_params() -> Vec<(String, String)> {
        params(&[
            ("CallSid", "CA1234567890ABCDE"),
            ("Digits", "1234"),
            ("From", "+14158675309"),
            ("To", "+18005551212"),
            ("Caller", "+14158675309"),
        ])
    }
    #[test]
    fn official_twilio_vector_is_reproduced_and_verifies() {
        let params = twilio_params();
        assert_eq!(
            sign_twilio(TW_URL, &params, TW_TOKEN, TwilioAlgorithm::HmacSha1),
            TW_EXPECTED
        );
        assert_eq!(
            verify_twilio(
                TW_URL,
                &params,
                TW_EXPECTED,
                TW_TOKEN,
                TwilioAlgorithm::HmacSha1
            ),
            Ok(())
        );
    }

    #[test]
    fn twilio_payload_sorts_names_then_values_and_drops_exact_duplicates() {
        let params = params(&[("b", "2"), ("a", "y"), ("a", "x"), ("a", "y"), ("ab", "1")]);
        assert_eq!(
            twilio_signature_payload("https://h/p", &params),
            "https://h/paxayab1b2"
        );
    }

    #[test]
    fn official_twilio_duplicate_values_vector_matches() {
        // twilio-python test_compute_signature_duplicate_multi_dict
        let params = params(&[
            ("Sid", "CA123"),
            ("SidAccount", "AC123"),
            ("Digits", "5678"),
            ("Digits", "1234"),
        ]);
        let expected = "IK+Dwps556ElfBT0I3Rgjkr1wJU=";
        assert_eq!(
            sign_twilio(TW_URL, &params, TW_TOKEN, TwilioAlgorithm::HmacSha1),
            expected
        );

        let mut repeated = params.clone();
        repeated.push(("Digits".into(), "1234".into()));
        assert_eq!(
            verify_twilio(
                TW_URL,
                &repeated,
                expected,
                TW_TOKEN,
                TwilioAlgorithm::HmacSha1
            ),
            Ok(())
        );
    }

    #[test]
    fn official_twilio_port_vectors_verify() {
        // twilio-python test_validation_{removes,adds}_port_on_{https,http}
        let https_1234 = TW_URL.replace(".com", ".com:1234");
        let http = TW_URL.replace("https", "http");
        let http_1234 = https_1234.replace("https", "http");
        let cases = [
            (https_1234.as_str(), TW_EXPECTED),
            (http_1234.as_str(), "Zmvh+3yNM1Phv2jhDCwEM3q5ebU="),
            (TW_URL, "kvajT1Ptam85bY51eRf/AJRuM3w="),
            (http.as_str(), "0ZXoZLH/DfblKGATFgpif+LLRf4="),
        ];
        for (url, signature) in cases {
            assert_eq!(
                verify_twilio(
                    url,
                    &twilio_params(),
                    signature,
                    TW_TOKEN,
                    TwilioAlgorithm::HmacSha1
                ),
                Ok(()),
                "{url}"
            );
        }
    }

    #[test]
    fn twilio_signature_with_or_without_default_port_verifies_either_way() {
        // twilio-node spec/unit/webhooks/webhooks.spec.js port cases
        let with = "https://example.com:443/path?test=param";
        let without = "https://example.com/path?test=param";
        for (signed, requested) in [(with, without), (without, with), (with, with)] {
            let signature = sign_twilio(signed, &[], b"s3cr3t", TwilioAlgorithm::HmacSha1);
            assert_eq!(
                verify_twilio(
                    requested,
                    &[],
                    &signature,
                    b"s3cr3t",
                    TwilioAlgorithm::HmacSha1
                ),
                Ok(()),
                "{signed} -> {requested}"
            );
        }
    }

    #[test]
    fn twilio_signature_for_another_url_or_params_fails() {
        let signature = sign_twilio(
            "https://example.com/path?test=param",
            &[],
            b"s3cr3t",
            TwilioAlgorithm::HmacSha1,
        );
        assert_eq!(
            verify_twilio(
                "https://example.com/path?test=param2",
                &[],
                &signature,
                b"s3cr3t",
                TwilioAlgorithm::HmacSha1
            ),
            Err(SignatureError::Mismatch)
        );

        let mut params = twilio_params();
        params[1].1 = "9999".into();
        assert_eq!(
            verify_twilio(
                TW_URL,
                &params,
                TW_EXPECTED,
                TW_TOKEN,
                TwilioAlgorithm::HmacSha1
            ),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn twilio_signature_made_with_another_token_fails() {
        assert_eq!(
            verify_twilio(
                TW_URL,
                &twilio_params(),
                TW_EXPECTED,
                b"54321",
                TwilioAlgorithm::HmacSha1
            ),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn twilio_hmac_sha256_variant_round_trips_and_is_not_sha1() {
        let key = b"shared-key-secret";
        let signature = sign_twilio(TW_URL, &twilio_params(), key, TwilioAlgorithm::HmacSha256);
        assert_eq!(STANDARD.decode(&signature).unwrap().len(), 32);
        assert_eq!(
            verify_twilio(
                TW_URL,
                &twilio_params(),
                &signature,
                key,
                TwilioAlgorithm::HmacSha256
            ),
            Ok(())
        );
        assert_eq!(
            verify_twilio(
                TW_URL,
                &twilio_params(),
                &signature,
                key,
                TwilioAlgorithm::HmacSha1
            ),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn missing_or_garbage_twilio_signature_is_rejected_before_comparing() {
        let check = |signature| {
            verify_twilio(
                TW_URL,
                &twilio_params(),
                signature,
                TW_TOKEN,
                TwilioAlgorithm::HmacSha1,
            )
        };
        assert_eq!(check(""), Err(SignatureError::MissingSignature));
        assert_eq!(
            check("not base64!"),
            Err(SignatureError::MalformedSignature)
        );
        assert_eq!(check("aGVsbG8="), Err(SignatureError::Mismatch));
    }

    #[test]
    fn empty_twilio_key_never_verifies() {
        let signature = sign_twilio(TW_URL, &[], b"", TwilioAlgorithm::HmacSha1);
        assert_eq!(
            verify_twilio(TW_URL, &[], &signature, b"", TwilioAlgorithm::HmacSha1),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn official_twilio_json_body_vector_verifies_and_checks_the_body_hash() {
        // twilio-python test_validation_of_body_succeeds / test_compute_hash_unicode
        let body = br#"{"property": "value", "boolean": true}"#;
        let hash = "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620";
        assert_eq!(hex::encode(Sha256::digest(body)), hash);
        let url = format!("{TW_URL}&bodySHA256={hash}");
        let signature = "a9nBmqA0ju/hNViExpshrM61xv4=";

        assert_eq!(
            verify_twilio_json(&url, body, signature, TW_TOKEN, TwilioAlgorithm::HmacSha1),
            Ok(())
        );
        assert_eq!(
            verify_twilio_json(
                &url,
                br#"{"property": "value", "boolean": false}"#,
                signature,
                TW_TOKEN,
                TwilioAlgorithm::HmacSha1
            ),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn signature_settings_header_is_parsed() {
        assert_eq!(
            parse_signature_settings("key=KS123,algorithm=HMAC_SHA256"),
            Some(("KS123".into(), TwilioAlgorithm::HmacSha256))
        );
        assert_eq!(
            parse_signature_settings(" algorithm=HMAC_SHA1 , key=KS9 "),
            Some(("KS9".into(), TwilioAlgorithm::HmacSha1))
        );
        for unusable in [
            "",
            "garbage",
            "key=KS123",
            "algorithm=HMAC_SHA256",
            "key=,algorithm=HMAC_SHA256",
            "key=KS123,algorithm=RSA_SHA256",
        ] {
            assert_eq!(parse_signature_settings(unusable), None, "{unusable:?}");
        }
    }

    #[test]
    fn port_variant_keeps_userinfo_ipv6_hosts_and_query_bytes_intact() {
        let cases = [
            (
                "https://u:p@h.com/a?q=it%27s+x",
                Some("https://u:p@h.com:443/a?q=it%27s+x"),
            ),
            ("https://u:p@h.com:8443/a?b", Some("https://u:p@h.com/a?b")),
            ("http://[::1]/cb", Some("http://[::1]:80/cb")),
            ("http://[::1]:8080?x=1", Some("http://[::1]?x=1")),
            ("ftp://h.com/x", None),
            ("no scheme", None),
        ];
        for (url, expected) in cases {
            assert_eq!(port_variant(url).as_deref(), expected, "{url}");
        }
    }
}
