//! The settings page's files as HTTP serves them: the app shell at `/`, its assets, the headers
//! that keep it from being framed, sniffed or fed foreign scripts, and revalidation by ETag.

use reqwest::header;

use crate::helpers::spawn_app;

#[tokio::test]
async fn the_page_is_served_at_the_root_with_a_strict_content_security_policy() {
    let app = spawn_app().await;

    let response = app.http.get(app.url("/")).send().await.unwrap();

    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    let value = |name: header::HeaderName| headers[name].to_str().unwrap().to_string();
    assert_eq!(value(header::CONTENT_TYPE), "text/html; charset=utf-8");
    assert_eq!(value(header::CACHE_CONTROL), "no-cache");
    assert_eq!(value(header::X_CONTENT_TYPE_OPTIONS), "nosniff");
    assert_eq!(value(header::REFERRER_POLICY), "no-referrer");
    let policy = value(header::CONTENT_SECURITY_POLICY);
    for directive in [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(policy.contains(directive), "{directive} in {policy}");
    }
    assert!(!policy.contains("unsafe-inline"), "{policy}");
    let body = response.text().await.unwrap();
    assert!(body.contains(r#"<script type="module" src="/assets/app.js"></script>"#));
}

#[tokio::test]
async fn each_asset_has_its_content_type_and_an_unknown_one_is_the_json_404() {
    let app = spawn_app().await;

    for (path, content_type) in [
        ("/assets/app.js", "text/javascript; charset=utf-8"),
        ("/assets/email.js", "text/javascript; charset=utf-8"),
        ("/assets/app.css", "text/css; charset=utf-8"),
        ("/assets/favicon.svg", "image/svg+xml"),
    ] {
        let response = app.http.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            content_type,
            "{path}"
        );
        assert!(
            response
                .headers()
                .contains_key(header::CONTENT_SECURITY_POLICY)
        );
    }
    let missing = app
        .http
        .get(app.url("/assets/settings.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let body: serde_json::Value = missing.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
}

#[tokio::test]
async fn an_unchanged_file_is_a_304_to_a_browser_that_has_it() {
    let app = spawn_app().await;
    let first = app
        .http
        .get(app.url("/assets/app.js"))
        .send()
        .await
        .unwrap();
    let etag = first.headers()[header::ETAG].clone();

    let again = app
        .http
        .get(app.url("/assets/app.js"))
        .header(header::IF_NONE_MATCH, etag.clone())
        .send()
        .await
        .unwrap();

    assert_eq!(again.status(), 304);
    assert_eq!(again.headers()[header::ETAG], etag);
    assert!(again.text().await.unwrap().is_empty());
}

#[tokio::test]
async fn the_page_routes_stay_out_of_the_openapi_document() {
    let app = spawn_app().await;

    let document: serde_json::Value = app
        .http
        .get(app.url("/api/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    let paths = document["paths"].as_object().unwrap();
    assert!(!paths.contains_key("/"), "the page is not an API route");
    assert!(!paths.keys().any(|p| p.starts_with("/assets")));
    assert!(paths.contains_key("/api/practice-settings/messaging"));
}
