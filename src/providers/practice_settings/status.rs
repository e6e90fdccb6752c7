//! How each channel is doing (which account sends now and why, its health, the last test, the
//! last 30 days), and test sends through the real delivery path.

use crate::audit::AuditAction;
use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{SettingsError, invalid, required};
use crate::{
    auth::PracticeCaller,
    messaging::{
        Channel, OutgoingMessage, ProviderKind,
        circuit::{CircuitKey, Health},
        delivery::DeliveryError,
        settings::PracticeMessagingConfig,
    },
    outreach::status::{DeliveryOutcome, OutreachStatus},
    providers::practice_settings::SettingsContext,
    providers::practice_settings::domain::DomainState,
    types::{EmailAddress, PhoneE164},
};

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessagingStatus {
    pub email: ChannelStatus,
    pub sms: ChannelStatus,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChannelStatus {
    pub configured_provider: ProviderKind,
    /// The account a message sent now tries first: the custom one when it is complete (for email,
    /// with its domain verified) and not skipped by an open health circuit; otherwise the system
    /// account, or `outbox` where the platform has no system account for the channel.
    pub provider_in_effect: ProviderKind,
    /// Why the configured custom account is not the one in effect.
    pub reason: Option<String>,
    /// The custom account's health circuit on this instance.
    pub health: Health,
    pub fallback_enabled: bool,
    /// Email only: the SendGrid domain authentication.
    pub domain: Option<DomainState>,
    pub last_tested_at: Option<DateTime<Utc>>,
    pub last30_days: UsageCounts,
}

/// Messages created in the last 30 days (UTC calendar days, today included), by their current
/// status.
#[derive(Debug, Default, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageCounts {
    /// Accepted by a provider: sent, delivered, opened or clicked.
    pub sent: i64,
    /// Delivered, opened or clicked.
    pub delivered: i64,
    /// Failed, undelivered, bounced or dropped.
    pub failed: i64,
}

impl From<DeliveryError> for SettingsError {
    fn from(error: DeliveryError) -> Self {
        match error {
            DeliveryError::Factory(e) => e.into(),
            DeliveryError::Database(e) => e.into(),
        }
    }
}

#[tracing::instrument(skip_all, fields(practice_id = %practice_id))]
pub async fn status(
    ctx: &SettingsContext,
    practice_id: Uuid,
) -> Result<MessagingStatus, SettingsError> {
    let config = ctx.messaging.config(practice_id).await?;
    let mut usage = usage_last_30_days(ctx, practice_id).await?;
    let email = channel_status(
        ctx,
        &config,
        Channel::Email,
        usage.remove(&Channel::Email).unwrap_or_default(),
    )
    .await?;
    let sms = channel_status(
        ctx,
        &config,
        Channel::Sms,
        usage.remove(&Channel::Sms).unwrap_or_default(),
    )
    .await?;
    Ok(MessagingStatus { email, sms })
}

async fn channel_status(
    ctx: &SettingsContext,
    config: &PracticeMessagingConfig,
    channel: Channel,
    usage: UsageCounts,
) -> Result<ChannelStatus, SettingsError> {
    let route = ctx.messaging.route(config.id, channel).await?;
    // `health`, not `should_skip`: reading the status must not use up the half-open probe.
    let circuits = &ctx.messaging.circuits;
    let health = circuits.health(CircuitKey::Practice(config.id, channel));
    // The platform's first account whose circuit is not open, else its last, which always tries.
    let system = route
        .system
        .iter()
        .find(|sender| circuits.health(CircuitKey::System(sender.kind().vendor())) != Health::Open)
        .unwrap_or_else(|| &route.system[route.system.len() - 1])
        .kind();
    let (provider_in_effect, reason) = match &route.custom {
        Some(_) if route.fallback_enabled && health == Health::Open => (
            system,
            Some("the custom account failed repeatedly; the system account sends until a probe or a successful test send shows it works again".to_string()),
        ),
        Some(custom) => (custom.kind(), None),
        None => (system, route.custom_blocker.map(str::to_string)),
    };
    let (configured, last_tested_at, domain) = match channel {
        Channel::Email => (
            config.email_provider,
            config.email_last_tested_at,
            DomainState::from_config(config),
        ),
        Channel::Sms => (config.sms_provider, config.sms_last_tested_at, None),
    };
    Ok(ChannelStatus {
        configured_provider: configured,
        provider_in_effect,
        reason,
        health,
        fallback_enabled: route.fallback_enabled,
        domain,
        last_tested_at,
        last30_days: usage,
    })
}

