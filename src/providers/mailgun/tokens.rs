//! `webhook_tokens`: the one-time tokens of vendors whose signature covers a token but not the
//! event (Mailgun). A token is claimed for the event it first came with.

use std::time::Duration;

use sqlx::PgConnection;

use crate::providers::Vendor;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// First seen now, or seen before with this same event (a redelivery).
    Ours,
    /// Seen before with another event: a replayed signature over edited data.
    Taken,
}

/// Claims `token` for `event_key`, in the caller's transaction (so a request that fails after
/// this claims nothing and its retry passes), and forgets the vendor's tokens older than
/// `max_age`, which the signature's age check refuses anyway.
pub async fn claim(
    db: &mut PgConnection,
    vendor: Vendor,
    token: &str,
    event_key: &str,
    max_age: Duration,
) -> Result<Claim, sqlx::Error> {
    sqlx::query(
        "delete from webhook_tokens where vendor = $1 and seen_at < now() - make_interval(secs => $2)",
    )
    .bind(vendor)
    .bind(max_age.as_secs_f64())
    .execute(&mut *db)
    .await?;
    // Empty only when another transaction claimed the token at this very moment.
    let owner: Option<String> = sqlx::query_scalar(
        "with claimed as (
             insert into webhook_tokens (vendor, token, event_key) values ($1, $2, $3)
             on conflict (vendor, token) do nothing
             returning event_key
         )
         select event_key from claimed
         union all
         select event_key from webhook_tokens where vendor = $1 and token = $2
         limit 1",
    )
    .bind(vendor)
    .bind(token)
    .bind(event_key)
    .fetch_optional(&mut *db)
    .await?;
    Ok(if owner.as_deref() == Some(event_key) {
        Claim::Ours
    } else {
        Claim::Taken
    })
}
