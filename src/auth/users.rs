//! Who a token's user is *now*: a token's claims are fixed when it is issued, but its user may be
//! demoted or deleted while it is still valid. Every request looks the user up here; the answer
//! is cached briefly, and a trigger on `users` notifies [`USERS_CHANNEL`] so that every instance
//! forgets a changed user at once (the TTL only bounds what a lost notification could cost).

use std::time::Duration;

use sqlx::{PgPool, postgres::PgListener};
use tokio::sync::watch;
use uuid::Uuid;

use super::Role;

pub const USERS_CHANNEL: &str = "dentite_users";

const TTL: Duration = Duration::from_secs(30);
const CAPACITY: u64 = 100_000;

/// A user as stored now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CurrentUser {
    pub role: Role,
    pub practice_id: Option<Uuid>,
}

pub struct UserDirectory {
    pool: PgPool,
    /// `None` remembers a deleted user (ids are never reused).
    cache: moka::future::Cache<Uuid, Option<CurrentUser>>,
}

impl UserDirectory {
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            cache: moka::future::Cache::builder()
                .max_capacity(CAPACITY)
                .time_to_live(TTL)
                .build(),
        }
    }

    /// The user's current role and practice, or `None` once the user is deleted.
    pub async fn current(&self, user_id: Uuid) -> Result<Option<CurrentUser>, sqlx::Error> {
        if let Some(known) = self.cache.get(&user_id).await {
            return Ok(known);
        }
        self.read(user_id).await
    }

    /// The user as stored at this moment, never from the cache (which it refreshes): for
    /// privileged changes, which a demotion must stop even before its notification arrives.
    pub async fn read(&self, user_id: Uuid) -> Result<Option<CurrentUser>, sqlx::Error> {
        let row: Option<(String, Option<Uuid>)> =
            sqlx::query_as("select role, practice_id from users where id = $1")
                .bind(user_id)
                .fetch_optional(&self.pool)
                .await?;
        // An unknown role cannot authorise anything: treat it as no user.
        let user = row.and_then(|(role, practice_id)| {
            Role::parse(&role).map(|role| CurrentUser { role, practice_id })
        });
        self.cache.insert(user_id, user).await;
        Ok(user)
    }

    pub async fn forget(&self, user_id: Uuid) {
        self.cache.invalidate(&user_id).await;
    }

    /// Forgets each user `listener` (already listening on [`USERS_CHANNEL`]) hears of, until
    /// `stop`; after a lost connection it listens again and forgets everyone, since a change may
    /// have been missed meanwhile.
    pub async fn forget_changed_users(
        self: std::sync::Arc<Self>,
        listener: PgListener,
        stop: watch::Receiver<bool>,
    ) {
        crate::db::follow_ids(
            listener,
            stop,
            "users",
            |user_id| {
                let users = self.clone();
                async move { users.forget(user_id).await }
            },
            || self.cache.invalidate_all(),
        )
        .await;
    }
}
