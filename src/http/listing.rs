//! A stateless `tools/list` answered from bytes serialized once.
//!
//! The tool list is fixed for the life of the process (it depends on the configuration
//! only), yet answering it through rmcp costs a service task, a one-shot transport,
//! cancellation tokens and a fresh serialization of every tool and schema per request:
//! most of a stateless request's CPU (docs/profiles/README.md). MCP 2026-07-28 clients
//! ask for it on every request they make without a session, and ChatGPT lists tools
//! often, so this layer answers the well-formed ones itself with the bytes rmcp would
//! send, and passes everything else on untouched.
//!
//! It sits innermost, after auth, the limits and the JSON body check, so a cached
//! answer is refused, limited and counted exactly like one from rmcp. [`answerable`]
//! takes only the plain case: a body declared JSON, no session, no cursor, the
//! `MCP-Protocol-Version` and `Mcp-Method` headers and the 2026-07-28 request metadata
//! present, agreeing and well-typed. Anything else (a malformed request included) goes
//! to rmcp, which owns the protocol's errors.

use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use futures::future::BoxFuture;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use rmcp::model::{ClientCapabilities, ListToolsResult, ServerResult};
use serde::Deserialize;
use serde_json::Value;
use tower::{Layer, Service};

/// The protocol version whose requests carry everything in `_meta` (no session).
const STATELESS_VERSION: &str = "2026-07-28";

/// The answer's bytes around the request id: `{"jsonrpc":"2.0","id":` … `,"result":…}`,
/// in the field order rmcp's `JsonRpcResponse` serializes.
#[derive(Debug)]
struct Answer {
    head: &'static [u8],
    tail: Bytes,
}

impl Answer {
    fn for_id(&self, id: &str) -> Bytes {
        let mut body = Vec::with_capacity(self.head.len() + id.len() + self.tail.len());
        body.extend_from_slice(self.head);
        body.extend_from_slice(id.as_bytes());
        body.extend_from_slice(&self.tail);
        Bytes::from(body)
    }
}

/// See the module docs.
#[derive(Debug, Clone)]
pub struct ListingLayer {
    answer: Option<Arc<Answer>>,
}

impl ListingLayer {
    /// Serve `tools` (the handler's own list) to stateless `tools/list` requests.
    pub fn new(tools: &ListToolsResult) -> Self {
        // As rmcp answers a 2026-07-28 peer: the SEP-2549 caching hints filled in.
        let mut result = ServerResult::ListToolsResult(tools.clone());
        result.fill_missing_cache_hints();
        let answer = match serde_json::to_vec(&result) {
            Ok(result) => {
                let mut tail = Vec::with_capacity(result.len() + 12);
                tail.extend_from_slice(b",\"result\":");
                tail.extend_from_slice(&result);
                tail.push(b'}');
                Some(Arc::new(Answer {
                    head: br#"{"jsonrpc":"2.0","id":"#,
                    tail: Bytes::from(tail),
                }))
            }
            Err(error) => {
                // Not expected (a tool list is plain JSON); rmcp then answers every listing.
                tracing::error!(%error, "cannot serialize the tool list once; rmcp lists tools");
                None
            }
        };
        Self { answer }
    }
}

impl<S> Layer<S> for ListingLayer {
    type Service = Listing<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Listing {
            inner,
            answer: self.answer.clone(),
        }
    }
}

/// The service of [`ListingLayer`].
#[derive(Debug, Clone)]
pub struct Listing<S> {
    inner: S,
    answer: Option<Arc<Answer>>,
}

/// A header that says exactly `want`.
fn header_is(headers: &HeaderMap, name: &str, want: &str) -> bool {
    headers
        .get(name)
        .is_some_and(|v| v.as_bytes() == want.as_bytes())
}

/// Whether the client accepts both answers a POST may get, in the plain spelling
/// (an entry with parameters, such as a weight, leaves the request to rmcp).
fn accepts_both(headers: &HeaderMap) -> bool {
    let (mut json, mut sse) = (false, false);
    for value in headers.get_all(http::header::ACCEPT) {
        let Ok(value) = value.to_str() else {
            return false;
        };
        for item in value.split(',').map(str::trim) {
            json |= item.eq_ignore_ascii_case("application/json");
            sse |= item.eq_ignore_ascii_case("text/event-stream");
        }
    }
    json && sse
}

/// Whether the headers alone leave a request that may be a plain stateless listing:
/// checked before the body is looked at.
fn headers_allow(headers: &HeaderMap) -> bool {
    // A body not declared JSON reaches this layer unread; rmcp answers it 415.
    super::json_body::is_json(headers)
        && headers.get("mcp-session-id").is_none()
        // rmcp refuses a 2026-07-28 request without these two headers (-32020).
        && header_is(headers, "mcp-protocol-version", STATELESS_VERSION)
        && header_is(headers, "mcp-method", "tools/list")
        && headers.get("mcp-name").is_none()
        && accepts_both(headers)
}

#[derive(Deserialize)]
struct Message<'a> {
    #[serde(borrow)]
    jsonrpc: &'a str,
    id: Value,
    #[serde(borrow)]
    method: &'a str,
    params: Option<Params>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    #[serde(rename = "_meta")]
    meta: Option<serde_json::Map<String, Value>>,
}

/// The decision: the JSON text of the request id when `body` is a plain stateless
/// `tools/list` the cached bytes answer exactly; `None` sends it on to rmcp.
pub fn answerable(headers: &HeaderMap, body: &[u8]) -> Option<String> {
    if !headers_allow(headers) {
        return None;
    }
    listed_id(body)
}

/// The body's half of [`answerable`], for a request whose headers already passed.
fn listed_id(body: &[u8]) -> Option<String> {
    let message: Message<'_> = serde_json::from_slice(body).ok()?;
    if message.jsonrpc != "2.0" || message.method != "tools/list" {
        return None;
    }
    // rmcp's request ids are strings or integers; anything else is its error to give.
    if !(message.id.is_string() || message.id.is_i64() || message.id.is_u64()) {
        return None;
    }
    let meta = message.params?.meta?;
    let version = meta.get("io.modelcontextprotocol/protocolVersion")?;
    let capabilities = meta.get("io.modelcontextprotocol/clientCapabilities")?;
    if version.as_str() != Some(STATELESS_VERSION)
        || serde_json::from_value::<ClientCapabilities>(capabilities.clone()).is_err()
    {
        return None;
    }
    Some(message.id.to_string())
}

impl<S> Service<Request<Body>> for Listing<S>
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
        let answer = match &self.answer {
            Some(answer)
                if request.method() == Method::POST && headers_allow(request.headers()) =>
            {
                answer.clone()
            }
            _ => return Box::pin(inner.call(request)),
        };
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            // The JSON body layer outside already read and size-limited the body, so
            // this collects one in-memory frame.
            let bytes = match body.collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(e) => {
                    let rejection = super::rescue::Rejection::MalformedJson(e.to_string());
                    return Ok(super::rescue::render(&rejection));
                }
            };
            // The headers were checked above, before the body was read.
            match listed_id(&bytes) {
                Some(id) => {
                    let mut response = Response::new(Body::from(answer.for_id(&id)));
                    *response.status_mut() = StatusCode::OK;
                    response.headers_mut().insert(
                        http::header::CONTENT_TYPE,
                        HeaderValue::from_static("application/json"),
                    );
                    Ok(response)
                }
                None => {
                    inner
                        .call(Request::from_parts(parts, Body::from(bytes)))
                        .await
                }
            }
        })
    }
}

#[cfg(test)]
#[path = "listing_tests.rs"]
mod tests;
