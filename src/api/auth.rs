//! The login route and the extractors that turn a bearer token into a caller.
//!
//! Every rejection is the same 401 to the client; the reason is logged at debug for operators.

use axum::{
    extract::{FromRequestParts, State},
    http::{header, request::Parts},
};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{client_addr::ClientAddr, json::Json};
use crate::{
    AppState,
    auth::{self, AuthError, LoginSession, PracticeCaller, Role},
    error::{ApiError, ErrorBody},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(login))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct LoginRequest {
    email: String,
    password: String,
}

/// Exchange email and password for a bearer token.
#[utoipa::path(post, path = "/api/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = LoginSession), (status = 401, body = ErrorBody),
        (status = 422, description = "a field of the wrong type, or missing", body = ErrorBody), (status = 429, body = ErrorBody),
        (status = 503, description = "too many logins at once; retry after the Retry-After seconds", body = ErrorBody)))]
async fn login(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    Json(request): Json<LoginRequest>,
) -> Result<Json<LoginSession>, ApiError> {
    auth::login(
        &state.pool,
        &state.tokens,
        &request.email,
        &request.password,
        Some(client),
    )
    .await
    .map(Json)
    .map_err(|e| match e {
        AuthError::InvalidCredentials => ApiError::Unauthorized,
        AuthError::Throttled { retry_after } => ApiError::RateLimited { retry_after },
        AuthError::Busy => {
            ApiError::Unavailable("too many logins are being checked; try again shortly".into())
        }
        AuthError::Database(e) => e.into(),
        AuthError::Internal(e) => ApiError::Internal(e),
    })
}

/// Where a request's user is looked up.
#[derive(Clone, Copy)]
enum Lookup {
    /// The users cache, which a change reaches through its notification a moment after commit.
    Cached,
    /// The row itself: settings changes are rare and privileged, and a demotion committed a
    /// moment ago must already stop them.
    Fresh,
}

/// The token's claims, with role and practice replaced by the user's current ones: a token
/// outlives a demotion or a deletion, its user's row does not. A deleted user gets the same 401
/// as a bad token.
async fn bearer_claims(
    parts: &Parts,
    state: &AppState,
    lookup: Lookup,
) -> Result<auth::Claims, ApiError> {
    let mut claims = token_claims(parts, state)?;
    let current = match lookup {
        Lookup::Cached => state.users.current(claims.sub).await,
        Lookup::Fresh => state.users.read(claims.sub).await,
    };
    let current = current.map_err(ApiError::from)?.ok_or_else(|| {
        tracing::debug!(user_id = %claims.sub, "token of a deleted user");
        ApiError::Unauthorized
    })?;
    claims.role = current.role;
    claims.practice = current.practice_id;
    Ok(claims)
}

fn token_claims(parts: &Parts, state: &AppState) -> Result<auth::Claims, ApiError> {
    let header = parts.headers.get(header::AUTHORIZATION).ok_or_else(|| {
        tracing::debug!("no Authorization header");
        ApiError::Unauthorized
    })?;
    let token = header
        .to_str()
        .ok()
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .ok_or_else(|| {
            tracing::debug!("Authorization header is not a bearer token");
            ApiError::Unauthorized
        })?;
    state.tokens.verify(token.trim()).map_err(|e| {
        tracing::debug!(reason = %e, "rejected bearer token");
        ApiError::Unauthorized
    })
}

impl FromRequestParts<AppState> for PracticeCaller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        practice_caller(parts, state, Lookup::Cached).await
    }
}

async fn practice_caller(
    parts: &Parts,
    state: &AppState,
    lookup: Lookup,
) -> Result<PracticeCaller, ApiError> {
    let claims = bearer_claims(parts, state, lookup).await?;
    match (claims.role, claims.practice) {
        (Role::Owner | Role::Admin | Role::Staff, Some(practice_id)) => Ok(PracticeCaller {
            user_id: claims.sub,
            practice_id,
            role: claims.role,
        }),
        _ => Err(ApiError::Forbidden("this route is for practice users")),
    }
}

/// An operator of the platform; only `/api/admin/*` accepts one.
#[derive(Debug, Clone, Copy)]
pub struct PlatformAdmin {
    pub user_id: uuid::Uuid,
}

impl FromRequestParts<AppState> for PlatformAdmin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let claims = bearer_claims(parts, state, Lookup::Cached).await?;
        match claims.role {
            Role::PlatformAdmin => Ok(PlatformAdmin {
                user_id: claims.sub,
            }),
            _ => Err(ApiError::Forbidden(
                "this route is for platform administrators",
            )),
        }
    }
}

/// A practice user allowed to change messaging settings (owner or admin).
#[derive(Debug, Clone, Copy)]
pub struct SettingsEditor(pub PracticeCaller);

impl FromRequestParts<AppState> for SettingsEditor {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let caller = practice_caller(parts, state, Lookup::Fresh).await?;
        if caller.may_change_settings() {
            Ok(Self(caller))
        } else {
            Err(ApiError::Forbidden(
                "only owners and admins may change messaging settings",
            ))
        }
    }
}
