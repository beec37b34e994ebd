//! JSON answers. Like `axum::Json`, but serialized into one pre-sized `Vec` instead of
//! through a `BytesMut` writer: serde_json writes a JSON document as many small pieces, and
//! the plain `Vec` append is the cheaper sink for them (every API answer goes through here).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// A JSON response body (`application/json`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

/// Most answers fit; bigger ones grow the buffer as usual.
const INITIAL_CAPACITY: usize = 512;

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        let mut buf = Vec::with_capacity(INITIAL_CAPACITY);
        match serde_json::to_writer(&mut buf, &self.0) {
            Ok(()) => (
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                )],
                buf,
            )
                .into_response(),
            Err(e) => {
                // Only a Serialize impl that fails (a map with non-string keys, say) gets
                // here: a bug of ours, answered like axum answers it.
                tracing::error!(error = %e, "cannot serialize an API answer");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    [(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("text/plain; charset=utf-8"),
                    )],
                    e.to_string(),
                )
                    .into_response()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt as _;

    #[tokio::test]
    async fn answers_json_with_its_content_type() {
        let resp = Json(serde_json::json!({"a": "b\"c", "n": [1, 2]})).into_response();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()[header::CONTENT_TYPE], "application/json");
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], br#"{"a":"b\"c","n":[1,2]}"#);
    }

    #[tokio::test]
    async fn a_value_that_cannot_be_serialized_is_a_500() {
        let mut map = std::collections::BTreeMap::new();
        map.insert((1, 2), 3);
        let resp = Json(map).into_response();
        assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
