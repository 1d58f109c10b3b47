//! [`OAuthSettings`]: the built-in authorization server's configuration, validated once
//! at start from the `TWOBOT_OAUTH_*` variables and the HTTP settings it serves beside
//! (issuer = the base URL, resource = the MCP endpoint, scopes = what the resource
//! advertises). A set-up that would leak sign-ins or tokens is refused with exit 2.

use std::path::PathBuf;
use std::time::Duration;

use crate::auth::TrustedProxies;
use crate::config::{Config, ConfigError};

/// What the MCP endpoint the tokens are for says of itself (from the HTTP settings,
/// handed over by the binary, so this module needs nothing of the HTTP stack).
#[derive(Debug, Clone)]
pub struct Resource {
    /// The MCP endpoint's URL: the tokens' audience.
    pub url: String,
    /// The scopes it advertises: the required ones, then the policy's.
    pub scopes: Vec<String>,
    /// The scopes every token must carry.
    pub required_scopes: Vec<String>,
    /// The proxies whose forwarding headers name the client (the sign-in limit's key).
    pub trusted_proxies: TrustedProxies,
}

/// Everything the authorization server needs, validated.
#[derive(Debug, Clone)]
pub struct OAuthSettings {
    /// The issuer: the base URL, without a trailing slash.
    pub issuer: String,
    /// The one resource tokens are for: the MCP endpoint's URL.
    pub resource: String,
    /// The state directory (with SQLite, the state store; an old signing key file is
    /// imported from it once).
    pub state_dir: PathBuf,
    /// The operator's Argon2id hash.
    pub password_file: PathBuf,
    /// Hosts an `https` redirect URI may name.
    pub redirect_hosts: Vec<String>,
    /// Access token lifetime.
    pub access_ttl: Duration,
    /// Refresh token lifetime (from each rotation).
    pub refresh_ttl: Duration,
    /// How long a signing key signs before a successor takes over.
    pub key_rotation: Duration,
    /// Fetch CIMD documents from loopback and private addresses too.
    pub cimd_allow_private: bool,
    /// Scopes a client may ask for: the required ones, then the policy's.
    pub scopes: Vec<String>,
    /// Scopes every token must carry (always granted, never optional on the consent page).
    pub required_scopes: Vec<String>,
    /// The policy, whose ceilings the consent page shows per scope.
    pub policy: std::sync::Arc<crate::policy::Policy>,
    /// Cookies are `Secure` (an https issuer).
    pub secure_cookies: bool,
    /// The proxies whose X-Forwarded-For / Forwarded give the sign-in limit's client address.
    pub trusted_proxies: TrustedProxies,
}

fn invalid(var: &'static str, value: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        var,
        value: value.into(),
        reason: reason.into(),
    }
}

/// Refuse (or, with the opt-in, warn) when Codex could read the state directory and so
/// the signing key (`isolation.rs` says why). Reads the directory; writes nothing.
fn codex_kept_out(config: &Config, state_dir: &std::path::Path) -> Result<(), ConfigError> {
    let reader =
        config
            .runner
            .codex_user
            .as_ref()
            .map(|(uid, _, groups)| super::isolation::Reader {
                uid: *uid,
                groups: groups.clone(),
            });
    let Some(exposure) = super::isolation::current(reader.as_ref(), state_dir) else {
        return Ok(());
    };
    if config.oauth.oauth_allow_shared_codex_user {
        tracing::warn!(
            "{exposure}; started anyway because TWOBOT_OAUTH_ALLOW_SHARED_CODEX_USER=true (tokens minted with the key are still refused unless they name a live grant)"
        );
        return Ok(());
    }
    let value = reader.map(|r| r.uid.to_string()).unwrap_or_default();
    Err(invalid(
        "TWOBOT_CODEX_USER",
        value,
        format!(
            "with TWOBOT_OAUTH_BUILTIN=true: {exposure}. Set TWOBOT_CODEX_USER to a separate user that cannot read TWOBOT_STATE_DIR, or accept the risk with TWOBOT_OAUTH_ALLOW_SHARED_CODEX_USER=true"
        ),
    ))
}

