//! Sessions: a cap on live MCP sessions, a per-principal share of them, and each session
//! bound to the principal that created it.
//!
//! rmcp's session manager creates a session for every `initialize` and trusts any caller
//! holding a session id. On a public endpoint both are weaknesses: unbounded sessions are
//! a memory lever, and a leaked `Mcp-Session-Id` would let another principal read that
//! session's stream or DELETE it. So:
//!
//! - [`OwnedSessions`] wraps rmcp's `LocalSessionManager` and records the creator *inside*
//!   `create_session`, before the id exists anywhere else. (Recording it after rmcp
//!   answered let a concurrent initialize's clean-up wipe a fresh owner: 3 of 2 000 ids
//!   were then usable by anyone.) The creator reaches `create_session` through a
//!   task-local set by the guard around the call, since rmcp calls it in the request's
//!   own future.
//! - [`SessionGuard`] sits between auth and rmcp: a new session beyond
//!   `TWOBOT_MAX_SESSIONS` gets `503`, beyond the caller's `TWOBOT_MAX_SESSIONS_PER_PRINCIPAL`
//!   `429`, and a session id with no owner or another owner gets the same `404` as an
//!   unknown id (so its existence is not revealed); the decision itself is [`verdict`]'s.
//! - A session that ends stops the runs its direct calls wait on ([`SessionRuns`]) before
//!   the DELETE is answered, and that answer is `204 No Content`: rmcp says `202`, which
//!   the official Python SDK (it takes 200 or 204) warns about on every close.

mod keep_alive;
pub mod verdict;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use futures::Stream;
use futures::future::BoxFuture;
use http::{Method, Request, Response, StatusCode};
use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
use rmcp::transport::streamable_http_server::session::local::{
    LocalSessionManager, LocalSessionManagerError,
};
use rmcp::transport::streamable_http_server::session::{
    ServerSseMessage, SessionId, SessionManager,
};
use tower::{Layer, Service};

use self::verdict::{Seen, Verdict, decide, opens_session};
use super::rescue::{self, Rejection};
use crate::mcp::session_runs::SessionRuns;
use crate::run::{Principal, QuotaKey};

/// Who created a session: the owner (may use it) and the quota key (whose share it takes).
#[derive(Debug, Clone)]
struct Creator {
    owner: String,
    quota_key: QuotaKey,
}

tokio::task_local! {
    /// The creator of the session an `initialize` in this request's future may create.
    static CREATOR: Creator;
}

#[derive(Debug, Default)]
struct Owners {
    by_id: HashMap<String, Creator>,
    /// Initializes in flight per quota key: counted so that concurrent ones cannot
    /// together exceed the per-principal share.
    pending: HashMap<QuotaKey, usize>,
    /// When each session's worker was last told of a request answered outside rmcp.
    touched: HashMap<String, std::time::Instant>,
}

impl Owners {
    /// `twobot_sessions_active` is the number of owned sessions: set under the same lock
    /// as every change of the map, so concurrent creates and closes cannot leave it stale.
    fn publish(&self) {
        let live = i64::try_from(self.by_id.len()).unwrap_or(i64::MAX);
        crate::metrics::metrics().sessions_active.set(live);
    }

    fn held(&self, key: &QuotaKey) -> usize {
        self.by_id.values().filter(|c| &c.quota_key == key).count()
            + self.pending.get(key).copied().unwrap_or(0)
    }
}

/// Why [`OwnedSessions`] could not act.
#[derive(Debug, thiserror::Error)]
pub enum OwnedSessionsError {
    /// `create_session` ran outside the guard: no one to own the session, so none is made.
    #[error(
        "a session was requested without a known creator; refusing to create an ownerless session"
    )]
    NoCreator,
    /// rmcp's session manager failed.
    #[error(transparent)]
    Local(#[from] LocalSessionManagerError),
}

