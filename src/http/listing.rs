//! A `tools/list` answered from bytes serialized once.
//!
//! The tool list is fixed for the life of the process (it depends on the configuration
//! only), yet answering it through rmcp costs, per request, a fresh serialization of
//! every tool and schema and either a service task with a one-shot transport (stateless)
//! or two hops through the session's worker and an SSE stream (a session): most of the
//! request's CPU (docs/profiles/README.md). Clients list tools often (ChatGPT before
//! every call), so this layer answers the well-formed ones itself with the bytes rmcp
//! would send, and passes everything else on untouched.
//!
//! It sits innermost, after auth, the limits, the session guard and the JSON body
//! check, so a cached answer is refused, limited and counted exactly like one from rmcp,
//! and a session's listing reaches it only from the session's owner. [`route`] and
//! [`listed_id`] take only the plain cases, each with its own answer:
//!
//! - **stateless** (2026-07-28): no session, the `MCP-Protocol-Version` and
//!   `Mcp-Method` headers and the request metadata present, agreeing and well-typed; the
//!   result carries the SEP-2549 caching hints rmcp adds for that version;
//! - **a session** (2025-11-25 and older): the session's id, a legacy version header (or
//!   none), no cursor and no per-request protocol metadata; the result in the legacy
//!   shape. rmcp would stream it as SSE; it comes as `application/json`, which every
//!   client must take for any POST. The session's idle clock is kept running
//!   (`OwnedSessions::keep_alive`), and a session whose worker is found gone at a touch
//!   goes to rmcp.
//!
//! Anything else (a malformed request included) goes to rmcp, which owns the protocol's
//! errors.

use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use futures::future::BoxFuture;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use rmcp::model::{ClientCapabilities, ListToolsResult, ProtocolVersion, ServerResult};
use serde::Deserialize;
use serde_json::Value;
use tower::{Layer, Service};

use super::session::OwnedSessions;

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

    /// The bytes for `result`, serialized once; `None` (logged) if it does not serialize.
    fn of(result: &ServerResult) -> Option<Self> {
        match serde_json::to_vec(result) {
            Ok(result) => {
                let mut tail = Vec::with_capacity(result.len() + 12);
                tail.extend_from_slice(b",\"result\":");
                tail.extend_from_slice(&result);
                tail.push(b'}');
                Some(Self {
                    head: br#"{"jsonrpc":"2.0","id":"#,
                    tail: Bytes::from(tail),
                })
            }
            Err(error) => {
                // Not expected (a tool list is plain JSON); rmcp then answers every listing.
                tracing::error!(%error, "cannot serialize the tool list once; rmcp lists tools");
                None
            }
        }
    }
}

/// The two answers: as rmcp shapes a result for a 2026-07-28 peer and for a legacy one.
#[derive(Debug)]
struct Answers {
    stateless: Answer,
    session: Answer,
}

/// See the module docs.
#[derive(Debug, Clone)]
pub struct ListingLayer {
    answers: Option<Arc<Answers>>,
    sessions: Arc<OwnedSessions>,
}

impl ListingLayer {
    /// Serve `tools` (the handler's own list) to plain `tools/list` requests, keeping
    /// the idle clocks of `sessions`.
    pub fn new(tools: &ListToolsResult, sessions: Arc<OwnedSessions>) -> Self {
        let mut stateless = ServerResult::ListToolsResult(tools.clone());
        stateless.fill_missing_cache_hints();
        let mut session = ServerResult::ListToolsResult(tools.clone());
        session.strip_result_type_for_legacy_peer();
        session.strip_non_object_output_for_legacy_peer();
        let answers = Answer::of(&stateless)
            .zip(Answer::of(&session))
            .map(|(stateless, session)| Arc::new(Answers { stateless, session }));
        Self { answers, sessions }
    }
}

impl<S> Layer<S> for ListingLayer {
    type Service = Listing<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Listing {
            inner,
            answers: self.answers.clone(),
            sessions: self.sessions.clone(),
        }
    }
}

/// The service of [`ListingLayer`].
#[derive(Debug, Clone)]
pub struct Listing<S> {
    inner: S,
    answers: Option<Arc<Answers>>,
    sessions: Arc<OwnedSessions>,
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

/// Which answer a request may get, by its headers alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// A 2026-07-28 request without a session.
    Stateless,
    /// A request of this (legacy) session.
    Session(String),
}

