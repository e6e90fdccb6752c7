//! Outreach logs: one per message, with the provider events that followed it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgPool, types::JsonValue};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{
    OutreachError,
    status::{DeliveryOutcome, OutreachStatus},
};
use crate::{
    compliance::Category,
    messaging::{Channel, OutgoingMessage, ProviderKind},
    page::{NewestFirst, Page, PageRequest},
    types::FieldErrors,
};

#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct OutreachLog {
    pub id: Uuid,
    #[schema(value_type = Channel)]
    pub channel: String,
    pub status: OutreachStatus,
    /// The account that sent; absent until one did (and for suppressed messages).
    #[schema(value_type = Option<ProviderKind>)]
    pub messaging_provider: Option<String>,
    /// Why the system account sent instead of the practice's own.
    pub fallback_reason: Option<String>,
    pub provider_message_id: Option<String>,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Absent when the patient has since been deleted.
    pub patient_id: Option<Uuid>,
    pub recipient: String,
    pub subject: Option<String>,
    /// `care` or `marketing`.
    #[schema(value_type = crate::compliance::Category)]
    pub category: String,
    /// SMS segments the body takes (absent for email).
    pub segments: Option<i32>,
    /// What the provider charged, a decimal string, when it reports it (Twilio's status
    /// callbacks do).
    #[schema(example = "0.0079")]
    pub price: Option<String>,
    /// The currency of `price`, such as `USD`.
    pub price_unit: Option<String>,
    /// When a message held back by the recipient's sending window is (or was) to be handed
    /// over; kept after it is sent, as the record of why it waited.
    pub scheduled_for: Option<DateTime<Utc>>,
    /// Why it waited: `quiet_hours`. Absent for a message that never had to.
    #[schema(value_type = Option<crate::compliance::window::DeferReason>)]
    pub defer_reason: Option<String>,
}

/// Selected by every query returning an [`OutreachLog`].
macro_rules! log_select {
    () => {
        "select id, message_type as channel, status, messaging_provider, fallback_reason, provider_message_id,
                error, created_at, updated_at, patient_id, recipient, subject,
                category, segments, price::text as price, price_unit, scheduled_for, defer_reason
         from outreach_logs "
    };
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OutreachLogDetail {
    #[serde(flatten)]
    pub log: OutreachLog,
    /// Webhook events from SendGrid or Twilio about this message, oldest first.
    pub events: Vec<ProviderEvent>,
}

#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct ProviderEvent {
    /// The provider's own name for it: `delivered`, `open`, `bounce`, `undelivered`…
    pub event_type: String,
    /// When the provider says it happened, if it says.
    pub occurred_at: Option<DateTime<Utc>>,
    pub received_at: DateTime<Utc>,
    /// The event as the provider sent it.
    #[schema(value_type = Object)]
    pub payload: JsonValue,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
pub struct LogQuery {
    #[param(value_type = Option<Channel>)]
    pub channel: Option<String>,
    /// queued, sending, sent, delivered, opened, clicked, failed, undelivered, bounced, dropped,
    /// spam_reported or suppressed.
    pub status: Option<String>,
    #[param(value_type = Option<ProviderKind>)]
    pub provider: Option<String>,
    /// Logs created at or after this RFC 3339 time.
    #[param(value_type = Option<DateTime<Utc>>)]
    pub since: Option<String>,
    /// Logs created before this RFC 3339 time.
    #[param(value_type = Option<DateTime<Utc>>)]
    pub until: Option<String>,
    /// Only this patient's messages.
    #[param(value_type = Option<Uuid>)]
    pub patient_id: Option<String>,
    /// `care` or `marketing`.
    #[param(value_type = Option<crate::compliance::Category>)]
    pub category: Option<String>,
    /// Recipients starting with this text, ignoring case: an address, a phone number, or their
    /// beginning (up to 254 characters).
    pub recipient: Option<String>,
    /// Page size, 1 to 100 (default 50).
    #[param(value_type = Option<i64>)]
    pub limit: Option<String>,
    /// `nextCursor` of the previous page.
    pub cursor: Option<String>,
}

struct LogFilter<'q> {
    channel: Option<&'q str>,
    status: Option<&'q str>,
    provider: Option<&'q str>,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    patient_id: Option<Uuid>,
    category: Option<&'q str>,
    recipient_prefix: Option<&'q str>,
}

