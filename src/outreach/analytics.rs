//! Messaging numbers from the outreach logs: per provider and message type, how many messages
//! were queued, delivered and failed in the last N days.
//!
//! `delivered` counts messages known to have arrived (delivered, opened or clicked); `failed`
//! counts failed, undelivered, bounced and dropped. The rest of `total` is still on its way, was
//! reported as spam, or was suppressed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::OutreachError;
use crate::{
    error::FieldErrors,
    messaging::{Channel, ProviderKind},
};

const DEFAULT_DAYS: i32 = 30;
const MAX_DAYS: i32 = 365;

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsageQuery {
    /// How many days back, 1 to 365 (default 30).
    #[param(value_type = Option<i32>)]
    pub days: Option<String>,
}

impl UsageQuery {
    fn days(&self) -> Result<i32, OutreachError> {
        match self.days.as_deref().map(str::trim) {
            None | Some("") => Ok(DEFAULT_DAYS),
            Some(text) => text
                .parse::<i32>()
                .ok()
                .filter(|days| (1..=MAX_DAYS).contains(days))
                .ok_or_else(|| {
                    OutreachError::Invalid(FieldErrors::single(
                        "days",
                        format!("must be a whole number from 1 to {MAX_DAYS}"),
                    ))
                }),
        }
    }
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

#[derive(sqlx::FromRow)]
struct PracticeRow {
    practice_id: Uuid,
    practice_name: String,
    #[sqlx(flatten)]
    usage: UsageRow,
}

/// Per practice, provider and type; `practice_id` null means every practice.
async fn usage_by_practice(
    pool: &PgPool,
    practice_id: Option<Uuid>,
    days: i32,
) -> Result<Vec<PracticeRow>, sqlx::Error> {
    sqlx::query_as(
        "select l.practice_id, p.name as practice_name, l.messaging_provider, l.message_type,
                count(*) as total,
                count(*) filter (where l.status in ('delivered', 'opened', 'clicked')) as delivered,
                count(*) filter (where l.status in ('failed', 'undelivered', 'bounced', 'dropped')) as failed
         from outreach_logs l
         join practices p on p.id = l.practice_id
         where ($1::uuid is null or l.practice_id = $1)
           and l.created_at >= now() - make_interval(days => $2)
         group by l.practice_id, p.name, l.messaging_provider, l.message_type
         order by p.name, l.practice_id, l.messaging_provider nulls last, l.message_type",
    )
    .bind(practice_id)
    .bind(days)
    .fetch_all(pool)
    .await
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

pub async fn for_practice(
    pool: &PgPool,
    practice_id: Uuid,
    query: &UsageQuery,
) -> Result<Vec<UsageRow>, OutreachError> {
    let days = query.days()?;
    let rows = usage_by_practice(pool, Some(practice_id), days).await?;
    Ok(rows.into_iter().map(|row| row.usage).collect())
}

/// Across every practice: one grouped scan of the window, summed here for the platform totals.
pub async fn for_platform(
    pool: &PgPool,
    query: &UsageQuery,
) -> Result<PlatformUsage, OutreachError> {
    let days = query.days()?;
    let by_practice = usage_by_practice(pool, None, days).await?;
    let rows = totals(by_practice.iter().map(|row| &row.usage));
    let mut practices: Vec<UsageOfPractice> = Vec::new();
    for row in by_practice {
        match practices.last_mut() {
            Some(last) if last.practice_id == row.practice_id => last.rows.push(row.usage),
            _ => practices.push(UsageOfPractice {
                practice_id: row.practice_id,
                practice_name: row.practice_name,
                rows: vec![row.usage],
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
