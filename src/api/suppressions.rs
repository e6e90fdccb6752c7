//! `/api/suppressions`: the addresses and numbers the practice's messages may not reach, and
//! lifting one that was suppressed by mistake.

use axum::{extract::State, http::StatusCode};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    auth::SettingsEditor,
    json::{Json, Path, Query},
};
use crate::{
    AppState,
    auth::PracticeCaller,
    error::{ApiError, ErrorBody},
    messaging::suppression::{self, SuppressionEntry, SuppressionError, SuppressionQuery},
    page::Page,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_suppressions))
        .routes(routes!(lift_suppression))
}

impl From<SuppressionError> for ApiError {
    fn from(error: SuppressionError) -> Self {
        match error {
            SuppressionError::Invalid(fields) => ApiError::Validation(fields),
            SuppressionError::NotFound => ApiError::NotFound("suppression"),
            SuppressionError::Shared => ApiError::Conflict(error.to_string()),
            SuppressionError::Database(e) => e.into(),
        }
    }
}

/// The practice's suppressions newest first, with the shared system number's opt-outs of its
/// patients (`shared`).
#[utoipa::path(get, path = "/api/suppressions", tag = "suppressions", security(("bearer" = [])), params(SuppressionQuery),
    responses((status = 200, body = Page<SuppressionEntry>), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn list_suppressions(
    State(state): State<AppState>,
    caller: PracticeCaller,
    Query(query): Query<SuppressionQuery>,
) -> Result<Json<Page<SuppressionEntry>>, ApiError> {
    Ok(Json(
        suppression::list(&state.pool, caller.practice_id, &query).await?,
    ))
}

/// Lift one of the practice's suppressions (owner or admin), audited. A shared-number opt-out is
/// 409: only the recipient can lift it, by replying START.
#[utoipa::path(delete, path = "/api/suppressions/{id}", tag = "suppressions", security(("bearer" = [])), params(("id" = i64, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
async fn lift_suppression(
    State(state): State<AppState>,
    SettingsEditor(caller): SettingsEditor,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    suppression::lift(&state.pool, caller.practice_id, caller.user_id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