/// An email address is at most 254 characters; nothing longer can match.
const RECIPIENT_MAX_CHARS: usize = 254;

impl LogQuery {
    fn filter(&self, errors: &mut FieldErrors) -> LogFilter<'_> {
        let channel = one_of(
            errors,
            "channel",
            self.channel.as_deref(),
            [Channel::Email, Channel::Sms].map(Channel::as_str),
        );
        let provider = one_of(
            errors,
            "provider",
            self.provider.as_deref(),
            ProviderKind::ALL.map(ProviderKind::as_str),
        );
        let since = timestamp(errors, "since", self.since.as_deref());
        let until = timestamp(errors, "until", self.until.as_deref());
        if let (Some(since), Some(until)) = (since, until)
            && since >= until
        {
            errors.add("until", "must be later than since");
        }
        let patient_id = self.patient_id.as_deref().and_then(|id| {
            errors.check(
                "patientId",
                Uuid::parse_str(id.trim()).map_err(|_| "must be a patient id"),
            )
        });
        LogFilter {
            channel,
            status: one_of(
                errors,
                "status",
                self.status.as_deref(),
                OutreachStatus::ALL.map(OutreachStatus::as_str),
            ),
            provider,
            since,
            until,
            patient_id,
            category: one_of(
                errors,
                "category",
                self.category.as_deref(),
                [Category::Care, Category::Marketing].map(Category::as_str),
            ),
            recipient_prefix: recipient_prefix(errors, self.recipient.as_deref()),
        }
    }
}

fn recipient_prefix<'q>(errors: &mut FieldErrors, value: Option<&'q str>) -> Option<&'q str> {
    let value = value.map(str::trim).filter(|v| !v.is_empty())?;
    if value.chars().count() > RECIPIENT_MAX_CHARS {
        errors.add(
            "recipient",
            format!("must be at most {RECIPIENT_MAX_CHARS} characters"),
        );
        return None;
    }
    Some(value)
}

/// The value when it is one of `allowed`; records the allowed values under `field` otherwise.
fn one_of<'q, const N: usize>(
    errors: &mut FieldErrors,
    field: &str,
    value: Option<&'q str>,
    allowed: [&'static str; N],
) -> Option<&'q str> {
    let value = value.map(str::trim).filter(|v| !v.is_empty())?;
    if allowed.contains(&value) {
        Some(value)
    } else {
        errors.add(field, format!("must be one of {}", allowed.join(", ")));
        None
    }
}

fn timestamp(errors: &mut FieldErrors, field: &str, value: Option<&str>) -> Option<DateTime<Utc>> {
    let value = value.map(str::trim).filter(|v| !v.is_empty())?;
    errors.check(
        field,
        DateTime::parse_from_rfc3339(value)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| "must be an RFC 3339 time like 2026-01-31T09:00:00Z"),
    )
}

