//! The suppression ledger: addresses and numbers a practice must not message, checked before
//! every send whichever account would send it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgExecutor, PgPool};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::Channel;
use crate::{
    page::{Page, PageRequest},
    types::FieldErrors,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema, sqlx::Type)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum SuppressionReason {
    Unsubscribed,
    Bounced,
    SpamReported,
    Invalid,
    OptedOut,
}

impl SuppressionReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unsubscribed => "unsubscribed",
            Self::Bounced => "bounced",
            Self::SpamReported => "spam_reported",
            Self::Invalid => "invalid",
            Self::OptedOut => "opted_out",
        }
    }
}

/// Where an entry came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema, sqlx::Type)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum SuppressionSource {
    /// A provider's webhook event: a bounce, a drop, a spam report, an unsubscribe.
    ProviderEvent,
    /// A provider refused to send because the recipient had opted out with it.
    ProviderRefusal,
    /// STOP or another opt-out keyword.
    SmsKeyword,
    /// A reply that means "stop" in other words.
    SmsReply,
    /// The unsubscribe link of one of the practice's emails.
    UnsubscribeLink,
}

/// Whose ledger an entry belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Practice(Uuid),
    /// The shared system number: an opt-out there binds every practice that sends from it.
    SystemSender,
}

impl Scope {
    fn practice_id(self) -> Option<Uuid> {
        match self {
            Self::Practice(id) => Some(id),
            Self::SystemSender => None,
        }
    }
}

/// Email addresses compare case-insensitively; numbers are already E.164.
pub fn normalize(channel: Channel, address: &str) -> String {
    match channel {
        Channel::Email => address.trim().to_lowercase(),
        Channel::Sms => address.trim().to_string(),
    }
}

/// One address to put on one ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suppression {
    pub scope: Scope,
    pub channel: Channel,
    pub address: String,
    pub reason: SuppressionReason,
    /// The provider's unsubscribe group (a SendGrid ASM group) an unsubscribe was for. Such an
    /// entry is kept apart from the address's other entries, so the group's resubscribe lifts
    /// it and nothing else.
    pub unsubscribe_group: Option<i64>,
    pub source: SuppressionSource,
}

pub async fn add(
    db: impl PgExecutor<'_>,
    scope: Scope,
    channel: Channel,
    address: &str,
    reason: SuppressionReason,
    source: SuppressionSource,
) -> Result<(), sqlx::Error> {
    add_all(
        db,
        &[Suppression {
            scope,
            channel,
            address: address.to_string(),
            reason,
            unsubscribe_group: None,
            source,
        }],
    )
    .await
}

/// Adds every entry in one statement (a webhook batch may carry hundreds); entries already on
/// their ledger keep their first reason. What else an opt-out does (its sequences stop, its
/// consent is revoked) is `outreach::opt_outs::suppress`, which every opt-out goes through.
pub async fn add_all(db: impl PgExecutor<'_>, entries: &[Suppression]) -> Result<(), sqlx::Error> {
    bind_entries(
        sqlx::query(
            "insert into suppressions (practice_id, channel, address, reason, unsubscribe_group, source)
             select * from unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[])
             on conflict (practice_id, channel, address, unsubscribe_group) do nothing",
        ),
        entries,
    )
    .bind(
        entries
            .iter()
            .map(|e| e.unsubscribe_group)
            .collect::<Vec<_>>(),
    )
    .bind(entries.iter().map(|e| e.source).collect::<Vec<_>>())
    .execute(db)
    .await?;
    Ok(())
}

/// One group resubscribe: the address is back in that unsubscribe group of that practice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupResubscribe {
    pub practice_id: Uuid,
    pub address: String,
    pub group: i64,
}

