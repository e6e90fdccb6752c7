//! `/api/sequences`: multi-step campaigns and who is enrolled in them.

use axum::{extract::State, http::StatusCode};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::json::{Json, Path, Query};
use crate::{
    AppState,
    auth::PracticeCaller,
    error::{ApiError, ErrorBody},
    outreach::sequences::{
        self, Enrollment, EnrollmentOutcome, EnrollmentQuery, EnrollmentRequest, Sequence,
        SequenceFields, SequenceQuery,
    },
    page::Page,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_sequence, list_sequences))
        .routes(routes!(get_sequence, update_sequence, delete_sequence))
        .routes(routes!(enroll_patients, list_enrollments))
        .routes(routes!(remove_enrollment))
}

/// Create a sequence: a name and 1 to 50 steps. Templates may use `{{firstName}}`,
/// `{{lastName}}` and `{{practiceName}}`; any other placeholder is refused.
#[utoipa::path(post, path = "/api/sequences", tag = "sequences", security(("bearer" = [])), request_body = SequenceFields,
    responses((status = 201, body = Sequence), (status = 401, body = ErrorBody),
        (status = 422, description = "every invalid field named, like steps[1].body", body = ErrorBody)))]
async fn create_sequence(
    State(state): State<AppState>,
    caller: PracticeCaller,
    Json(fields): Json<SequenceFields>,
) -> Result<(StatusCode, Json<Sequence>), ApiError> {
    let sequence = sequences::create(&state.pool, caller.practice_id, &fields).await?;
    Ok((StatusCode::CREATED, Json(sequence)))
}

/// The practice's sequences, newest first.
#[utoipa::path(get, path = "/api/sequences", tag = "sequences", security(("bearer" = [])), params(SequenceQuery),
    responses((status = 200, body = Page<Sequence>), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn list_sequences(
    State(state): State<AppState>,
    caller: PracticeCaller,
    Query(query): Query<SequenceQuery>,
) -> Result<Json<Page<Sequence>>, ApiError> {
    Ok(Json(
        sequences::list(&state.pool, caller.practice_id, &query).await?,
    ))
}

#[utoipa::path(get, path = "/api/sequences/{id}", tag = "sequences", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = Sequence), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_sequence(
    State(state): State<AppState>,
    caller: PracticeCaller,
    Path(id): Path<Uuid>,
) -> Result<Json<Sequence>, ApiError> {
    Ok(Json(
        sequences::get(&state.pool, caller.practice_id, id).await?,
    ))
}

/// Rename, pause or resume, or replace the steps; absent fields are kept. Enrolments part-way
/// through continue at the same step index.
#[utoipa::path(patch, path = "/api/sequences/{id}", tag = "sequences", security(("bearer" = [])), params(("id" = Uuid, Path)),
    request_body = SequenceFields,
    responses((status = 200, body = Sequence), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn update_sequence(
    State(state): State<AppState>,
    caller: PracticeCaller,
    Path(id): Path<Uuid>,
    Json(fields): Json<SequenceFields>,
) -> Result<Json<Sequence>, ApiError> {
    Ok(Json(
        sequences::update(&state.pool, caller.practice_id, id, &fields).await?,
    ))
}

/// Delete a sequence and its enrolments; messages already queued stay in the logs.
#[utoipa::path(delete, path = "/api/sequences/{id}", tag = "sequences", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn delete_sequence(
    State(state): State<AppState>,
    caller: PracticeCaller,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    sequences::delete(&state.pool, caller.practice_id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Enrol patients of the practice. Repeating a request is harmless: active and completed
/// enrolments are left alone; stopped ones start again.
#[utoipa::path(post, path = "/api/sequences/{id}/enrollments", tag = "sequences", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = EnrollmentRequest,
    responses((status = 200, body = EnrollmentOutcome), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, description = "unknown patients named as patientIds[i]", body = ErrorBody)))]
async fn enroll_patients(
    State(state): State<AppState>,
    caller: PracticeCaller,
    Path(id): Path<Uuid>,
    Json(request): Json<EnrollmentRequest>,
) -> Result<Json<EnrollmentOutcome>, ApiError> {
    Ok(Json(
        sequences::enroll(&state.pool, caller.practice_id, id, &request).await?,
    ))
}

/// Who is enrolled, newest first: each enrolment's state, its next step and when, or why it
/// stopped.
#[utoipa::path(get, path = "/api/sequences/{id}/enrollments", tag = "sequences", security(("bearer" = [])),
    params(("id" = Uuid, Path), EnrollmentQuery),
    responses((status = 200, body = Page<Enrollment>), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn list_enrollments(
    State(state): State<AppState>,
    caller: PracticeCaller,
    Path(id): Path<Uuid>,
    Query(query): Query<EnrollmentQuery>,
) -> Result<Json<Page<Enrollment>>, ApiError> {
    Ok(Json(
        sequences::enrollments(&state.pool, caller.practice_id, id, &query).await?,
    ))
}

/// Stop a patient's enrolment: nothing more of the sequence is queued for them.
#[utoipa::path(delete, path = "/api/sequences/{id}/enrollments/{patientId}", tag = "sequences", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("patientId" = Uuid, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn remove_enrollment(
    State(state): State<AppState>,
    caller: PracticeCaller,
    Path((id, patient_id)): Path<(Uuid, Uuid)>,
) -> Result<StatusCode, ApiError> {
    sequences::remove_enrollment(&state.pool, caller.practice_id, id, patient_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
