//! The built-in OAuth 2.1 authorization server (`TWOBOT_OAUTH_BUILTIN=true`), for the
//! operator who runs 2Bot for themselves and has no identity provider: ChatGPT (or any
//! MCP client) discovers it through the protected-resource metadata, registers (DCR or a
//! Client ID Metadata Document), sends the operator's browser to a sign-in page, and gets
//! short-lived JWT access tokens that the MCP endpoint checks with the same verifier as
//! an external server's, plus rotated refresh tokens.
//!
//! ```text
//! GET  /.well-known/oauth-authorization-server   metadata (RFC 8414)
//! GET  /oauth/jwks.json                           the signing key (public)
//! POST /oauth/register                            dynamic client registration (RFC 7591)
//! GET  /oauth/authorize                           checks the request → sign-in page
//! POST /oauth/authorize/sign-in                   password (Argon2id) → consent page
//! POST /oauth/authorize/consent                   → 303 to the client with a code
//! POST /oauth/token                               code (PKCE) or refresh token → tokens
//! POST /oauth/revoke                              a refresh token's family ends (RFC 7009)
//! ```
//!
//! Here: [`AuthorizationServer`] (state shared by the handlers) and its wiring into the
//! resource server. The decisions live beside their handlers: `authorize.rs` (request
//! checks), `pending.rs` (a started sign-in, kept in the store so any instance serves
//! its next page), `sign_in.rs` (password, consent, code), `token.rs` (grants),
//! `client_auth.rs` (client credentials, the OAuth error), `register.rs`
//! (metadata, JWKS, registration); what persists is in the state store
//! ([`crate::state::oauth`]), the key set in `keys.rs` (one key in `signing.rs`),
//! the password in `password.rs`, client metadata documents in `cimd.rs`, redirect URI
//! rules in `redirect.rs`, the pages in `pages.rs`, guessing limits in `limits.rs`, which
//! of the key's tokens are honoured in `live.rs` (their grants in memory, kept exact by
//! the store's watch, in `grant_view.rs`; every revocation made here told to it on the
//! way, in `revoking.rs`), and whether Codex can read the state
//! directory (refused at start) in `isolation.rs`.

pub mod authorize;
pub mod cimd;
pub mod client_auth;
pub mod errors;
pub mod grant_view;
pub mod isolation;
pub mod keys;
pub mod limits;
pub mod live;
pub mod pages;
pub mod password;
pub mod pending;
pub mod redirect;
pub mod register;
pub mod revoking;
pub mod settings;
pub mod sign_in;
pub mod signing;
pub mod token;

pub use self::settings::{OAuthSettings, Resource};

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use base64::Engine as _;

use self::cimd::CimdFetcher;
use self::grant_view::GrantView;
use self::keys::KeyRing;
use self::limits::Window;
use self::password::PasswordHashFile;
use self::revoking::Revoking;
use crate::auth::GrantCheck;
use crate::metrics::{OAuthEvent, metrics};
use crate::state::{OAuthStore, StateError, StateStore};

