//! Token buckets per provider account in Postgres, shared by every worker of every instance.

use std::time::Duration;

use sqlx::PgPool;

use crate::{
    config::QueueSettings,
    messaging::{Channel, ProviderKind},
};

/// The send rate of the kind of account `kind` is, per account; `None` when unlimited. Every
/// email vendor's account gets `SENDGRID_RATE_PER_SEC`, every SMS vendor's `TWILIO_RATE_PER_SEC`
/// (a long code's one message a second holds for Telnyx too).
pub fn rate_for(queue: &QueueSettings, kind: ProviderKind) -> Option<f64> {
    match kind.vendor().channel()? {
        Channel::Email => queue.email_rate_per_sec,
        Channel::Sms => queue.sms_rate_per_sec,
    }
}

/// Takes one token from `account`'s bucket, refilled at `per_second` and holding at most one
/// second's worth (at least one token). Returns `None` when a token was taken, or how long
/// until one will be there.
pub async fn try_acquire(
    pool: &PgPool,
    account: &str,
    per_second: f64,
) -> Result<Option<Duration>, sqlx::Error> {
    let capacity = per_second.max(1.0);
    sqlx::query("insert into rate_limit_buckets (account_key, tokens) values ($1, $2) on conflict (account_key) do nothing")
        .bind(account)
        .bind(capacity)
        .execute(pool)
        .await?;
    // The row lock serialises workers racing for the same bucket.
    let available: f64 = sqlx::query_scalar(
        "with current as (
             select least($3, tokens + extract(epoch from clock_timestamp() - refilled_at)::float8 * $2) as available
             from rate_limit_buckets where account_key = $1 for update
         )
         update rate_limit_buckets b
         set tokens = case when current.available >= 1 then current.available - 1 else current.available end,
             refilled_at = clock_timestamp()
         from current where b.account_key = $1
         returning current.available",
    )
    .bind(account)
    .bind(per_second)
    .bind(capacity)
    .fetch_one(pool)
    .await?;
    Ok((available < 1.0).then(|| Duration::from_secs_f64((1.0 - available) / per_second)))
}
