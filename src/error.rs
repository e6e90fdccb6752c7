//! The one mapping from failures to the contract's error body: `{error: {code, message, fields?}}`.
//!
//! Domain layers have their own `thiserror` enums; each converts into [`ApiError`] here, so the
//! status policy lives in one place. Internal causes are logged with their whole chain and never
//! sent to the client.

use std::{collections::BTreeMap, time::Duration};

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use utoipa::ToSchema;

use crate::{types::FieldErrors, webhooks::WebhookError};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 422: input that parsed as JSON but is not acceptable; names each field.
    #[error("validation failed")]
    Validation(FieldErrors),
    /// 400: a body that is not JSON/form at all, or a malformed header.
    #[error("{0}")]
    BadRequest(String),
    /// 413: a body beyond the route's limit.
    #[error("the request body is larger than this route accepts")]
    PayloadTooLarge,
    #[error("authentication required")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Conflict(String),
    /// 409: a stored credential no longer decrypts; `field` is the request field to re-enter.
    #[error("{message}")]
    CredentialUnreadable {
        field: &'static str,
        message: String,
    },
    /// The provider refused what the caller gave us (a key, a number, a domain).
    #[error("{message}")]
    ProviderRejected {
        message: String,
        field: Option<&'static str>,
    },
    #[error("too many requests")]
    RateLimited { retry_after: Duration },
    /// A dependency (the database, a provider) cannot be reached: retry later.
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// The contract's error body.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// One of validation_failed, unauthorized, forbidden, not_found, conflict, provider_rejected,
    /// rate_limited, unavailable, internal.
    pub code: &'static str,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fields: Option<BTreeMap<String, String>>,
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Validation(_) | Self::ProviderRejected { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) | Self::CredentialUnreadable { .. } => StatusCode::CONFLICT,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::Validation(_) | Self::BadRequest(_) | Self::PayloadTooLarge => {
                "validation_failed"
            }
            Self::Unauthorized => "unauthorized",
            Self::Forbidden(_) => "forbidden",
            Self::NotFound(_) => "not_found",
            Self::Conflict(_) | Self::CredentialUnreadable { .. } => "conflict",
            Self::ProviderRejected { .. } => "provider_rejected",
            Self::RateLimited { .. } => "rate_limited",
            Self::Unavailable(_) => "unavailable",
            Self::Internal(_) => "internal",
        }
    }

    pub fn validation(field: &str, message: impl Into<String>) -> Self {
        Self::Validation(FieldErrors::single(field, message))
    }
}

impl ApiError {
    /// Postgres cannot be reached: a 503 the caller may retry; the cause goes to the log only.
    pub fn database_unavailable(cause: &dyn std::fmt::Display) -> Self {
        tracing::warn!(error = %cause, "database unavailable");
        Self::Unavailable("the database is unavailable; try again shortly".into())
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        if crate::db::is_unavailable(&error) {
            return Self::database_unavailable(&error);
        }
        // The caller's user was deleted between the check of its token and the audit entry of
        // its change (the users cache had not heard yet): the same 401 as any deleted user's.
        if crate::db::is_foreign_key_violation(&error, "audit_log_user_id_fkey") {
            return Self::Unauthorized;
        }
        Self::Internal(anyhow::Error::new(error).context("database query failed"))
    }
}

impl ApiError {
    pub fn credential_unreadable(field: crate::crypto::CredentialField) -> Self {
        Self::CredentialUnreadable {
            field: field.request_field(),
            message: field.unreadable_message(),
        }
    }
}

impl From<WebhookError> for ApiError {
    fn from(error: WebhookError) -> Self {
        match error {
            WebhookError::Unauthenticated(reason) => {
                // Forged requests and a practice's misconfigured key look alike from here.
                tracing::warn!(reason = %reason, "refused a webhook request");
                Self::Unauthorized
            }
            WebhookError::WrongAccount => {
                Self::Forbidden("the posted AccountSid is not this webhook's account")
            }
            WebhookError::Malformed(message) => Self::BadRequest(message),
            WebhookError::Database(e) => e.into(),
            WebhookError::Credential(e) => {
                // The practice must re-enter its credential; until then nothing on this route
                // can be verified, which to the provider is the same as a bad signature (and
                // SendGrid retries what it was refused).
                tracing::error!(error = %e, "a stored webhook credential cannot be decrypted; the practice must enter it again");
                Self::Unauthorized
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let code = self.code();
        let retry_after = match &self {
            Self::RateLimited { retry_after } => Some(retry_after.as_secs().max(1)),
            Self::Unavailable(_) => Some(5),
            _ => None,
        };
        let (message, fields) = match self {
            Self::Internal(cause) => {
                tracing::error!(error = ?cause, "internal error");
                ("an internal error occurred".to_string(), None)
            }
            Self::Validation(fields) => (
                "the request has invalid fields".to_string(),
                Some(fields.into_fields()),
            ),
            Self::ProviderRejected {
                field: Some(field),
                message,
            }
            | Self::CredentialUnreadable { field, message } => (
                message.clone(),
                Some(BTreeMap::from([(field.to_string(), message)])),
            ),
            other => (other.to_string(), None),
        };
        let mut response = (
            status,
            Json(ErrorBody {
                error: ErrorDetail {
                    code,
                    message,
                    fields,
                },
            }),
        )
            .into_response();
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}
