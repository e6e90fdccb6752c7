//! `/api/practice-settings/messaging/compliance` and the message preview.

use axum::extract::State;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{auth::SettingsEditor, json::Json};
use crate::{
    AppState,
    auth::PracticeCaller,
    compliance::{
        ComplianceError,
        preview::{self, Preview, PreviewRequest},
        settings::{self, ComplianceView},
    },
    error::{ApiError, ErrorBody},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_compliance, put_compliance))
        .routes(routes!(preview_message))
}

impl From<ComplianceError> for ApiError {
    fn from(error: ComplianceError) -> Self {
        match error {
            ComplianceError::Invalid(fields) => ApiError::Validation(fields),
            ComplianceError::NotFound(what) => ApiError::NotFound(what),
            ComplianceError::Database(e) => e.into(),
        }
    }
}

/// The practice's sending rules: time zone, window, care-SMS caps, CAN-SPAM contact, SMS price.
#[utoipa::path(get, path = "/api/practice-settings/messaging/compliance", tag = "compliance",
    responses((status = 200, body = ComplianceView), (status = 401, body = ErrorBody)), security(("bearer" = [])))]
async fn get_compliance(
    State(state): State<AppState>,
    caller: PracticeCaller,
) -> Result<Json<ComplianceView>, ApiError> {
    Ok(Json(settings::get(&state.pool, caller.practice_id).await?))
}

/// Replace the sending rules (owner or admin). Caps may be lowered below 1 a day and 3 a week,
/// never raised; the window is always clamped to 08:00–21:00 local time.
#[utoipa::path(put, path = "/api/practice-settings/messaging/compliance", tag = "compliance",
    request_body = ComplianceView,
    responses((status = 200, body = ComplianceView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody)), security(("bearer" = [])))]
async fn put_compliance(
    State(state): State<AppState>,
    SettingsEditor(caller): SettingsEditor,
    Json(request): Json<ComplianceView>,
) -> Result<Json<ComplianceView>, ApiError> {
    Ok(Json(
        settings::put(&state.pool, caller.practice_id, &request).await?,
    ))
}

/// Encoding, segments, cost and sending time of a message, without sending it.
#[utoipa::path(post, path = "/api/outreach/messages/preview", tag = "outreach",
    request_body = PreviewRequest,
    responses((status = 200, body = Preview), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn preview_message(
    State(state): State<AppState>,
    caller: PracticeCaller,
    Json(request): Json<PreviewRequest>,
) -> Result<Json<Preview>, ApiError> {
    Ok(Json(
        preview::preview(
            &state.pool,
            caller.practice_id,
            &request,
            chrono::Utc::now(),
        )
        .await?,
    ))
}
