//! The Streamable HTTP gateway: rmcp's `StreamableHttpService` inside one tower stack.
//!
//! [`router`] assembles the whole stack in one place, outermost first:
//!
//! ```text
//! SetRequestId → Trace → PropagateRequestId → body deadline → body limit   (every route)
//!   /healthz, /readyz, /.well-known/oauth-protected-resource[/path]   (no auth)
//!   /mcp: Host/Origin check → auth → rate limit → in flight per principal → session guard
//!         → JSON body check
//!         → StreamableHttpService(TwoBot)
//!              └─ job stack: policy → threads → run queue → runner
//! ```
//!
//! Every layer refuses with a [`rescue::Rejection`]; `rescue` alone turns it into a
//! response, so every refusal has the same body shape.
//!
//! [`serve`] runs it until shutdown: stop accepting, let running calls finish for the
//! grace period, kill what is left, close the sessions, return.

pub mod auth;
pub mod body_deadline;
pub mod body_limit;
pub mod inflight;
pub mod json_body;
pub mod origin;
pub mod rate_limit;
pub mod rescue;
pub mod server;
pub mod session;

pub use self::server::{ServeLimits, serve};

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Json};
use axum::routing::get;
use http::{Request, StatusCode};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tower::ServiceBuilder;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use tower_http::validate_request::ValidateRequestHeaderLayer;

use self::auth::{AuthConfig, AuthLayer, Jwks, JwtKey, parse_tokens};
use self::inflight::InflightLayer;
use self::origin::HostOriginPolicy;
use self::rate_limit::RateLimit;
use self::session::{OwnedSessions, SessionGuardLayer};
use crate::audit::Transport;
use crate::config::{Config, ConfigError};
use crate::job::Principal;
use crate::mcp::TwoBot;
use crate::runs::Runs;

/// Everything the HTTP stack needs, validated.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// MCP endpoint path.
    pub path: String,
    /// Public base URL (the configured one, else `http://<bound address>`).
    pub public_base: String,
    /// Bearer auth, or `None` in no-auth mode.
    pub auth: Option<AuthConfig>,
    /// In no-auth mode, where the server is reachable from beyond this machine (allowed
    /// only with `TWOBOT_ALLOW_PUBLIC_NO_AUTH=true`).
    pub public_no_auth: Option<String>,
    /// Host/Origin rules.
    pub host_origin: HostOriginPolicy,
    /// Requests per minute per caller.
    pub rate_per_minute: NonZeroU32,
    /// Burst per caller.
    pub rate_burst: NonZeroU32,
    /// Trust proxy headers for the client address.
    pub trust_proxy_headers: bool,
    /// Largest request body.
    pub max_body_bytes: usize,
    /// Idle session lifetime.
    pub session_idle: Duration,
    /// How long a finished response stream stays resumable (and its events held).
    pub sse_resume: Duration,
    /// Grace for running calls at shutdown.
    pub shutdown_grace: Duration,
    /// Live MCP sessions at most.
    pub max_sessions: usize,
    /// Live MCP sessions per principal (no-auth: per client address).
    pub max_sessions_per_principal: usize,
    /// Requests in flight per principal, SSE streams included.
    pub max_inflight_per_principal: usize,
    /// Open connections at most.
    pub max_connections: usize,
    /// Deadline for a request's headers.
    pub header_read_timeout: Duration,
    /// Deadline for a request's body, once its headers are in.
    pub body_read_timeout: Duration,
    /// Authorization servers for the metadata document.
    pub auth_servers: Vec<String>,
    /// Scopes advertised in the metadata: the required ones, then the policy's `[scopes]`.
    pub scopes: Vec<String>,
    /// The Codex binary, for `/readyz`.
    pub codex_bin: std::path::PathBuf,
    /// `timeout_sec` default advertised in the schema.
    pub default_timeout_sec: u64,
}

fn invalid(var: &'static str, value: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        var,
        value: value.into(),
        reason: reason.into(),
    }
}