/// A legacy session's version header: absent (rmcp then assumes 2025-03-26) or a
/// version rmcp knows that is older than 2026-07-28, whose result has the legacy shape.
fn legacy_version(headers: &HeaderMap) -> bool {
    match headers.get("mcp-protocol-version") {
        None => true,
        Some(value) => ProtocolVersion::KNOWN_VERSIONS.iter().any(|known| {
            value.as_bytes() == known.as_str().as_bytes()
                && known.as_str() < ProtocolVersion::V_2026_07_28.as_str()
        }),
    }
}

/// The headers' half of [`answerable`]: checked before the body is read.
fn route(headers: &HeaderMap) -> Option<Route> {
    // A body not declared JSON reaches this layer unread; rmcp answers it 415.
    if !super::json_body::is_json(headers)
        || headers.get("mcp-name").is_some()
        || !accepts_both(headers)
    {
        return None;
    }
    match headers.get("mcp-session-id") {
        // rmcp refuses a 2026-07-28 request without these two headers (-32020).
        None => (header_is(headers, "mcp-protocol-version", STATELESS_VERSION)
            && header_is(headers, "mcp-method", "tools/list"))
        .then_some(Route::Stateless),
        // rmcp does not check a legacy session's method header; a middlebox may route
        // on it, so one that names another method leaves the request to rmcp.
        Some(id) => (legacy_version(headers)
            && (headers.get("mcp-method").is_none()
                || header_is(headers, "mcp-method", "tools/list")))
        .then(|| id.to_str().ok().map(|id| Route::Session(id.to_owned())))
        .flatten(),
    }
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

/// The decision: how to answer and the JSON text of the request id, when the request
/// is a plain `tools/list` the cached bytes answer exactly; `None` sends it to rmcp.
pub fn answerable(headers: &HeaderMap, body: &[u8]) -> Option<(Route, String)> {
    let route = route(headers)?;
    let id = listed_id(&route, body)?;
    Some((route, id))
}

/// The body's half of [`answerable`], for a request whose headers gave `route`.
fn listed_id(route: &Route, body: &[u8]) -> Option<String> {
    let message: Message<'_> = serde_json::from_slice(body).ok()?;
    if message.jsonrpc != "2.0" || message.method != "tools/list" {
        return None;
    }
    // rmcp's request ids are strings or integers; anything else is its error to give.
    if !(message.id.is_string() || message.id.is_i64() || message.id.is_u64()) {
        return None;
    }
    let meta = message.params.and_then(|p| p.meta);
    let plain = match route {
        Route::Stateless => meta.is_some_and(|meta| {
            let capabilities = meta.get("io.modelcontextprotocol/clientCapabilities");
            meta.get("io.modelcontextprotocol/protocolVersion")
                .and_then(Value::as_str)
                == Some(STATELESS_VERSION)
                && capabilities.is_some_and(|c| {
                    serde_json::from_value::<ClientCapabilities>(c.clone()).is_ok()
                })
        }),
        // Per-request protocol metadata makes rmcp weigh the version; a progress token
        // is all a legacy listing may carry (there is no progress to report).
        Route::Session(_) => meta.is_none_or(|meta| meta.keys().all(|k| k == "progressToken")),
    };
    plain.then(|| message.id.to_string())
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
        let mut inner = super::ready::take(&mut self.inner);
        // The JSON body layer outside has read the method: anything but a listing passes
        // without a second look at its body.
        let other_method = request
            .extensions()
            .get::<super::json_body::Read>()
            .is_some_and(|read| read.method.as_deref() != Some("tools/list"));
        let candidate = request.method() == Method::POST && !other_method;
        let route = candidate.then(|| route(request.headers())).flatten();
        let (Some(answers), Some(route)) = (self.answers.clone(), route) else {
            return Box::pin(inner.call(request));
        };
        let sessions = self.sessions.clone();
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
            let answer = match (&route, listed_id(&route, &bytes)) {
                (Route::Stateless, Some(id)) => Some(answers.stateless.for_id(&id)),
                (Route::Session(session), Some(id)) if sessions.keep_alive(session).await => {
                    Some(answers.session.for_id(&id))
                }
                _ => None,
            };
            match answer {
                Some(answer) => {
                    let mut response = Response::new(Body::from(answer));
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
