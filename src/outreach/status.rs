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

use crate::messaging::{
    ProviderKind,
    delivery::{Delivery, DeliveryResult},
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
            DeliveryResult::Suppressed { reason } => (
                OutreachStatus::Suppressed,
                None,
                Some(format!("not sent: the recipient is suppressed ({reason})")),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_parses_back_from_its_stored_name() {
        for status in OutreachStatus::ALL {
            assert_eq!(OutreachStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(OutreachStatus::parse("lost"), None);
    }
}
