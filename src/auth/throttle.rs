//! Failed-login throttle, kept in Postgres so every instance counts the same failures.

use std::{net::IpAddr, time::Duration};

use sqlx::PgPool;

use super::AuthError;

const WINDOW: Duration = Duration::from_secs(15 * 60);
const MAX_FAILURES_PER_EMAIL: i64 = 5;
const MAX_FAILURES_PER_ADDRESS: i64 = 20;

pub(super) struct Subject {
    key: String,
    limit: i64,
}

pub(super) fn subjects(email: &str, client: Option<IpAddr>) -> Vec<Subject> {
    let mut subjects = vec![Subject {
        key: format!("email:{email}"),
        limit: MAX_FAILURES_PER_EMAIL,
    }];
    if let Some(ip) = client {
        subjects.push(Subject {
            key: format!("ip:{ip}"),
            limit: MAX_FAILURES_PER_ADDRESS,
        });
    }
    subjects
}

/// Refuses when any subject has reached its limit, saying when the oldest counted failure expires.
pub(super) async fn check(pool: &PgPool, subjects: &[Subject]) -> Result<(), AuthError> {
    for subject in subjects {
        let (count, retry_after_secs): (i64, Option<f64>) = sqlx::query_as(
            "select count(*), extract(epoch from (min(failed_at) + make_interval(secs => $2) - now()))::float8
             from login_failures where subject = $1 and failed_at > now() - make_interval(secs => $2)",
        )
        .bind(&subject.key)
        .bind(WINDOW.as_secs_f64())
        .fetch_one(pool)
        .await?;
        if count >= subject.limit {
            let secs = retry_after_secs.unwrap_or(1.0).ceil().max(1.0);
            return Err(AuthError::Throttled {
                retry_after: Duration::from_secs_f64(secs),
            });
        }
    }
    Ok(())
}

pub(super) async fn record_failure(pool: &PgPool, subjects: &[Subject]) -> Result<(), sqlx::Error> {
    let keys: Vec<&str> = subjects.iter().map(|s| s.key.as_str()).collect();
    sqlx::query("insert into login_failures (subject) select unnest($1::text[])")
        .bind(&keys)
        .execute(pool)
        .await?;
    // Old rows only slow the count down; drop them while we are here.
    sqlx::query("delete from login_failures where failed_at < now() - make_interval(secs => $1)")
        .bind(WINDOW.as_secs_f64())
        .execute(pool)
        .await?;
    Ok(())
}

/// A successful login forgives the email's failures (not the address's: one address may be
/// guessing many accounts).
pub(super) async fn clear(pool: &PgPool, subjects: &[Subject]) -> Result<(), sqlx::Error> {
    if let Some(email) = subjects.first() {
        sqlx::query("delete from login_failures where subject = $1")
            .bind(&email.key)
            .execute(pool)
            .await?;
    }
    Ok(())
}