/// The practice's logs matching the query, newest first.
#[tracing::instrument(skip_all, fields(practice_id = %practice_id))]
pub async fn list(
    pool: &PgPool,
    practice_id: Uuid,
    query: &LogQuery,
) -> Result<Page<OutreachLog>, OutreachError> {
    let mut errors = FieldErrors::new();
    let filter = query.filter(&mut errors);
    let page =
        PageRequest::<NewestFirst>::parse(errors, query.limit.as_deref(), query.cursor.as_deref())
            .map_err(OutreachError::Invalid)?;
    // Only the filters given go into the statement: with `$n is null or …` for the others, a
    // generic plan could use no index for any of them, and a rare status would scan the
    // practice's whole history. Each combination is then its own prepared statement.
    let mut statement = sqlx::QueryBuilder::new(concat!(log_select!(), "where practice_id = "));
    statement.push_bind(practice_id);
    if let Some(channel) = filter.channel {
        statement.push(" and message_type = ").push_bind(channel);
    }
    if let Some(status) = filter.status {
        statement.push(" and status = ").push_bind(status);
    }
    if let Some(provider) = filter.provider {
        statement
            .push(" and messaging_provider = ")
            .push_bind(provider);
    }
    if let Some(since) = filter.since {
        statement.push(" and created_at >= ").push_bind(since);
    }
    if let Some(until) = filter.until {
        statement.push(" and created_at < ").push_bind(until);
    }
    if let Some(patient_id) = filter.patient_id {
        statement.push(" and patient_id = ").push_bind(patient_id);
    }
    if let Some(category) = filter.category {
        statement.push(" and category = ").push_bind(category);
    }
    if let Some(prefix) = filter.recipient_prefix {
        // A byte-wise range, unlike `like $n`, lets even a generic plan use the index
        // outreach_logs_practice_recipient; `starts_with` keeps the match exact.
        statement
            .push(" and lower(recipient) ~>=~ lower(")
            .push_bind(prefix)
            .push(") and lower(recipient) ~<~ (lower(")
            .push_bind(prefix)
            .push(") || chr(1114111)) and starts_with(lower(recipient), lower(")
            .push_bind(prefix)
            .push("))");
    }
    if let Some(after) = page.after.as_ref() {
        statement
            .push(" and (created_at, id) < (")
            .push_bind(after.0)
            .push(", ")
            .push_bind(after.1)
            .push(")");
    }
    statement
        .push(" order by created_at desc, id desc limit ")
        .push_bind(page.fetch_limit());
    let rows: Vec<OutreachLog> = statement.build_query_as().fetch_all(pool).await?;
    Ok(page.page(rows, |log| (log.created_at, log.id)))
}

/// One log of the practice with its provider events.
#[tracing::instrument(skip_all, fields(practice_id = %practice_id))]
pub async fn get(
    pool: &PgPool,
    practice_id: Uuid,
    id: Uuid,
) -> Result<OutreachLogDetail, OutreachError> {
    let log: OutreachLog =
        sqlx::query_as(concat!(log_select!(), "where id = $1 and practice_id = $2"))
            .bind(id)
            .bind(practice_id)
            .fetch_optional(pool)
            .await?
            .ok_or(OutreachError::NotFound("outreach log"))?;
    let events = sqlx::query_as(
        "select event_type, occurred_at, received_at, payload from provider_events
         where outreach_log_id = $1
         order by coalesce(occurred_at, received_at), id",
    )
    .bind(id)
    .fetch_all(pool)
    .await?;
    Ok(OutreachLogDetail { log, events })
}

/// A test send's log, written `sending` before the provider is asked: test sends skip the
/// queue, but appear in the history like every other message.
pub async fn record_test_send(pool: &PgPool, message: &OutgoingMessage) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into outreach_logs (id, practice_id, message_type, status, recipient, subject, body)
         values ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(message.outreach_log_id)
    .bind(message.practice_id)
    .bind(message.channel.as_str())
    .bind(OutreachStatus::Sending)
    .bind(&message.to)
    .bind(&message.subject)
    .bind(&message.body)
    .execute(pool)
    .await?;
    Ok(())
}

/// Records what a test send's delivery came to.
pub async fn record_outcome(
    pool: &PgPool,
    log_id: Uuid,
    outcome: &DeliveryOutcome,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "update outreach_logs
         set status = $2, messaging_provider = $3, provider_message_id = $4, fallback_reason = $5, error = $6, updated_at = now()
         where id = $1",
    )
    .bind(log_id)
    .bind(outcome.status)
    .bind(outcome.provider.map(ProviderKind::as_str))
    .bind(outcome.provider_message_id.as_deref())
    .bind(outcome.fallback_reason.as_deref())
    .bind(outcome.error.as_deref())
    .execute(pool)
    .await?;
    Ok(())
}