impl HttpSettings {
    /// Validate the HTTP part of `config` for a server bound to `local`; refuses unsafe set-ups.
    pub fn new(config: &Config, local: SocketAddr) -> Result<Self, ConfigError> {
        let args = &config.http;
        let public_base = config
            .base_url
            .clone()
            .unwrap_or_else(|| format!("http://{local}"));
        let resource = format!("{public_base}{}", args.http_path);
        let scopes: Vec<String> = args
            .required_scopes
            .iter()
            .flat_map(|s| s.split([',', ' ']))
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();

        let public_no_auth = if config.enable_no_auth {
            crate::config::public_exposure(config.host, config.base_url.as_deref())
        } else {
            None
        };
        let auth = if config.enable_no_auth {
            if let Some(exposure) = &public_no_auth
                && !args.allow_public_no_auth
            {
                return Err(invalid(
                    "TWOBOT_ENABLE_NO_AUTH",
                    config.typed("TWOBOT_ENABLE_NO_AUTH", true),
                    format!(
                        "refuses to serve without auth on {exposure}: anyone who reaches it could run Codex; set TWOBOT_ENABLE_NO_AUTH=false with credentials, or TWOBOT_ALLOW_PUBLIC_NO_AUTH=true to serve the world without auth on purpose"
                    ),
                ));
            }
            None
        } else {
            let mut tokens = args
                .auth_tokens
                .as_deref()
                .map(parse_tokens)
                .unwrap_or_default();
            if let Some(file) = &args.auth_tokens_file {
                let text = read_secret_file(file, "TWOBOT_AUTH_TOKENS_FILE")?;
                tokens.extend(parse_tokens(&text));
            }
            let mut jwt_keys = Vec::new();
            if let Some(secret) = args.jwt_secret.as_deref().filter(|s| !s.is_empty()) {
                if secret.len() < 32 {
                    return Err(invalid(
                        "TWOBOT_JWT_SECRET",
                        "<redacted>",
                        "must be at least 32 bytes",
                    ));
                }
                jwt_keys.push(JwtKey::secret(secret.as_bytes()));
            }
            if let Some(file) = &args.jwt_public_key_file {
                let pem = read_secret_file(file, "TWOBOT_JWT_PUBLIC_KEY_FILE")?;
                jwt_keys.push(JwtKey::public_pem(pem.as_bytes()).map_err(|e| {
                    invalid("TWOBOT_JWT_PUBLIC_KEY_FILE", file.display().to_string(), e)
                })?);
            }
            let jwks_url = match args.jwt_jwks_url.as_deref().filter(|u| !u.is_empty()) {
                Some(url) => Some(
                    auth::validate_url(url)
                        .map_err(|e| invalid("TWOBOT_JWT_JWKS_URL", url, e))?
                        .to_string(),
                ),
                None => None,
            };
            if tokens.is_empty() && jwt_keys.is_empty() && jwks_url.is_none() {
                return Err(invalid(
                    "TWOBOT_ENABLE_NO_AUTH",
                    config.typed("TWOBOT_ENABLE_NO_AUTH", false),
                    "but no credential is configured; set TWOBOT_AUTH_TOKENS, TWOBOT_AUTH_TOKENS_FILE, TWOBOT_JWT_SECRET, TWOBOT_JWT_PUBLIC_KEY_FILE or TWOBOT_JWT_JWKS_URL",
                ));
            }
            Some(AuthConfig {
                tokens,
                jwt_keys,
                issuer: args.jwt_issuer.clone(),
                audience: args
                    .jwt_audience
                    .clone()
                    .unwrap_or_else(|| resource.clone()),
                leeway_sec: args.jwt_leeway_sec,
                jwks_url,
                jwks_min_refresh: Duration::from_secs(args.jwt_jwks_min_refresh_sec),
                required_scopes: scopes.clone(),
                resource_metadata_url: format!(
                    "{public_base}/.well-known/oauth-protected-resource{}",
                    args.http_path
                ),
            })
        };
        let nz = |var: &'static str, v: u32| {
            NonZeroU32::new(v).ok_or_else(|| invalid(var, "0", "must be at least 1"))
        };
        Ok(Self {
            path: args.http_path.clone(),
            public_base,
            auth,
            public_no_auth,
            host_origin: HostOriginPolicy::new(
                config.base_url.as_deref(),
                &args.allowed_hosts,
                &args.allowed_origins,
            ),
            rate_per_minute: nz("TWOBOT_RATE_LIMIT_PER_MINUTE", args.rate_limit_per_minute)?,
            rate_burst: nz("TWOBOT_RATE_LIMIT_BURST", args.rate_limit_burst)?,
            trust_proxy_headers: args.trust_proxy_headers,
            max_body_bytes: usize::try_from(args.max_body_bytes).unwrap_or(usize::MAX),
            session_idle: Duration::from_secs(args.session_idle_sec),
            sse_resume: Duration::from_secs(args.sse_resume_sec),
            shutdown_grace: Duration::from_secs(args.shutdown_grace_sec),
            max_sessions: args.max_sessions as usize,
            max_sessions_per_principal: args.max_sessions_per_principal as usize,
            max_inflight_per_principal: args.max_inflight_per_principal as usize,
            max_connections: args.max_connections as usize,
            header_read_timeout: Duration::from_secs(args.header_read_timeout_sec),
            body_read_timeout: Duration::from_secs(args.body_read_timeout_sec),
            auth_servers: args.auth_servers.clone(),
            scopes: advertised_scopes(&scopes, config.policy.scope_sandbox.keys()),
            codex_bin: config.runner.program.clone(),
            default_timeout_sec: config.policy.default_timeout_sec(),
        })
    }

    /// The socket-level limits for [`serve`].
    pub fn serve_limits(&self) -> ServeLimits {
        ServeLimits {
            max_connections: self.max_connections,
            header_read_timeout: self.header_read_timeout,
            grace: self.shutdown_grace,
        }
    }

    /// The resource identifier (and default JWT audience): base URL + MCP path.
    pub fn resource(&self) -> String {
        format!("{}{}", self.public_base, self.path)
    }
}

