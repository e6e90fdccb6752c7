//! Logins, roles and tokens. Knows nothing of HTTP: `api::auth` turns these into routes and an
//! extractor.

mod password;
mod throttle;
mod token;
mod users;

use std::{net::IpAddr, time::Duration};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use utoipa::ToSchema;
use uuid::Uuid;

pub use password::{HashError, hash_password, verify_password};
pub use token::{Claims, TokenError, TokenSigner};
pub use users::{CurrentUser, USERS_CHANNEL, UserDirectory};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Owner,
    Admin,
    Staff,
    PlatformAdmin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Owner => "owner",
            Self::Admin => "admin",
            Self::Staff => "staff",
            Self::PlatformAdmin => "platform_admin",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        [Self::Owner, Self::Admin, Self::Staff, Self::PlatformAdmin]
            .into_iter()
            .find(|r| r.as_str() == value)
    }
}

/// A logged-in user of a practice.
#[derive(Debug, Clone, Copy)]
pub struct PracticeCaller {
    pub user_id: Uuid,
    pub practice_id: Uuid,
    pub role: Role,
}

impl PracticeCaller {
    /// Owners and admins change messaging settings; staff only read them.
    pub fn may_change_settings(&self) -> bool {
        matches!(self.role, Role::Owner | Role::Admin)
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserView {
    pub id: Uuid,
    pub email: String,
    pub role: Role,
    pub practice_id: Option<Uuid>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoginSession {
    pub token: String,
    pub expires_at: DateTime<Utc>,
    pub user: UserView,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// One answer for an unknown email and a wrong password, so logins cannot probe for accounts.
    #[error("invalid email or password")]
    InvalidCredentials,
    #[error("too many failed logins")]
    Throttled { retry_after: Duration },
    /// Every password-hashing slot is taken; the attempt was counted but not checked.
    #[error("too many logins are being checked right now")]
    Busy,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

#[derive(sqlx::FromRow)]
struct UserRow {
    id: Uuid,
    email: String,
    password_hash: String,
    role: String,
    practice_id: Option<Uuid>,
}

pub const TOKEN_LIFETIME: Duration = Duration::from_secs(12 * 3600);

/// Checks the password, throttling attempts per email and client address (see `throttle`).
pub async fn login(
    pool: &PgPool,
    signer: &TokenSigner,
    email: &str,
    password: &str,
    client: Option<IpAddr>,
) -> Result<LoginSession, AuthError> {
    let email = email.trim().to_lowercase();
    let subjects = throttle::subjects(&email, client);
    throttle::reserve(pool, &subjects).await?;

    let user: Option<UserRow> = sqlx::query_as(
        "select id, email, password_hash, role, practice_id from users where lower(email) = $1",
    )
    .bind(&email)
    .fetch_optional(pool)
    .await?;

    // Unknown emails still pay for a hash, so response time does not reveal which accounts exist.
    let stored_hash = user.as_ref().map(|u| u.password_hash.clone());
    let password_ok = verify_password(password.to_string(), stored_hash)
        .await
        .map_err(|e| match e {
            HashError::Busy => AuthError::Busy,
            HashError::Internal(e) => AuthError::Internal(e),
        })?;
    let Some(user) = user.filter(|_| password_ok) else {
        throttle::failed(pool).await?;
        return Err(AuthError::InvalidCredentials);
    };
    throttle::succeeded(pool, &subjects).await?;

    let role = Role::parse(&user.role)
        .ok_or_else(|| anyhow::anyhow!("user {} has unknown role {}", user.id, user.role))?;
    let (token, expires_at) = signer.issue(user.id, user.practice_id, role, TOKEN_LIFETIME)?;
    Ok(LoginSession {
        token,
        expires_at,
        user: UserView {
            id: user.id,
            email: user.email,
            role,
            practice_id: user.practice_id,
        },
    })
}

#[derive(Debug, thiserror::Error)]
pub enum CreateUserError {
    #[error("a user with this email already exists")]
    EmailTaken,
    #[error("practice {0} does not exist")]
    UnknownPractice(Uuid),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// Creates a login; `practice_id` is `None` exactly for platform admins.
pub async fn create_user(
    pool: &PgPool,
    email: &crate::types::EmailAddress,
    password: &str,
    role: Role,
    practice_id: Option<Uuid>,
) -> Result<Uuid, CreateUserError> {
    let hash = hash_password(password.to_string()).await?;
    let id = Uuid::new_v4();
    let result = sqlx::query("insert into users (id, email, password_hash, role, practice_id) values ($1, $2, $3, $4, $5)")
        .bind(id)
        .bind(email.as_str())
        .bind(hash)
        .bind(role.as_str())
        .bind(practice_id)
        .execute(pool)
        .await;
    match result {
        Ok(_) => Ok(id),
        Err(e) if crate::db::is_unique_violation(&e, "users_email_key") => {
            Err(CreateUserError::EmailTaken)
        }
        Err(sqlx::Error::Database(e)) if e.is_foreign_key_violation() => Err(
            CreateUserError::UnknownPractice(practice_id.unwrap_or_default()),
        ),
        Err(e) => Err(e.into()),
    }
}
