//! `/api/outreach/logs`: what was sent, to whom, through which account, and what became of it.

use axum::extract::State;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::json::{Json, Path, Query};
use crate::{
    AppState,
    auth::PracticeCaller,
    error::{ApiError, ErrorBody},
    outreach::logs::{self, LogQuery, OutreachLog, OutreachLogDetail},
    page::Page,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_logs))
        .routes(routes!(get_log))
}

/// The practice's messages, newest first, filtered by channel, status, provider, patient and time.
#[utoipa::path(get, path = "/api/outreach/logs", tag = "outreach", security(("bearer" = [])), params(LogQuery),
    responses((status = 200, body = Page<OutreachLog>), (status = 401, body = ErrorBody),
        (status = 422, description = "each invalid filter named", body = ErrorBody)))]
async fn list_logs(
    State(state): State<AppState>,
    caller: PracticeCaller,
    Query(query): Query<LogQuery>,
) -> Result<Json<Page<OutreachLog>>, ApiError> {
    Ok(Json(
        logs::list(&state.pool, caller.practice_id, &query).await?,
    ))
}

/// One message with the provider events received about it.
#[utoipa::path(get, path = "/api/outreach/logs/{id}", tag = "outreach", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = OutreachLogDetail), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_log(
    State(state): State<AppState>,
    caller: PracticeCaller,
    Path(id): Path<Uuid>,
) -> Result<Json<OutreachLogDetail>, ApiError> {
    Ok(Json(logs::get(&state.pool, caller.practice_id, id).await?))
}
