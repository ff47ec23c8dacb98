//! Request bodies: JSON of at most 64 KiB, or none at all where every field has a default. The
//! failures answer as the API's errors do (413, 415, 422), never as axum's plain-text ones.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header;
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// The largest body the API reads.
pub const MAX_BODY: usize = 64 * 1024;

/// A JSON body; an empty one (without a Content-Type) reads as `T::default()`.
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Default,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let content_type = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let bytes =
            Bytes::from_request(request, state)
                .await
                .map_err(|rejection| match rejection.status().as_u16() {
                    413 => ApiError::too_large(MAX_BODY),
                    _ => ApiError::invalid("invalid_request", rejection.body_text()),
                })?;
        if bytes.len() > MAX_BODY {
            return Err(ApiError::too_large(MAX_BODY));
        }
        if bytes.iter().all(u8::is_ascii_whitespace) && content_type.is_none() {
            return Ok(JsonBody(T::default()));
        }
        if !content_type.as_deref().is_some_and(is_json) {
            return Err(ApiError::unsupported_media_type());
        }
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|e| ApiError::invalid("invalid_request", format!("the body: {e}")))
    }
}

/// `application/json`, with parameters or a `+json` suffix.
fn is_json(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_media_types() {
        for yes in [
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON",
            "application/merge-patch+json",
        ] {
            assert!(is_json(yes), "{yes}");
        }
        for no in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "application/jsonx",
            "",
        ] {
            assert!(!is_json(no), "{no}");
        }
    }
}