/// Retention: forgets the body and subject of at most `limit` logs older than `days` days (the
/// log itself is kept), never of a message that may still be sent (`queued`, `sending`, or with
/// a send job left). Rows are claimed with `for update skip locked`, so several instances purge
/// disjoint rows. Returns how many.
pub async fn forget_old_bodies(pool: &PgPool, days: i32, limit: i64) -> Result<u64, sqlx::Error> {
    crate::db::purge_batch(
        pool,
        "with doomed as (
             select l.id from outreach_logs l
             where l.body is not null and l.created_at < now() - make_interval(days => $1)
               and l.status not in ('queued', 'sending')
               and not exists (select 1 from send_jobs j where j.outreach_log_id = l.id)
             order by l.created_at limit $2
             for update skip locked)
         update outreach_logs l set body = null, subject = null
         from doomed where l.id = doomed.id",
        days,
        limit,
    )
    .await
}

/// Retention: deletes at most `limit` logs older than `days` days, as [`forget_old_bodies`]
/// chooses them. The outreach counts are left alone (no trigger fires on delete).
pub async fn delete_old(pool: &PgPool, days: i32, limit: i64) -> Result<u64, sqlx::Error> {
    crate::db::purge_batch(
        pool,
        "with doomed as (
             select l.id from outreach_logs l
             where l.created_at < now() - make_interval(days => $1)
               and l.status not in ('queued', 'sending')
               and not exists (select 1 from send_jobs j where j.outreach_log_id = l.id)
             order by l.created_at limit $2
             for update skip locked)
         delete from outreach_logs l using doomed where l.id = doomed.id",
        days,
        limit,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invalid_fields(query: &LogQuery) -> Vec<String> {
        let mut errors = FieldErrors::new();
        query.filter(&mut errors);
        errors.fields().map(String::from).collect()
    }

    #[test]
    fn every_bad_filter_is_named() {
        let bad = LogQuery {
            channel: Some("fax".into()),
            status: Some("lost".into()),
            provider: Some("mailgun".into()),
            since: Some("yesterday".into()),
            patient_id: Some("42".into()),
            category: Some("promotional".into()),
            recipient: Some("a".repeat(RECIPIENT_MAX_CHARS + 1)),
            ..Default::default()
        };
        assert_eq!(
            invalid_fields(&bad),
            [
                "category",
                "channel",
                "patientId",
                "provider",
                "recipient",
                "since",
                "status"
            ]
        );
        let backwards = LogQuery {
            since: Some("2026-02-01T00:00:00Z".into()),
            until: Some("2026-01-01T00:00:00Z".into()),
            ..Default::default()
        };
        assert_eq!(invalid_fields(&backwards), ["until"]);
    }

    #[test]
    fn good_filters_parse_and_times_are_read_in_utc() {
        let good = LogQuery {
            channel: Some("sms".into()),
            status: Some("spam_reported".into()),
            provider: Some("custom_twilio".into()),
            since: Some("2026-01-01T00:00:00+01:00".into()),
            until: Some("2026-01-01T00:00:00Z".into()),
            ..Default::default()
        };
        let mut errors = FieldErrors::new();
        let filter = good.filter(&mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(
            (filter.channel, filter.status, filter.provider),
            (Some("sms"), Some("spam_reported"), Some("custom_twilio"))
        );
        assert_eq!(
            filter.since.unwrap().to_rfc3339(),
            "2025-12-31T23:00:00+00:00"
        );
    }

    #[test]
    fn every_provider_is_a_filter_and_a_recipient_is_trimmed() {
        for kind in ProviderKind::ALL {
            let query = LogQuery {
                provider: Some(kind.as_str().into()),
                ..Default::default()
            };
            assert!(invalid_fields(&query).is_empty(), "{kind:?}");
        }
        let query = LogQuery {
            recipient: Some(" Ann_100%\\@Example.com ".into()),
            category: Some("marketing".into()),
            ..Default::default()
        };
        let mut errors = FieldErrors::new();
        let filter = query.filter(&mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(filter.category, Some("marketing"));
        assert_eq!(filter.recipient_prefix, Some("Ann_100%\\@Example.com"));
    }
}
