//! Messaging numbers from the outreach counts: per provider and message type, how many messages
//! were queued, delivered and failed in the last N days (the UTC calendar days from N - 1 days
//! ago to today), and the same per day for charts.
//!
//! `delivered` counts messages known to have arrived (delivered, opened or clicked); `failed`
//! counts failed, undelivered, bounced and dropped. The rest of `total` is still on its way, was
//! reported as spam, or was suppressed.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::OutreachError;
use crate::{
    history::counts,
    messaging::{Channel, ProviderKind},
    types::FieldErrors,
};

const DEFAULT_DAYS: i32 = 30;
const MAX_DAYS: i32 = 365;
const MAX_DAILY_DAYS: i32 = 400;

/// `days` from the query: `DEFAULT_DAYS` when absent, else a whole number from 1 to `max`.
fn days_within(days: Option<&str>, max: i32) -> Result<i32, OutreachError> {
    match days.map(str::trim) {
        None | Some("") => Ok(DEFAULT_DAYS),
        Some(text) => text
            .parse::<i32>()
            .ok()
            .filter(|days| (1..=max).contains(days))
            .ok_or_else(|| {
                OutreachError::Invalid(FieldErrors::single(
                    "days",
                    format!("must be a whole number from 1 to {max}"),
                ))
            }),
    }
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsageQuery {
    /// How many days back, 1 to 365 (default 30).
    #[param(value_type = Option<i32>)]
    pub days: Option<String>,
}

impl UsageQuery {
    fn days(&self) -> Result<i32, OutreachError> {
        days_within(self.days.as_deref(), MAX_DAYS)
    }
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DailyQuery {
    /// How many days back, today included, 1 to 400 (default 30).
    #[param(value_type = Option<i32>)]
    pub days: Option<String>,
}

/// One day's messages of one provider and type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DailyRow {
    /// The UTC day the messages were created.
    pub day: chrono::NaiveDate,
    #[schema(value_type = Channel)]
    pub message_type: String,
    /// Absent for messages no account has sent: still queued, or suppressed.
    #[schema(value_type = Option<ProviderKind>)]
    pub messaging_provider: Option<String>,
    /// Every message, whatever its status.
    pub total: i64,
    /// Accepted by a provider: sent, delivered, opened or clicked.
    pub sent: i64,
    /// Delivered, opened or clicked.
    pub delivered: i64,
    /// Failed, undelivered, bounced or dropped.
    pub failed: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct UsageRow {
    /// Absent for messages no account has sent: still queued, or suppressed.
    #[schema(value_type = Option<ProviderKind>)]
    pub messaging_provider: Option<String>,
    #[schema(value_type = Channel)]
    pub message_type: String,
    pub total: i64,
    pub delivered: i64,
    pub failed: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlatformUsage {
    pub days: i32,
    /// Every practice together.
    pub rows: Vec<UsageRow>,
    /// Each practice that sent anything in the window, by name.
    pub practices: Vec<UsageOfPractice>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageOfPractice {
    pub practice_id: Uuid,
    pub practice_name: String,
    pub rows: Vec<UsageRow>,
}

/// Per practice, provider and type; `practice_id` `None` means every practice. Read from the
/// running counts, never from the logs themselves.
async fn usage_by_practice(
    pool: &PgPool,
    practice_id: Option<Uuid>,
    days: i32,
) -> Result<Vec<(Uuid, String, UsageRow)>, sqlx::Error> {
    Ok(counts::by_key(pool, practice_id, days)
        .await?
        .into_iter()
        .map(|key| {
            (
                key.practice_id,
                key.practice_name,
                UsageRow {
                    messaging_provider: key.messaging_provider,
                    message_type: key.message_type,
                    total: key.total,
                    delivered: key.delivered,
                    failed: key.failed,
                },
            )
        })
        .collect())
}

/// Adds rows of the same provider and type together, ordered as the query orders them.
fn totals<'a>(rows: impl IntoIterator<Item = &'a UsageRow>) -> Vec<UsageRow> {
    let mut sums: BTreeMap<(bool, Option<String>, String), UsageRow> = BTreeMap::new();
    for row in rows {
        let key = (
            row.messaging_provider.is_none(),
            row.messaging_provider.clone(),
            row.message_type.clone(),
        );
        let sum = sums.entry(key).or_insert_with(|| UsageRow {
            total: 0,
            delivered: 0,
            failed: 0,
            ..row.clone()
        });
        sum.total += row.total;
        sum.delivered += row.delivered;
        sum.failed += row.failed;
    }
    sums.into_values().collect()
}

#[tracing::instrument(skip_all, fields(practice_id = %practice_id))]
pub async fn for_practice(
    pool: &PgPool,
    practice_id: Uuid,
    query: &UsageQuery,
) -> Result<Vec<UsageRow>, OutreachError> {
    let days = query.days()?;
    let rows = usage_by_practice(pool, Some(practice_id), days).await?;
    Ok(rows.into_iter().map(|(_, _, usage)| usage).collect())
}

/// The practice's messages per day of the last `days` days, oldest first; a day without messages
/// of a provider and type has no row for it.
#[tracing::instrument(skip_all, fields(practice_id = %practice_id))]
pub async fn daily_for_practice(
    pool: &PgPool,
    practice_id: Uuid,
    query: &DailyQuery,
) -> Result<Vec<DailyRow>, OutreachError> {
    let days = days_within(query.days.as_deref(), MAX_DAILY_DAYS)?;
    Ok(counts::daily(pool, practice_id, days)
        .await?
        .into_iter()
        .map(|day| DailyRow {
            day: day.day,
            message_type: day.message_type,
            messaging_provider: day.messaging_provider,
            total: day.total,
            sent: day.sent,
            delivered: day.delivered,
            failed: day.failed,
        })
        .collect())
}

/// How long the platform usage is served as computed. It reads every practice's counts (two
/// rows per key: tens of milliseconds at 1,000 practices, growing with their number, not with the
/// history), and the platform administrators who read it need minutes, not milliseconds, of
/// freshness; a practice's own numbers are never cached.
const PLATFORM_USAGE_TTL: Duration = Duration::from_secs(10);

/// The platform usage per window length, as last computed within [`PLATFORM_USAGE_TTL`].
pub struct PlatformUsageCache {
    computed: moka::future::Cache<i32, Arc<PlatformUsage>>,
}

impl Default for PlatformUsageCache {
    fn default() -> Self {
        Self {
            computed: moka::future::Cache::builder()
                // One entry per possible `days`.
                .max_capacity(MAX_DAYS as u64)
                .time_to_live(PLATFORM_USAGE_TTL)
                .build(),
        }
    }
}

impl PlatformUsageCache {
    /// Across every practice: each practice's counts of the window, summed for the platform
    /// totals.
    pub async fn get(
        &self,
        pool: &PgPool,
        query: &UsageQuery,
    ) -> Result<Arc<PlatformUsage>, OutreachError> {
        let days = query.days()?;
        if let Some(computed) = self.computed.get(&days).await {
            return Ok(computed);
        }
        let usage = Arc::new(for_platform(pool, days).await?);
        self.computed.insert(days, usage.clone()).await;
        Ok(usage)
    }
}

async fn for_platform(pool: &PgPool, days: i32) -> Result<PlatformUsage, OutreachError> {
    let by_practice = usage_by_practice(pool, None, days).await?;
    let rows = totals(by_practice.iter().map(|(_, _, usage)| usage));
    let mut practices: Vec<UsageOfPractice> = Vec::new();
    for (practice_id, practice_name, usage) in by_practice {
        match practices.last_mut() {
            Some(last) if last.practice_id == practice_id => last.rows.push(usage),
            _ => practices.push(UsageOfPractice {
                practice_id,
                practice_name,
                rows: vec![usage],
            }),
        }
    }
    Ok(PlatformUsage {
        days,
        rows,
        practices,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(
        provider: Option<&str>,
        kind: &str,
        total: i64,
        delivered: i64,
        failed: i64,
    ) -> UsageRow {
        UsageRow {
            messaging_provider: provider.map(Into::into),
            message_type: kind.into(),
            total,
            delivered,
            failed,
        }
    }

    #[test]
    fn totals_add_up_rows_of_the_same_provider_and_type() {
        let rows = [
            row(Some("system_twilio"), "sms", 3, 2, 1),
            row(None, "email", 1, 0, 0),
            row(Some("system_twilio"), "sms", 4, 1, 0),
            row(Some("system_twilio"), "email", 5, 5, 0),
        ];
        assert_eq!(
            totals(&rows),
            [
                row(Some("system_twilio"), "email", 5, 5, 0),
                row(Some("system_twilio"), "sms", 7, 3, 1),
                row(None, "email", 1, 0, 0)
            ]
        );
    }

    #[test]
    fn days_default_to_thirty_and_stay_within_a_year() {
        assert_eq!(UsageQuery::default().days().unwrap(), 30);
        assert_eq!(
            UsageQuery {
                days: Some("365".into())
            }
            .days()
            .unwrap(),
            365
        );
        for bad in ["0", "366", "-3", "week"] {
            assert!(
                matches!(
                    UsageQuery {
                        days: Some(bad.into())
                    }
                    .days(),
                    Err(OutreachError::Invalid(_))
                ),
                "{bad}"
            );
        }
    }
}
