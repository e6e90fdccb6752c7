//! What every email vendor's events share once verified: finding the log an event is about, as
//! far as the route may act on it, and, for the vendors whose events each report one status and
//! at most one ledger entry (Postmark, Mailgun), the whole ingest of a batch in one transaction.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::webhooks::{
    Receipt, Tenant,
    events::{self, NewEvent},
};
use crate::{
    messaging::{
        Channel,
        suppression::{Scope, Suppression, SuppressionReason, SuppressionSource},
    },
    outreach::status::{self, OutreachStatus, StatusChange},
    providers::Vendor,
};

/// How an event names the message it is about: our own ids, carried back as the vendor's custom
/// data, or the vendor's message id our send stored.
pub trait NamesMessage {
    fn log_id(&self) -> Option<Uuid>;
    fn practice_id(&self) -> Option<Uuid>;
    fn message_id(&self) -> Option<&str>;
}

#[derive(Debug, sqlx::FromRow)]
pub struct EmailLog {
    pub id: Uuid,
    pub practice_id: Uuid,
    pub messaging_provider: Option<String>,
    pub provider_message_id: Option<String>,
}

/// What an event is about, as far as this route may act on it.
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    Log(&'a EmailLog),
    /// No log of ours; kept, and its address consequences still apply to the route's practice.
    Unknown,
    /// Names another practice than the route's (or than its own log's): kept, changes nothing.
    /// A practice authenticates whatever it posts to its own route, so its route must not reach
    /// another practice's messages.
    Foreign,
}

impl<'a> Target<'a> {
    pub fn log(self) -> Option<&'a EmailLog> {
        match self {
            Self::Log(log) => Some(log),
            Self::Unknown | Self::Foreign => None,
        }
    }
}

/// The email logs a batch names, by id and by provider message id, in one query.
pub struct Logs {
    pub(crate) by_id: HashMap<Uuid, EmailLog>,
    pub(crate) by_message_id: HashMap<String, Uuid>,
}

impl Logs {
    pub async fn find(
        db: &mut PgConnection,
        events: &[impl NamesMessage],
    ) -> Result<Self, sqlx::Error> {
        let rows: Vec<EmailLog> = sqlx::query_as(
            "select id, practice_id, messaging_provider, provider_message_id from outreach_logs
             where message_type = 'email' and (id = any($1) or provider_message_id = any($2))",
        )
        .bind(events.iter().filter_map(|e| e.log_id()).collect::<Vec<_>>())
        .bind(
            events
                .iter()
                .filter_map(|e| e.message_id())
                .collect::<Vec<_>>(),
        )
        .fetch_all(db)
        .await?;
        let by_message_id = rows
            .iter()
            .filter_map(|row| Some((row.provider_message_id.clone()?, row.id)))
            .collect();
        Ok(Self {
            by_id: rows.into_iter().map(|row| (row.id, row)).collect(),
            by_message_id,
        })
    }

    pub fn target(&self, event: &impl NamesMessage, tenant: Tenant) -> Target<'_> {
        let log = event
            .log_id()
            .and_then(|id| self.by_id.get(&id))
            .or_else(|| {
                self.by_message_id
                    .get(event.message_id()?)
                    .and_then(|id| self.by_id.get(id))
            });
        let outside_route =
            |practice: Uuid| tenant.practice_id().is_some_and(|route| route != practice);
        match log {
            _ if event.practice_id().is_some_and(outside_route) => Target::Foreign,
            Some(log)
                if outside_route(log.practice_id)
                    || event.practice_id().is_some_and(|p| p != log.practice_id) =>
            {
                Target::Foreign
            }
            Some(log) => Target::Log(log),
            None => Target::Unknown,
        }
    }
}

/// One vendor event, read into what we act on.
#[derive(Debug)]
pub struct EmailEvent {
    /// Unique per vendor event: a redelivery carries the same key.
    pub key: String,
    /// The vendor's own name for the event, as stored.
    pub kind: String,
    pub address: Option<String>,
    pub log_id: Option<Uuid>,
    pub practice_id: Option<Uuid>,
    pub message_id: Option<String>,
    pub occurred_at: Option<DateTime<Utc>>,
    /// The status it reports for its log, with the vendor's reason.
    pub status: Option<(OutreachStatus, Option<String>)>,
    /// The ledger entry it makes for its address.
    pub suppression: Option<SuppressionReason>,
    pub payload: Value,
}

impl NamesMessage for EmailEvent {
    fn log_id(&self) -> Option<Uuid> {
        self.log_id
    }

    fn practice_id(&self) -> Option<Uuid> {
        self.practice_id
    }

    fn message_id(&self) -> Option<&str> {
        self.message_id.as_deref()
    }
}

/// Appends the events, then applies only those stored for the first time: their status changes
/// (ranked, so a late `sent` never undoes `delivered`) and ledger entries, in the caller's
/// transaction.
pub async fn ingest(
    db: &mut PgConnection,
    vendor: Vendor,
    tenant: Tenant,
    mut events: Vec<EmailEvent>,
) -> Result<Receipt, sqlx::Error> {
    let logs = Logs::find(db, &events).await?;
    let targets: Vec<Target<'_>> = events.iter().map(|e| logs.target(e, tenant)).collect();
    let records: Vec<NewEvent> = events
        .iter_mut()
        .zip(&targets)
        .map(|(event, target)| NewEvent {
            key: event.key.clone(),
            practice_id: target
                .log()
                .map(|log| log.practice_id)
                .or(tenant.practice_id()),
            outreach_log_id: target.log().map(|log| log.id),
            event_type: event.kind.clone(),
            provider_message_id: event.message_id.clone(),
            payload: event.payload.take(),
            occurred_at: event.occurred_at,
        })
        .collect();
    let mut new_keys = events::append(db, vendor.as_str(), tenant, &records).await?;
    let (mut changes, mut suppressions, mut stored) = (Vec::new(), Vec::new(), 0);
    let label = vendor.display_name();
    for (event, target) in events.iter().zip(&targets) {
        if !new_keys.remove(&event.key) {
            continue;
        }
        stored += 1;
        let kind = &event.kind;
        let practice = match target {
            Target::Log(log) => {
                let provider = log.messaging_provider.as_deref().unwrap_or("unknown");
                tracing::info!(
                    "Processing {label} {kind} for practice {} (provider: {provider})",
                    log.practice_id
                );
                changes.extend(event.status.clone().map(|(status, error)| StatusChange {
                    log_id: log.id,
                    status,
                    error,
                }));
                Some(log.practice_id)
            }
            Target::Unknown => {
                tracing::info!(event = %event.key, "{label} {kind} for an unknown message; kept");
                tenant.practice_id()
            }
            Target::Foreign => {
                tracing::warn!(event = %event.key, ?tenant, "{label} {kind} of another practice; ignored");
                None
            }
        };
        if let (Some(practice), Some(reason), Some(address)) =
            (practice, event.suppression, &event.address)
        {
            suppressions.push(Suppression {
                scope: Scope::Practice(practice),
                channel: Channel::Email,
                address: address.clone(),
                reason,
                unsubscribe_group: None,
                source: SuppressionSource::ProviderEvent,
            });
        }
    }
    status::advance(db, &changes).await?;
    crate::outreach::opt_outs::suppress(db, &suppressions).await?;
    Ok(Receipt {
        received: events.len(),
        stored,
    })
}