/// rmcp's in-memory session manager, with each session's creator recorded atomically.
#[derive(Debug)]
pub struct OwnedSessions {
    local: LocalSessionManager,
    owners: Mutex<Owners>,
    runs: SessionRuns,
    /// How long a closing session waits for each of its runs to stop (the kill grace
    /// and some).
    stop_wait: Duration,
}

impl OwnedSessions {
    /// Wrap `local`; a session that closes stops its `runs`, waiting up to `stop_wait`.
    pub fn new(local: LocalSessionManager, runs: SessionRuns, stop_wait: Duration) -> Self {
        Self {
            local,
            owners: Mutex::default(),
            runs,
            stop_wait,
        }
    }

    fn owners(&self) -> std::sync::MutexGuard<'_, Owners> {
        // Every change under this lock is a single map operation: a poisoned lock still
        // holds consistent maps.
        self.owners
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The owner of session `id`, if it is known.
    pub fn owner_of(&self, id: &str) -> Option<String> {
        self.owners().by_id.get(id).map(|c| c.owner.clone())
    }

    /// Live sessions now.
    pub async fn live(&self) -> usize {
        self.local.sessions.read().await.len()
    }
}

impl SessionManager for OwnedSessions {
    type Error = OwnedSessionsError;
    type Transport = <LocalSessionManager as SessionManager>::Transport;

    async fn create_session(&self) -> Result<(SessionId, Self::Transport), Self::Error> {
        let creator = CREATOR
            .try_with(Creator::clone)
            .map_err(|_| OwnedSessionsError::NoCreator)?;
        let (id, transport) = self.local.create_session().await?;
        // Holding the read lock keeps the live set still while owners of ended sessions
        // (DELETE or idle expiry) are forgotten; a session's owner is only ever recorded
        // after rmcp holds the session, so no fresh owner is lost here.
        let live = self.local.sessions.read().await;
        let live: HashSet<&str> = live.keys().map(|k| k.as_ref()).collect();
        let mut owners = self.owners();
        owners.by_id.retain(|k, _| live.contains(k.as_str()));
        owners.touched.retain(|k, _| live.contains(k.as_str()));
        owners.by_id.insert(id.to_string(), creator);
        owners.publish();
        Ok((id, transport))
    }

