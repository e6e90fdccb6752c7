//! `/api/practice-settings/messaging`: a practice's messaging configuration. The practice is
//! always the caller's, whatever ids a request carries; staff read, owners and admins change,
//! validate, test and manage domains. Handlers extract, call `providers::practice_settings`, and
//! map its errors here.

use axum::{extract::State, http::StatusCode};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    auth::SettingsEditor,
    json::{Json, Query},
    page_limit,
};
use crate::{
    AppState,
    audit::{self, AuditPage},
    auth::{PracticeCaller, Role},
    error::{ApiError, ErrorBody},
    messaging::Channel,
    providers::practice_settings::domain::{
        DomainDeletion, DomainError, DomainSetupRequest, DomainView, SetUpOutcome,
    },
    providers::practice_settings::{
        self as settings, EmailRoutes, EmailSettingsRequest, EmailValidation,
        EmailValidationRequest, MessagingSettings, MessagingStatus, ProviderFailure,
        SettingsContext, SettingsError, SettingsUpdate, SmsRoutes, SmsSettingsRequest,
        SmsValidation, SmsValidationRequest, TestSendRequest, TestSendResult,
    },
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_settings))
        .routes(routes!(put_email, delete_email))
        .routes(routes!(put_sms, delete_sms))
        .routes(routes!(validate_email))
        .routes(routes!(validate_sms))
        .routes(routes!(test_email))
        .routes(routes!(test_sms))
        .routes(routes!(set_up_domain, get_domain, delete_domain))
        .routes(routes!(verify_domain))
        .routes(routes!(get_status))
        .routes(routes!(get_audit))
}

impl From<ProviderFailure> for ApiError {
    fn from(failure: ProviderFailure) -> Self {
        match failure {
            ProviderFailure::Rejected { field, message } => {
                ApiError::ProviderRejected { message, field }
            }
            ProviderFailure::Unavailable(message) => ApiError::Unavailable(message),
        }
    }
}

impl From<SettingsError> for ApiError {
    fn from(error: SettingsError) -> Self {
        match error {
            SettingsError::Invalid(fields) => ApiError::Validation(fields),
            SettingsError::Provider(failure) => failure.into(),
            SettingsError::ConcurrentChange => ApiError::Conflict(error.to_string()),
            SettingsError::TestSendLimited { retry_after } => ApiError::RateLimited { retry_after },
            SettingsError::UnknownPractice => ApiError::NotFound("practice"),
            SettingsError::UnreadableCredential(field) => ApiError::credential_unreadable(field),
            SettingsError::Database(e) => e.into(),
            SettingsError::DatabaseUnavailable(e) => ApiError::database_unavailable(&e),
            SettingsError::Internal(e) => ApiError::Internal(e),
        }
    }
}

impl From<DomainError> for ApiError {
    fn from(error: DomainError) -> Self {
        match error {
            DomainError::Invalid(fields) => ApiError::Validation(fields),
            DomainError::NoApiKey | DomainError::OtherDomain(_) | DomainError::MailgunDomain => {
                ApiError::Conflict(error.to_string())
            }
            DomainError::NotSetUp => ApiError::NotFound("email domain"),
            DomainError::UnknownPractice => ApiError::NotFound("practice"),
            DomainError::UnreadableCredential(field) => ApiError::credential_unreadable(field),
            DomainError::Provider(failure) => failure.into(),
            DomainError::Database(e) => e.into(),
            DomainError::Internal(e) => ApiError::Internal(e),
        }
    }
}

/// The practice's messaging configuration. Secrets are never returned: only whether each is
/// configured and its last 4 characters.
#[utoipa::path(get, path = "/api/practice-settings/messaging", tag = "practice settings", security(("bearer" = [])),
    responses((status = 200, body = MessagingSettings), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn get_settings(
    State(ctx): State<SettingsContext>,
    caller: PracticeCaller,
) -> Result<Json<MessagingSettings>, ApiError> {
    let mut view = settings::view(&ctx, caller.practice_id).await?;
    if caller.role == Role::Staff {
        // Whoever holds it can post events for the practice's messages; staff change nothing.
        view.email.postmark.webhook_password = None;
    }
    Ok(Json(view))
}

/// Chooses the email account. A new SendGrid key is checked (`GET /v3/scopes`, must allow
/// `mail.send`) before anything is saved; a key left out keeps the stored one. With the needed
/// permissions, the practice's signed event webhook is created and its key stored.
#[utoipa::path(put, path = "/api/practice-settings/messaging/email", tag = "practice settings", security(("bearer" = [])),
    request_body = EmailSettingsRequest,
    responses((status = 200, body = SettingsUpdate), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, description = "changed meanwhile", body = ErrorBody),
        (status = 422, description = "invalid fields, or SendGrid refused the key (provider_rejected)", body = ErrorBody),
        (status = 503, description = "SendGrid unreachable; nothing saved", body = ErrorBody)))]
