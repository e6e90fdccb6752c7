//! Messaging numbers: a practice's own, and the platform's across practices.

use axum::extract::State;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    auth::PlatformAdmin,
    json::{Json, Query},
};
use crate::{
    AppState,
    auth::PracticeCaller,
    error::{ApiError, ErrorBody},
    outreach::analytics::{self, DailyQuery, DailyRow, PlatformUsage, UsageQuery, UsageRow},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(practice_usage))
        .routes(routes!(platform_usage))
        .routes(routes!(practice_daily))
}

/// The practice's messages per UTC day of the last `days` days (today included), per provider
/// and type, oldest first, for charts: total, sent (accepted by a provider), delivered and failed.
/// A day without messages of a provider and type has no row.
#[utoipa::path(get, path = "/api/analytics/messaging/daily", tag = "analytics", security(("bearer" = [])), params(DailyQuery),
    responses((status = 200, body = [DailyRow]), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn practice_daily(
    State(state): State<AppState>,
    caller: PracticeCaller,
    Query(query): Query<DailyQuery>,
) -> Result<Json<Vec<DailyRow>>, ApiError> {
    Ok(Json(
        analytics::daily_for_practice(&state.pool, caller.practice_id, &query).await?,
    ))
}

/// The practice's messages of the last `days` days per provider and type: total, delivered
/// (delivered, opened or clicked) and failed (failed, undelivered, bounced or dropped).
#[utoipa::path(get, path = "/api/analytics/messaging", tag = "analytics", security(("bearer" = [])), params(UsageQuery),
    responses((status = 200, body = [UsageRow]), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn practice_usage(
    State(state): State<AppState>,
    caller: PracticeCaller,
    Query(query): Query<UsageQuery>,
) -> Result<Json<Vec<UsageRow>>, ApiError> {
    Ok(Json(
        analytics::for_practice(&state.pool, caller.practice_id, &query).await?,
    ))
}

/// The same numbers across every practice, and per practice, as computed at most
/// ten seconds ago. Platform administrators only.
#[utoipa::path(get, path = "/api/admin/messaging/usage", tag = "admin", security(("bearer" = [])), params(UsageQuery),
    responses((status = 200, body = PlatformUsage), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn platform_usage(
    State(state): State<AppState>,
    _admin: PlatformAdmin,
    Query(query): Query<UsageQuery>,
) -> Result<Json<PlatformUsage>, ApiError> {
    let usage = state.platform_usage.get(&state.pool, &query).await?;
    Ok(Json(PlatformUsage::clone(&usage)))
}
