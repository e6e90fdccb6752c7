//! The append-only `provider_events` table: each provider event once, under its unique key.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, types::JsonValue};
use uuid::Uuid;

/// One event as received, with what we could tie it to.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// Unique per provider event: a repeat delivery carries the same key.
    pub key: String,
    pub practice_id: Option<Uuid>,
    pub outreach_log_id: Option<Uuid>,
    pub event_type: String,
    pub provider_message_id: Option<String>,
    pub payload: JsonValue,
    pub occurred_at: Option<DateTime<Utc>>,
}

/// Appends the events in one statement, skipping keys already stored, and returns the keys that
/// were new. A key repeated within `events` is stored once.
pub async fn append(
    db: &mut PgConnection,
    provider: &str,
    events: &[NewEvent],
) -> Result<HashSet<String>, sqlx::Error> {
    sqlx::query_scalar(
        "insert into provider_events
             (event_key, provider, practice_id, outreach_log_id, event_type, provider_message_id, payload, occurred_at)
         select e.event_key, $1, e.practice_id, e.outreach_log_id, e.event_type, e.provider_message_id, e.payload, e.occurred_at
         from unnest($2::text[], $3::uuid[], $4::uuid[], $5::text[], $6::text[], $7::jsonb[], $8::timestamptz[])
             as e(event_key, practice_id, outreach_log_id, event_type, provider_message_id, payload, occurred_at)
         -- Key order: two transactions inserting overlapping batches then wait on each other in
         -- the same order instead of deadlocking.
         order by e.event_key
         on conflict (event_key) do nothing
         returning event_key",
    )
    .bind(provider)
    .bind(events.iter().map(|e| e.key.as_str()).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.practice_id).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.outreach_log_id).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.event_type.as_str()).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.provider_message_id.as_deref()).collect::<Vec<_>>())
    .bind(events.iter().map(|e| &e.payload).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.occurred_at).collect::<Vec<_>>())
    .fetch_all(db)
    .await
    .map(|keys: Vec<String>| keys.into_iter().collect())
}