async fn put_email(
    State(ctx): State<SettingsContext>,
    SettingsEditor(caller): SettingsEditor,
    Json(request): Json<EmailSettingsRequest>,
) -> Result<Json<SettingsUpdate>, ApiError> {
    Ok(Json(
        settings::update::<EmailRoutes>(&ctx, &caller, request).await?,
    ))
}

/// Back to the system SendGrid account; the stored key, webhook key and domain are erased here.
#[utoipa::path(delete, path = "/api/practice-settings/messaging/email", tag = "practice settings", security(("bearer" = [])),
    responses((status = 200, body = MessagingSettings), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn delete_email(
    State(ctx): State<SettingsContext>,
    SettingsEditor(caller): SettingsEditor,
) -> Result<Json<MessagingSettings>, ApiError> {
    Ok(Json(settings::delete::<EmailRoutes>(&ctx, &caller).await?))
}

/// Chooses the SMS account. New credentials or a new number are checked with Twilio (the
/// account is active, owns the number, the number sends SMS) before anything is saved.
#[utoipa::path(put, path = "/api/practice-settings/messaging/sms", tag = "practice settings", security(("bearer" = [])),
    request_body = SmsSettingsRequest,
    responses((status = 200, body = SettingsUpdate), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, description = "changed meanwhile", body = ErrorBody),
        (status = 422, description = "invalid fields, or Twilio refused (provider_rejected)", body = ErrorBody),
        (status = 503, description = "Twilio unreachable; nothing saved", body = ErrorBody)))]
async fn put_sms(
    State(ctx): State<SettingsContext>,
    SettingsEditor(caller): SettingsEditor,
    Json(request): Json<SmsSettingsRequest>,
) -> Result<Json<SettingsUpdate>, ApiError> {
    Ok(Json(
        settings::update::<SmsRoutes>(&ctx, &caller, request).await?,
    ))
}

/// Back to the system Twilio account; the stored credentials and number are erased.
#[utoipa::path(delete, path = "/api/practice-settings/messaging/sms", tag = "practice settings", security(("bearer" = [])),
    responses((status = 200, body = MessagingSettings), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn delete_sms(
    State(ctx): State<SettingsContext>,
    SettingsEditor(caller): SettingsEditor,
) -> Result<Json<MessagingSettings>, ApiError> {
    Ok(Json(settings::delete::<SmsRoutes>(&ctx, &caller).await?))
}

/// Checks a SendGrid key (the given one, else the stored one) without saving. SendGrid refusing
/// it is an answer, `valid: false` with SendGrid's reason; only an unreachable SendGrid is a 503.
#[utoipa::path(post, path = "/api/practice-settings/messaging/email/validate", tag = "practice settings",
    security(("bearer" = [])), request_body = EmailValidationRequest,
    responses((status = 200, body = EmailValidation), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, description = "the stored credential no longer decrypts: enter it again", body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn validate_email(
    State(ctx): State<SettingsContext>,
    SettingsEditor(caller): SettingsEditor,
    Json(request): Json<EmailValidationRequest>,
) -> Result<Json<EmailValidation>, ApiError> {
    Ok(Json(
        settings::validate::<EmailRoutes>(&ctx, &caller, request).await?,
    ))
}

/// Checks Twilio credentials and number (each given or stored) without saving; a refusal is
/// `valid: false` with the field and Twilio's reason.
#[utoipa::path(post, path = "/api/practice-settings/messaging/sms/validate", tag = "practice settings",
    security(("bearer" = [])), request_body = SmsValidationRequest,
    responses((status = 200, body = SmsValidation), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, description = "the stored credential no longer decrypts: enter it again", body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn validate_sms(
    State(ctx): State<SettingsContext>,
    SettingsEditor(caller): SettingsEditor,
    Json(request): Json<SmsValidationRequest>,
) -> Result<Json<SmsValidation>, ApiError> {
    Ok(Json(
        settings::validate::<SmsRoutes>(&ctx, &caller, request).await?,
    ))
}

/// Sends a test email through the account in effect, with fallback as for any message; sets
/// `lastTestedAt` when the configured account delivered it. Each test takes a token from the
/// account's send rate limit and one of the practice's `TEST_SENDS_PER_HOUR`.
#[utoipa::path(post, path = "/api/practice-settings/messaging/email/test", tag = "practice settings",
    security(("bearer" = [])), request_body = TestSendRequest,
    responses((status = 200, body = TestSendResult), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, description = "a stored credential no longer decrypts: enter it again", body = ErrorBody),
        (status = 422, body = ErrorBody),
        (status = 429, description = "the account's send rate or the practice's hourly test-send quota is used up; see Retry-After", body = ErrorBody)))]
async fn test_email(
    State(ctx): State<SettingsContext>,
    SettingsEditor(caller): SettingsEditor,
    Json(request): Json<TestSendRequest>,
) -> Result<Json<TestSendResult>, ApiError> {
    Ok(Json(
        settings::send_test(&ctx, &caller, Channel::Email, request).await?,
    ))
}