/// The scopes a client should ask for (RFC 9728 `scopes_supported`): those every token
/// must carry, then those the policy maps to a sandbox (`[scopes]`), each once. A client
/// such as ChatGPT requests what this lists; a policy scope left out would never be
/// granted, and its callers would be held to read-only without knowing why.
pub fn advertised_scopes<'a>(
    required: &'a [String],
    policy: impl IntoIterator<Item = &'a String>,
) -> Vec<String> {
    let mut scopes: Vec<String> = Vec::new();
    for scope in required.iter().chain(policy) {
        if !scopes.contains(scope) {
            scopes.push(scope.clone());
        }
    }
    scopes
}

fn read_secret_file(path: &Path, var: &'static str) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|e| {
        invalid(
            var,
            path.display().to_string(),
            format!("cannot be read: {e}"),
        )
    })
}

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

/// Build the whole HTTP stack.
pub fn router(settings: &HttpSettings, runs: Runs, shutdown: &Shutdown) -> Router {
    let observer = runs.observer().clone();
    let sessions = {
        let mut manager = LocalSessionManager::default();
        manager.session_config.keep_alive = Some(settings.session_idle);
        // A client that lost a stream may resume it (Last-Event-ID) this long; until
        // then the stream's events stay in memory, so this also bounds that memory.
        manager.session_config.completed_cache_ttl = settings.sse_resume;
        Arc::new(OwnedSessions::new(manager))
    };
    let session_guard = SessionGuardLayer::new(
        sessions.clone(),
        settings.max_sessions,
        settings.max_sessions_per_principal,
    );
    let inflight = InflightLayer::new(
        settings.max_inflight_per_principal,
        settings.trust_proxy_headers,
    );
    let mcp = {
        let default_timeout = settings.default_timeout_sec;
        let kill_runs = shutdown.kill_runs.clone();
        let config = StreamableHttpServerConfig::default()
            .with_cancellation_token(shutdown.sessions.clone())
            .with_max_request_body_bytes(settings.max_body_bytes)
            // Host and Origin are checked by our own layer, with the operator's lists.
            .disable_allowed_hosts()
            .disable_allowed_origins();
        StreamableHttpService::new(
            move || {
                Ok(TwoBot::new(
                    runs.clone(),
                    Transport::Http,
                    Principal::Anonymous,
                    default_timeout,
                    kill_runs.clone(),
                ))
            },
            sessions,
            config,
        )
    };
    let rate_limit = RateLimit::new(
        settings.rate_per_minute,
        settings.rate_burst,
        settings.trust_proxy_headers,
    );
    rate_limit.spawn_pruner(Duration::from_secs(60), shutdown.sessions.clone());
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
            AuthLayer::new(config.clone(), jwks).with_observer(observer)
        }
        None => AuthLayer::disabled(),
    };

    let mcp_stack = ServiceBuilder::new()
        // DNS-rebinding protection first: a hostile page gets 403 before anything else.
        .layer(ValidateRequestHeaderLayer::custom(
            settings.host_origin.clone(),
        ))
        // Who is calling; puts the Principal into extensions and strips Authorization.
        .layer(authenticator)
        // Keyed by that principal (or address), so it must come after auth.
        .layer(ValidateRequestHeaderLayer::custom(rate_limit))
        // Each principal's share of requests in flight; names the quota key for all below.
        .layer(inflight)
        // Bounded sessions, each usable only by the principal that created it.
        .layer(session_guard)
        // A body that is not one JSON-RPC object gets a JSON-RPC error (400), not rmcp's 415.
        .layer(json_body::JsonBodyLayer::new(settings.max_body_bytes))
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
    let ready = Arc::new(Readiness::new(settings.codex_bin.clone()));

    let mut router = Router::new()
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/readyz", get(readyz).with_state(ready));
    // RFC 9728 metadata only when a token is required: in no-auth mode a document with
    // no authorization server reads as "OAuth required but broken", so it is a 404.
    if settings.auth.is_some() {
        router = router
            .route(
                "/.well-known/oauth-protected-resource",
                get(protected_resource).with_state(metadata.clone()),
            )
            .route(
                &format!("/.well-known/oauth-protected-resource{}", settings.path),
                get(protected_resource).with_state(metadata),
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
            .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
            // One span per request: method, path, request id; the principal is recorded by auth.
            .layer(
                TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
                    let id = req
                        .headers()
                        .get("x-request-id")
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

async fn protected_resource(State(doc): State<Arc<serde_json::Value>>) -> impl IntoResponse {
    Json((*doc).clone())
}

/// `/readyz`: the Codex binary answers `--version`; cached so probes cannot fork-bomb us.
struct Readiness {
    codex: std::path::PathBuf,
    cache: tokio::sync::Mutex<Option<(Instant, Result<String, String>)>>,
}

impl Readiness {
    fn new(codex: std::path::PathBuf) -> Self {
        Self {
            codex,
            cache: tokio::sync::Mutex::new(None),
        }
    }

    async fn check(&self) -> Result<String, String> {
        let mut cache = self.cache.lock().await;
        if let Some((at, result)) = cache.as_ref()
            && at.elapsed() < Duration::from_secs(30)
        {
            return result.clone();
        }
        let run = tokio::process::Command::new(&self.codex)
            .arg("--version")
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output();
        let result = match tokio::time::timeout(Duration::from_secs(10), run).await {
            Ok(Ok(out)) if out.status.success() => {
                Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
            }
            Ok(Ok(out)) => Err(format!("codex --version exited with {}", out.status)),
            Ok(Err(e)) => Err(format!("codex not found: {e}")),
            Err(_) => Err("codex --version timed out".to_owned()),
        };
        *cache = Some((Instant::now(), result.clone()));
        result
    }
}

async fn readyz(State(ready): State<Arc<Readiness>>) -> impl IntoResponse {
    match ready.check().await {
        Ok(version) => (
            StatusCode::OK,
            Json(json!({"status": "ready", "codex": version})),
        ),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "not ready", "reason": reason})),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::advertised_scopes;

    #[test]
    fn advertised_scopes_are_the_required_then_the_policy_s_each_once() {
        let owned = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        for (required, policy, expected) in [
            (vec![], vec![], vec![]),
            (vec!["codex:run"], vec![], vec!["codex:run"]),
            (
                vec![],
                vec!["codex:read", "codex:write"],
                vec!["codex:read", "codex:write"],
            ),
            (
                vec!["codex:read"],
                vec!["codex:read", "codex:write"],
                vec!["codex:read", "codex:write"],
            ),
            (vec!["b", "a"], vec!["c"], vec!["b", "a", "c"]),
        ] {
            let policy = owned(&policy);
            assert_eq!(
                advertised_scopes(&owned(&required), &policy),
                owned(&expected),
                "{required:?} + {policy:?}"
            );
        }
    }
}
