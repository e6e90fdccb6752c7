//! Outreach status as a ranked state machine, moved by provider events.
//!
//! The ranks live in one place, the SQL function `outreach_status_rank` (migration
//! `20261129000006_webhook_status.sql`): email climbs queued < sending < sent < delivered < opened <
//! clicked, SMS the same ladder up to delivered; failed, undelivered, bounced, dropped,
//! spam_reported and suppressed are final and share the top rank. An update applies only when the
//! new rank is strictly higher, checked by the `UPDATE` itself, so late, repeated and concurrent
//! callbacks cannot move a status back or replace one final with another.

use sqlx::PgConnection;
use uuid::Uuid;

use crate::{
    compliance::rules::Rule,
    messaging::{
        ProviderKind,
        delivery::{Delivery, DeliveryResult},
    },
};

/// Every value of `outreach_logs.status`, in the order a message moves through them; the last
/// six are final. Providers' events reach all but `suppressed`, which only the sender sets,
/// before any provider sees the message.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    serde::Serialize,
    serde::Deserialize,
    utoipa::ToSchema,
    sqlx::Type,
)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum OutreachStatus {
    Queued,
    Sending,
    Sent,
    Delivered,
    Opened,
    Clicked,
    Failed,
    Undelivered,
    Bounced,
    Dropped,
    SpamReported,
    Suppressed,
}

impl OutreachStatus {
    pub const ALL: [Self; 12] = [
        Self::Queued,
        Self::Sending,
        Self::Sent,
        Self::Delivered,
        Self::Opened,
        Self::Clicked,
        Self::Failed,
        Self::Undelivered,
        Self::Bounced,
        Self::Dropped,
        Self::SpamReported,
        Self::Suppressed,
    ];

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == value)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Sending => "sending",
            Self::Sent => "sent",
            Self::Delivered => "delivered",
            Self::Opened => "opened",
            Self::Clicked => "clicked",
            Self::Failed => "failed",
            Self::Undelivered => "undelivered",
            Self::Bounced => "bounced",
            Self::Dropped => "dropped",
            Self::SpamReported => "spam_reported",
            Self::Suppressed => "suppressed",
        }
    }
}

/// What one delivery leaves on its log: the same for a queued message and a test send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryOutcome {
    pub status: OutreachStatus,
    pub provider: Option<ProviderKind>,
    pub provider_message_id: Option<String>,
    pub fallback_reason: Option<String>,
    pub error: Option<String>,
}

impl DeliveryOutcome {
    pub fn of(delivery: &Delivery) -> Self {
        let (status, provider_message_id, error) = match &delivery.result {
            DeliveryResult::Sent {
                provider_message_id,
            } => (OutreachStatus::Sent, provider_message_id.clone(), None),
            // The ledger of the account about to send: the `opted_out` rule, whatever put the
            // address there (the delivery logs the ledger's own reason).
            DeliveryResult::Suppressed { .. } => (
                OutreachStatus::Suppressed,
                None,
                Some(Rule::OptedOut.as_str().to_string()),
            ),
            DeliveryResult::Failed { error, .. } => {
                (OutreachStatus::Failed, None, Some(error.to_string()))
            }
        };
        Self {
            status,
            provider: delivery.provider,
            provider_message_id,
            fallback_reason: delivery.fallback_reason.clone(),
            error,
        }
    }

    /// A compliance rule withholds the message before any provider is asked.
    pub fn withheld(rule: Rule) -> Self {
        Self {
            status: OutreachStatus::Suppressed,
            provider: None,
            provider_message_id: None,
            fallback_reason: None,
            error: Some(rule.as_str().to_string()),
        }
    }

    /// The message ends `failed` before any provider is asked, for `error`.
    pub fn failed_unsent(error: String) -> Self {
        Self {
            status: OutreachStatus::Failed,
            provider: None,
            provider_message_id: None,
            fallback_reason: None,
            error: Some(error),
        }
    }
}

/// A status an event reports for one log, with the provider's reason when it is a failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusChange {
    pub log_id: Uuid,
    pub status: OutreachStatus,
    pub error: Option<String>,
}

/// Applies the changes in one statement and returns how many logs moved. Several changes for one
/// log collapse to the highest ranked; among equal ranks (finals) the first listed wins.
pub async fn advance(db: &mut PgConnection, changes: &[StatusChange]) -> Result<u64, sqlx::Error> {
    if changes.is_empty() {
        return Ok(0);
    }
    let result = sqlx::query(
        "update outreach_logs l
         set status = c.status, error = coalesce(c.error, l.error), updated_at = now()
         from (
             select distinct on (log_id) log_id, status, error
             from unnest($1::uuid[], $2::text[], $3::text[]) with ordinality as c(log_id, status, error, ord)
             order by log_id, outreach_status_rank(status) desc, ord
         ) c
         where l.id = c.log_id and outreach_status_rank(c.status) > outreach_status_rank(l.status)",
    )
    .bind(changes.iter().map(|c| c.log_id).collect::<Vec<_>>())
    .bind(changes.iter().map(|c| c.status.as_str()).collect::<Vec<_>>())
    .bind(changes.iter().map(|c| c.error.as_deref()).collect::<Vec<_>>())
    .execute(db)
    .await?;
    Ok(result.rows_affected())
}

/// What a provider reports it charged for a message, as it reports it: Twilio gives a charge as
/// a negative amount (`Price=-0.00790`) with its currency (`PriceUnit=USD`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportedPrice {
    /// The amount charged, positive, as a decimal string.
    pub amount: String,
    pub unit: Option<String>,
}

impl ReportedPrice {
    /// `None` for an empty or malformed amount: a price is a detail, never a reason to refuse
    /// (and so to have redelivered) the status it came with.
    pub fn parse(amount: &str, unit: Option<&str>) -> Option<Self> {
        let amount = amount.trim();
        let magnitude = amount.strip_prefix('-').unwrap_or(amount);
        let price = crate::compliance::segments::Price::parse(magnitude).ok()?;
        Some(Self {
            amount: price.to_string(),
            unit: unit
                .map(str::trim)
                .filter(|u| !u.is_empty())
                .map(str::to_uppercase),
        })
    }
}

/// Keeps the latest price a provider reported for a log.
pub async fn record_price(
    db: &mut PgConnection,
    log_id: Uuid,
    price: &ReportedPrice,
) -> Result<(), sqlx::Error> {
    sqlx::query("update outreach_logs set price = $2::numeric, price_unit = $3 where id = $1")
        .bind(log_id)
        .bind(&price.amount)
        .bind(&price.unit)
        .execute(db)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reported_charge_is_kept_positive_and_a_malformed_one_is_ignored() {
        assert_eq!(
            ReportedPrice::parse("-0.00790", Some("usd")),
            Some(ReportedPrice {
                amount: "0.00790".into(),
                unit: Some("USD".into())
            })
        );
        assert_eq!(
            ReportedPrice::parse("0.0079", None).map(|p| p.amount),
            Some("0.0079".into())
        );
        for bad in ["", "-", "1e3", "abc", "0.123456789"] {
            assert_eq!(ReportedPrice::parse(bad, Some("USD")), None, "{bad}");
        }
    }

    #[test]
    fn every_status_parses_back_from_its_stored_name() {
        for status in OutreachStatus::ALL {
            assert_eq!(OutreachStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(OutreachStatus::parse("lost"), None);
    }
}
