//! `/api/patients`: the practice's patients.

use axum::{extract::State, http::StatusCode};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::json::{Json, Path, Query};
use crate::{
    AppState,
    auth::PracticeCaller,
    error::{ApiError, ErrorBody},
    outreach::patients::{self, Patient, PatientFields, PatientPatch, PatientQuery},
    page::Page,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_patient, list_patients))
        .routes(routes!(get_patient, update_patient, delete_patient))
}

/// Add a patient: first and last name, and an email address, an E.164 phone number, or both.
#[utoipa::path(post, path = "/api/patients", tag = "patients", security(("bearer" = [])), request_body = PatientFields,
    responses((status = 201, body = Patient), (status = 401, body = ErrorBody), (status = 422, description = "every invalid field named", body = ErrorBody)))]
async fn create_patient(
    State(state): State<AppState>,
    caller: PracticeCaller,
    Json(fields): Json<PatientFields>,
) -> Result<(StatusCode, Json<Patient>), ApiError> {
    let patient = patients::create(&state.pool, caller.practice_id, &fields).await?;
    Ok((StatusCode::CREATED, Json(patient)))
}

/// The practice's patients by last name, then first name, a page at a time.
#[utoipa::path(get, path = "/api/patients", tag = "patients", security(("bearer" = [])), params(PatientQuery),
    responses((status = 200, body = Page<Patient>), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn list_patients(
    State(state): State<AppState>,
    caller: PracticeCaller,
    Query(query): Query<PatientQuery>,
) -> Result<Json<Page<Patient>>, ApiError> {
    Ok(Json(
        patients::list(&state.pool, caller.practice_id, &query).await?,
    ))
}

#[utoipa::path(get, path = "/api/patients/{id}", tag = "patients", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = Patient), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_patient(
    State(state): State<AppState>,
    caller: PracticeCaller,
    Path(id): Path<Uuid>,
) -> Result<Json<Patient>, ApiError> {
    Ok(Json(
        patients::get(&state.pool, caller.practice_id, id).await?,
    ))
}

/// Change some fields: absent ones are kept, `null` clears `email` or `phone`.
#[utoipa::path(patch, path = "/api/patients/{id}", tag = "patients", security(("bearer" = [])), params(("id" = Uuid, Path)),
    request_body = PatientPatch,
    responses((status = 200, body = Patient), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn update_patient(
    State(state): State<AppState>,
    caller: PracticeCaller,
    Path(id): Path<Uuid>,
    Json(patch): Json<PatientPatch>,
) -> Result<Json<Patient>, ApiError> {
    Ok(Json(
        patients::update(&state.pool, caller.practice_id, id, patch).await?,
    ))
}

/// Delete a patient. Their outreach logs stay; their sequence enrolments end.
#[utoipa::path(delete, path = "/api/patients/{id}", tag = "patients", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn delete_patient(
    State(state): State<AppState>,
    caller: PracticeCaller,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    patients::delete(&state.pool, caller.practice_id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
