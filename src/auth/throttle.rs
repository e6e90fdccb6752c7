//! Login throttle, kept in Postgres so every instance counts the same attempts.
//!
//! Threat model: guessing one account's password, from one address or many, and guessing many
//! accounts from one address; without letting a third party lock the owner out. So the counter is
//! per (email, address) pair, with a much larger allowance per address alone (a practice behind
//! one NAT shares it), and going over an allowance is never a fixed ban: each further attempt
//! waits twice as long as the one before, up to [`MAX_DELAY`], with the wait in `Retry-After`.
//!
//! Every attempt is reserved, in one statement per subject inside one transaction, before the
//! password is checked, so concurrent attempts cannot slip past a count read before any of them
//! was recorded. A correct password forgives the pair and gives back the address's reservation.

use std::{net::IpAddr, time::Duration};

use sqlx::PgPool;

use super::AuthError;

/// Attempts allowed per (email, address) before delays start.
const FREE_PER_PAIR: i32 = 5;
/// Attempts allowed per address before delays start, whichever emails they name.
const FREE_PER_ADDRESS: i32 = 100;
/// The first delay after the allowance; each further attempt doubles it.
const FIRST_DELAY: Duration = Duration::from_secs(1);
const MAX_DELAY: Duration = Duration::from_secs(15 * 60);
/// A subject with no attempt for this long starts over.
const FORGET_AFTER: Duration = Duration::from_secs(24 * 3600);

pub(super) struct Subject {
    key: String,
    free: i32,
}

pub(super) struct Subjects {
    pair: Subject,
    address: Option<Subject>,
}

impl Subjects {
    fn all(&self) -> impl Iterator<Item = &Subject> {
        std::iter::once(&self.pair).chain(&self.address)
    }
}

pub(super) fn subjects(email: &str, client: Option<IpAddr>) -> Subjects {
    let address = client.map_or_else(|| "unknown".to_string(), |ip| ip.to_string());
    Subjects {
        pair: Subject {
            key: format!("pair:{email}|{address}"),
            free: FREE_PER_PAIR,
        },
        address: client.map(|ip| Subject {
            key: format!("ip:{ip}"),
            free: FREE_PER_ADDRESS,
        }),
    }
}

/// Counts this attempt against every subject, or refuses it (counting nothing) while any subject
/// is in its back-off.
pub(super) async fn reserve(pool: &PgPool, subjects: &Subjects) -> Result<(), AuthError> {
    let mut tx = pool.begin().await?;
    for subject in subjects.all() {
        // The update runs only when the subject is not waiting; the row lock it takes makes the
        // next attempt on the same subject see this one.
        let reserved: Option<i32> = sqlx::query_scalar(
            "insert into login_throttle as t (subject, attempts, not_before, last_attempt_at)
             values ($1, 1, now(), now())
             on conflict (subject) do update set
                 attempts = case when t.last_attempt_at < now() - make_interval(secs => $5)
                                 then 1 else t.attempts + 1 end,
                 last_attempt_at = now(),
                 not_before = now() + make_interval(secs => least($4,
                     case when t.last_attempt_at < now() - make_interval(secs => $5)
                               or t.attempts + 1 < $2 then 0
                          else $3 * power(2, least(t.attempts + 1 - $2, 30)) end))
             where t.not_before <= now()
             returning attempts",
        )
        .bind(&subject.key)
        .bind(subject.free)
        .bind(FIRST_DELAY.as_secs_f64())
        .bind(MAX_DELAY.as_secs_f64())
        .bind(FORGET_AFTER.as_secs_f64())
        .fetch_optional(&mut *tx)
        .await?;
        if reserved.is_none() {
            let wait: f64 = sqlx::query_scalar(
                "select extract(epoch from (not_before - now()))::float8 from login_throttle where subject = $1",
            )
            .bind(&subject.key)
            .fetch_one(&mut *tx)
            .await?;
            tx.rollback().await?;
            return Err(AuthError::Throttled {
                retry_after: Duration::from_secs_f64(wait.ceil().max(1.0)),
            });
        }
    }
    tx.commit().await?;
    Ok(())
}

/// After a wrong password: the attempt stays counted; long-quiet subjects are dropped meanwhile.
pub(super) async fn failed(pool: &PgPool) -> Result<(), sqlx::Error> {
    sqlx::query(
        "delete from login_throttle where last_attempt_at < now() - make_interval(secs => $1)",
    )
    .bind(FORGET_AFTER.as_secs_f64())
    .execute(pool)
    .await?;
    Ok(())
}

/// After a correct password: the pair starts over and the address gets its reservation back (many
/// people may log in from one address), without lifting a back-off it is in.
pub(super) async fn succeeded(pool: &PgPool, subjects: &Subjects) -> Result<(), sqlx::Error> {
    sqlx::query("delete from login_throttle where subject = $1")
        .bind(&subjects.pair.key)
        .execute(pool)
        .await?;
    if let Some(address) = &subjects.address {
        sqlx::query(
            "update login_throttle set attempts = greatest(attempts - 1, 0) where subject = $1",
        )
        .bind(&address.key)
        .execute(pool)
        .await?;
    }
    Ok(())
}