impl OAuthSettings {
    /// `None` unless `TWOBOT_OAUTH_BUILTIN=true`; the HTTP settings have already
    /// refused the combinations that conflict with it (no-auth, other issuers).
    pub fn new(config: &Config, resource: Resource) -> Result<Option<Self>, ConfigError> {
        let args = &config.oauth;
        if !args.oauth_builtin {
            return Ok(None);
        }
        let Some(base) = config.base_url.clone() else {
            return Err(invalid(
                "TWOBOT_BASE_URL",
                "",
                "must be set with TWOBOT_OAUTH_BUILTIN=true",
            ));
        };
        let secure_cookies = base.starts_with("https://");
        if !secure_cookies
            && crate::config::public_exposure(
                std::net::Ipv4Addr::LOCALHOST.into(),
                Some(&base),
                &[],
                &[],
            )
            .is_some()
        {
            return Err(invalid(
                "TWOBOT_BASE_URL",
                base,
                "must be https with TWOBOT_OAUTH_BUILTIN=true (http only on a loopback host, for local use): the operator's password and the tokens would cross the network in clear",
            ));
        }
        // Clients look for the metadata at the host's root (RFC 8414 §3 inserts the
        // issuer's path after /.well-known/), which a proxy that strips a prefix never
        // forwards to 2Bot: give the built-in server a host (or subdomain) of its own.
        if url::Url::parse(&base).is_ok_and(|u| u.path() != "/") {
            return Err(invalid(
                "TWOBOT_BASE_URL",
                base,
                "must be an origin without a path (https://mcp.example.com) with TWOBOT_OAUTH_BUILTIN=true: OAuth clients look for the authorization server's metadata at the host's root",
            ));
        }
        let Some(password_file) = args.oauth_password_file.clone() else {
            return Err(invalid(
                "TWOBOT_OAUTH_PASSWORD_FILE",
                "",
                "must be set with TWOBOT_OAUTH_BUILTIN=true: make it with `2bot-mcp oauth hash-password > FILE`",
            ));
        };
        let Some(state_dir) = config.state_dir.clone() else {
            return Err(invalid(
                "TWOBOT_STATE_DIR",
                "",
                "must be set with TWOBOT_OAUTH_BUILTIN=true (no HOME to default to): clients, grants and the signing key live there",
            ));
        };
        let mut redirect_hosts = Vec::new();
        for host in args
            .oauth_redirect_hosts
            .iter()
            .map(|h| h.trim())
            .filter(|h| !h.is_empty())
        {
            if let Some(why) = crate::oauth::redirect::host_problem(host) {
                return Err(invalid(
                    "TWOBOT_OAUTH_REDIRECT_HOSTS",
                    host,
                    format!("{why} (expected bare host names such as chatgpt.com)"),
                ));
            }
            if let Some(host) = crate::oauth::redirect::normalize_host(host) {
                redirect_hosts.push(host);
            }
        }
        codex_kept_out(config, &state_dir)?;
        if !secure_cookies {
            tracing::warn!(base = %base, "the built-in authorization server on plain http: for local use only");
        }
        Ok(Some(Self {
            issuer: base,
            resource: resource.url,
            state_dir,
            password_file,
            redirect_hosts,
            access_ttl: Duration::from_secs(args.oauth_access_token_ttl_sec),
            refresh_ttl: Duration::from_secs(args.oauth_refresh_token_ttl_sec),
            key_rotation: Duration::from_secs(args.oauth_key_rotation_days.saturating_mul(86_400)),
            cimd_allow_private: args.oauth_cimd_allow_private,
            scopes: resource.scopes,
            required_scopes: resource.required_scopes,
            policy: config.policy.clone(),
            secure_cookies,
            trusted_proxies: resource.trusted_proxies,
        }))
    }

    /// The most powerful sandbox a token with `scopes` may run Codex in: the policy's
    /// own rule (`Policy::ceiling_for`), so the consent page shows what will be enforced.
    pub fn ceiling(&self, scopes: &[String]) -> &'static str {
        self.policy
            .ceiling_for(&crate::run::Principal::Authenticated {
                issuer: Some(self.issuer.clone()),
                subject: "operator".to_owned(),
                scopes: scopes.to_vec(),
            })
            .as_str()
    }

    /// `{issuer}{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }
}
