//! `/api/outreach/logs`: what was sent, to whom, through which account, and what became of it.

use std::{convert::Infallible, time::Duration};

use axum::{
    extract::State,
    response::sse::{Event, KeepAlive, Sse},
};
use futures::Stream;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::json::{Json, Path, Query};
use crate::{
    AppState,
    auth::PracticeCaller,
    error::{ApiError, ErrorBody},
    outreach::logs::{self, LogQuery, OutreachLog, OutreachLogDetail},
    page::Page,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_logs))
        .routes(routes!(follow_logs))
        .routes(routes!(get_log))
}

/// The practice's messages, newest first, filtered by channel, status, provider, patient and time.
#[utoipa::path(get, path = "/api/outreach/logs", tag = "outreach", security(("bearer" = [])), params(LogQuery),
    responses((status = 200, body = Page<OutreachLog>), (status = 401, body = ErrorBody),
        (status = 422, description = "each invalid filter named", body = ErrorBody)))]
async fn list_logs(
    State(state): State<AppState>,
    caller: PracticeCaller,
    Query(query): Query<LogQuery>,
) -> Result<Json<Page<OutreachLog>>, ApiError> {
    Ok(Json(
        logs::list(&state.pool, caller.practice_id, &query).await?,
    ))
}

/// A stream ends after this long, and the client opens a new one: a token that expired or a
/// user who was removed meanwhile is refused then.
const FOLLOW_FOR: Duration = Duration::from_secs(5 * 60);

/// Server-sent events: `ready` once, then `changed` whenever the practice's messages were added
/// to or changed status (at most once a second), so a console reads the logs again only then.
/// Comments keep the connection alive; the stream ends after five minutes, to be reopened.
#[utoipa::path(get, path = "/api/outreach/logs/changes", tag = "outreach", security(("bearer" = [])),
    responses((status = 200, description = "`text/event-stream` of `ready` and `changed` events", content_type = "text/event-stream", body = String),
        (status = 401, body = ErrorBody),
        (status = 503, description = "this instance serves as many live streams as it allows", body = ErrorBody)))]
async fn follow_logs(
    State(state): State<AppState>,
    caller: PracticeCaller,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let subscription = state
        .activity
        .subscribe(caller.practice_id)
        .map_err(|full| ApiError::Unavailable(full.to_string()))?;
    let until = tokio::time::Instant::now() + FOLLOW_FOR;
    let ready = futures::stream::once(async { Ok(Event::default().event("ready").data("")) });
    let changes = futures::stream::unfold(subscription, move |mut subscription| async move {
        match tokio::time::timeout_at(until, subscription.changed()).await {
            Ok(true) => Some((Ok(Event::default().event("changed").data("")), subscription)),
            Ok(false) | Err(_) => None,
        }
    });
    Ok(Sse::new(futures::StreamExt::chain(ready, changes)).keep_alive(KeepAlive::default()))
}

/// One message with the provider events received about it.
#[utoipa::path(get, path = "/api/outreach/logs/{id}", tag = "outreach", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = OutreachLogDetail), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_log(
    State(state): State<AppState>,
    caller: PracticeCaller,
    Path(id): Path<Uuid>,
) -> Result<Json<OutreachLogDetail>, ApiError> {
    Ok(Json(logs::get(&state.pool, caller.practice_id, id).await?))
}
