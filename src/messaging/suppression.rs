//! The suppression ledger: addresses and numbers a practice must not message, checked before
//! every send whichever account would send it.

use sqlx::PgExecutor;
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

pub async fn add(
    db: impl PgExecutor<'_>,
    scope: Scope,
    channel: Channel,
    address: &str,
    reason: SuppressionReason,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into suppressions (practice_id, channel, address, reason) values ($1, $2, $3, $4)
         on conflict (practice_id, channel, address) do nothing",
    )
    .bind(scope.practice_id())
    .bind(channel.as_str())
    .bind(normalize(channel, address))
    .bind(reason.as_str())
    .execute(db)
    .await?;
    Ok(())
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
         limit 1",
    )
    .bind(practice_id)
    .bind(channel.as_str())
    .bind(normalize(channel, address))
    .bind(via_system_sender)
    .fetch_optional(db)
    .await
}