/// Why the authorization server cannot start.
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    /// The state store.
    #[error("the OAuth state: {0}")]
    Store(#[from] StateError),
    /// The signing keys.
    #[error("TWOBOT_STATE_DIR: {0}")]
    Keys(#[from] keys::KeysError),
    /// The password file (its message names the variable).
    #[error(transparent)]
    Password(#[from] password::PasswordError),
    /// The key cannot serve as a verification key (not expected).
    #[error("the signing key cannot verify tokens: {0}")]
    Key(String),
    /// A setting that cannot work.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
}

/// The built-in authorization server's settings, if `TWOBOT_OAUTH_BUILTIN=true`,
/// validated without writing anything: called before the state directory is touched, so
/// a refused set-up (Codex able to read the signing key, say) leaves no state behind.
pub fn prepare(
    config: &crate::config::Config,
    resource: Resource,
) -> Result<Option<OAuthSettings>, OAuthError> {
    Ok(OAuthSettings::new(config, resource)?)
}

/// The built-in authorization server from [`prepare`]'s settings, its records in
/// `store`: opened, its housekeeping running. The binary hands its routes and its
/// [`GrantCheck`] to the HTTP stack ([`AuthorizationServer::client_routes`],
/// [`AuthorizationServer::page_routes`], [`AuthorizationServer::grant_check`]).
pub async fn install(
    settings: Option<OAuthSettings>,
    store: Arc<dyn StateStore>,
    audit: Option<Arc<crate::audit::AuditLog>>,
) -> Result<Option<AuthorizationServer>, OAuthError> {
    let Some(settings) = settings else {
        return Ok(None);
    };
    let server = AuthorizationServer::open(settings, store, audit).await?;
    if let Some(warning) = server.inner.password.warning() {
        tracing::warn!("{warning}");
    }
    server.spawn_housekeeping();
    tracing::info!(issuer = %server.settings().issuer, "built-in OAuth authorization server on");
    Ok(Some(server))
}

/// The authorization server: cheap to clone, shared by every handler.
#[derive(Clone, Debug)]
pub struct AuthorizationServer {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    settings: OAuthSettings,
    /// The records, every revocation told to `view` (see `revoking.rs`).
    store: Arc<Revoking>,
    /// Which grants are live, without a query per request.
    view: Arc<GrantView>,
    keys: Arc<KeyRing>,
    password: Arc<PasswordHashFile>,
    cimd: CimdFetcher,
    registrations: Window,
    /// Argon2id costs ~19 MiB and tens of ms per check: two at a time at most.
    verifying: tokio::sync::Semaphore,
    /// The operator's audit log, if any: sign-ins, grants, replays land there too.
    audit: Option<Arc<crate::audit::AuditLog>>,
}

/// What an event concerns, for its audit record.
#[derive(Debug, Default, Clone, Copy)]
pub struct Detail<'a> {
    /// The client.
    pub client: Option<&'a str>,
    /// The caller's address.
    pub ip: Option<std::net::IpAddr>,
    /// The grant.
    pub grant: Option<&'a str>,
    /// The scopes granted.
    pub scope: Option<&'a str>,
}

impl<'a> Detail<'a> {
    /// An event about `client` (the rest added with struct update syntax).
    pub fn client(client: &'a str) -> Self {
        Self {
            client: Some(client),
            ..Self::default()
        }
    }
}

impl AuthorizationServer {
    /// Open the state (the records in `store`, the signing key set) and read the
    /// password hash; events are also written to `audit`.
    pub async fn open(
        settings: OAuthSettings,
        store: Arc<dyn StateStore>,
        audit: Option<Arc<crate::audit::AuditLog>>,
    ) -> Result<Self, OAuthError> {
        // The password first: a set-up refused for it leaves no state behind.
        let password = Arc::new(PasswordHashFile::load(&settings.password_file)?);
        let keys = KeyRing::open(store.clone(), settings.key_rotation, &settings.state_dir).await?;
        keys.spawn_rereads();
        let view = Arc::new(GrantView::open(store.clone()).await?);
        let store = Arc::new(Revoking {
            store,
            view: view.clone(),
        });
        let cimd = CimdFetcher::new(settings.cimd_allow_private);
        Ok(Self {
            inner: Arc::new(Inner {
                settings,
                store,
                view,
                keys,
                password,
                cimd,
                registrations: Window::registrations(),
                verifying: tokio::sync::Semaphore::new(2),
                audit,
            }),
        })
    }

    /// What makes the MCP endpoint accept only this server's live tokens: its key set
    /// is the verifier's (the issuer and audience are already the base URL and the
    /// resource), and only tokens it could have minted are honoured (a live grant, its
    /// lifetime).
    pub fn grant_check(&self) -> Arc<dyn GrantCheck> {
        Arc::new(live::StoreGrants {
            view: self.inner.view.clone(),
            keys: self.inner.keys.clone(),
            access_ttl: self.inner.settings.access_ttl,
        })
    }

    /// What a client calls with fetch, to be merged outside the MCP endpoint's auth: the
    /// HTTP stack makes them readable from any origin (no cookie is ever involved), so a
    /// browser-based MCP client (the MCP Inspector) can discover, register and exchange
    /// its code.
    pub fn client_routes(&self) -> Router {
        Router::new()
            .route(
                "/.well-known/oauth-authorization-server",
                get(register::metadata),
            )
            .route("/oauth/jwks.json", get(register::jwks))
            .route("/oauth/register", post(register::register))
            .route("/oauth/token", post(token::token))
            .route("/oauth/revoke", post(token::revoke))
            .with_state(self.clone())
    }

    /// What the operator's browser navigates: same-origin only (no CORS), CSRF-bound.
    pub fn page_routes(&self) -> Router {
        Router::new()
            .route("/oauth/authorize", get(authorize::start))
            .route("/oauth/authorize/sign-in", post(sign_in::sign_in))
            .route("/oauth/authorize/consent", post(sign_in::consent))
            .with_state(self.clone())
    }

    /// Every hour: forget expired codes, tokens and dead grants, and clients (registered
    /// or consented metadata documents) nobody completed a sign-in for within a day, so
    /// the file cannot grow without bound. Runs until the runtime ends.
    fn spawn_housekeeping(&self) {
        let server = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(3600));
            loop {
                tick.tick().await;
                let now = now();
                let db = server.db();
                let result = server
                    .store(async {
                        Ok((
                            db.purge(now).await?,
                            db.prune_unused_clients(now - register::UNUSED_CLIENT_SEC)
                                .await?,
                        ))
                    })
                    .await;
                if let Ok((rows, clients)) = result {
                    tracing::debug!(rows, clients, "OAuth state purged");
                }
            }
        });
    }

    /// Count `event` and write its audit record.
    fn note(&self, event: OAuthEvent, detail: Detail<'_>) {
        metrics().oauth(event);
        if let Some(log) = &self.inner.audit {
            let record = crate::audit::OAuthRecord {
                time: crate::audit::now_rfc3339(),
                kind: "oauth",
                event: event.as_str(),
                client_id: detail.client.map(str::to_owned),
                ip: detail.ip.map(|ip| ip.to_string()),
                grant_id: detail.grant.map(str::to_owned),
                scope: detail.scope.map(str::to_owned),
            };
            if !log.write(&record) {
                metrics().audit_write_failures.inc();
            }
        }
    }

    fn settings(&self) -> &OAuthSettings {
        &self.inner.settings
    }

    /// The records.
    fn db(&self) -> &dyn OAuthStore {
        self.inner.store.as_ref()
    }

    /// Await a store call. An error is logged here and comes back as a [`Broken`] the
    /// handlers answer with `server_error`.
    async fn store<T>(
        &self,
        call: impl std::future::Future<Output = Result<T, StateError>>,
    ) -> Result<T, Broken> {
        call.await.map_err(|e| {
            tracing::error!(error = %e, "the OAuth state cannot be read or written");
            Broken
        })
    }
}

/// The state could not be read or written (logged where it happened).
#[derive(Debug, Clone, Copy)]
pub struct Broken;

/// The caller's address for the per-address limits: what a trusted proxy reports, else
/// the peer (the unspecified address if neither is known: one shared bucket).
fn caller_ip(server: &AuthorizationServer, request: &axum::extract::Request) -> std::net::IpAddr {
    let peer = request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    crate::auth::client_ip(peer, request.headers(), &server.settings().trusted_proxies)
        .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED))
}

/// `bytes` random bytes from the operating system, base64url without padding.
pub fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    if let Err(e) = getrandom::fill(&mut buf) {
        // No randomness means no safe token; the process cannot go on issuing any.
        tracing::error!(error = %e, "the operating system gave no randomness");
        std::process::abort();
    }
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf)
}

/// Now, in unix seconds.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Unix milliseconds (the sign-in attempts' clock, shared by the instances' store).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
