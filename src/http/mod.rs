//! The Streamable HTTP gateway: rmcp's `StreamableHttpService` inside one tower stack.
//!
//! [`router`] assembles the whole stack in one place, outermost first:
//!
//! ```text
//! SetRequestId → Trace → PropagateRequestId → body deadline → body limit   (every route)
//!   /healthz, /readyz, /.well-known/oauth-protected-resource[/path]   (no auth)
//!   /_2bot/internal/runs/*: the other instances' forwarded follow-ups (a signature
//!         made with TWOBOT_INSTANCE_SECRET, never a bearer token; internal.rs)
//!   /.well-known/oauth-authorization-server, /oauth/*: the built-in authorization
//!         server (TWOBOT_OAUTH_BUILTIN; an [`Issuer`] the binary builds from
//!         `crate::oauth`, which this module never imports): per-address limit → rate
//!         limit → its handlers; the metadata and the JSON endpoints with CORS (no
//!         credentials), the sign-in pages without
//!   /mcp: per-address limit → Host/Origin check → auth → rate limit → in flight per
//!         principal → session guard
//!         → JSON body check → a plain tools/list from bytes made once (listing.rs)
//!         → StreamableHttpService(TwoBot)
//!              └─ runs: admit (policy → thread owners → run queue) → runner
//! ```
//!
//! Every layer refuses with a [`rescue::Rejection`]; `rescue` alone turns it into a
//! response, so every refusal has the same body shape.
//!
//! Below the router, [`serve`] caps open connections, in all and per client address.
//!
//! [`serve`] runs it until shutdown: stop accepting, let running calls finish for the
//! grace period, kill what is left, close the sessions, return.

pub mod address_limit;
pub mod auth;
pub mod body_deadline;
pub mod body_limit;
pub mod inflight;
pub mod internal;
pub mod json_body;
pub mod listen;
pub mod listing;
mod names;
pub mod origin;
pub mod rate_limit;
mod ready;
mod readyz;
mod request_id;
pub mod rescue;
pub mod server;
pub mod session;
mod settings;
mod shared_mcp;

pub use self::server::{ServeLimits, serve};
pub use self::settings::{HttpSettings, advertised_scopes};

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Json};
use axum::routing::get;
use http::Request;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tower::ServiceBuilder;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use tower_http::validate_request::ValidateRequestHeaderLayer;

use self::address_limit::AddressLimitLayer;
use self::auth::AuthLayer;
use self::inflight::InflightLayer;
use self::rate_limit::RateLimit;
use self::session::{OwnedSessions, SessionGuardLayer};
use crate::auth::{GrantCheck, Jwks};
use crate::mcp::TwoBot;
use crate::run::CallTransport;
use crate::run::Principal;
use crate::runs::Runs;

/// Tokens that stop the server in stages.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    /// Cancelled on SIGTERM/SIGINT: stop accepting.
    pub signal: CancellationToken,
    /// Cancelled after the grace period: kill running Codex processes.
    pub kill_runs: CancellationToken,
    /// Cancelled last: close MCP sessions and their streams.
    pub sessions: CancellationToken,
}

/// An authorization server served beside the MCP endpoint (the built-in one, wired in
/// by the binary): its routes, and the check its tokens must also pass.
#[derive(Debug)]
pub struct Issuer {
    /// What OAuth clients call with fetch (metadata, JWKS, registration, token,
    /// revocation): readable from any origin, without credentials.
    pub for_clients: Router,
    /// What the operator's browser navigates (sign-in, consent): same-origin only.
    pub pages: Router,
    /// Whether a verified token is one the issuer still stands behind.
    pub grants: Arc<dyn GrantCheck>,
}

