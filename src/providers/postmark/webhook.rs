//! Postmark's webhooks: one JSON event per request, told apart by `RecordType`. Postmark signs
//! nothing; the platform's webhook carries HTTP basic auth with user `postmark` and
//! `POSTMARK_WEBHOOK_PASSWORD`, compared in constant time before the body is read.

use base64::{Engine as _, engine::general_purpose::STANDARD};
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::providers::email_events::{self as email, EmailEvent};

use crate::{
    crypto::CredentialField,
    messaging::{settings::PracticeMessagingConfig, suppression::SuppressionReason},
    outreach::status::OutreachStatus,
    providers::Vendor,
    webhooks::{Context, Receipt, Route, Tenant, WebhookError},
};

/// The user name Postmark's webhooks authenticate as.
pub const USER: &str = "postmark";

/// Bounce `TypeCode`s that mean the address will not take mail (Postmark marks them inactive).
const HARD_BOUNCE: i64 = 1;
const BAD_EMAIL_ADDRESS: i64 = 100_000;
const MANUALLY_DEACTIVATED: i64 = 100_002;

/// Verifies the request's basic auth and ingests its event.
#[tracing::instrument(skip_all)]
pub async fn receive(
    ctx: Context<'_>,
    route: Route<'_>,
    authorization: &str,
    body: &[u8],
) -> Result<Receipt, WebhookError> {
    crate::webhooks::counted(
        "postmark",
        verify_and_ingest(ctx, route, authorization, body),
        |receipt| *receipt,
    )
    .await
}

async fn verify_and_ingest(
    ctx: Context<'_>,
    route: Route<'_>,
    authorization: &str,
    body: &[u8],
) -> Result<Receipt, WebhookError> {
    let tenant = route.tenant()?;
    let password = password(ctx, tenant).await?;
    authenticate(authorization, password.expose_secret())?;
    let event = parse(body)?;
    let mut tx = ctx.pool.begin().await?;
    let receipt = email::ingest(&mut tx, Vendor::Postmark, tenant, vec![event]).await?;
    tx.commit().await?;
    Ok(receipt)
}

/// The route's password: `POSTMARK_WEBHOOK_PASSWORD`, or the one generated for the practice.
async fn password(ctx: Context<'_>, tenant: Tenant) -> Result<SecretString, WebhookError> {
    let password = match tenant {
        Tenant::System => ctx
            .settings
            .vendors
            .system_postmark
            .as_ref()
            .and_then(|system| system.webhook_password.clone()),
        Tenant::Practice(id) => {
            let config = PracticeMessagingConfig::load(ctx.pool, id)
                .await?
                .ok_or_else(|| WebhookError::unauthenticated("no such practice"))?;
            let field = CredentialField::PostmarkWebhookPassword;
            ctx.keyring
                .decrypt_if_present(config.envelope(field), id, field)?
        }
    };
    password.ok_or_else(|| {
        WebhookError::unauthenticated("no Postmark webhook password is configured for this route")
    })
}

/// `Authorization: Basic base64(postmark:password)`, the whole credential compared in constant
/// time.
fn authenticate(authorization: &str, password: &str) -> Result<(), WebhookError> {
    let given = authorization
        .strip_prefix("Basic ")
        .and_then(|encoded| STANDARD.decode(encoded.trim()).ok())
        .ok_or_else(|| WebhookError::unauthenticated("no basic auth credentials"))?;
    let expected = format!("{USER}:{password}");
    if bool::from(given.ct_eq(expected.as_bytes())) {
        Ok(())
    } else {
        Err(WebhookError::unauthenticated(
            "the basic auth credentials are not this webhook's",
        ))
    }
}