/// Sends a test SMS, like the test email.
#[utoipa::path(post, path = "/api/practice-settings/messaging/sms/test", tag = "practice settings",
    security(("bearer" = [])), request_body = TestSendRequest,
    responses((status = 200, body = TestSendResult), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, description = "a stored credential no longer decrypts: enter it again", body = ErrorBody),
        (status = 422, body = ErrorBody),
        (status = 429, description = "the account's send rate or the practice's hourly test-send quota is used up; see Retry-After", body = ErrorBody)))]
async fn test_sms(
    State(ctx): State<SettingsContext>,
    SettingsEditor(caller): SettingsEditor,
    Json(request): Json<TestSendRequest>,
) -> Result<Json<TestSendResult>, ApiError> {
    Ok(Json(
        settings::send_test(&ctx, &caller, Channel::Sms, request).await?,
    ))
}

/// Authenticates a domain in the practice's own SendGrid account (automatic security: three
/// CNAME records) and returns the records with instructions. A domain the account already
/// authenticates is adopted (200) instead of created (201).
#[utoipa::path(post, path = "/api/practice-settings/messaging/email/domain", tag = "practice settings",
    security(("bearer" = [])), request_body = DomainSetupRequest,
    responses((status = 201, description = "created", body = DomainView), (status = 200, description = "adopted", body = DomainView),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, description = "no custom SendGrid key yet, or another domain is set up", body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn set_up_domain(
    State(ctx): State<SettingsContext>,
    SettingsEditor(caller): SettingsEditor,
    Json(request): Json<DomainSetupRequest>,
) -> Result<(StatusCode, Json<DomainView>), ApiError> {
    let (view, outcome) = settings::domain::set_up(&ctx, &caller, request).await?;
    let status = match outcome {
        SetUpOutcome::Created => StatusCode::CREATED,
        SetUpOutcome::Adopted => StatusCode::OK,
    };
    Ok((status, Json(view)))
}

/// The domain, its records with their last validation, `verified` and `lastCheckedAt`.
#[utoipa::path(get, path = "/api/practice-settings/messaging/email/domain", tag = "practice settings",
    security(("bearer" = [])),
    responses((status = 200, body = DomainView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "no domain set up", body = ErrorBody)))]
async fn get_domain(
    State(ctx): State<SettingsContext>,
    caller: PracticeCaller,
) -> Result<Json<DomainView>, ApiError> {
    Ok(Json(
        settings::domain::view(&ctx, caller.practice_id).await?,
    ))
}

/// Removes the domain authentication at SendGrid and here; one SendGrid no longer has is
/// removed here all the same.
#[utoipa::path(delete, path = "/api/practice-settings/messaging/email/domain", tag = "practice settings",
    security(("bearer" = [])),
    responses((status = 200, body = DomainDeletion), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
async fn delete_domain(
    State(ctx): State<SettingsContext>,
    SettingsEditor(caller): SettingsEditor,
) -> Result<Json<DomainDeletion>, ApiError> {
    Ok(Json(settings::domain::delete(&ctx, &caller).await?))
}

/// Asks SendGrid (or Mailgun, for a practice's own Mailgun domain) to check the DNS records now;
/// each failing SendGrid record says why in SendGrid's words.
#[utoipa::path(post, path = "/api/practice-settings/messaging/email/domain/verify", tag = "practice settings",
    security(("bearer" = [])),
    responses((status = 200, body = DomainView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
async fn verify_domain(
    State(ctx): State<SettingsContext>,
    SettingsEditor(caller): SettingsEditor,
) -> Result<Json<DomainView>, ApiError> {
    Ok(Json(
        settings::domain::verify(&ctx, caller.practice_id, Some(caller.user_id)).await?,
    ))
}

/// Per channel: configured provider, provider in effect after the rules and the health circuit,
/// health, domain, last test and the last 30 days' sent, delivered and failed.
#[utoipa::path(get, path = "/api/practice-settings/messaging/status", tag = "practice settings", security(("bearer" = [])),
    responses((status = 200, body = MessagingStatus), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, description = "a stored credential no longer decrypts: enter it again", body = ErrorBody)))]
async fn get_status(
    State(ctx): State<SettingsContext>,
    caller: PracticeCaller,
) -> Result<Json<MessagingStatus>, ApiError> {
    Ok(Json(settings::status(&ctx, caller.practice_id).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct AuditQuery {
    /// Entries older than this one: the previous page's `nextCursor`.
    cursor: Option<i64>,
    /// 1 to 200; 50 when omitted.
    limit: Option<i64>,
}

/// Who changed which messaging settings, newest first; field names only, never values.
#[utoipa::path(get, path = "/api/practice-settings/messaging/audit", tag = "practice settings", security(("bearer" = [])),
    params(AuditQuery),
    responses((status = 200, body = AuditPage), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn get_audit(
    State(ctx): State<SettingsContext>,
    SettingsEditor(caller): SettingsEditor,
    Query(query): Query<AuditQuery>,
) -> Result<Json<AuditPage>, ApiError> {
    let limit = page_limit(query.limit, 50, 200)?;
    Ok(Json(
        audit::list(&ctx.pool, caller.practice_id, query.cursor, limit).await?,
    ))
}
