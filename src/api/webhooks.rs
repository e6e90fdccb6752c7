//! Provider webhooks. No bearer token: each request is authenticated by the provider's
//! signature over the exact bytes received, so handlers take the raw body and leave parsing to
//! `crate::webhooks` once the signature holds.

use axum::{
    body::Bytes,
    extract::{DefaultBodyLimit, FromRequest, OriginalUri, Request, State},
    http::{HeaderMap, header},
    response::{IntoResponse, Response},
};
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::json::{Json, Path, RawBody};
use crate::{
    AppState,
    error::{ApiError, ErrorBody},
    providers::{
        sendgrid::webhook::{self as sendgrid, SignedBatch},
        twilio::webhook::{self as twilio, Reply, SignedForm},
    },
    webhooks::{Receipt, Route},
};

/// SendGrid posts at most 768 KB per batch; the margin covers other providers' bursts and
/// custom args without letting anyone stream unbounded bodies at us.
const BODY_LIMIT: usize = 5 * 1024 * 1024;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(sendgrid_system))
        .routes(routes!(sendgrid_practice))
        .routes(routes!(twilio_status_system))
        .routes(routes!(twilio_status_practice))
        .routes(routes!(twilio_inbound_system))
        .routes(routes!(twilio_inbound_practice))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
}

/// A SendGrid Event Webhook post: its signature headers and its untouched body.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
struct SendGridRequest {
    /// base64 of the DER ECDSA P-256/SHA-256 signature over the timestamp and the body
    #[param(rename = "X-Twilio-Email-Event-Webhook-Signature")]
    signature: String,
    /// unix seconds; refused when older than SENDGRID_WEBHOOK_MAX_AGE_SECS
    #[param(rename = "X-Twilio-Email-Event-Webhook-Timestamp")]
    timestamp: String,
    #[param(ignore)]
    body: Bytes,
}

/// A Twilio webhook post: its signature headers, the path and query it was signed for, and its
/// untouched body.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
struct TwilioRequest {
    /// base64 HMAC-SHA1 with the account's auth token (HMAC-SHA256 with a webhook shared key)
    /// over WEBHOOK_BASE_URL + path + query and the sorted form parameters
    #[param(rename = "X-Twilio-Signature")]
    signature: String,
    /// `key=<shared key id>,algorithm=HMAC_SHA256` when Twilio signed with a webhook shared key
    #[param(rename = "X-Twilio-Webhooks-Signature-Settings")]
    signature_settings: Option<String>,
    #[param(ignore)]
    path_and_query: String,
    #[param(ignore)]
    body: Bytes,
}

/// A header's text; the signature headers read as empty when absent, which every check refuses.
fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

impl FromRequest<AppState> for SendGridRequest {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let headers = request.headers().clone();
        let RawBody(body) = RawBody::from_request(request, state).await?;
        Ok(Self {
            signature: header(&headers, "x-twilio-email-event-webhook-signature")
                .unwrap_or_default(),
            timestamp: header(&headers, "x-twilio-email-event-webhook-timestamp")
                .unwrap_or_default(),
            body,
        })
    }
}

impl FromRequest<AppState> for TwilioRequest {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let headers = request.headers().clone();
        // The URL Twilio signed is the one it called, before any nesting stripped a prefix.
        let uri = request
            .extensions()
            .get::<OriginalUri>()
            .map_or_else(|| request.uri().clone(), |original| original.0.clone());
        let RawBody(body) = RawBody::from_request(request, state).await?;
        Ok(Self {
            signature: header(&headers, "x-twilio-signature").unwrap_or_default(),
            signature_settings: header(&headers, "x-twilio-webhooks-signature-settings"),
            path_and_query: uri
                .path_and_query()
                .map_or_else(|| uri.path().to_owned(), |pq| pq.as_str().to_owned()),
            body,
        })
    }
}

impl SendGridRequest {
    async fn receive(&self, state: &AppState, route: Route<'_>) -> Result<Json<Receipt>, ApiError> {
        let batch = SignedBatch {
            timestamp: &self.timestamp,
            signature: &self.signature,
            body: &self.body,
        };
        Ok(Json(sendgrid::receive(state, route, batch).await?))
    }
}

impl TwilioRequest {
    fn signed(&self) -> SignedForm<'_> {
        SignedForm {
            path_and_query: &self.path_and_query,
            signature: &self.signature,
            signature_settings: self.signature_settings.as_deref(),
            body: &self.body,
        }
    }

    async fn status_callback(&self, state: &AppState, route: Route<'_>) -> Result<TwiMl, ApiError> {
        twilio::status_callback(state, route, self.signed()).await?;
        Ok(TwiMl(Reply::Empty))
    }

    async fn inbound(&self, state: &AppState, route: Route<'_>) -> Result<TwiMl, ApiError> {
        Ok(TwiMl(twilio::inbound(state, route, self.signed()).await?))
    }
}

