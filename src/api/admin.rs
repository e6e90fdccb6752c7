//! `/api/admin/*`: views across practices, for platform operators only.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    auth::PlatformAdmin,
    json::{Json, Query},
    page_limit,
};
use crate::{
    AppState,
    error::{ApiError, ErrorBody},
    messaging::settings::{MessagingSummary, messaging_summaries},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_practices))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
struct PracticeListQuery {
    /// Only practices using their own SendGrid or Twilio account.
    custom_config: Option<bool>,
    /// 1 to 500; 100 when omitted.
    limit: Option<i64>,
    /// How many practices to skip (the previous page's `nextOffset`).
    offset: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct PracticeList {
    /// By name.
    practices: Vec<MessagingSummary>,
    /// Pass as `offset` for the next page; absent on the last page.
    next_offset: Option<i64>,
}

/// Practices and their messaging set-up; `customConfig=true` lists those with their own
/// SendGrid or Twilio account.
#[utoipa::path(get, path = "/api/admin/practices", tag = "admin", security(("bearer" = [])), params(PracticeListQuery),
    responses((status = 200, body = PracticeList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn list_practices(
    State(state): State<AppState>,
    _admin: PlatformAdmin,
    Query(query): Query<PracticeListQuery>,
) -> Result<Json<PracticeList>, ApiError> {
    let limit = page_limit(query.limit, 100, 500)?;
    let offset = query.offset.unwrap_or(0);
    if offset < 0 {
        return Err(ApiError::validation("offset", "must not be negative"));
    }
    let mut practices = messaging_summaries(
        &state.pool,
        query.custom_config.unwrap_or(false),
        limit + 1,
        offset,
    )
    .await?;
    let next_offset = (practices.len() as i64 > limit).then(|| {
        practices.truncate(limit as usize);
        offset + limit
    });
    Ok(Json(PracticeList {
        practices,
        next_offset,
    }))
}
