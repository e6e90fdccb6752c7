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
        mailgun::webhook as mailgun,
        postmark::webhook as postmark,
        sendgrid::webhook::{self as sendgrid, SignedBatch},
        telnyx::webhook::{self as telnyx, SignedDelivery},
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
        .routes(routes!(postmark_system))
        .routes(routes!(postmark_practice))
        .routes(routes!(mailgun_system))
        .routes(routes!(mailgun_practice))
        .routes(routes!(telnyx_system))
        .routes(routes!(telnyx_practice))
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

/// What the newer vendors' webhooks need of the service.
fn context(state: &AppState) -> crate::webhooks::Context<'_> {
    crate::webhooks::Context {
        pool: &state.pool,
        settings: &state.settings,
        keyring: &state.keyring,
        urls: state.messaging.urls(),
    }
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
        Ok(Json(sendgrid::receive(context(state), route, batch).await?))
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
        twilio::status_callback(context(state), route, self.signed()).await?;
        Ok(TwiMl(Reply::Empty))
    }

    async fn inbound(&self, state: &AppState, route: Route<'_>) -> Result<TwiMl, ApiError> {
        Ok(TwiMl(
            twilio::inbound(context(state), route, self.signed()).await?,
        ))
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

/// A Postmark webhook post: its basic-auth credentials and its untouched body.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
struct PostmarkRequest {
    /// `Basic` with user `postmark` and the route's password
    #[param(rename = "Authorization")]
    authorization: String,
    #[param(ignore)]
    body: Bytes,
}

impl FromRequest<AppState> for PostmarkRequest {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let headers = request.headers().clone();
        let RawBody(body) = RawBody::from_request(request, state).await?;
        Ok(Self {
            authorization: header(&headers, "authorization").unwrap_or_default(),
            body,
        })
    }
}

impl PostmarkRequest {
    async fn receive(&self, state: &AppState, route: Route<'_>) -> Result<Json<Receipt>, ApiError> {
        Ok(Json(
            postmark::receive(context(state), route, &self.authorization, &self.body).await?,
        ))
    }
}

/// Postmark events (delivery, bounce, spam complaint, open, click, subscription change) of the
/// platform's server.
#[utoipa::path(post, path = "/api/webhooks/postmark", tag = "webhooks", params(PostmarkRequest),
    request_body(content = Object, description = "one Postmark webhook event, by RecordType"),
    responses((status = 200, body = Receipt), (status = "4XX", body = ErrorBody,
        description = "400 malformed JSON, 401 wrong or missing credentials, 413 body over 5 MiB"),
        (status = 503, body = ErrorBody)))]
async fn postmark_system(
    State(state): State<AppState>,
    request: PostmarkRequest,
) -> Result<Json<Receipt>, ApiError> {
    request.receive(&state, Route::System).await
}

/// Postmark events of a practice's own server, authenticated with user `postmark` and the
/// password generated for the practice (shown by `GET /api/practice-settings/messaging`).
#[utoipa::path(post, path = "/api/webhooks/postmark/{practiceId}", tag = "webhooks", params(("practiceId" = String, Path, description = "the practice whose password authenticates the request"), PostmarkRequest),
    request_body(content = Object, description = "one Postmark webhook event, by RecordType"),
    responses((status = 200, body = Receipt), (status = "4XX", body = ErrorBody,
        description = "400 malformed JSON, 401 wrong credentials, unknown practice or no Postmark server of the practice, 413 body over 5 MiB"),
        (status = 503, body = ErrorBody)))]
async fn postmark_practice(
    State(state): State<AppState>,
    Path(practice): Path<String>,
    request: PostmarkRequest,
) -> Result<Json<Receipt>, ApiError> {
    request.receive(&state, Route::Practice(&practice)).await
}

/// Mailgun events of the platform's domain: the signature object in the body, HMAC-SHA256 with
/// `MAILGUN_WEBHOOK_SIGNING_KEY` over its timestamp and token; each token is accepted once.
#[utoipa::path(post, path = "/api/webhooks/mailgun", tag = "webhooks",
    request_body(content = Object, description = "{signature: {timestamp, token, signature}, event-data: {…}}"),
    responses((status = 200, body = Receipt), (status = "4XX", body = ErrorBody,
        description = "400 malformed JSON, 401 bad signature, reused token or stale timestamp, 413 body over 5 MiB"),
        (status = 503, body = ErrorBody)))]