/// A TwiML answer.
struct TwiMl(Reply);

impl IntoResponse for TwiMl {
    fn into_response(self) -> Response {
        (
            [(header::CONTENT_TYPE, "text/xml; charset=utf-8")],
            self.0.twiml(),
        )
            .into_response()
    }
}

/// SendGrid events of the system account, signed with `SENDGRID_WEBHOOK_VERIFY_KEY`.
#[utoipa::path(post, path = "/api/webhooks/sendgrid", tag = "webhooks", params(SendGridRequest),
    request_body(content = Vec<Object>, description = "an Event Webhook batch"),
    responses((status = 200, body = Receipt), (status = "4XX", body = ErrorBody,
        description = "400 malformed JSON, 401 bad or missing signature or stale timestamp, 413 body over 5 MiB"),
        (status = 503, body = ErrorBody)))]
async fn sendgrid_system(
    State(state): State<AppState>,
    request: SendGridRequest,
) -> Result<Json<Receipt>, ApiError> {
    request.receive(&state, Route::System).await
}

/// SendGrid events of a practice's own account, signed with that practice's webhook key.
#[utoipa::path(post, path = "/api/webhooks/sendgrid/{practiceId}", tag = "webhooks", params(("practiceId" = String, Path, description = "the practice whose key signs the request"), SendGridRequest),
    request_body(content = Vec<Object>, description = "an Event Webhook batch"),
    responses((status = 200, body = Receipt), (status = "4XX", body = ErrorBody,
        description = "400 malformed JSON, 401 bad signature, unknown practice or no key, 413 body over 5 MiB"),
        (status = 503, body = ErrorBody)))]
async fn sendgrid_practice(
    State(state): State<AppState>,
    Path(practice): Path<String>,
    request: SendGridRequest,
) -> Result<Json<Receipt>, ApiError> {
    request.receive(&state, Route::Practice(&practice)).await
}

/// Message status callbacks of the system Twilio account.
#[utoipa::path(post, path = "/api/webhooks/twilio", tag = "webhooks", params(TwilioRequest),
    request_body(content = String, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, content_type = "text/xml", body = String, description = "empty TwiML"),
        (status = "4XX", body = ErrorBody, description = "400 malformed form, 401 bad signature, 403 another account"),
        (status = 503, body = ErrorBody)))]
async fn twilio_status_system(
    State(state): State<AppState>,
    request: TwilioRequest,
) -> Result<TwiMl, ApiError> {
    request.status_callback(&state, Route::System).await
}

/// Message status callbacks of a practice's own Twilio account.
#[utoipa::path(post, path = "/api/webhooks/twilio/{practiceId}", tag = "webhooks", params(("practiceId" = String, Path, description = "the practice whose auth token signs the request"), TwilioRequest),
    request_body(content = String, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, content_type = "text/xml", body = String, description = "empty TwiML"),
        (status = "4XX", body = ErrorBody, description = "400 malformed form, 401 bad signature or no credentials, 403 another account"),
        (status = 503, body = ErrorBody)))]
async fn twilio_status_practice(
    State(state): State<AppState>,
    Path(practice): Path<String>,
    request: TwilioRequest,
) -> Result<TwiMl, ApiError> {
    request
        .status_callback(&state, Route::Practice(&practice))
        .await
}

/// Inbound SMS to the system number: STOP and START bind every practice sending from it.
#[utoipa::path(post, path = "/api/webhooks/twilio-incoming", tag = "webhooks", params(TwilioRequest),
    request_body(content = String, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, content_type = "text/xml", body = String, description = "TwiML: a reply to HELP, else empty"),
        (status = "4XX", body = ErrorBody, description = "400 malformed form, 401 bad signature, 403 another account"),
        (status = 503, body = ErrorBody)))]
async fn twilio_inbound_system(
    State(state): State<AppState>,
    request: TwilioRequest,
) -> Result<TwiMl, ApiError> {
    request.inbound(&state, Route::System).await
}

/// Inbound SMS to a practice's own number.
#[utoipa::path(post, path = "/api/webhooks/twilio-incoming/{practiceId}", tag = "webhooks", params(("practiceId" = String, Path, description = "the practice whose auth token signs the request"), TwilioRequest),
    request_body(content = String, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, content_type = "text/xml", body = String, description = "TwiML: a reply to HELP, else empty"),
        (status = "4XX", body = ErrorBody, description = "400 malformed form, 401 bad signature or no credentials, 403 another account"),
        (status = 503, body = ErrorBody)))]
async fn twilio_inbound_practice(
    State(state): State<AppState>,
    Path(practice): Path<String>,
    request: TwilioRequest,
) -> Result<TwiMl, ApiError> {
    request.inbound(&state, Route::Practice(&practice)).await
}
