//! [`HttpSettings`]: the HTTP part of the configuration, validated once at start (auth
//! credentials read and checked, no-auth exposure refused unless asked for, limits made
//! non-zero), apart from `mod.rs`, which assembles the stack from them.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::Path;
use std::time::Duration;

use super::ServeLimits;
use super::origin::HostOriginPolicy;
use crate::auth::client_addr::TrustedProxies;
use crate::auth::{self, AuthConfig, JwtKey, parse_tokens};
use crate::config::{Config, ConfigError, Issuance};

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
    /// The proxies whose forwarding headers name the client address.
    pub trusted_proxies: TrustedProxies,
    /// Requests per minute per client address, before auth.
    pub address_rate_per_minute: NonZeroU32,
    /// Burst per client address, before auth.
    pub address_rate_burst: NonZeroU32,
    /// Open connections per client address.
    pub max_connections_per_address: usize,
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
            crate::config::public_exposure(
                config.host,
                config.base_url.as_deref(),
                &args.allowed_hosts,
                &args.allowed_origins,
            )
        } else {
            None
        };
        let issuance = Issuance::of(config)?;
        let auth = if issuance == Issuance::NoAuth {
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
                    invalid(
                        "TWOBOT_JWT_PUBLIC_KEY_FILE",
                        file.display().to_string(),
                        e.to_string(),
                    )
                })?);
            }
            let jwks_url = match args.jwt_jwks_url.as_deref().filter(|u| !u.is_empty()) {
                Some(url) => Some(
                    auth::validate_url(url)
                        .map_err(|e| invalid("TWOBOT_JWT_JWKS_URL", url, e.to_string()))?
                        .to_string(),
                ),
                None => None,
            };
            if issuance.needs_credentials()
                && tokens.is_empty()
                && jwt_keys.is_empty()
                && jwks_url.is_none()
            {
                return Err(invalid(
                    "TWOBOT_ENABLE_NO_AUTH",
                    config.typed("TWOBOT_ENABLE_NO_AUTH", false),
                    "but no credential is configured; set TWOBOT_OAUTH_BUILTIN=true, TWOBOT_AUTH_TOKENS, TWOBOT_AUTH_TOKENS_FILE, TWOBOT_JWT_SECRET, TWOBOT_JWT_PUBLIC_KEY_FILE or TWOBOT_JWT_JWKS_URL",
                ));
            }
            Some(AuthConfig {
                tokens,
                jwt_keys,
                // The built-in server's key is added when it opens.
                issuer: issuance.issuer(),
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
                challenge_scopes: advertised_scopes(&scopes, config.policy.scope_sandbox.keys()),
            })
        };
        if args.trust_proxy_headers {
            return Err(invalid(
                "TWOBOT_TRUST_PROXY_HEADERS",
                config.typed("TWOBOT_TRUST_PROXY_HEADERS", true),
                "was replaced by TWOBOT_TRUSTED_PROXIES: set it to your proxy's address (e.g. TWOBOT_TRUSTED_PROXIES=127.0.0.1 for nginx or Caddy on this machine) and unset TWOBOT_TRUST_PROXY_HEADERS; headers from any other peer are ignored",
            ));
        }
        let trusted_proxies = TrustedProxies::parse(&args.trusted_proxies).map_err(|e| {
            invalid(
                "TWOBOT_TRUSTED_PROXIES",
                args.trusted_proxies.join(","),
                e.to_string(),
            )
        })?;
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
            trusted_proxies,
            address_rate_per_minute: nz(
                "TWOBOT_ADDRESS_RATE_PER_MINUTE",
                args.address_rate_per_minute,
            )?,
            address_rate_burst: nz("TWOBOT_ADDRESS_RATE_BURST", args.address_rate_burst)?,
            max_connections_per_address: args.max_connections_per_address as usize,
            max_body_bytes: usize::try_from(args.max_body_bytes).unwrap_or(usize::MAX),
            session_idle: Duration::from_secs(args.session_idle_sec),
            sse_resume: Duration::from_secs(args.sse_resume_sec),
            shutdown_grace: Duration::from_secs(args.shutdown_grace_sec),
            max_sessions: args.max_sessions as usize,
            max_sessions_per_principal: config.per_principal.sessions,
            max_inflight_per_principal: config.per_principal.inflight,
            max_connections: args.max_connections as usize,
            header_read_timeout: Duration::from_secs(args.header_read_timeout_sec),
            body_read_timeout: Duration::from_secs(args.body_read_timeout_sec),
            auth_servers: issuance.auth_servers(),
            scopes: advertised_scopes(&scopes, config.policy.scope_sandbox.keys()),
            default_timeout_sec: config.policy.default_timeout_sec(),
        })
    }

    /// The socket-level limits for [`serve`].
    pub fn serve_limits(&self) -> ServeLimits {
        ServeLimits {
            max_connections: self.max_connections,
            max_connections_per_address: self.max_connections_per_address,
            trusted_proxies: std::sync::Arc::new(self.trusted_proxies.clone()),
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