/// Lifts the email entries the groups' unsubscribes made, and only those: a bounce, a spam
/// report or a global unsubscribe of the same address stays. Returns how many were lifted.
pub async fn lift_group_unsubscribes(
    db: impl PgExecutor<'_>,
    lifts: &[GroupResubscribe],
) -> Result<u64, sqlx::Error> {
    if lifts.is_empty() {
        return Ok(0);
    }
    let result = sqlx::query(
        "delete from suppressions s
         using unnest($1::uuid[], $2::text[], $3::bigint[]) as l(practice_id, address, unsubscribe_group)
         where s.practice_id = l.practice_id and s.channel = 'email' and s.address = l.address
           and s.unsubscribe_group = l.unsubscribe_group and s.reason = 'unsubscribed'",
    )
    .bind(lifts.iter().map(|l| l.practice_id).collect::<Vec<_>>())
    .bind(
        lifts
            .iter()
            .map(|l| normalize(Channel::Email, &l.address))
            .collect::<Vec<_>>(),
    )
    .bind(lifts.iter().map(|l| l.group).collect::<Vec<_>>())
    .execute(db)
    .await?;
    Ok(result.rows_affected())
}

/// Binds `entries` as four parallel arrays, normalised as the ledger stores them:
/// practice id (`uuid[]`, null for the system sender), channel, address and reason (`text[]`).
pub fn bind_entries<'q>(
    query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    entries: &[Suppression],
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    query
        .bind(
            entries
                .iter()
                .map(|e| e.scope.practice_id())
                .collect::<Vec<_>>(),
        )
        .bind(
            entries
                .iter()
                .map(|e| e.channel.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            entries
                .iter()
                .map(|e| normalize(e.channel, &e.address))
                .collect::<Vec<_>>(),
        )
        .bind(
            entries
                .iter()
                .map(|e| e.reason.as_str())
                .collect::<Vec<_>>(),
        )
}

/// Removes an opt-out (START / UNSTOP). Returns whether anything was removed.
pub async fn remove(
    db: impl PgExecutor<'_>,
    scope: Scope,
    channel: Channel,
    address: &str,
) -> Result<bool, sqlx::Error> {
    let result = sqlx::query(
        "delete from suppressions where practice_id is not distinct from $1 and channel = $2 and address = $3",
    )
    .bind(scope.practice_id())
    .bind(channel.as_str())
    .bind(normalize(channel, address))
    .execute(db)
    .await?;
    Ok(result.rows_affected() > 0)
}

/// The reason `address` may not be messaged by `practice_id`, if any. Entries of the shared system
/// sender count only when the system account would send.
pub async fn check(
    db: impl PgExecutor<'_>,
    practice_id: Uuid,
    channel: Channel,
    address: &str,
    via_system_sender: bool,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(
        "select reason from suppressions
         where channel = $2 and address = $3 and (practice_id = $1 or ($4 and practice_id is null))
         order by unsubscribe_group nulls first, id
         limit 1",
    )
    .bind(practice_id)
    .bind(channel.as_str())
    .bind(normalize(channel, address))
    .bind(via_system_sender)
    .fetch_optional(db)
    .await
}

/// What the practice's suppression list and lifting refuse.
#[derive(Debug, thiserror::Error)]
pub enum SuppressionError {
    #[error("invalid input: {0:?}")]
    Invalid(FieldErrors),
    #[error("suppression not found")]
    NotFound,
    /// An opt-out from the platform's shared number binds every practice sending from it; only
    /// the recipient can lift it, by replying START.
    #[error(
        "this opt-out was sent to the shared system number; only the recipient can lift it, by replying START"
    )]
    Shared,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// One entry of a practice's suppression list.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct SuppressionEntry {
    pub id: i64,
    pub channel: Channel,
    pub address: String,
    pub reason: SuppressionReason,
    /// Absent for entries recorded before sources were kept.
    pub source: Option<SuppressionSource>,
    /// An opt-out sent to the platform's shared number (shown because the number is one of the
    /// practice's patients'); it cannot be lifted here.
    pub shared: bool,
    /// The provider's unsubscribe group it is limited to, if any.
    pub unsubscribe_group: Option<i64>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SuppressionQuery {
    /// `email` or `sms`.
    pub channel: Option<String>,
    /// Part of the address, case-insensitively.
    pub search: Option<String>,
    /// Page size, 1 to 100 (default 50).
    #[param(value_type = Option<i64>)]
    pub limit: Option<String>,
    /// `nextCursor` of the previous page.
    pub cursor: Option<String>,
}