/// From the running counts (`crate::history::counts`), not a scan of the logs.
async fn usage_last_30_days(
    ctx: &SettingsContext,
    practice_id: Uuid,
) -> Result<HashMap<Channel, UsageCounts>, sqlx::Error> {
    let mut usage: HashMap<Channel, UsageCounts> = HashMap::new();
    for key in crate::history::counts::by_key(&ctx.pool, Some(practice_id), 30).await? {
        if let Some(channel) = Channel::parse(&key.message_type) {
            let counts = usage.entry(channel).or_default();
            counts.sent += key.sent;
            counts.delivered += key.delivered;
            counts.failed += key.failed;
        }
    }
    Ok(usage)
}

/// `POST /email/test` and `/sms/test`.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct TestSendRequest {
    /// An email address for `/email/test`, an E.164 number for `/sms/test`.
    #[schema(required = true, nullable = false, value_type = String, example = "pat@example.com")]
    pub to: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TestSendResult {
    /// A provider accepted the message.
    pub delivered: bool,
    /// The account that sent or failed; absent when the recipient is suppressed.
    pub provider: Option<ProviderKind>,
    /// The custom account failed and the system account was used instead.
    pub fell_back: bool,
    pub fallback_reason: Option<String>,
    pub provider_message_id: Option<String>,
    pub error: Option<String>,
    /// The outreach log entry that records this test.
    pub outreach_log_id: Uuid,
}

/// Sends a test message exactly as outreach would (same account choice, fallback, suppression
/// ledger and health circuit), recorded as an outreach log. `lastTestedAt` is set only when the
/// configured account itself delivered: a test that needed the fallback shows it does not work.
#[tracing::instrument(skip_all, fields(practice_id = %caller.practice_id, channel = channel.as_str()))]
pub async fn send_test(
    ctx: &SettingsContext,
    caller: &PracticeCaller,
    channel: Channel,
    request: TestSendRequest,
) -> Result<TestSendResult, SettingsError> {
    let to = required(request.to)
        .and_then(|to| match channel {
            Channel::Email => EmailAddress::parse(&to).map(String::from),
            Channel::Sms => PhoneE164::parse(&to).map(String::from),
        })
        .map_err(|e| invalid("to", e))?;
    reserve_test_send(ctx, caller.practice_id, channel).await?;
    let config = ctx.messaging.config(caller.practice_id).await?;
    let (subject, body) = match channel {
        Channel::Email => (
            Some(format!("Test email for {}", config.name)),
            format!(
                "This is a test email for {}, sent through Dentite to check the practice's email settings. \
                 If you can read it, email works; there is nothing to do.",
                config.name
            ),
        ),
        Channel::Sms => (
            None,
            format!(
                "{}: test message from Dentite. Your SMS settings work; no reply needed.",
                config.name
            ),
        ),
    };
    let message = OutgoingMessage {
        outreach_log_id: crate::outreach::queue::new_log_id(),
        practice_id: config.id,
        channel,
        to,
        subject,
        body,
        headers: BTreeMap::new(),
    };
    crate::outreach::logs::record_test_send(&ctx.pool, &message).await?;

    // A custom account that waits for its first accepted test is tried alone: the test is what
    // confirms it, and a fallback would prove nothing.
    let route = ctx.messaging.route(config.id, channel).await?;
    let awaiting = route.awaiting_test.clone();
    let delivering = match &awaiting {
        Some(sender) => ctx.messaging.deliver_through(sender, &message).await,
        None => ctx.messaging.deliver(&message, true).await,
    };
    let delivery = match delivering {
        Ok(delivery) => delivery,
        Err(error) => {
            // Leave no log stuck in `sending`.
            crate::outreach::logs::record_outcome(
                &ctx.pool,
                message.outreach_log_id,
                &DeliveryOutcome::failed_unsent("the service could not attempt delivery".into()),
            )
            .await?;
            return Err(error.into());
        }
    };
    let outcome = DeliveryOutcome::of(&delivery);
    crate::outreach::logs::record_outcome(&ctx.pool, message.outreach_log_id, &outcome).await?;
    let delivered = outcome.status == OutreachStatus::Sent;
    if delivered && !delivery.fell_back {
        crate::messaging::settings::record_tested(&ctx.pool, config.id, channel).await?;
        // The trigger tells every instance; this one must show the change on the next read.
        ctx.messaging.invalidate(config.id).await;
    }
    if delivered && let Some(sender) = awaiting {
        let mut tx = ctx.pool.begin().await?;
        if crate::messaging::accounts::confirm_sending(&mut tx, config.id, sender.kind().vendor())
            .await?
        {
            super::commit_change(
                tx,
                &ctx.messaging,
                config.id,
                Some(caller.user_id),
                match channel {
                    Channel::Email => AuditAction::EmailConfirm,
                    Channel::Sms => AuditAction::SmsConfirm,
                },
                &["sendingConfirmed"],
            )
            .await?;
        }
    }
    Ok(TestSendResult {
        delivered,
        provider: delivery.provider,
        fell_back: delivery.fell_back,
        fallback_reason: delivery.fallback_reason,
        provider_message_id: outcome.provider_message_id,
        error: outcome.error,
        outreach_log_id: message.outreach_log_id,
    })
}

