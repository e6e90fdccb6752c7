//! Reads of the outreach counts (`outreach_count_totals`, `outreach_daily_counts`).
//!
//! The triggers of migration `20261201000030_outreach_counts.sql` write them in the transaction of
//! every change to `outreach_logs`; this module only reads them. A window of `days` days is the
//! UTC calendar days from `days - 1` days ago to today: a message counts on the day it was
//! created, in the bucket of its current status (see the migration for the buckets).
//!
//! The counts are running totals per key (practice, channel, provider): the counts of a window
//! are the key's all-time totals minus its running total on the day before the window, so each
//! read costs about two rows per key, whatever the window's length.

use chrono::NaiveDate;
use sqlx::PgPool;
use uuid::Uuid;

/// One key's counts over a window.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct KeyCounts {
    pub practice_id: Uuid,
    pub practice_name: String,
    /// Null for messages no account has taken: still queued, or suppressed.
    pub messaging_provider: Option<String>,
    pub message_type: String,
    /// Every message.
    pub total: i64,
    /// Accepted by a provider: sent, delivered, opened or clicked.
    pub sent: i64,
    /// Delivered, opened or clicked.
    pub delivered: i64,
    /// Failed, undelivered, bounced or dropped.
    pub failed: i64,
}

/// One day of one practice's key.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DayCounts {
    pub day: NaiveDate,
    pub message_type: String,
    pub messaging_provider: Option<String>,
    pub total: i64,
    pub sent: i64,
    pub delivered: i64,
    pub failed: i64,
}

/// The counts of the last `days` days per key with at least one message in them, of one
/// practice or (`None`) of every practice, ordered by practice name, practice, provider (none
/// last) and channel.
pub async fn by_key(
    pool: &PgPool,
    practice_id: Option<Uuid>,
    days: i32,
) -> Result<Vec<KeyCounts>, sqlx::Error> {
    // `before` is the day before the window; the running total there is 0 before the key's
    // first day and the all-time total from its last day on.
    sqlx::query_as(
        "with bounds as (select (now() at time zone 'UTC')::date - $2 as before),
         windowed as (
             select t.practice_id, t.messaging_provider, t.message_type,
                    t.total - case when t.first_day > b.before then 0 when t.last_day <= b.before then t.total else d.total end as total,
                    t.sent - case when t.first_day > b.before then 0 when t.last_day <= b.before then t.sent else d.sent end as sent,
                    t.delivered - case when t.first_day > b.before then 0 when t.last_day <= b.before then t.delivered else d.delivered end as delivered,
                    t.failed - case when t.first_day > b.before then 0 when t.last_day <= b.before then t.failed else d.failed end as failed
             from bounds b
             cross join outreach_count_totals t
             left join outreach_daily_counts d
                 on d.day = b.before and d.practice_id = t.practice_id and d.message_type = t.message_type
                and d.messaging_provider is not distinct from t.messaging_provider
             where t.last_day > b.before and ($1::uuid is null or t.practice_id = $1)
         )
         select w.practice_id, p.name as practice_name, w.messaging_provider, w.message_type,
                w.total, w.sent, w.delivered, w.failed
         from windowed w
         join practices p on p.id = w.practice_id
         where w.total > 0
         order by p.name, w.practice_id, w.messaging_provider nulls last, w.message_type",
    )
    .bind(practice_id)
    .bind(days)
    .fetch_all(pool)
    .await
}

/// One practice's counts per day of the last `days` days, per channel and provider, oldest day
/// first; days on which a key had no message are left out.
#[tracing::instrument(skip_all, fields(practice_id = %practice_id))]
pub async fn daily(
    pool: &PgPool,
    practice_id: Uuid,
    days: i32,
) -> Result<Vec<DayCounts>, sqlx::Error> {
    // A key's rows are consecutive days from its first to its last, so each day's counts are its
    // running total less the previous row's; the day before the window only serves as that base.
    sqlx::query_as(
        "with bounds as (select (now() at time zone 'UTC')::date as today,
                                (now() at time zone 'UTC')::date - $2 as before),
         running as (
             select d.day, d.message_type, d.messaging_provider,
                    d.total - lag(d.total, 1, 0::bigint) over key_days as total,
                    d.sent - lag(d.sent, 1, 0::bigint) over key_days as sent,
                    d.delivered - lag(d.delivered, 1, 0::bigint) over key_days as delivered,
                    d.failed - lag(d.failed, 1, 0::bigint) over key_days as failed
             from bounds b
             join outreach_daily_counts d on d.day between b.before and b.today
             where d.practice_id = $1
             window key_days as (partition by d.message_type, d.messaging_provider order by d.day)
         )
         select r.day, r.message_type, r.messaging_provider, r.total, r.sent, r.delivered, r.failed
         from running r, bounds b
         where r.day > b.before and (r.total <> 0 or r.sent <> 0 or r.delivered <> 0 or r.failed <> 0)
         order by r.day, r.message_type, r.messaging_provider nulls last",
    )
    .bind(practice_id)
    .bind(days)
    .fetch_all(pool)
    .await
}