/// Newest first: creation time, then id.
type SortKey = (DateTime<Utc>, i64);

/// The practice's own entries and the shared number's opt-outs of its patients, newest first.
#[tracing::instrument(skip_all, fields(practice_id = %practice_id))]
pub async fn list(
    pool: &PgPool,
    practice_id: Uuid,
    query: &SuppressionQuery,
) -> Result<Page<SuppressionEntry>, SuppressionError> {
    let mut errors = FieldErrors::new();
    let channel = query
        .channel
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .and_then(|c| errors.check("channel", Channel::parse(c).ok_or("must be email or sms")));
    let search = crate::types::search_text(&mut errors, query.search.as_deref());
    let page =
        PageRequest::<SortKey>::parse(errors, query.limit.as_deref(), query.cursor.as_deref())
            .map_err(SuppressionError::Invalid)?;
    let pattern = (!search.is_empty())
        .then(|| format!("%{}%", crate::types::escape_like(&search.to_lowercase())));
    let after = page.after.as_ref();
    let rows: Vec<SuppressionEntry> = sqlx::query_as(
        "select s.id, s.channel, s.address, s.reason, s.source, s.practice_id is null as shared,
                s.unsubscribe_group, s.created_at
         from suppressions s
         where (s.practice_id = $1
                or (s.practice_id is null and exists (
                        select 1 from patients p
                        where p.practice_id = $1
                          and case s.channel when 'email' then lower(p.email) = s.address
                                             else p.phone = s.address end)))
           and ($2::text is null or s.channel = $2)
           and ($3::text is null or s.address like $3)
           and ($4::timestamptz is null or (s.created_at, s.id) < ($4, $5))
         order by s.created_at desc, s.id desc
         limit $6",
    )
    .bind(practice_id)
    .bind(channel)
    .bind(pattern)
    .bind(after.map(|key| key.0))
    .bind(after.map(|key| key.1))
    .bind(page.fetch_limit())
    .fetch_all(pool)
    .await?;
    Ok(page.page(rows, |entry| (entry.created_at, entry.id)))
}

/// Lifts one of the practice's own entries, audited as `suppression.lift` (without the address);
/// the address may be messaged again. A consent the entry's event revoked stays revoked.
#[tracing::instrument(skip_all, fields(practice_id = %practice_id))]
pub async fn lift(
    pool: &PgPool,
    practice_id: Uuid,
    user_id: Uuid,
    id: i64,
) -> Result<(), SuppressionError> {
    let mut tx = pool.begin().await?;
    let lifted: Option<Channel> = sqlx::query_scalar(
        "delete from suppressions where id = $1 and practice_id = $2 returning channel",
    )
    .bind(id)
    .bind(practice_id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(channel) = lifted else {
        let visible_shared = list_contains_shared(&mut tx, practice_id, id).await?;
        return Err(if visible_shared {
            SuppressionError::Shared
        } else {
            SuppressionError::NotFound
        });
    };
    crate::audit::record(
        &mut *tx,
        practice_id,
        Some(user_id),
        crate::audit::AuditAction::SuppressionLift,
        &[channel.as_str()],
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Whether `id` is a shared-number entry the practice's list shows.
async fn list_contains_shared(
    db: &mut PgConnection,
    practice_id: Uuid,
    id: i64,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "select exists (
             select 1 from suppressions s join patients p on p.practice_id = $2
             where s.id = $1 and s.practice_id is null
               and case s.channel when 'email' then lower(p.email) = s.address else p.phone = s.address end)",
    )
    .bind(id)
    .bind(practice_id)
    .fetch_one(db)
    .await
}
