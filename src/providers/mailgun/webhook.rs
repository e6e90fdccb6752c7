//! Mailgun's webhooks: one JSON event per request, `{"signature": {...}, "event-data": {...}}`.
//!
//! The signature covers only its timestamp and token, not the event, so a captured request
//! could carry edited event data under a valid signature. Hence each token is accepted once, for
//! the one event it first came with (a redelivery of that event is a duplicate, anything else
//! under its token is refused), and the timestamp must be younger than
//! `MAILGUN_WEBHOOK_MAX_AGE_SECS`, which also bounds how long tokens are remembered.

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::signature::{self, Signature};
use super::tokens;
use crate::providers::email_events::{self as email, EmailEvent};
use crate::{
    crypto::CredentialField,
    messaging::{settings::PracticeMessagingConfig, suppression::SuppressionReason},
    outreach::status::OutreachStatus,
    providers::Vendor,
    webhooks::{Context, Receipt, Route, Tenant, WebhookError},
};

#[derive(Deserialize)]
struct Body {
    signature: Signature,
    #[serde(rename = "event-data")]
    event_data: Map<String, Value>,
}

/// Verifies the request's signature and token and ingests its event.
#[tracing::instrument(skip_all)]
pub async fn receive(
    ctx: Context<'_>,
    route: Route<'_>,
    body: &[u8],
) -> Result<Receipt, WebhookError> {
    crate::webhooks::counted("mailgun", verify_and_ingest(ctx, route, body), |receipt| {
        *receipt
    })
    .await
}

async fn verify_and_ingest(
    ctx: Context<'_>,
    route: Route<'_>,
    body: &[u8],
) -> Result<Receipt, WebhookError> {
    let tenant = route.tenant()?;
    let key = signing_key(ctx, tenant).await?;
    let Body {
        signature: signed,
        event_data,
    } = serde_json::from_slice(body).map_err(|e| {
        WebhookError::Malformed(format!(
            "expected {{\"signature\": {{timestamp, token, signature}}, \"event-data\": {{…}}}}: {e}"
        ))
    })?;
    signature::verify(key.expose_secret().as_bytes(), &signed)
        .map_err(|e| WebhookError::unauthenticated(format!("Mailgun signature: {e}")))?;
    let max_age = ctx.settings.vendors.mailgun_webhook_max_age;
    let signed_at: f64 = signed
        .timestamp
        .trim()
        .parse()
        .map_err(|_| WebhookError::unauthenticated("the timestamp is not unix seconds"))?;
    if (Utc::now().timestamp() as f64 - signed_at).abs() > max_age.as_secs_f64() {
        return Err(WebhookError::unauthenticated(
            "the timestamp is outside MAILGUN_WEBHOOK_MAX_AGE_SECS",
        ));
    }
    let event = read(event_data);
    let mut tx = ctx.pool.begin().await?;
    let token = tokens::claim(&mut tx, Vendor::Mailgun, &signed.token, &event.key, max_age).await?;
    if token == tokens::Claim::Taken {
        return Err(WebhookError::unauthenticated(
            "this signature's token came with another event",
        ));
    }
    let receipt = email::ingest(&mut tx, Vendor::Mailgun, tenant, vec![event]).await?;
    tx.commit().await?;
    Ok(receipt)
}

/// The route's signing key: `MAILGUN_WEBHOOK_SIGNING_KEY`, or the practice's own account's.
async fn signing_key(ctx: Context<'_>, tenant: Tenant) -> Result<SecretString, WebhookError> {
    let key = match tenant {
        Tenant::System => ctx
            .settings
            .vendors
            .system_mailgun
            .as_ref()
            .and_then(|system| system.webhook_signing_key.clone()),
        Tenant::Practice(id) => {
            let config = PracticeMessagingConfig::load(ctx.pool, id)
                .await?
                .ok_or_else(|| WebhookError::unauthenticated("no such practice"))?;
            let field = CredentialField::MailgunWebhookSigningKey;
            ctx.keyring
                .decrypt_if_present(config.envelope(field), id, field)?
        }
    };
    key.ok_or_else(|| {
        WebhookError::unauthenticated("no Mailgun webhook signing key is configured for this route")
    })
}

