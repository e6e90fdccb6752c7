//! Single outreach messages, one-click unsubscribe, and the development outbox.

use axum::{
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{Html, IntoResponse, Response},
};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::json::{Json, Path};
use crate::{
    AppState,
    auth::PracticeCaller,
    error::{ApiError, ErrorBody},
    outreach::{
        messages::{self, MessageError, QueuedMessage, SendMessageRequest},
        unsubscribe,
    },
    providers::outbox::{self, OutboxEntry},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(send_message))
        .routes(routes!(unsubscribe_page, unsubscribe))
        .routes(routes!(list_outbox))
}

/// Queue one message to a patient. Send `Idempotency-Key` to make retries safe.
#[utoipa::path(post, path = "/api/outreach/messages", tag = "outreach", request_body = SendMessageRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "same key and body → the first answer again")),
    responses((status = 202, body = QueuedMessage), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn send_message(
    State(state): State<AppState>,
    caller: PracticeCaller,
    headers: HeaderMap,
    Json(request): Json<SendMessageRequest>,
) -> Result<(StatusCode, Json<QueuedMessage>), ApiError> {
    let key = match headers.get("idempotency-key") {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .map(str::trim)
                .filter(|k| !k.is_empty() && k.len() <= 255)
                .ok_or_else(|| {
                    ApiError::validation("Idempotency-Key", "must be 1 to 255 visible characters")
                })?,
        ),
    };
    let queued = messages::send(&state.pool, caller.practice_id, &request, key)
        .await
        .map_err(|e| match e {
            MessageError::Invalid { field, message } => ApiError::validation(field, message),
            MessageError::UnknownPatient => ApiError::NotFound("patient"),
            MessageError::KeyInProgress => ApiError::Conflict(e.to_string()),
            MessageError::KeyReused => ApiError::validation("Idempotency-Key", e.to_string()),
            MessageError::Database(e) => e.into(),
        })?;
    Ok((StatusCode::ACCEPTED, Json(queued)))
}

/// The unsubscribe pages carry no script, style or image, so their policy allows nothing but the
/// form posting back; the token in the URL must not leak through a `Referer`.
const PATIENT_PAGE_POLICY: &str =
    "default-src 'none'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// An HTML page shown to a patient, with the headers that lock it down.
struct PatientPage<T>(T);

impl<T: Into<String>> IntoResponse for PatientPage<T> {
    fn into_response(self) -> Response {
        let mut response = Html(self.0.into()).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(PATIENT_PAGE_POLICY),
        );
        headers.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        response
    }
}

/// The page a patient sees on following the unsubscribe link; the button posts back.
#[utoipa::path(get, path = "/api/unsubscribe/{token}", tag = "outreach",
    params(("token" = String, Path)), responses((status = 200, content_type = "text/html"), (status = 404, body = ErrorBody)))]
async fn unsubscribe_page(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Result<PatientPage<String>, ApiError> {
    let request = state
        .unsubscribe
        .verify(&token)
        .ok_or(ApiError::NotFound("unsubscribe link"))?;
    let name = unsubscribe::practice_name(&state.pool, &request)
        .await?
        .ok_or(ApiError::NotFound("unsubscribe link"))?;
    Ok(PatientPage(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">\
         <title>Unsubscribe</title></head><body><main><h1>Unsubscribe from {practice}</h1>\
         <p>Stop emails from {practice} to <strong>{email}</strong>?</p>\
         <form method=\"post\"><button type=\"submit\">Unsubscribe</button></form></main></body></html>",
        practice = html_escape(&name),
        email = html_escape(&request.email),
    )))
}

/// RFC 8058 one-click unsubscribe: adds the address to the practice's suppression ledger.
#[utoipa::path(post, path = "/api/unsubscribe/{token}", tag = "outreach",
    params(("token" = String, Path)), responses((status = 200, content_type = "text/html"), (status = 404, body = ErrorBody)))]
async fn unsubscribe(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Result<PatientPage<&'static str>, ApiError> {
    let request = state
        .unsubscribe
        .verify(&token)
        .ok_or(ApiError::NotFound("unsubscribe link"))?;
    if !unsubscribe::unsubscribe(&state.pool, &request).await? {
        return Err(ApiError::NotFound("unsubscribe link"));
    }
    Ok(PatientPage(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Unsubscribed</title></head>\
             <body><main><h1>You are unsubscribed</h1><p>You will not receive these emails any more.</p></main></body></html>",
    ))
}

/// Messages the outbox kept for the caller's practice, newest first (only while a channel uses it).
#[utoipa::path(get, path = "/api/dev/outbox", tag = "development",
    responses((status = 200, body = [OutboxEntry]), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn list_outbox(
    State(state): State<AppState>,
    caller: PracticeCaller,
) -> Result<Json<Vec<OutboxEntry>>, ApiError> {
    if !state.settings.uses_outbox() {
        return Err(ApiError::NotFound(
            "outbox (every channel has a provider account)",
        ));
    }
    Ok(Json(
        outbox::list(&state.pool, caller.practice_id, 200).await?,
    ))
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}
