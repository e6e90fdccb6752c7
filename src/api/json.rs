//! Extractors whose rejections speak the contract's error shape instead of axum's plain text.

use axum::{
    body::Bytes,
    extract::{
        FromRequest, FromRequestParts, Request,
        rejection::{BytesRejection, FormRejection, JsonRejection, PathRejection, QueryRejection},
    },
    http::{StatusCode, request::Parts},
    response::{IntoResponse, Response},
};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// `axum::Json`, answering malformed bodies with 400 (not JSON), 413 (too large) or 422 (wrong
/// shape, or a string holding NUL; the field named).
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (parts, body) = req.into_parts();
        let bytes = Bytes::from_request(Request::from_parts(parts.clone(), body), state)
            .await
            .map_err(body_rejection)?;
        let req = Request::from_parts(parts, axum::body::Body::from(bytes.clone()));
        let value = match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => value,
            Err(JsonRejection::JsonDataError(_)) => return Err(data_error::<T>(&bytes)),
            Err(rejection) => return Err(json_rejection(rejection)),
        };
        // Valid JSON by now; Postgres text and jsonb cannot hold NUL, so it is refused here with
        // its field named rather than failing a statement later.
        if let Ok(document) = serde_json::from_slice::<serde_json::Value>(&bytes)
            && let Some(field) = field_with_nul(&document, "")
        {
            return Err(ApiError::validation(&field, NUL_MESSAGE));
        }
        Ok(Self(value))
    }
}

const NUL_MESSAGE: &str = "must not contain the NUL character (\\u0000)";

/// The path (`steps[0].body`, or `body` for the document itself) of the first string or key
/// holding NUL.
fn field_with_nul(value: &serde_json::Value, path: &str) -> Option<String> {
    use serde_json::Value;
    let here = || {
        if path.is_empty() {
            "body".to_string()
        } else {
            path.to_string()
        }
    };
    match value {
        Value::String(text) => text.contains('\0').then(here),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| field_with_nul(item, &format!("{path}[{i}]"))),
        Value::Object(fields) => fields.iter().find_map(|(key, item)| {
            let path = if path.is_empty() {
                key.clone()
            } else {
                format!("{path}.{key}")
            };
            if key.contains('\0') {
                Some(here())
            } else {
                field_with_nul(item, &path)
            }
        }),
        _ => None,
    }
}

fn body_rejection(rejection: BytesRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge
    } else {
        ApiError::BadRequest(format!(
            "could not read the request body: {}",
            rejection.body_text()
        ))
    }
}

impl<T: serde::Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// Well-formed JSON of the wrong shape: 422 naming the field by its path (`steps[0].body`), or
/// `body` when the document itself is wrong.
fn data_error<T: DeserializeOwned>(bytes: &[u8]) -> ApiError {
    let mut document = serde_json::Deserializer::from_slice(bytes);
    match serde_path_to_error::deserialize::<_, T>(&mut document) {
        Ok(_) => ApiError::validation("body", "does not match the expected shape"),
        Err(error) => {
            let path = error.path().to_string();
            let field = if path == "." { "body" } else { path.as_str() };
            ApiError::validation(field, error.inner().to_string())
        }
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => {
            ApiError::BadRequest("expected a JSON body with Content-Type: application/json".into())
        }
        too_large if too_large.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::PayloadTooLarge
        }
        other => ApiError::BadRequest(format!("malformed JSON body: {}", other.body_text())),
    }
}

/// `axum::extract::Query` with the contract's error shape.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        if let Some((name, _)) = url::form_urlencoded::parse(query.as_bytes())
            .find(|(name, value)| name.contains('\0') || value.contains('\0'))
        {
            return Err(ApiError::validation(&name, NUL_MESSAGE));
        }
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Self(q.0))
            .map_err(|e: QueryRejection| ApiError::validation("query", e.body_text()))
    }
}

/// `axum::extract::Path` with the contract's error shape (a malformed id is a 404: no such thing).
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Self(p.0))
            .map_err(|_: PathRejection| ApiError::NotFound("resource"))
    }
}

/// `axum::Form` with the contract's error shape.
pub struct Form<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Form<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        axum::Form::<T>::from_request(req, state)
            .await
            .map(|f| Self(f.0))
            .map_err(|e: FormRejection| {
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::PayloadTooLarge
                } else {
                    ApiError::BadRequest(format!("malformed form body: {}", e.body_text()))
                }
            })
    }
}

/// The body exactly as received, for checking a signature over its bytes before parsing them.
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        Bytes::from_request(req, state)
            .await
            .map(Self)
            .map_err(body_rejection)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::field_with_nul;

    #[test]
    fn the_first_string_or_key_holding_nul_is_named_by_its_path() {
        let clean = json!({"name": "Recall", "steps": [{"body": "a\\u0000b"}]});
        assert_eq!(
            field_with_nul(&clean, ""),
            None,
            "an escaped backslash is not NUL"
        );
        let nested = json!({"name": "Recall", "steps": [{"body": "ok"}, {"body": "a\u{0}b"}]});
        assert_eq!(
            field_with_nul(&nested, "").as_deref(),
            Some("steps[1].body")
        );
        let key = json!({"patient": {"x\u{0}": 1}});
        assert_eq!(field_with_nul(&key, "").as_deref(), Some("patient"));
        assert_eq!(field_with_nul(&json!("\u{0}"), "").as_deref(), Some("body"));
    }
}
