//! HTTP: one router per resource, merged here, with the OpenAPI document generated from the
//! handlers themselves.

mod admin;
mod analytics;
pub mod auth;
pub mod client_addr;
mod compliance;
pub mod json;
mod messages;
mod ops;
mod outreach_logs;
mod page;
mod patients;
mod sequences;
pub mod server;
mod settings;
mod suppressions;
mod webhooks;

use std::time::Duration;

use axum::{Router, http::HeaderName, middleware, routing::get};
use tower_http::{
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    timeout::TimeoutLayer,
    trace::TraceLayer,
};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::{AppState, error::ApiError, outreach::OutreachError};

#[derive(OpenApi)]
#[openapi(
    info(title = "Dentite Messaging", description = "Multi-tenant messaging core: SendGrid and Twilio, system or custom accounts."),
    modifiers(&BearerAuth)
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("EdDSA JWT")
                    .build(),
            ),
        );
    }
}

/// The whole API and its OpenAPI document.
pub fn routes() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (router, openapi) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(ops::router())
        .merge(auth::router())
        .merge(messages::router())
        .merge(webhooks::router())
        .merge(settings::router())
        .merge(admin::router())
        .merge(patients::router())
        .merge(sequences::router())
        .merge(outreach_logs::router())
        .merge(analytics::router())
        .merge(compliance::router())
        .merge(suppressions::router())
        .split_for_parts();
    (router, document_common_errors(openapi))
}

/// Adds the answers that whole classes of routes give, so no route's document misses them: a
/// route taking a body answers 400 to one that is not JSON (or form data) or lacks its
/// `Content-Type`, and 413 to one beyond its size limit; a route behind a bearer token answers
/// 401 without a valid one. A route that documents its own keeps it.
fn document_common_errors(mut openapi: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    let error = |description: &str| {
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build()
    };
    for item in openapi.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for operation in operations.into_iter().flatten() {
            let bearer = serde_json::to_value(&operation.security)
                .is_ok_and(|security| security.to_string().contains("\"bearer\""));
            let responses = &mut operation.responses.responses;
            if operation.request_body.is_some() {
                responses.entry("400".into()).or_insert_with(|| {
                    error("the body is not JSON (or form data), or lacks its Content-Type").into()
                });
                responses
                    .entry("413".into())
                    .or_insert_with(|| error("the body is larger than this route accepts").into());
            }
            if bearer {
                responses
                    .entry("401".into())
                    .or_insert_with(|| error("no valid bearer token").into());
            }
        }
    }
    openapi
}

/// A page size from the query: `default` when absent, 1 to `max` otherwise.
fn page_limit(limit: Option<i64>, default: i64, max: i64) -> Result<i64, crate::error::ApiError> {
    match limit.unwrap_or(default) {
        limit if (1..=max).contains(&limit) => Ok(limit),
        _ => Err(crate::error::ApiError::validation(
            "limit",
            format!("must be between 1 and {max}"),
        )),
    }
}

/// The outreach routes (patients, sequences, logs, analytics) share one domain error.
impl From<OutreachError> for ApiError {
    fn from(error: OutreachError) -> Self {
        match error {
            OutreachError::Invalid(fields) => Self::Validation(fields),
            OutreachError::NotFound(what) => Self::NotFound(what),
            OutreachError::Database(e) => e.into(),
        }
    }
}

pub fn app(state: AppState) -> Router {
    let request_id = HeaderName::from_static("x-request-id");
    let (router, openapi) = routes();
    let openapi = std::sync::Arc::new(openapi);
    router
        .route("/api/openapi.json", get(move || std::future::ready(axum::Json(openapi.as_ref().clone()))))
        // The settings page: files, not API routes, so outside the OpenAPI document.
        .merge(page::router())
        .fallback(ops::not_found)
        .method_not_allowed_fallback(ops::method_not_allowed)
        .layer(middleware::from_fn(ops::record_http_metrics))
        .layer(TimeoutLayer::with_status_code(axum::http::StatusCode::SERVICE_UNAVAILABLE, Duration::from_secs(30)))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(TraceLayer::new_for_http().make_span_with(|request: &axum::http::Request<_>| {
            let id = request.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("-");
            tracing::info_span!("request", method = %request.method(), uri = %request.uri().path(), request_id = %id)
        }))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .with_state(state)
}