async fn mailgun_system(
    State(state): State<AppState>,
    RawBody(body): RawBody,
) -> Result<Json<Receipt>, ApiError> {
    Ok(Json(
        mailgun::receive(context(&state), Route::System, &body).await?,
    ))
}

/// Mailgun events of a practice's own domain, signed with that account's webhook signing key.
#[utoipa::path(post, path = "/api/webhooks/mailgun/{practiceId}", tag = "webhooks", params(("practiceId" = String, Path, description = "the practice whose signing key signs the request")),
    request_body(content = Object, description = "{signature: {timestamp, token, signature}, event-data: {…}}"),
    responses((status = 200, body = Receipt), (status = "4XX", body = ErrorBody,
        description = "400 malformed JSON, 401 bad signature, reused token, stale timestamp, unknown practice or no signing key, 413 body over 5 MiB"),
        (status = 503, body = ErrorBody)))]
async fn mailgun_practice(
    State(state): State<AppState>,
    Path(practice): Path<String>,
    RawBody(body): RawBody,
) -> Result<Json<Receipt>, ApiError> {
    Ok(Json(
        mailgun::receive(context(&state), Route::Practice(&practice), &body).await?,
    ))
}

/// A Telnyx webhook post: its Ed25519 signature headers and its untouched body.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
struct TelnyxRequest {
    /// base64 Ed25519 signature over `telnyx-timestamp|body`
    #[param(rename = "telnyx-signature-ed25519")]
    signature: String,
    /// unix seconds; refused when more than 300 s from now
    #[param(rename = "telnyx-timestamp")]
    timestamp: String,
    #[param(ignore)]
    body: Bytes,
}

impl FromRequest<AppState> for TelnyxRequest {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let headers = request.headers().clone();
        let RawBody(body) = RawBody::from_request(request, state).await?;
        Ok(Self {
            signature: header(&headers, "telnyx-signature-ed25519").unwrap_or_default(),
            timestamp: header(&headers, "telnyx-timestamp").unwrap_or_default(),
            body,
        })
    }
}

impl TelnyxRequest {
    async fn receive(&self, state: &AppState, route: Route<'_>) -> Result<Json<Receipt>, ApiError> {
        let delivery = SignedDelivery {
            signature: &self.signature,
            timestamp: &self.timestamp,
            body: &self.body,
        };
        Ok(Json(
            telnyx::receive(context(state), route, delivery).await?,
        ))
    }
}

/// Telnyx delivery updates and inbound messages of the platform's number, signed with
/// `TELNYX_PUBLIC_KEY`'s account: STOP and START bind every practice sending from it.
#[utoipa::path(post, path = "/api/webhooks/telnyx", tag = "webhooks", params(TelnyxRequest),
    request_body(content = Object, description = "a Telnyx message event (message.sent, message.finalized, message.received)"),
    responses((status = 200, body = Receipt), (status = "4XX", body = ErrorBody,
        description = "400 malformed JSON, 401 bad signature or timestamp more than 300 s away, 413 body over 5 MiB"),
        (status = 503, body = ErrorBody)))]
async fn telnyx_system(
    State(state): State<AppState>,
    request: TelnyxRequest,
) -> Result<Json<Receipt>, ApiError> {
    request.receive(&state, Route::System).await
}

/// Telnyx delivery updates and inbound messages of a practice's own number, signed with the
/// account's public key the practice saved (`telnyxPublicKey`).
#[utoipa::path(post, path = "/api/webhooks/telnyx/{practiceId}", tag = "webhooks", params(("practiceId" = String, Path, description = "the practice whose key signs the request"), TelnyxRequest),
    request_body(content = Object, description = "a Telnyx message event"),
    responses((status = 200, body = Receipt), (status = "4XX", body = ErrorBody,
        description = "400 malformed JSON, 401 bad signature, stale timestamp, unknown practice or no public key saved, 413 body over 5 MiB"),
        (status = 503, body = ErrorBody)))]
async fn telnyx_practice(
    State(state): State<AppState>,
    Path(practice): Path<String>,
    request: TelnyxRequest,
) -> Result<Json<Receipt>, ApiError> {
    request.receive(&state, Route::Practice(&practice)).await
}