fn parse(body: &[u8]) -> Result<EmailEvent, WebhookError> {
    let mut payload: Map<String, Value> = serde_json::from_slice(body)
        .map_err(|e| WebhookError::Malformed(format!("expected one JSON event object: {e}")))?;
    crate::webhooks::replace_nul_in_object(&mut payload);
    let text = |name: &str| payload.get(name).and_then(Value::as_str).map(str::to_owned);
    let record_type = text("RecordType")
        .ok_or_else(|| WebhookError::Malformed("the event has no RecordType".into()))?;
    let message_id = text("MessageID").filter(|id| !id.is_empty());
    let metadata = |name: &str| {
        payload
            .get("Metadata")
            .and_then(|m| m.get(name))
            .and_then(Value::as_str)
            .and_then(|id| id.parse().ok())
    };
    let type_code = payload.get("TypeCode").and_then(Value::as_i64);
    let inactive = payload.get("Inactive").and_then(Value::as_bool) == Some(true);
    let description = text("Description").or_else(|| text("Details"));
    let (status, suppression) = match record_type.as_str() {
        "Delivery" => (Some((OutreachStatus::Delivered, None)), None),
        "Open" => (Some((OutreachStatus::Opened, None)), None),
        "Click" => (Some((OutreachStatus::Clicked, None)), None),
        "SpamComplaint" => (
            Some((OutreachStatus::SpamReported, None)),
            Some(SuppressionReason::SpamReported),
        ),
        "Bounce"
            if inactive
                || matches!(
                    type_code,
                    Some(HARD_BOUNCE | BAD_EMAIL_ADDRESS | MANUALLY_DEACTIVATED)
                ) =>
        {
            let error = match &description {
                Some(description) => format!("hard bounce: {description}"),
                None => "hard bounce".to_string(),
            };
            let reason = if type_code == Some(BAD_EMAIL_ADDRESS) {
                SuppressionReason::Invalid
            } else {
                SuppressionReason::Bounced
            };
            (Some((OutreachStatus::Bounced, Some(error))), Some(reason))
        }
        // A soft or transient bounce: Postmark is still trying.
        "Bounce" => (None, None),
        "SubscriptionChange"
            if payload.get("SuppressSending").and_then(Value::as_bool) == Some(true) =>
        {
            (None, Some(SuppressionReason::Unsubscribed))
        }
        _ => (None, None),
    };
    // Bounces and complaints have their own id; a delivery happens once per message; opens and
    // clicks repeat, and a redelivery repeats their body byte for byte.
    let key = match (
        record_type.as_str(),
        payload.get("ID").and_then(Value::as_i64),
        &message_id,
    ) {
        ("Bounce" | "SpamComplaint", Some(id), _) => format!("postmark:{record_type}:{id}"),
        ("Delivery", _, Some(message)) => format!("postmark:Delivery:{message}"),
        _ => format!("postmark:sha256:{}", hex::encode(Sha256::digest(body))),
    };
    let occurred_at = ["DeliveredAt", "BouncedAt", "ReceivedAt", "ChangedAt"]
        .into_iter()
        .find_map(&text)
        .and_then(|at| DateTime::parse_from_rfc3339(&at).ok())
        .map(|at| at.with_timezone(&Utc));
    Ok(EmailEvent {
        key,
        address: text("Email").or_else(|| text("Recipient")),
        log_id: metadata("outreach_log_id"),
        practice_id: metadata("practice_id"),
        message_id,
        occurred_at,
        status,
        suppression,
        kind: record_type,
        payload: Value::Object(payload),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(credentials: &str) -> String {
        format!("Basic {}", STANDARD.encode(credentials))
    }

    #[test]
    fn only_user_postmark_with_the_configured_password_is_let_in() {
        assert!(authenticate(&basic("postmark:s3cret"), "s3cret").is_ok());
        for refused in [
            basic("postmark:s3cre"),
            basic("postmark:s3cret "),
            basic("other:s3cret"),
            "Bearer s3cret".to_string(),
            "Basic not-base64!".to_string(),
            String::new(),
        ] {
            assert!(authenticate(&refused, "s3cret").is_err(), "{refused:?}");
        }
    }

    #[test]
    fn a_hard_bounce_suppresses_and_a_soft_one_changes_nothing() {
        let hard = parse(br#"{"RecordType":"Bounce","ID":42,"Type":"HardBounce","TypeCode":1,"Email":"pat@example.com","MessageID":"m1","Description":"The server was unable to deliver your message","Inactive":true,"Metadata":{"outreach_log_id":"8d4f0c4e-6c3c-4a59-9f43-0f2a4a0d6e11"}}"#).unwrap();
        assert_eq!(hard.key, "postmark:Bounce:42");
        assert_eq!(hard.suppression, Some(SuppressionReason::Bounced));
        assert_eq!(
            hard.status,
            Some((
                OutreachStatus::Bounced,
                Some("hard bounce: The server was unable to deliver your message".into())
            ))
        );
        assert_eq!(
            hard.log_id,
            Some("8d4f0c4e-6c3c-4a59-9f43-0f2a4a0d6e11".parse().unwrap())
        );
        let soft = parse(br#"{"RecordType":"Bounce","ID":43,"Type":"SoftBounce","TypeCode":4096,"Email":"pat@example.com","Inactive":false}"#).unwrap();
        assert_eq!((soft.status, soft.suppression), (None, None));
    }

    #[test]
    fn deliveries_complaints_and_unsubscribes_map_onto_our_statuses_and_ledger() {
        let delivery = parse(br#"{"RecordType":"Delivery","MessageID":"m1","Recipient":"pat@example.com","DeliveredAt":"2026-12-03T10:00:00Z"}"#).unwrap();
        assert_eq!(delivery.key, "postmark:Delivery:m1");
        assert_eq!(delivery.status, Some((OutreachStatus::Delivered, None)));
        assert!(delivery.occurred_at.is_some());
        let complaint =
            parse(br#"{"RecordType":"SpamComplaint","ID":7,"Email":"pat@example.com"}"#).unwrap();
        assert_eq!(complaint.suppression, Some(SuppressionReason::SpamReported));
        let unsubscribe = parse(br#"{"RecordType":"SubscriptionChange","Recipient":"pat@example.com","SuppressSending":true}"#).unwrap();
        assert_eq!(
            unsubscribe.suppression,
            Some(SuppressionReason::Unsubscribed)
        );
        assert!(parse(br#"{"MessageID":"m1"}"#).is_err());
        assert!(parse(b"[]").is_err());
    }
}
