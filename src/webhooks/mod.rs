//! Provider webhooks: SendGrid event batches and Twilio status callbacks and inbound SMS,
//! authenticated by the provider's signature, per tenant, idempotent.
//!
//! Every request is checked with the key of the tenant its route names before anything in it is
//! trusted. Each event is appended once to `provider_events` (its key is unique per route, so a
//! tenant cannot pre-empt another's events by copying their ids), and only an event stored for
//! the first time changes a status or a suppression ledger, so a provider's retries and
//! duplicate deliveries change nothing twice.

pub mod events;

use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{crypto::CryptoError, messaging::suppression::Scope};

/// What a vendor's webhook needs of the service: the database, the configuration and the keys.
#[derive(Clone, Copy)]
pub struct Context<'a> {
    pub pool: &'a sqlx::PgPool,
    pub settings: &'a crate::config::Settings,
    /// Decrypts a practice's stored webhook secrets.
    pub keyring: &'a crate::crypto::Keyring,
    /// Our public URLs: what a vendor signed a request to.
    pub urls: &'a crate::messaging::provider::urls::OurUrls,
}

/// The route a request came to: the platform's own, or a practice's by the id in its path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route<'a> {
    System,
    Practice(&'a str),
}

/// Whose account a webhook belongs to, once the route's practice id is known to be well formed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tenant {
    System,
    Practice(Uuid),
}

impl Route<'_> {
    /// A malformed practice id is refused like an unknown practice: a caller learns nothing
    /// about which ids exist.
    pub(crate) fn tenant(self) -> Result<Tenant, WebhookError> {
        match self {
            Self::System => Ok(Tenant::System),
            Self::Practice(segment) => segment.parse().map(Tenant::Practice).map_err(|_| {
                WebhookError::unauthenticated("the practice id in the path is malformed")
            }),
        }
    }
}

impl Tenant {
    pub fn practice_id(self) -> Option<Uuid> {
        match self {
            Self::System => None,
            Self::Practice(id) => Some(id),
        }
    }

    /// The ledger an opt-out received on this tenant's number belongs to: on the shared system
    /// number it binds every practice that sends from it.
    pub fn scope(self) -> Scope {
        match self {
            Self::System => Scope::SystemSender,
            Self::Practice(id) => Scope::Practice(id),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// Not signed by the account the route names; the reason is for the log, not the caller.
    #[error("webhook not authenticated: {0}")]
    Unauthenticated(String),
    /// Signed correctly, but the posted account is not the one this route belongs to.
    #[error("the posted AccountSid is not this webhook's account")]
    WrongAccount,
    #[error("{0}")]
    Malformed(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Credential(#[from] CryptoError),
}

impl WebhookError {
    pub(crate) fn unauthenticated(reason: impl Into<String>) -> Self {
        Self::Unauthenticated(reason.into())
    }

    fn outcome(&self) -> &'static str {
        match self {
            Self::Unauthenticated(_) => "unauthenticated",
            Self::WrongAccount => "wrong_account",
            Self::Malformed(_) => "malformed",
            Self::Database(_) | Self::Credential(_) => "error",
        }
    }
}

/// Postgres text and jsonb cannot hold NUL, so a NUL a provider sends (only ever inside a
/// correctly signed request: the signature is checked over the bytes as received) is stored as
/// U+FFFD, the replacement character, rather than failing the whole batch with it.
pub(crate) fn replace_nul(text: &mut String) {
    if text.contains('\0') {
        *text = text.replace('\0', "\u{FFFD}");
    }
}

/// [`replace_nul`] in every string and key of a JSON value.
pub(crate) fn replace_nul_in_json(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::String(text) => replace_nul(text),
        Value::Array(items) => items.iter_mut().for_each(replace_nul_in_json),
        Value::Object(fields) => replace_nul_in_object(fields),
        _ => {}
    }
}

pub(crate) fn replace_nul_in_object(fields: &mut serde_json::Map<String, serde_json::Value>) {
    if fields.keys().any(|key| key.contains('\0')) {
        *fields = std::mem::take(fields)
            .into_iter()
            .map(|(mut key, value)| {
                replace_nul(&mut key);
                (key, value)
            })
            .collect();
    }
    fields.values_mut().for_each(replace_nul_in_json);
}

/// What one request delivered: how many events, and how many of them were new.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Receipt {
    pub received: usize,
    pub stored: usize,
}

/// Awaits the handling of one request and counts it in `webhook_events_total{provider, outcome}`:
/// its events as `stored` or `duplicate`, or the request once under the reason it was refused.
pub(crate) async fn counted<T>(
    provider: &'static str,
    handling: impl Future<Output = Result<T, WebhookError>>,
    receipt: impl FnOnce(&T) -> Receipt,
) -> Result<T, WebhookError> {
    let result = handling.await;
    let counter = |outcome: &'static str, n: usize| {
        metrics::counter!("webhook_events_total", "provider" => provider, "outcome" => outcome)
            .increment(n as u64);
    };
    match &result {
        Ok(value) => {
            let Receipt { received, stored } = receipt(value);
            counter("stored", stored);
            counter("duplicate", received - stored);
        }
        Err(error) => counter(error.outcome(), 1),
    }
    result
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::replace_nul_in_json;

    #[test]
    fn nul_in_strings_and_keys_becomes_the_replacement_character_and_nothing_else_changes() {
        let mut value = json!({"a\u{0}": ["x\u{0}y", 1, null], "b": {"c": "\\u0000"}});
        replace_nul_in_json(&mut value);
        assert_eq!(
            value,
            json!({"a\u{FFFD}": ["x\u{FFFD}y", 1, null], "b": {"c": "\\u0000"}})
        );
    }
}
