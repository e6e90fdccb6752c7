//! The outbox: a real provider that keeps each message in the database instead of sending it, so
//! the whole product runs on a machine without SendGrid or Twilio accounts.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use utoipa::ToSchema;
use uuid::Uuid;

use futures::future::BoxFuture;

use crate::providers::{
    Accepted, Account, Channel, MessageSender, OutgoingMessage, ProviderContext, ProviderError,
    ProviderKind,
};

pub async fn store(
    pool: &PgPool,
    sender: &str,
    message: &OutgoingMessage,
) -> Result<Accepted, ProviderError> {
    let id = Uuid::new_v4();
    sqlx::query(
        "insert into outbox_messages (id, practice_id, outreach_log_id, channel, recipient, sender, subject, body, headers)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(id)
    .bind(message.practice_id)
    .bind(message.outreach_log_id)
    .bind(message.channel.as_str())
    .bind(&message.to)
    .bind(sender)
    .bind(&message.subject)
    .bind(&message.body)
    .bind(sqlx::types::Json(&message.headers))
    .execute(pool)
    .await
    .map_err(|e| ProviderError::Unavailable { message: format!("the outbox could not store the message: {e}") })?;
    Ok(Accepted {
        provider_message_id: Some(format!("outbox-{id}")),
    })
}

#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct OutboxEntry {
    pub id: Uuid,
    pub outreach_log_id: Option<Uuid>,
    pub channel: String,
    pub recipient: String,
    pub sender: String,
    pub subject: Option<String>,
    pub body: String,
    #[schema(value_type = Object)]
    pub headers: sqlx::types::JsonValue,
    pub created_at: DateTime<Utc>,
}

/// Retention: deletes at most `limit` messages stored more than `days` days ago, claimed with
/// `for update skip locked` so several instances purge disjoint rows; returns how many.
pub async fn delete_old(pool: &PgPool, days: i32, limit: i64) -> Result<u64, sqlx::Error> {
    crate::db::purge_batch(
        pool,
        "with doomed as (
             select id from outbox_messages
             where created_at < now() - make_interval(days => $1)
             order by created_at limit $2
             for update skip locked)
         delete from outbox_messages o using doomed where o.id = doomed.id",
        days,
        limit,
    )
    .await
}

/// The practice's outbox, newest first.
#[tracing::instrument(skip_all, fields(practice_id = %practice_id))]
pub async fn list(
    pool: &PgPool,
    practice_id: Uuid,
    limit: i64,
) -> Result<Vec<OutboxEntry>, sqlx::Error> {
    sqlx::query_as(
        "select id, outreach_log_id, channel, recipient, sender, subject, body, headers, created_at
         from outbox_messages where practice_id = $1 order by created_at desc, id limit $2",
    )
    .bind(practice_id)
    .bind(limit)
    .fetch_all(pool)
    .await
}

struct OutboxSender {
    pool: PgPool,
    sender: &'static str,
}

impl MessageSender for OutboxSender {
    fn send<'a>(
        &'a self,
        message: &'a OutgoingMessage,
    ) -> BoxFuture<'a, Result<Accepted, ProviderError>> {
        Box::pin(store(&self.pool, self.sender, message))
    }
}

/// The account a channel falls to when the platform has no provider account configured for it.
pub fn account(ctx: &ProviderContext, channel: Channel) -> Account {
    Account {
        kind: ProviderKind::Outbox,
        account_key: None,
        sender: Box::new(OutboxSender {
            pool: ctx.pool.clone(),
            sender: match channel {
                Channel::Email => "outbox@dentite.local",
                Channel::Sms => "outbox",
            },
        }),
    }
}