/// Build the whole HTTP stack; `issuer` is the built-in authorization server, when on.
pub fn router(
    settings: &HttpSettings,
    runs: Runs,
    shutdown: &Shutdown,
    issuer: Option<Issuer>,
) -> Router {
    let observer = runs.observer().clone();
    let internal = internal::routes(runs.clone(), shutdown.kill_runs.clone());
    let ready = Arc::new(readyz::Readiness::new(runs.runner_config()));
    let session_runs = crate::mcp::session_runs::SessionRuns::default();
    let sessions = {
        let mut manager = LocalSessionManager::default();
        manager.session_config.keep_alive = Some(settings.session_idle);
        // A client that lost a stream may resume it (Last-Event-ID) this long; until
        // then the stream's events stay in memory, so this also bounds that memory.
        manager.session_config.completed_cache_ttl = settings.sse_resume;
        let stop_wait = runs.runner_config().kill_grace + Duration::from_secs(2);
        Arc::new(OwnedSessions::new(manager, session_runs.clone(), stop_wait))
    };
    let session_guard = SessionGuardLayer::new(
        sessions.clone(),
        settings.max_sessions,
        settings.max_sessions_per_principal,
    );
    let inflight = InflightLayer::new(
        settings.max_inflight_per_principal,
        settings.trusted_proxies.clone(),
    );
    // One handler, built once (its tool list and schemas included) and cloned for each
    // session and for each 2026-07-28 stateless request, which has no session to keep a
    // handler in: building it per request cost 2.7x the CPU of a session's tools/list
    // (docs/profiles/README.md).
    let handler = TwoBot::new(
        runs,
        CallTransport::Http,
        Principal::Anonymous,
        settings.default_timeout_sec,
        shutdown.kill_runs.clone(),
    )
    .with_session_runs(session_runs);
    let listing = listing::ListingLayer::new(&handler.tools_list(), sessions.clone());
    let mcp = {
        let config = StreamableHttpServerConfig::default()
            .with_cancellation_token(shutdown.sessions.clone())
            .with_max_request_body_bytes(settings.max_body_bytes)
            // Host and Origin are checked by our own layer, with the operator's lists.
            .disable_allowed_hosts()
            .disable_allowed_origins();
        shared_mcp::SharedMcp::new(StreamableHttpService::new(
            move || Ok(handler.clone()),
            sessions,
            config,
        ))
    };
    let rate_limit = RateLimit::new(
        settings.rate_per_minute,
        settings.rate_burst,
        settings.trusted_proxies.clone(),
    );
    rate_limit.spawn_pruner(Duration::from_secs(60), shutdown.sessions.clone());
    let per_address = AddressLimitLayer::new(
        settings.address_rate_per_minute,
        settings.address_rate_burst,
        settings.trusted_proxies.clone(),
    );
    per_address.spawn_pruner(Duration::from_secs(60), shutdown.sessions.clone());
    if let Some(audit) = observer.audit() {
        // Unauthenticated refusals are counted per address and written once per interval.
        audit.spawn_summaries(shutdown.sessions.clone());
    }
    let authenticator = match &settings.auth {
        Some(config) => {
            let jwks = match &config.jwks_url {
                Some(url) => match Jwks::new(url, config.jwks_min_refresh) {
                    Ok(jwks) => {
                        let jwks = Arc::new(jwks);
                        jwks.spawn_refresher(shutdown.sessions.clone());
                        Some(jwks)
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "cannot build the JWKS client; JWKS keys unavailable");
                        None
                    }
                },
                None => None,
            };
            AuthLayer::new(config.clone(), jwks)
                .with_grant_check(issuer.as_ref().map(|i| i.grants.clone()))
                .with_observer(observer)
        }
        None => AuthLayer::disabled(),
    };

    let mcp_stack = ServiceBuilder::new()
        // Every request counts against its client address first, before auth: a flood
        // without a token is refused before any token check, body read or log line.
        .layer(per_address.clone())
        // DNS-rebinding protection: a hostile page gets 403 before auth.
        .layer(ValidateRequestHeaderLayer::custom(
            settings.host_origin.clone(),
        ))
        // Who is calling; puts the Principal into extensions and strips Authorization.
        .layer(authenticator)
        // Keyed by that principal (or address), so it must come after auth.
        .layer(ValidateRequestHeaderLayer::custom(rate_limit.clone()))
        // Each principal's share of requests in flight; names the quota key for all below.
        .layer(inflight)
        // Bounded sessions, each usable only by the principal that created it.
        .layer(session_guard)
        // A body that is not one JSON-RPC object gets a JSON-RPC error (400), not rmcp's 415.
        .layer(json_body::JsonBodyLayer::new(settings.max_body_bytes))
        // A plain tools/list gets the list serialized once, not a trip through rmcp.
        .layer(listing)
        // rmcp answers with its own body type; axum routes want `Body`.
        .map_response(|response: http::Response<_>| response.map(axum::body::Body::new))
        .service(mcp);

    let metadata = Arc::new(json!({
        "resource": settings.resource(),
        "authorization_servers": settings.auth_servers,
        "scopes_supported": settings.scopes,
        "bearer_methods_supported": ["header"],
        "resource_name": "2Bot",
    }));

    let mut router = Router::new()
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        // Other instances of the service: signed requests only, no bearer token (internal.rs).
        .merge(internal)
        .route("/readyz", get(readyz::readyz).with_state(ready));
    // RFC 9728 metadata only when a token is required: in no-auth mode a document with
    // no authorization server reads as "OAuth required but broken", so it is a 404.
    if settings.auth.is_some() {
        router = router
            .route(
                "/.well-known/oauth-protected-resource",
                get(protected_resource)
                    .with_state(metadata.clone())
                    .layer(cors_for_clients()),
            )
            .route(
                &format!("/.well-known/oauth-protected-resource{}", settings.path),
                get(protected_resource)
                    .with_state(metadata)
                    .layer(cors_for_clients()),
            );
    }
    if let Some(issuer) = issuer {
        // Sign-in pages and token requests: no bearer token (they are how one is got),
        // the same per-address limits; their own guessing limits are inside. CORS for
        // the endpoints browser-based clients fetch; the pages stay same-origin.
        let authorization = issuer
            .for_clients
            .layer(cors_for_clients())
            .merge(issuer.pages);
        router = router.merge(
            authorization
                .layer(ValidateRequestHeaderLayer::custom(rate_limit))
                .layer(per_address),
        );
    }
    router.route_service(&settings.path, mcp_stack).layer(
        ServiceBuilder::new()
            // Outermost: every answer the router gives is counted, 401/408/413/429 included.
            .map_response(|response: http::Response<_>| {
                crate::metrics::metrics()
                    .http_requests
                    .get_or_create(&crate::metrics::StatusLabels {
                        status: response.status().as_u16(),
                    })
                    .inc();
                response
            })
            // Honour the caller's x-request-id or make one; before Trace so spans carry it.
            .layer(SetRequestIdLayer::x_request_id(request_id::MakeUuid))
            // One span per request: method, path, request id; the principal is recorded by auth.
            .layer(
                TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
                    let id = req
                        .headers()
                        .get(&names::X_REQUEST_ID)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("");
                    let span = tracing::info_span!(
                        "http",
                        method = %req.method(),
                        path = %req.uri().path(),
                        request_id = %id,
                        principal = tracing::field::Empty,
                    );
                    // A caller's W3C traceparent continues its trace.
                    crate::telemetry::continue_trace(&span, req.headers());
                    span
                }),
            )
            // Echo the id on every response, 401/403/408/413/429 included.
            .layer(PropagateRequestIdLayer::x_request_id())
            // A declared-oversized body: 413 at once, the body discarded (bounded)
            // so clients that write it all before reading can read the 413.
            .layer(body_limit::BodyLimitLayer::new(settings.max_body_bytes))
            // A body that trickles in gets 408 and a closed connection (slow-body DoS).
            .layer(body_deadline::BodyDeadlineLayer::new(
                settings.body_read_timeout,
            ))
            // Bodies without a length are counted as they are read (413 too, rendered by
            // json_body as a `Rejection`); a declared length never gets this far, so this
            // layer's own plain-text 413 is never sent.
            .layer(RequestBodyLimitLayer::new(settings.max_body_bytes)),
    )
}

/// CORS for the public OAuth documents and endpoints a browser-based MCP client fetches:
/// any origin, GET and POST, `Content-Type` and `Authorization`; never credentials
/// (cookies), so no origin gains anything a plain request would not.
fn cors_for_clients() -> tower_http::cors::CorsLayer {
    use http::header::{AUTHORIZATION, CONTENT_TYPE};
    tower_http::cors::CorsLayer::new()
        .allow_origin(tower_http::cors::Any)
        .allow_methods([http::Method::GET, http::Method::POST])
        .allow_headers([
            CONTENT_TYPE,
            AUTHORIZATION,
            http::HeaderName::from_static("mcp-protocol-version"),
        ])
        .max_age(Duration::from_secs(600))
}

async fn protected_resource(State(doc): State<Arc<serde_json::Value>>) -> impl IntoResponse {
    Json((*doc).clone())
}