fn read(mut data: Map<String, Value>) -> EmailEvent {
    crate::webhooks::replace_nul_in_object(&mut data);
    let text = |value: Option<&Value>| value.and_then(Value::as_str).map(str::to_owned);
    let kind = text(data.get("event")).unwrap_or_else(|| "unknown".into());
    let variable = |name: &str| {
        data.get("user-variables")
            .and_then(|v| v.get(name))
            .and_then(Value::as_str)
            .and_then(|id| id.parse().ok())
    };
    let status_detail = data.get("delivery-status").and_then(|status| {
        text(status.get("description"))
            .filter(|d| !d.is_empty())
            .or_else(|| text(status.get("message")))
            .filter(|d| !d.is_empty())
    });
    let permanent = text(data.get("severity")).as_deref() == Some("permanent");
    let reason = text(data.get("reason"));
    let (status, suppression) = match kind.as_str() {
        "accepted" => (Some((OutreachStatus::Sent, None)), None),
        "delivered" => (Some((OutreachStatus::Delivered, None)), None),
        "opened" => (Some((OutreachStatus::Opened, None)), None),
        "clicked" => (Some((OutreachStatus::Clicked, None)), None),
        "rejected" => (Some((OutreachStatus::Dropped, reason.clone())), None),
        "complained" => (
            Some((OutreachStatus::SpamReported, None)),
            Some(SuppressionReason::SpamReported),
        ),
        "unsubscribed" => (None, Some(SuppressionReason::Unsubscribed)),
        "failed" if permanent => {
            let error = match &status_detail {
                Some(detail) => format!("hard bounce: {detail}"),
                None => "hard bounce".to_string(),
            };
            // Mailgun refused to send because its own list holds the address.
            let ledger = match reason.as_deref() {
                Some("suppress-unsubscribe") => SuppressionReason::Unsubscribed,
                Some("suppress-complaint") => SuppressionReason::SpamReported,
                _ => SuppressionReason::Bounced,
            };
            (Some((OutreachStatus::Bounced, Some(error))), Some(ledger))
        }
        // A temporary failure: Mailgun is still trying.
        _ => (None, None),
    };
    let key = match text(data.get("id")).filter(|id| !id.is_empty()) {
        Some(id) => format!("mailgun:{id}"),
        None => format!(
            "mailgun:sha256:{}",
            hex::encode(Sha256::digest(Value::Object(data.clone()).to_string()))
        ),
    };
    EmailEvent {
        key,
        address: text(data.get("recipient")),
        log_id: variable("outreach_log_id"),
        practice_id: variable("practice_id"),
        message_id: text(
            data.get("message")
                .and_then(|m| m.get("headers"))
                .and_then(|h| h.get("message-id")),
        ),
        occurred_at: data
            .get("timestamp")
            .and_then(Value::as_f64)
            .and_then(|secs| DateTime::from_timestamp_millis((secs * 1000.0) as i64)),
        status,
        suppression,
        kind,
        payload: Value::Object(data),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(json: &str) -> EmailEvent {
        read(serde_json::from_str(json).unwrap())
    }

    #[test]
    fn a_permanent_failure_is_a_hard_bounce_with_mailguns_reason_and_a_temporary_one_waits() {
        let bounce = event(
            r#"{"event":"failed","id":"ev1","severity":"permanent","reason":"bounce","recipient":"pat@example.com",
                "timestamp":1733220000.25,"delivery-status":{"code":550,"message":"","description":"No such mailbox"},
                "message":{"headers":{"message-id":"20261203.1@mg.example.com"}},
                "user-variables":{"outreach_log_id":"8d4f0c4e-6c3c-4a59-9f43-0f2a4a0d6e11"}}"#,
        );
        assert_eq!(bounce.key, "mailgun:ev1");
        assert_eq!(
            bounce.status,
            Some((
                OutreachStatus::Bounced,
                Some("hard bounce: No such mailbox".into())
            ))
        );
        assert_eq!(bounce.suppression, Some(SuppressionReason::Bounced));
        assert_eq!(
            bounce.message_id.as_deref(),
            Some("20261203.1@mg.example.com")
        );
        assert!(bounce.log_id.is_some() && bounce.occurred_at.is_some());
        let temporary = event(r#"{"event":"failed","id":"ev2","severity":"temporary"}"#);
        assert_eq!((temporary.status, temporary.suppression), (None, None));
    }

    #[test]
    fn a_drop_for_mailguns_own_unsubscribe_list_suppresses_as_an_unsubscribe() {
        let dropped = event(
            r#"{"event":"failed","id":"ev3","severity":"permanent","reason":"suppress-unsubscribe","recipient":"pat@example.com"}"#,
        );
        assert_eq!(dropped.suppression, Some(SuppressionReason::Unsubscribed));
        let complaint = event(r#"{"event":"complained","id":"ev4","recipient":"pat@example.com"}"#);
        assert_eq!(complaint.suppression, Some(SuppressionReason::SpamReported));
        let delivered = event(r#"{"event":"delivered","id":"ev5"}"#);
        assert_eq!(delivered.status, Some((OutreachStatus::Delivered, None)));
    }
}
