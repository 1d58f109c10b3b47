//! Malformed JSON-RPC bodies get a JSON-RPC error, not rmcp's 415.
//!
//! rmcp answers a POST whose body does not deserialize with `415 Unsupported Media
//! Type` and a plain-text reason, even when the media type is right and the body is
//! the problem (bad UTF-8, lone surrogates, nesting beyond serde_json's limit, a batch
//! array, which MCP 2025-06-18 removed). JSON-RPC says such a request gets a `-32700
//! Parse error` or `-32600 Invalid Request` response, and HTTP says 400. This layer
//! checks the (already size-limited) body of each JSON POST once, with the pure
//! [`check`], and passes the same bytes on when they are a JSON object. Refusals are
//! [`Rejection`]s and keep the JSON-RPC error shape MCP clients read (see `rescue`).
//! What it read (the id, the method, and the request metadata in `params`) stays in the
//! request's extensions as a [`Read`], so the layers inside need not parse the body
//! again to know what it asks: the listing layer answers from it alone.
//!
//! It also keeps request ids unique among a session's requests in flight: rmcp routes
//! a response by its id, so a second request reusing an id still in flight would leave
//! one of the two streams waiting forever. The second one is refused instead, and the
//! id is free again once the first response has been sent (or its client left).

use std::collections::HashSet;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use axum::body::Body;
use futures::future::BoxFuture;
use http::{Method, Request, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use tower::{Layer, Service};

mod params;
mod verdict;

use super::rescue::{self, Rejection};

pub use self::params::{Meta, Params};
pub use self::verdict::{BodyError, Read, check};

/// (session id, request id) of the requests whose response is still being sent.
type InFlight = Arc<Mutex<HashSet<(String, String)>>>;

/// See the module docs.
#[derive(Clone, Debug)]
pub struct JsonBodyLayer {
    limit: usize,
    in_flight: InFlight,
}

impl JsonBodyLayer {
    /// Check bodies of at most `limit` bytes (`TWOBOT_MAX_BODY_BYTES`; larger is 413).
    pub fn new(limit: usize) -> Self {
        Self {
            limit,
            in_flight: InFlight::default(),
        }
    }
}

impl<S> Layer<S> for JsonBodyLayer {
    type Service = JsonBody<S>;

    fn layer(&self, inner: S) -> Self::Service {
        JsonBody {
            inner,
            limit: self.limit,
            in_flight: self.in_flight.clone(),
        }
    }
}

/// The service of [`JsonBodyLayer`].
#[derive(Clone, Debug)]
pub struct JsonBody<S> {
    inner: S,
    limit: usize,
    in_flight: InFlight,
}

/// Frees a request id when its response body is done with (sent, or the client left).
struct Release {
    in_flight: InFlight,
    key: (String, String),
}

impl Drop for Release {
    fn drop(&mut self) {
        if let Ok(mut set) = self.in_flight.lock() {
            set.remove(&self.key);
        }
    }
}

/// A response body that holds its request id until it is dropped.
struct Held {
    inner: Body,
    _release: Release,
}

impl http_body::Body for Held {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Whether a request's body is declared JSON (`Content-Type: application/json`, any
/// parameters); rmcp answers anything else 415, so this layer passes it on unread.
pub(super) fn is_json(headers: &http::HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"))
}

impl From<BodyError> for Rejection {
    fn from(error: BodyError) -> Self {
        match error {
            BodyError::Parse(detail) => Rejection::MalformedJson(detail),
            BodyError::Invalid(what) => Rejection::NotOneMessage(what),
            BodyError::IdInFlight(id) => Rejection::RequestIdInFlight(id),
        }
    }
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
        if request.method() != Method::POST || !is_json(request.headers()) {
            return Box::pin(self.inner.call(request));
        }
        let mut inner = super::ready::take(&mut self.inner);
        let limit = self.limit;
        let in_flight = self.in_flight.clone();
        Box::pin(async move {
            let (mut parts, body) = request.into_parts();
            let bytes = match Limited::new(body, limit).collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(e) => {
                    // Over the limit (ours, or the body limit layer's outside), or cut off.
                    let too_big = e.downcast_ref::<LengthLimitError>().is_some()
                        || e.to_string().contains("length limit exceeded");
                    let rejection = if too_big {
                        Rejection::BodyTooLarge {
                            declared: None,
                            limit: u64::try_from(limit).unwrap_or(u64::MAX),
                        }
                    } else {
                        Rejection::MalformedJson(e.to_string())
                    };
                    return Ok(rescue::render(&rejection));
                }
            };
            let read = match check(&bytes) {
                Ok(read) => read,
                Err(error) => {
                    tracing::debug!(%error, "malformed JSON-RPC body refused");
                    return Ok(rescue::render(&error.into()));
                }
            };
            let session = parts
                .headers
                .get(&super::names::MCP_SESSION_ID)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let release = match (session, &read.id) {
                (Some(session), Some(id)) => {
                    let key = (session, id.clone());
                    let fresh = in_flight
                        .lock()
                        .map(|mut set| set.insert(key.clone()))
                        .unwrap_or(true);
                    if !fresh {
                        let error = BodyError::IdInFlight(key.1);
                        tracing::debug!(%error, "duplicate request id refused");
                        return Ok(rescue::render(&error.into()));
                    }
                    Some(Release { in_flight, key })
                }
                _ => None,
            };
            parts.extensions.insert(read);
            let response = inner
                .call(Request::from_parts(parts, Body::from(bytes)))
                .await?;
            Ok(match release {
                Some(release) => response.map(|inner| {
                    Body::new(Held {
                        inner,
                        _release: release,
                    })
                }),
                None => response,
            })
        })
    }
}
