//! `/api/practice-settings/messaging/compliance`, the message preview, consents and the
//! inbound replies.

use axum::{extract::State, http::StatusCode};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{
    auth::SettingsEditor,
    json::{Json, Path, Query},
};
use crate::{
    AppState,
    auth::PracticeCaller,
    compliance::{
        ComplianceError,
        consent::{self, ConsentHistory, NewConsent},
        inbound::{self, InboundMessage, InboundQuery},
        preview::{self, Preview, PreviewRequest},
        settings::{self, ComplianceView},
    },
    error::{ApiError, ErrorBody},
    page::Page,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_compliance, put_compliance))
        .routes(routes!(preview_message))
        .routes(routes!(record_consent, consent_history))
        .routes(routes!(list_inbound_messages))
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
    responses((status = 200, body = Preview), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, description = "a field of the wrong type, or missing", body = ErrorBody)),
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

/// Append a consent grant or revocation for a patient; answers the whole history.
#[utoipa::path(post, path = "/api/patients/{id}/consents", tag = "compliance", params(("id" = Uuid, Path)),
    request_body = NewConsent,
    responses((status = 201, body = ConsentHistory), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)), security(("bearer" = [])))]
async fn record_consent(
    State(state): State<AppState>,
    caller: PracticeCaller,
    Path(id): Path<Uuid>,
    Json(consent): Json<NewConsent>,
) -> Result<(StatusCode, Json<ConsentHistory>), ApiError> {
    let history = consent::record(
        &state.pool,
        caller.practice_id,
        id,
        caller.user_id,
        &consent,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(history)))
}

/// The patient's consent history, newest first, and what is in effect per channel and category.
#[utoipa::path(get, path = "/api/patients/{id}/consents", tag = "compliance", params(("id" = Uuid, Path)),
    responses((status = 200, body = ConsentHistory), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn consent_history(
    State(state): State<AppState>,
    caller: PracticeCaller,
    Path(id): Path<Uuid>,
) -> Result<Json<ConsentHistory>, ApiError> {
    Ok(Json(
        consent::history(&state.pool, caller.practice_id, id).await?,
    ))
}

/// SMS replies to the practice that are not keywords, newest first, filtered by patient and time.
/// A reply to the shared system number is listed by every practice with a patient at that phone.
#[utoipa::path(get, path = "/api/inbound-messages", tag = "compliance", security(("bearer" = [])), params(InboundQuery),
    responses((status = 200, body = Page<InboundMessage>), (status = 401, body = ErrorBody),
        (status = 422, description = "each invalid filter named", body = ErrorBody)))]
async fn list_inbound_messages(
    State(state): State<AppState>,
    caller: PracticeCaller,
    Query(query): Query<InboundQuery>,
) -> Result<Json<Page<InboundMessage>>, ApiError> {
    Ok(Json(
        inbound::list(&state.pool, caller.practice_id, &query).await?,
    ))
}