    async fn initialize_session(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<ServerJsonRpcMessage, Self::Error> {
        Ok(self.local.initialize_session(id, message).await?)
    }

    async fn has_session(&self, id: &SessionId) -> Result<bool, Self::Error> {
        Ok(self.local.has_session(id).await?)
    }

    async fn close_session(&self, id: &SessionId) -> Result<(), Self::Error> {
        // rmcp calls this for a DELETE and again when the session's worker ends (idle
        // expiry, shutdown): removing twice is harmless, and the gauge follows the map.
        self.runs.end(id.as_ref(), self.stop_wait).await;
        let closed = self.local.close_session(id).await;
        let mut owners = self.owners();
        owners.by_id.remove(id.as_ref());
        owners.touched.remove(id.as_ref());
        owners.publish();
        Ok(closed?)
    }

    async fn create_stream(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        Ok(self.local.create_stream(id, message).await?)
    }

    async fn accept_message(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<(), Self::Error> {
        Ok(self.local.accept_message(id, message).await?)
    }

    async fn create_standalone_stream(
        &self,
        id: &SessionId,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        Ok(self.local.create_standalone_stream(id).await?)
    }

    async fn resume(
        &self,
        id: &SessionId,
        last_event_id: String,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        Ok(self.local.resume(id, last_event_id).await?)
    }

    // `restore_session` keeps the trait's default (not supported): a session restored
    // from elsewhere would have no recorded owner.

    fn event_store(
        &self,
    ) -> Option<Arc<dyn rmcp::transport::streamable_http_server::session::EventStore>> {
        self.local.event_store()
    }
}

/// Shared state of the guard: the sessions and their limits.
#[derive(Clone)]
pub struct SessionGuardLayer {
    sessions: Arc<OwnedSessions>,
    max_sessions: usize,
    max_per_principal: usize,
}

impl SessionGuardLayer {
    /// Guard `sessions`: at most `max_sessions` live ones, `max_per_principal` per quota key.
    pub fn new(
        sessions: Arc<OwnedSessions>,
        max_sessions: usize,
        max_per_principal: usize,
    ) -> Self {
        Self {
            sessions,
            max_sessions,
            max_per_principal,
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
        // A stateless POST names no session and cannot open one: nothing to decide
        // (`decide` passes it), so the ready inner service serves it now, unwrapped.
        if request.method() == Method::POST
            && !request
                .headers()
                .contains_key(&super::names::MCP_SESSION_ID)
            && !opens_session(request.method(), request.headers())
        {
            return Box::pin(self.inner.call(request));
        }
        let mut inner = super::ready::take(&mut self.inner);
        let state = self.state.clone();
        Box::pin(async move {
            let caller = request
                .extensions()
                .get::<Principal>()
                .map_or_else(|| Principal::Anonymous.owner_key(), Principal::owner_key);
            let quota_key = request
                .extensions()
                .get::<QuotaKey>()
                .cloned()
                .unwrap_or_else(|| QuotaKey(caller.clone()));
            let session = request
                .headers()
                .get(&super::names::MCP_SESSION_ID)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let owner = session
                .as_deref()
                .and_then(|id| state.sessions.owner_of(id));
            let new_session =
                session.is_none() && opens_session(request.method(), request.headers());
            let live = if new_session {
                state.sessions.live().await
            } else {
                0
            };
            // Decide and reserve under one lock, so concurrent initializes by one
            // principal cannot together pass its share.
            let verdict = {
                let mut owners = state.sessions.owners();
                let seen = Seen {
                    session: session.as_deref(),
                    owner: owner.as_deref(),
                    caller: &caller,
                    live,
                    held: owners.held(&quota_key),
                };
                let verdict = decide(
                    new_session,
                    seen,
                    state.max_sessions,
                    state.max_per_principal,
                );
                if verdict == Verdict::Pass && new_session {
                    *owners.pending.entry(quota_key.clone()).or_default() += 1;
                }
                verdict
            };
            match verdict {
                Verdict::Pass => {}
                Verdict::NotYours => {
                    tracing::warn!(principal = %caller, "session id unknown, ownerless or presented by a principal that does not own it");
                    return Ok(rescue::render(&Rejection::SessionNotFound));
                }
                Verdict::TooManySessions => {
                    tracing::warn!(max = state.max_sessions, "session cap reached");
                    return Ok(rescue::render(&Rejection::TooManySessions {
                        max: state.max_sessions,
                    }));
                }
                Verdict::TooManyForPrincipal => {
                    tracing::warn!(quota_key = %quota_key, max = state.max_per_principal, "per-principal session quota reached");
                    return Ok(rescue::render(&Rejection::SessionQuota {
                        max: state.max_per_principal,
                    }));
                }
            }
            if !new_session {
                let delete = request.method() == Method::DELETE;
                let mut response = inner.call(request).await?;
                if delete && response.status() == StatusCode::ACCEPTED {
                    *response.status_mut() = StatusCode::NO_CONTENT;
                }
                return Ok(response);
            }
            let creator = Creator {
                owner: caller,
                quota_key: quota_key.clone(),
            };
            // Released however the call ends, a dropped connection included.
            let _reserved = Reserved {
                sessions: state.sessions.clone(),
                quota_key,
            };
            CREATOR.scope(creator, inner.call(request)).await
        })
    }
}

/// A place reserved for a session being created; freed when the initialize ends (the
/// session then counts as owned).
struct Reserved {
    sessions: Arc<OwnedSessions>,
    quota_key: QuotaKey,
}

impl Drop for Reserved {
    fn drop(&mut self) {
        let mut owners = self.sessions.owners();
        if let Some(n) = owners.pending.get_mut(&self.quota_key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                owners.pending.remove(&self.quota_key);
            }
        }
    }
}
