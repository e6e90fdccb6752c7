//! SMS replies that are not keywords (`inbound_messages`, written only here): what patients
//! answer to reminders, kept for the practice to read. STOP, START and HELP are acted on
//! elsewhere and not kept here; an opt-out phrase ("please stop texting me") is kept with
//! `optOutMatched`, since it is both an answer and an opt-out.
//!
//! Whose reply it is: a reply to a practice's own number belongs to that practice. A reply to
//! the shared system number belongs to every practice with a patient at that phone, one row each
//! (the number speaks for all of them, as for STOP); with no such patient nobody can read it,
//! and only the provider event keeps it. `patientId` is that practice's patient with the phone
//! when there is exactly one: a phone shared by a family says nothing about who answered.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::ComplianceError;
use crate::{
    messaging::suppression::Scope,
    page::{NewestFirst, Page, PageRequest},
    types::FieldErrors,
};

/// One reply as received.
#[derive(Debug, Clone, Copy)]
pub struct Received<'a> {
    /// The practice whose number received it, or the system sender.
    pub scope: Scope,
    /// The provider value of the number's account (`custom_twilio`, `system_twilio`…).
    pub provider: &'static str,
    pub provider_message_id: &'a str,
    pub from: &'a str,
    pub to: &'a str,
    pub body: &'a str,
    pub opt_out_matched: bool,
}

/// Keeps `message` for each practice it belongs to; returns how many rows that made.
pub async fn record(db: &mut PgConnection, message: &Received<'_>) -> Result<u64, sqlx::Error> {
    let practice = match message.scope {
        Scope::Practice(id) => Some(id),
        Scope::SystemSender => None,
    };
    let result = sqlx::query(
        "insert into inbound_messages (id, practice_id, patient_id, from_number, to_number, body,
                                       provider, provider_message_id, opt_out_matched)
         select gen_random_uuid(), practice.id,
                (select case when count(*) = 1 then (array_agg(p.id))[1] end
                 from patients p where p.practice_id = practice.id and p.phone = $2),
                $2, $3, $4, $5, $6, $7
         from (select $1::uuid as id where $1::uuid is not null
               union
               select distinct practice_id from patients where $1::uuid is null and phone = $2) practice",
    )
    .bind(practice)
    .bind(message.from.trim())
    .bind(message.to)
    .bind(message.body)
    .bind(message.provider)
    .bind(message.provider_message_id)
    .bind(message.opt_out_matched)
    .execute(db)
    .await?;
    Ok(result.rows_affected())
}

#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct InboundMessage {
    pub id: Uuid,
    /// The practice's patient at `from`, when exactly one has that phone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patient_id: Option<Uuid>,
    pub from: String,
    /// The number the reply was sent to.
    pub to: String,
    pub body: String,
    #[schema(value_type = crate::messaging::ProviderKind)]
    pub provider: String,
    pub received_at: DateTime<Utc>,
    /// Whether the reply held an opt-out phrase (the number is then suppressed).
    pub opt_out_matched: bool,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
pub struct InboundQuery {
    /// Only replies matched to this patient.
    #[param(value_type = Option<Uuid>)]
    pub patient_id: Option<String>,
    /// Replies received at or after this RFC 3339 time.
    #[param(value_type = Option<DateTime<Utc>>)]
    pub since: Option<String>,
    /// Page size, 1 to 100 (default 50).
    #[param(value_type = Option<i64>)]
    pub limit: Option<String>,
    /// `nextCursor` of the previous page.
    pub cursor: Option<String>,
}

/// The practice's replies, newest first.
#[tracing::instrument(skip_all, fields(practice_id = %practice_id))]
pub async fn list(
    pool: &PgPool,
    practice_id: Uuid,
    query: &InboundQuery,
) -> Result<Page<InboundMessage>, ComplianceError> {
    let mut errors = FieldErrors::new();
    let patient_id = query
        .patient_id
        .as_deref()
        .map(str::trim)
        .filter(|id| !id.is_empty())
        .and_then(|id| {
            errors.check(
                "patientId",
                Uuid::parse_str(id).map_err(|_| "must be a patient id"),
            )
        });
    let since = query
        .since
        .as_deref()
        .map(str::trim)
        .filter(|since| !since.is_empty())
        .and_then(|since| {
            errors.check(
                "since",
                DateTime::parse_from_rfc3339(since)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|_| "must be an RFC 3339 time like 2026-01-31T09:00:00Z"),
            )
        });
    let page =
        PageRequest::<NewestFirst>::parse(errors, query.limit.as_deref(), query.cursor.as_deref())
            .map_err(ComplianceError::Invalid)?;
    let mut statement = sqlx::QueryBuilder::new(
        "select id, patient_id, from_number as \"from\", to_number as \"to\", body, provider, received_at,
                opt_out_matched
         from inbound_messages where practice_id = ",
    );
    statement.push_bind(practice_id);
    if let Some(patient_id) = patient_id {
        statement.push(" and patient_id = ").push_bind(patient_id);
    }
    if let Some(since) = since {
        statement.push(" and received_at >= ").push_bind(since);
    }
    if let Some((at, id)) = page.after {
        statement
            .push(" and (received_at, id) < (")
            .push_bind(at)
            .push(", ")
            .push_bind(id)
            .push(")");
    }
    statement
        .push(" order by received_at desc, id desc limit ")
        .push_bind(page.fetch_limit());
    let rows: Vec<InboundMessage> = statement.build_query_as().fetch_all(pool).await?;
    Ok(page.page(rows, |message| (message.received_at, message.id)))
}
