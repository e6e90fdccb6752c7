//! What every webhook signature check reports when it refuses a request.

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    #[error("signature header is missing")]
    MissingSignature,
    #[error("timestamp header is missing or not a unix time")]
    BadTimestamp,
    #[error("signature is not valid base64/DER")]
    MalformedSignature,
    #[error("signature does not match")]
    Mismatch,
    #[error("verification key is not a P-256 public key")]
    BadKey,
}
