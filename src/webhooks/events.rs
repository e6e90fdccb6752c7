//! The append-only `provider_events` table: each provider event once per webhook route, under
//! its key. Keys are scoped to the route because a practice signs whatever it posts to its own
//! route, ids copied from another tenant's events included.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, types::JsonValue};
use uuid::Uuid;

use super::Tenant;

/// One event as received, with what we could tie it to.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// Unique per provider event (within its route): a repeat delivery carries the same key.
    pub key: String,
    pub practice_id: Option<Uuid>,
    pub outreach_log_id: Option<Uuid>,
    pub event_type: String,
    pub provider_message_id: Option<String>,
    pub payload: JsonValue,
    pub occurred_at: Option<DateTime<Utc>>,
}

/// Appends the events received on `route`'s webhook in one statement, skipping keys that route
/// already stored, and returns the keys that were new. A key repeated within `events` is stored
/// once.
pub async fn append(
    db: &mut PgConnection,
    provider: &str,
    route: Tenant,
    events: &[NewEvent],
) -> Result<HashSet<String>, sqlx::Error> {
    sqlx::query_scalar(
        "insert into provider_events
             (event_key, route_practice_id, provider, practice_id, outreach_log_id, event_type, provider_message_id, payload, occurred_at)
         select e.event_key, $9, $1, e.practice_id, e.outreach_log_id, e.event_type, e.provider_message_id, e.payload, e.occurred_at
         from unnest($2::text[], $3::uuid[], $4::uuid[], $5::text[], $6::text[], $7::jsonb[], $8::timestamptz[])
             as e(event_key, practice_id, outreach_log_id, event_type, provider_message_id, payload, occurred_at)
         -- Key order: two transactions inserting overlapping batches then wait on each other in
         -- the same order instead of deadlocking.
         order by e.event_key
         on conflict (route_practice_id, event_key) do nothing
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
    .bind(route.practice_id())
    .fetch_all(db)
    .await
    .map(|keys: Vec<String>| keys.into_iter().collect())
}

/// Retention: deletes at most `limit` events received more than `days` days ago, claimed with
/// `for update skip locked` so several instances purge disjoint rows; returns how many.
pub async fn delete_old(pool: &sqlx::PgPool, days: i32, limit: i64) -> Result<u64, sqlx::Error> {
    crate::db::purge_batch(
        pool,
        "with doomed as (
             select id from provider_events
             where received_at < now() - make_interval(days => $1)
             order by received_at limit $2
             for update skip locked)
         delete from provider_events e using doomed where e.id = doomed.id",
        days,
        limit,
    )
    .await
}
