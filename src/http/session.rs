//! Session guard: a cap on live MCP sessions and sessions bound to their principal.
//!
//! rmcp's session manager creates a session for every `initialize` and trusts any caller
//! holding a session id. On a public endpoint both are weaknesses: unbounded sessions are
//! a memory lever, and a leaked `Mcp-Session-Id` would let another principal read that
//! session's stream. This layer sits between auth and rmcp: a new session beyond
//! `TWOBOT_MAX_SESSIONS` gets `503` with a reason, and a session id presented by anyone
//! but the principal who created it gets the same `404` as an unknown id (so its
//! existence is not revealed).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use axum::body::Body;
use futures::future::BoxFuture;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use tower::{Layer, Service};

use crate::job::Principal;

const SESSION_HEADER: &str = "mcp-session-id";

/// Shared state of the guard: the session manager (to count) and each session's owner.
#[derive(Clone)]
pub struct SessionGuardLayer {
    sessions: Arc<LocalSessionManager>,
    owners: Arc<Mutex<HashMap<String, String>>>,
    max_sessions: usize,
}

impl SessionGuardLayer {
    /// Guard `sessions`, allowing at most `max_sessions` live ones.
    pub fn new(sessions: Arc<LocalSessionManager>, max_sessions: usize) -> Self {
        Self {
            sessions,
            owners: Arc::default(),
            max_sessions,
        }
    }
}

impl<S> Layer<S> for SessionGuardLayer {
    type Service = SessionGuard<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SessionGuard {
            inner,
            state: self.clone(),
        }
    }
}

/// The guard service; see the module docs.
#[derive(Clone)]
pub struct SessionGuard<S> {
    inner: S,
    state: SessionGuardLayer,
}

/// What the guard decides for one request.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Pass the request on.
    Pass,
    /// A new session would exceed the cap.
    TooManySessions,
    /// The session belongs to someone else: answer as if it did not exist.
    NotYours,
}

/// The decision, pure: `owner` of the presented session (if known), `live` sessions now.
pub fn decide(
    method: &Method,
    session: Option<&str>,
    owner: Option<&str>,
    caller: &str,
    live: usize,
    max: usize,
) -> Verdict {
    match session {
        Some(_) => match owner {
            Some(owner) if owner != caller => Verdict::NotYours,
            _ => Verdict::Pass,
        },
        None if method == Method::POST && live >= max => Verdict::TooManySessions,
        None => Verdict::Pass,
    }
}

impl<S, B> Service<Request<B>> for SessionGuard<S>
where
    S: Service<Request<B>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send,
    B: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response<Body>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        // The clone is not ready; the one that was polled ready serves this request.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let state = self.state.clone();
        Box::pin(async move {
            let caller = request
                .extensions()
                .get::<Principal>()
                .map_or_else(|| Principal::Anonymous.owner_key(), Principal::owner_key);
            let session = request
                .headers()
                .get(SESSION_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let owner = session.as_deref().and_then(|id| {
                state
                    .owners
                    .lock()
                    .ok()
                    .and_then(|owners| owners.get(id).cloned())
            });
            let live = if session.is_none() {
                state.sessions.sessions.read().await.len()
            } else {
                0
            };
            match decide(
                request.method(),
                session.as_deref(),
                owner.as_deref(),
                &caller,
                live,
                state.max_sessions,
            ) {
                Verdict::Pass => {}
                Verdict::NotYours => {
                    tracing::warn!(principal = %caller, "session id presented by a principal that does not own it");
                    return Ok(refusal(
                        StatusCode::NOT_FOUND,
                        "session not found",
                        "the Mcp-Session-Id is unknown or has expired; initialize a new session",
                    ));
                }
                Verdict::TooManySessions => {
                    tracing::warn!(max = state.max_sessions, "session cap reached");
                    let mut response = refusal(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "too many sessions",
                        &format!(
                            "the server holds its maximum of {} live MCP sessions (TWOBOT_MAX_SESSIONS); end unused sessions with DELETE or retry later",
                            state.max_sessions
                        ),
                    );
                    response
                        .headers_mut()
                        .insert(http::header::RETRY_AFTER, HeaderValue::from_static("30"));
                    return Ok(response);
                }
            }
            let response = inner.call(request).await?;
            if session.is_none()
                && let Some(id) = response
                    .headers()
                    .get(SESSION_HEADER)
                    .and_then(|v| v.to_str().ok())
            {
                let live: Vec<String> = state
                    .sessions
                    .sessions
                    .read()
                    .await
                    .keys()
                    .map(|k| k.to_string())
                    .collect();
                if let Ok(mut owners) = state.owners.lock() {
                    // Forget the owners of sessions that ended (DELETE or idle expiry).
                    owners.retain(|k, _| live.contains(k));
                    owners.insert(id.to_owned(), caller);
                }
            }
            Ok(response)
        })
    }
}

fn refusal(status: StatusCode, error: &str, reason: &str) -> Response<Body> {
    let body = serde_json::json!({"error": error, "reason": reason}).to_string();
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guard_decides_by_owner_and_by_count() {
        let post = Method::POST;
        let get = Method::GET;
        let cases = [
            (&post, None, None, "alice", 0, 2, Verdict::Pass),
            (&post, None, None, "alice", 1, 2, Verdict::Pass),
            (&post, None, None, "alice", 2, 2, Verdict::TooManySessions),
            (&get, None, None, "alice", 5, 2, Verdict::Pass),
            (
                &post,
                Some("s1"),
                Some("alice"),
                "alice",
                9,
                2,
                Verdict::Pass,
            ),
            (
                &post,
                Some("s1"),
                Some("alice"),
                "bob",
                0,
                2,
                Verdict::NotYours,
            ),
            (
                &Method::DELETE,
                Some("s1"),
                Some("alice"),
                "bob",
                0,
                2,
                Verdict::NotYours,
            ),
            (
                &get,
                Some("s1"),
                Some("alice"),
                "bob",
                0,
                2,
                Verdict::NotYours,
            ),
            (&post, Some("unknown"), None, "bob", 9, 2, Verdict::Pass),
        ];
        for (method, session, owner, caller, live, max, want) in cases {
            assert_eq!(
                decide(method, session, owner, caller, live, max),
                want,
                "{method} session={session:?} owner={owner:?} caller={caller} live={live}"
            );
        }
    }
}
