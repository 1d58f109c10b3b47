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
//! and a session's listing reaches it only from the session's owner. It reads no body:
//! it decides on the headers ([`route`]) and on what the JSON body layer read of the
//! message ([`listed_id`]), and takes only the plain cases, each with its own answer:
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
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response};
use rmcp::model::{ClientCapabilities, ListToolsResult, ProtocolVersion, ServerResult};
use serde::Deserialize;
use tower::{Layer, Service};

use super::json_body::{Params, Read};
use super::names::{MCP_METHOD, MCP_NAME, MCP_PROTOCOL_VERSION, MCP_SESSION_ID};
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
    /// The answer to the request whose id is `id` (JSON text), as the three pieces hyper
    /// writes with one `writev`: the list's bytes are shared, never copied per request.
    fn for_id(&self, id: String) -> Pieces {
        Pieces([
            Some(Bytes::from_static(self.head)),
            Some(Bytes::from(id)),
            Some(self.tail.clone()),
        ])
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

/// A response body of a few pieces sent as they are, its exact length declared (so the
/// answer has a `Content-Length`, as a body of one piece would).
#[derive(Debug)]
struct Pieces([Option<Bytes>; 3]);

impl Pieces {
    fn remaining(&self) -> u64 {
        self.0.iter().flatten().map(|b| b.len() as u64).sum()
    }

    /// The pieces joined, for a look at the whole answer.
    #[cfg(test)]
    fn concat(&self) -> Vec<u8> {
        self.0
            .iter()
            .flatten()
            .flat_map(|b| b.iter().copied())
            .collect()
    }
}

impl http_body::Body for Pieces {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let next = self.0.iter_mut().find_map(Option::take);
        Poll::Ready(next.map(|piece| Ok(http_body::Frame::data(piece))))
    }

    fn is_end_stream(&self) -> bool {
        self.0.iter().all(Option::is_none)
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.remaining())
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
fn header_is(headers: &HeaderMap, name: &HeaderName, want: &str) -> bool {
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
    match headers.get(&MCP_PROTOCOL_VERSION) {
        None => true,
        Some(value) => ProtocolVersion::KNOWN_VERSIONS.iter().any(|known| {
            value.as_bytes() == known.as_str().as_bytes()
                && known.as_str() < ProtocolVersion::V_2026_07_28.as_str()
        }),
    }
}

/// The headers' half of [`answerable`].
fn route(headers: &HeaderMap) -> Option<Route> {
    // A body not declared JSON reaches this layer unread; rmcp answers it 415.
    if !super::json_body::is_json(headers)
        || headers.get(&MCP_NAME).is_some()
        || !accepts_both(headers)
    {
        return None;
    }
    match headers.get(&MCP_SESSION_ID) {
        // rmcp refuses a 2026-07-28 request without these two headers (-32020).
        None => (header_is(headers, &MCP_PROTOCOL_VERSION, STATELESS_VERSION)
            && header_is(headers, &MCP_METHOD, "tools/list"))
        .then_some(Route::Stateless),
        // rmcp does not check a legacy session's method header; a middlebox may route
        // on it, so one that names another method leaves the request to rmcp.
        Some(id) => (legacy_version(headers)
            && (headers.get(&MCP_METHOD).is_none()
                || header_is(headers, &MCP_METHOD, "tools/list")))
        .then(|| id.to_str().ok().map(|id| Route::Session(id.to_owned())))
        .flatten(),
    }
}

/// The decision: how to answer and the JSON text of the request id, when the request
/// is a plain `tools/list` the cached bytes answer exactly; `None` sends it to rmcp.
/// `read` is what the JSON body layer read of the message.
pub fn answerable(headers: &HeaderMap, read: &Read) -> Option<(Route, String)> {
    let route = route(headers)?;
    let id = listed_id(&route, read)?;
    Some((route, id))
}

/// The body's half of [`answerable`], for a request whose headers gave `route`: what
/// the JSON body layer read of it, so the body is parsed once.
fn listed_id(route: &Route, read: &Read) -> Option<String> {
    if !read.jsonrpc_2_0 || read.repeated || read.method.as_deref() != Some("tools/list") {
        return None;
    }
    // rmcp's request ids are strings or integers; anything else is its error to give.
    let id = read.id.as_deref()?;
    if !(id.starts_with('"') || id.parse::<i64>().is_ok() || id.parse::<u64>().is_ok()) {
        return None;
    }
    let plain = match &read.params {
        Some(params) if params.unusual => false,
        Some(Params {
            meta: Some(meta), ..
        }) if meta.repeated => false,
        params => {
            let meta = params.as_ref().and_then(|p| p.meta.as_ref());
            match route {
                Route::Stateless => meta.is_some_and(|meta| {
                    meta.version
                        .as_ref()
                        .is_some_and(|v| v.as_deref() == Some(STATELESS_VERSION))
                        && meta
                            .capabilities
                            .as_ref()
                            .is_some_and(|c| ClientCapabilities::deserialize(c).is_ok())
                }),
                // Per-request protocol metadata makes rmcp weigh the version; a progress
                // token is all a legacy listing may carry (there is no progress to report).
                Route::Session(_) => meta.is_none_or(|meta| {
                    !meta.other_keys && meta.version.is_none() && meta.capabilities.is_none()
                }),
            }
        }
    };
    plain.then(|| id.to_owned())
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
        // The JSON body layer outside has read the message: a request it did not read,
        // or anything but a plain listing, passes on untouched.
        let answer = match (&self.answers, request.extensions().get::<Read>()) {
            (Some(answers), Some(read)) if request.method() == Method::POST => {
                answerable(request.headers(), read).map(|(route, id)| (answers.clone(), route, id))
            }
            _ => None,
        };
        let Some((answers, route, id)) = answer else {
            return Box::pin(self.inner.call(request));
        };
        let session = match route {
            Route::Stateless => {
                let response = listing(answers.stateless.for_id(id));
                return Box::pin(async move { Ok(response) });
            }
            Route::Session(session) => session,
        };
        let mut inner = super::ready::take(&mut self.inner);
        let sessions = self.sessions.clone();
        Box::pin(async move {
            if sessions.keep_alive(&session).await {
                Ok(listing(answers.session.for_id(id)))
            } else {
                inner.call(request).await
            }
        })
    }
}

/// The `200` with a cached listing.
fn listing(answer: Pieces) -> Response<Body> {
    let mut response = Response::new(Body::new(answer));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
#[path = "listing_tests.rs"]
mod tests;
