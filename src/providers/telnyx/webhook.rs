//! Telnyx's webhooks: `{"data": {"event_type", "id", "occurred_at", "payload"}, "meta"}`, signed
//! with Ed25519 over `telnyx-timestamp|raw body`. Delivery updates (`message.sent`,
//! `message.finalized`) advance the message's log; inbound messages (`message.received`) go
//! through the same keywords, consent and replies as every SMS vendor's.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

use super::{settings::TelnyxAccount, signature::PublicKey};
use crate::providers::sms_events::{self as sms, InboundSms, Keyword, SmsLog, opt_out};
use crate::{
    messaging::{ProviderKind, settings::PracticeMessagingConfig, suppression::SuppressionSource},
    outreach::status::{self, OutreachStatus, ReportedPrice, StatusChange},
    providers::Vendor,
    webhooks::{Context, Receipt, Route, Tenant, WebhookError, events::NewEvent},
};

/// Telnyx's error for a send to a number that replied STOP to the messaging profile.
const BLOCKED_BY_STOP: &str = "40300";

/// A request as received: the two signature headers (empty when absent) and the untouched body.
#[derive(Debug, Clone, Copy)]
pub struct SignedDelivery<'a> {
    pub signature: &'a str,
    pub timestamp: &'a str,
    pub body: &'a [u8],
}

#[derive(Debug, Deserialize)]
struct Envelope {
    data: Event,
}

#[derive(Debug, Deserialize)]
struct Event {
    id: String,
    event_type: String,
    occurred_at: Option<DateTime<Utc>>,
    payload: Message,
}

#[derive(Debug, Deserialize)]
struct Message {
    id: String,
    #[serde(default)]
    from: Option<Party>,
    #[serde(default)]
    to: Vec<Party>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    errors: Vec<ErrorObject>,
    #[serde(default)]
    cost: Option<Cost>,
}

