//! The suppression ledger: addresses and numbers a practice must not message, checked before
//! every send whichever account would send it.

use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use super::Channel;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
}

pub async fn add(
    db: impl PgExecutor<'_>,
    scope: Scope,
    channel: Channel,
    address: &str,
    reason: SuppressionReason,
) -> Result<(), sqlx::Error> {
    add_all(
        db,
        &[Suppression {
            scope,
            channel,
            address: address.to_string(),
            reason,
            unsubscribe_group: None,
        }],
    )
    .await
}

/// Adds every entry in one statement (a webhook batch may carry hundreds); entries already on
/// their ledger keep their first reason.
pub async fn add_all(db: impl PgExecutor<'_>, entries: &[Suppression]) -> Result<(), sqlx::Error> {
    bind_entries(
        sqlx::query(
            "insert into suppressions (practice_id, channel, address, reason, unsubscribe_group)
             select * from unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::bigint[])
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
fn bind_entries<'q>(
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

/// Puts every entry on its ledger and stops the active sequence enrolments of patients at that
/// address, who must receive no further steps: in the entry's practice, or, for the shared
/// system sender, in every practice that sends that channel from the system account.
pub async fn suppress(db: &mut PgConnection, entries: &[Suppression]) -> Result<(), sqlx::Error> {
    if entries.is_empty() {
        return Ok(());
    }
    add_all(&mut *db, entries).await?;
    let stop = sqlx::query(
        "update sequence_enrollments e
         set status = 'stopped', stop_reason = s.reason, updated_at = now()
         from unnest($1::uuid[], $2::text[], $3::text[], $4::text[]) as s(practice_id, channel, address, reason),
              patients p, practices pr
         where e.status = 'active' and p.id = e.patient_id and pr.id = e.practice_id
           and (e.practice_id = s.practice_id
                or (s.practice_id is null and case s.channel
                        when 'email' then pr.email_provider = 'system_sendgrid'
                        else pr.sms_provider = 'system_twilio' end))
           and case s.channel when 'email' then lower(p.email) = s.address else p.phone = s.address end",
    );
    bind_entries(stop, entries).execute(db).await?;
    Ok(())
}
