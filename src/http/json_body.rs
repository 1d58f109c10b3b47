//! Malformed JSON-RPC bodies get a JSON-RPC error, not rmcp's 415.
//!
//! rmcp answers a POST whose body does not deserialize with `415 Unsupported Media
//! Type` and a plain-text reason, even when the media type is right and the body is
//! the problem (bad UTF-8, lone surrogates, nesting beyond serde_json's limit, a batch
//! array, which MCP 2025-06-18 removed). JSON-RPC says such a request gets a `-32700
//! Parse error` or `-32600 Invalid Request` response, and HTTP says 400. This layer
//! checks the (already size-limited) body of each JSON POST once, with the pure
//! [`check`], and passes the same bytes on when they are a JSON object.

use std::task::{Context, Poll};

use axum::body::Body;
use futures::future::BoxFuture;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use tower::{Layer, Service};

/// Why a body is not a JSON-RPC message 2Bot can serve.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// Not JSON at all (bad UTF-8, lone surrogates, too deep, truncated).
    #[error("Parse error: {0}")]
    Parse(String),
    /// JSON, but not one JSON-RPC message object (a batch array, a bare value).
    #[error("Invalid Request: {0}")]
    Invalid(&'static str),
}

impl BodyError {
    fn code(&self) -> i64 {
        match self {
            Self::Parse(_) => -32700,
            Self::Invalid(_) => -32600,
        }
    }
}

/// The decision: is `body` a single JSON object?
pub fn check(body: &[u8]) -> Result<(), BodyError> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first == Some(&b'[') {
        // Checked before parsing, so even a huge or deep batch costs nothing.
        return Err(BodyError::Invalid(
            "JSON-RPC batches are not supported (MCP 2025-06-18 removed batching); send one message per request",
        ));
    }
    // Into a `Value`, not `IgnoredAny`: only a full parse validates escapes (a lone
    // surrogate passes `IgnoredAny` and then fails in rmcp).
    match serde_json::from_slice::<serde_json::Value>(body) {
        Err(e) => Err(BodyError::Parse(e.to_string())),
        Ok(value) if value.is_object() => Ok(()),
        Ok(_) => Err(BodyError::Invalid(
            "the body must be one JSON-RPC message object",
        )),
    }
}

/// See the module docs.
#[derive(Clone, Copy, Debug)]
pub struct JsonBodyLayer {
    limit: usize,
}

impl JsonBodyLayer {
    /// Check bodies of at most `limit` bytes (`TWOBOT_MAX_BODY_BYTES`; larger is 413).
    pub fn new(limit: usize) -> Self {
        Self { limit }
    }
}

impl<S> Layer<S> for JsonBodyLayer {
    type Service = JsonBody<S>;

    fn layer(&self, inner: S) -> Self::Service {
        JsonBody {
            inner,
            limit: self.limit,
        }
    }
}

/// The service of [`JsonBodyLayer`].
#[derive(Clone, Debug)]
pub struct JsonBody<S> {
    inner: S,
    limit: usize,
}

fn is_json(request: &Request<Body>) -> bool {
    request
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"))
}

fn rejection(status: StatusCode, error: &BodyError) -> Response<Body> {
    let body = serde_json::json!({
        "jsonrpc": "2.0",
        "id": null,
        "error": {"code": error.code(), "message": error.to_string()},
    });
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

impl<S> Service<Request<Body>> for JsonBody<S>
where
    S: Service<Request<Body>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response<Body>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        // The clone is not ready; the one that was polled ready serves this request.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        if request.method() != Method::POST || !is_json(&request) {
            return Box::pin(inner.call(request));
        }
        let limit = self.limit;
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let bytes = match Limited::new(body, limit).collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(e) => {
                    // Over the limit (ours, or the body limit layer's outside), or cut off.
                    let too_big = e.downcast_ref::<LengthLimitError>().is_some()
                        || e.to_string().contains("length limit exceeded");
                    let status = if too_big {
                        StatusCode::PAYLOAD_TOO_LARGE
                    } else {
                        StatusCode::BAD_REQUEST
                    };
                    return Ok(rejection(status, &BodyError::Parse(e.to_string())));
                }
            };
            if let Err(error) = check(&bytes) {
                tracing::debug!(%error, "malformed JSON-RPC body refused");
                return Ok(rejection(StatusCode::BAD_REQUEST, &error));
            }
            inner
                .call(Request::from_parts(parts, Body::from(bytes)))
                .await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_single_json_object_passes() {
        let deep = format!("{}{}", "[".repeat(1000), "]".repeat(1000));
        let deep_object = format!("{}1{}", "{\"a\":".repeat(200), "}".repeat(200));
        let cases: Vec<(&[u8], Option<i64>)> = vec![
            (br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#, None),
            (b"  \n{\"jsonrpc\":\"2.0\",\"method\":\"x\"}", None),
            (br#"{"a":1,"a":2}"#, None),
            (b"", Some(-32700)),
            (b"{", Some(-32700)),
            (&[0xff, 0xfe, b'{'], Some(-32700)),
            (br#"{"p":"\ud800"}"#, Some(-32700)),
            (deep_object.as_bytes(), Some(-32700)),
            (deep.as_bytes(), Some(-32600)),
            (
                br#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#,
                Some(-32600),
            ),
            (b"42", Some(-32600)),
            (b"\"ping\"", Some(-32600)),
            (b"null", Some(-32600)),
        ];
        for (body, expect) in cases {
            assert_eq!(
                check(body).err().map(|e| e.code()),
                expect,
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