#[derive(Debug, Deserialize)]
struct Party {
    phone_number: String,
    #[serde(default)]
    status: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ErrorObject {
    code: Option<String>,
    title: Option<String>,
    detail: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Cost {
    amount: Option<String>,
    currency: Option<String>,
}

/// Verifies the request with the route's public key and applies it.
#[tracing::instrument(skip_all)]
pub async fn receive(
    ctx: Context<'_>,
    route: Route<'_>,
    request: SignedDelivery<'_>,
) -> Result<Receipt, WebhookError> {
    crate::webhooks::counted("telnyx", verify_and_apply(ctx, route, request), |receipt| {
        *receipt
    })
    .await
}

async fn verify_and_apply(
    ctx: Context<'_>,
    route: Route<'_>,
    request: SignedDelivery<'_>,
) -> Result<Receipt, WebhookError> {
    let tenant = route.tenant()?;
    let key = public_key(ctx, tenant).await?;
    key.verify(
        request.timestamp,
        request.signature,
        request.body,
        Utc::now().timestamp(),
    )
    .map_err(|e| WebhookError::unauthenticated(format!("Telnyx signature: {e}")))?;
    let mut payload: Value = serde_json::from_slice(request.body)
        .map_err(|e| WebhookError::Malformed(format!("expected a Telnyx event: {e}")))?;
    crate::webhooks::replace_nul_in_json(&mut payload);
    let Envelope { data: event } = serde_json::from_value(payload.clone())
        .map_err(|e| WebhookError::Malformed(format!("expected a Telnyx message event: {e}")))?;
    let record = NewEvent {
        key: format!("telnyx:{}", event.id),
        practice_id: tenant.practice_id(),
        outreach_log_id: None,
        event_type: event.event_type.clone(),
        provider_message_id: Some(event.payload.id.clone()),
        payload,
        occurred_at: event.occurred_at,
    };
    let stored = match event.event_type.as_str() {
        "message.received" => receive_message(ctx, tenant, &event, record).await?,
        _ => apply_update(ctx, tenant, &event, record).await?,
    };
    Ok(Receipt {
        received: 1,
        stored: usize::from(stored),
    })
}

/// The public key of the route's account: `TELNYX_PUBLIC_KEY`, or the practice's own.
async fn public_key(ctx: Context<'_>, tenant: Tenant) -> Result<PublicKey, WebhookError> {
    let key = match tenant {
        Tenant::System => ctx
            .settings
            .vendors
            .system_telnyx
            .as_ref()
            .and_then(|system| system.public_key.clone()),
        Tenant::Practice(id) => PracticeMessagingConfig::load(ctx.pool, id)
            .await?
            .ok_or_else(|| WebhookError::unauthenticated("no such practice"))?
            .accounts
            .get(Vendor::Telnyx)
            .and_then(|account| account.settings::<TelnyxAccount>().public_key),
    };
    let key = key.ok_or_else(|| {
        WebhookError::unauthenticated("no Telnyx public key is configured for this route")
    })?;
    PublicKey::from_base64(&key)
        .map_err(|e| WebhookError::unauthenticated(format!("the configured public key {e}")))
}

async fn receive_message(
    ctx: Context<'_>,
    tenant: Tenant,
    event: &Event,
    record: NewEvent,
) -> Result<bool, WebhookError> {
    let message = &event.payload;
    let from = message
        .from
        .as_ref()
        .map(|party| party.phone_number.as_str())
        .filter(|from| !from.is_empty())
        .ok_or_else(|| WebhookError::Malformed("the inbound message has no from".into()))?;
    let body = message.text.as_deref().unwrap_or_default();
    let provider = match tenant {
        Tenant::System => ProviderKind::SystemTelnyx,
        Tenant::Practice(_) => ProviderKind::CustomTelnyx,
    };
    let inbound = InboundSms {
        provider,
        message_id: &message.id,
        from,
        to: message
            .to
            .first()
            .map_or("", |party| party.phone_number.as_str()),
        body,
        opt_out_type: None,
        event: NewEvent {
            event_type: Keyword::classify(body, None).event_type().to_string(),
            ..record
        },
    };
    Ok(sms::receive_inbound(ctx.pool, tenant, inbound).await?)
}

async fn apply_update(
    ctx: Context<'_>,
    tenant: Tenant,
    event: &Event,
    record: NewEvent,
) -> Result<bool, WebhookError> {
    let message = &event.payload;
    let mut tx = ctx.pool.begin().await?;
    let log = SmsLog::find(&mut tx, &message.id, tenant).await?;
    let record = NewEvent {
        practice_id: log
            .as_ref()
            .map(|log| log.practice_id)
            .or(record.practice_id),
        outreach_log_id: log.as_ref().map(|log| log.id),
        ..record
    };
    let stored = sms::append_once(&mut tx, Vendor::Telnyx, tenant, record).await?;
    if stored {
        let recipient = message.to.first();
        let reported = recipient.and_then(|party| party.status.as_deref());
        match &log {
            Some(log) => {
                tracing::info!(
                    "Processing Telnyx {} for practice {} (provider: {})",
                    reported.unwrap_or(&event.event_type),
                    log.practice_id,
                    log.messaging_provider.as_deref().unwrap_or("unknown")
                );
                if let Some(price) = message.cost.as_ref().and_then(|cost| {
                    ReportedPrice::parse(cost.amount.as_deref()?, cost.currency.as_deref())
                }) {
                    status::record_price(&mut tx, log.id, &price).await?;
                }
                if let Some(status) = reported.and_then(reported_status) {
                    let error = message.errors.first().map(|error| {
                        let text = error
                            .detail
                            .as_deref()
                            .or(error.title.as_deref())
                            .unwrap_or("failed");
                        match &error.code {
                            Some(code) => format!("{text} (Telnyx error {code})"),
                            None => text.to_string(),
                        }
                    });
                    status::advance(
                        &mut tx,
                        &[StatusChange {
                            log_id: log.id,
                            status,
                            error,
                        }],
                    )
                    .await?;
                }
            }
            None => {
                tracing::info!(message_id = %message.id, "Telnyx {} for an unknown message; kept", event.event_type)
            }
        }
        if message
            .errors
            .iter()
            .any(|error| error.code.as_deref() == Some(BLOCKED_BY_STOP))
            && let Some(to) = recipient
        {
            crate::outreach::opt_outs::suppress(
                &mut tx,
                &[opt_out(
                    tenant,
                    &to.phone_number,
                    SuppressionSource::ProviderRefusal,
                )],
            )
            .await?;
        }
    }
    tx.commit().await?;
    Ok(stored)
}

/// The status a recipient's `status` reports. `delivery_unconfirmed` (the carrier gave no
/// receipt) stays `sent`: nothing says it failed.
fn reported_status(status: &str) -> Option<OutreachStatus> {
    match status {
        "queued" => Some(OutreachStatus::Queued),
        "sending" => Some(OutreachStatus::Sending),
        "sent" | "delivery_unconfirmed" => Some(OutreachStatus::Sent),
        "delivered" => Some(OutreachStatus::Delivered),
        "sending_failed" => Some(OutreachStatus::Failed),
        "delivery_failed" | "expired" => Some(OutreachStatus::Undelivered),
        _ => None,
    }
}
