//! The practice manager's settings page: a small single-page app (plain HTML, CSS and JavaScript
//! modules under `web/`) compiled into the binary, so `dentite serve` is all it takes to open it.
//!
//! The page is only a client of the JSON API: it signs in with `POST /api/auth/login` and keeps
//! the token in the tab's `sessionStorage`. Nothing here reads the database or knows a session.
//!
//! Every file is served with a strict Content-Security-Policy (scripts, styles and requests only
//! from this origin, nothing inline, never framed), `nosniff`, no referrer, and `no-cache` with
//! an ETag: browsers revalidate on every load and get a 304 when the binary has not changed, so a
//! new release is never hidden behind a stale cached script.
//!
//! The page routes are not in the OpenAPI document: they are not part of the API.

use std::sync::LazyLock;

use axum::{
    Router,
    extract::Path,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use sha2::{Digest, Sha256};

use crate::{AppState, error::ApiError};

/// Served at `/`; it loads everything else from `/assets/`.
const INDEX_HTML: &str = include_str!("../../web/index.html");

/// `/assets/{name}`: the only files served, with their types. A name not listed is the API's
/// JSON 404, like any unknown route.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "app.css",
        "text/css; charset=utf-8",
        include_str!("../../web/app.css"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/app.js"),
    ),
    (
        "api.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/api.js"),
    ),
    (
        "dom.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/dom.js"),
    ),
    (
        "email.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/email.js"),
    ),
    (
        "sms.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/sms.js"),
    ),
    (
        "suppressions.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/suppressions.js"),
    ),
    (
        "audit.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/audit.js"),
    ),
    (
        "activity.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/activity.js"),
    ),
    (
        "patients.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/patients.js"),
    ),
    (
        "segments.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/segments.js"),
    ),
    (
        "sequences.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/sequences.js"),
    ),
    (
        "rules.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/rules.js"),
    ),
    (
        "chart.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/chart.js"),
    ),
    (
        "status.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/status.js"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_str!("../../web/favicon.svg"),
    ),
];

/// `'self'` only, nothing inline: an injected `<script>` or `style=` attribute does not run even
/// if some API text ever reached the page as markup (the page only ever inserts text).
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        .route("/assets/{name}", get(asset))
}

async fn index(request_headers: HeaderMap) -> Response {
    static FILE: LazyLock<StaticFile> =
        LazyLock::new(|| StaticFile::new("text/html; charset=utf-8", INDEX_HTML));
    FILE.respond(&request_headers)
}

async fn asset(Path(name): Path<String>, request_headers: HeaderMap) -> Response {
    static FILES: LazyLock<Vec<(&str, StaticFile)>> = LazyLock::new(|| {
        ASSETS
            .iter()
            .map(|&(name, content_type, body)| (name, StaticFile::new(content_type, body)))
            .collect()
    });
    match FILES.iter().find(|(known, _)| *known == name) {
        Some((_, file)) => file.respond(&request_headers),
        None => ApiError::NotFound("route").into_response(),
    }
}

struct StaticFile {
    content_type: &'static str,
    body: &'static str,
    /// A strong validator: the file's SHA-256, so it changes exactly when the content does.
    etag: HeaderValue,
}

impl StaticFile {
    fn new(content_type: &'static str, body: &'static str) -> Self {
        let digest = Sha256::digest(body.as_bytes());
        let etag = format!("\"{}\"", hex::encode(&digest[..16]));
        Self {
            content_type,
            body,
            etag: HeaderValue::from_str(&etag).expect("a hex ETag is a valid header value"),
        }
    }

    fn respond(&self, request_headers: &HeaderMap) -> Response {
        let unchanged = request_headers
            .get_all(header::IF_NONE_MATCH)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|list| list.split(','))
            .any(|tag| tag.trim() == self.etag || tag.trim() == "*");
        let mut response = if unchanged {
            StatusCode::NOT_MODIFIED.into_response()
        } else {
            (
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(self.content_type),
                )],
                self.body,
            )
                .into_response()
        };
        let headers = response.headers_mut();
        headers.insert(header::ETAG, self.etag.clone());
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        );
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        headers.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
        // For browsers that predate frame-ancestors.
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_module_the_page_imports_is_served() {
        let scripts: String = ASSETS
            .iter()
            .filter(|(name, ..)| name.ends_with(".js"))
            .map(|(_, _, body)| *body)
            .chain([INDEX_HTML])
            .collect();
        for reference in scripts
            .split(['"', '\''])
            .filter(|s| s.starts_with("./") || s.starts_with("/assets/"))
        {
            let name = reference
                .trim_start_matches("./")
                .trim_start_matches("/assets/");
            assert!(
                ASSETS.iter().any(|(known, ..)| *known == name),
                "{reference} is referenced but not served"
            );
        }
    }

    #[test]
    fn every_element_the_scripts_look_up_by_id_is_in_the_page() {
        for (name, _, body) in ASSETS.iter().filter(|(name, ..)| name.ends_with(".js")) {
            for id in body
                .split("$('")
                .skip(1)
                .filter_map(|rest| rest.split_once("')").map(|(id, _)| id))
            {
                assert!(
                    INDEX_HTML.contains(&format!("id=\"{id}\"")),
                    "{name} looks up #{id}, which index.html does not have"
                );
            }
        }
    }

    #[test]
    fn the_page_has_no_inline_script_or_style_that_the_policy_would_block() {
        for (name, body) in ASSETS
            .iter()
            .map(|(name, _, body)| (*name, *body))
            .chain([("index.html", INDEX_HTML)])
        {
            assert!(
                !body.contains("style=\""),
                "{name} has an inline style attribute"
            );
            assert!(!body.contains("<style"), "{name} has an inline <style>");
            assert!(!body.contains("onclick="), "{name} has an inline handler");
            assert!(
                !body.contains("innerHTML"),
                "{name} writes markup: use text nodes"
            );
        }
        for script in INDEX_HTML.split("<script").skip(1) {
            assert!(
                script.trim_start().starts_with("type=\"module\" src="),
                "index.html has an inline script"
            );
        }
    }
}