/// Takes a token from the account's send rate limit (the one the queue obeys) and one test send
/// from the practice's hourly quota, or says how long to wait. The rate limit comes first: its
/// tokens come back by themselves, the quota's only at the next hour.
async fn reserve_test_send(
    ctx: &SettingsContext,
    practice_id: Uuid,
    channel: Channel,
) -> Result<(), SettingsError> {
    let route = ctx.messaging.route(practice_id, channel).await?;
    let primary = route.primary();
    if let Some((account, rate)) = primary
        .account_key()
        .zip(crate::outreach::rate_limit::rate_for(
            &ctx.settings.queue,
            primary.kind(),
        ))
        && let Some(retry_after) =
            crate::outreach::rate_limit::try_acquire(&ctx.pool, account, rate).await?
    {
        return Err(SettingsError::TestSendLimited { retry_after });
    }
    let limit = i32::try_from(ctx.settings.test_sends_per_hour).unwrap_or(i32::MAX);
    // The conflict arm takes the row lock and re-reads `used`, so each request sees every
    // reservation committed before it.
    let reserved: Option<i32> = sqlx::query_scalar(
        "insert into test_send_quota (practice_id, window_start, used)
         values ($1, date_trunc('hour', now()), 1)
         on conflict (practice_id, window_start) do update set used = test_send_quota.used + 1
         where test_send_quota.used < $2
         returning used",
    )
    .bind(practice_id)
    .bind(limit)
    .fetch_optional(&ctx.pool)
    .await?;
    if reserved.is_none() {
        let seconds_left: f64 = sqlx::query_scalar(
            "select extract(epoch from date_trunc('hour', now()) + interval '1 hour' - now())::float8",
        )
        .fetch_one(&ctx.pool)
        .await?;
        return Err(SettingsError::TestSendLimited {
            retry_after: std::time::Duration::from_secs_f64(seconds_left.max(1.0)),
        });
    }
    if reserved == Some(1) {
        // The first reservation of an hour: earlier hours are spent and count for nothing.
        sqlx::query(
            "delete from test_send_quota where practice_id = $1 and window_start < date_trunc('hour', now())",
        )
        .bind(practice_id)
        .execute(&ctx.pool)
        .await?;
    }
    Ok(())
}
