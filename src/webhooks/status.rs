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

/// The statuses a provider event can move a log to (`suppressed` is set only by the sender,
/// before any provider sees the message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
}

impl OutreachStatus {
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
        }
    }

    /// The status a SendGrid event type reports. `deferred` (still retrying), unsubscribes
    /// (a ledger matter, not a delivery state) and unknown types change nothing.
    pub fn from_sendgrid_event(event: &str) -> Option<Self> {
        match event {
            "processed" => Some(Self::Sent),
            "delivered" => Some(Self::Delivered),
            "open" => Some(Self::Opened),
            "click" => Some(Self::Clicked),
            "bounce" => Some(Self::Bounced),
            "dropped" => Some(Self::Dropped),
            "spamreport" => Some(Self::SpamReported),
            _ => None,
        }
    }

    /// The status a Twilio `MessageStatus` reports. `read` (WhatsApp/RCS) implies delivery, and a
    /// `canceled` scheduled send never went out. `partially_delivered` (the carrier confirmed
    /// some parts of the message but not all) counts as delivered, since something reached the
    /// handset and nothing will be retried; the caller records that it was partial.
    pub fn from_twilio_status(status: &str) -> Option<Self> {
        match status {
            "queued" | "accepted" | "scheduled" => Some(Self::Queued),
            "sending" => Some(Self::Sending),
            "sent" => Some(Self::Sent),
            "delivered" | "read" | "partially_delivered" => Some(Self::Delivered),
            "undelivered" => Some(Self::Undelivered),
            "failed" | "canceled" => Some(Self::Failed),
            _ => None,
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
    fn sendgrid_events_map_to_statuses_and_the_rest_change_nothing() {
        let cases = [
            ("processed", Some(OutreachStatus::Sent)),
            ("delivered", Some(OutreachStatus::Delivered)),
            ("open", Some(OutreachStatus::Opened)),
            ("click", Some(OutreachStatus::Clicked)),
            ("bounce", Some(OutreachStatus::Bounced)),
            ("dropped", Some(OutreachStatus::Dropped)),
            ("spamreport", Some(OutreachStatus::SpamReported)),
            ("deferred", None),
            ("unsubscribe", None),
            ("group_unsubscribe", None),
            ("account_status_change", None),
        ];
        for (event, status) in cases {
            assert_eq!(
                OutreachStatus::from_sendgrid_event(event),
                status,
                "{event}"
            );
        }
    }

    #[test]
    fn twilio_statuses_map_onto_the_sms_ladder() {
        let cases = [
            ("accepted", Some(OutreachStatus::Queued)),
            ("scheduled", Some(OutreachStatus::Queued)),
            ("sending", Some(OutreachStatus::Sending)),
            ("sent", Some(OutreachStatus::Sent)),
            ("read", Some(OutreachStatus::Delivered)),
            ("undelivered", Some(OutreachStatus::Undelivered)),
            ("canceled", Some(OutreachStatus::Failed)),
            ("receiving", None),
            ("partially_delivered", Some(OutreachStatus::Delivered)),
        ];
        for (status, expected) in cases {
            assert_eq!(
                OutreachStatus::from_twilio_status(status),
                expected,
                "{status}"
            );
        }
    }
}
