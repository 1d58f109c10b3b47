//! The built-in OAuth authorization server's settings as the operator gives them
//! ([`OAuthArgs`]): turned on by `TWOBOT_OAUTH_BUILTIN=true`, validated into
//! `oauth::OAuthSettings` when the HTTP server starts (and checked by `doctor`).

use std::path::PathBuf;

use super::http::HttpArgs;
use super::parse::parse_bool;

/// Callback hosts ChatGPT and Claude redirect to after sign-in.
pub const DEFAULT_REDIRECT_HOSTS: &str = "chatgpt.com,chat.openai.com,claude.ai,claude.com";

/// Settings of the built-in authorization server (ignored unless `TWOBOT_OAUTH_BUILTIN=true`).
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Built-in OAuth authorization server")]
pub struct OAuthArgs {
    /// Make 2Bot its own OAuth authorization server for one operator (needs TWOBOT_ENABLE_NO_AUTH=false, TWOBOT_BASE_URL and TWOBOT_OAUTH_PASSWORD_FILE).
    #[arg(long, env = "TWOBOT_OAUTH_BUILTIN", default_value = "false", value_parser = parse_bool, action = clap::ArgAction::Set)]
    pub oauth_builtin: bool,

    /// File holding the operator's password as an Argon2id hash (made by `2bot-mcp oauth hash-password`).
    #[arg(long, env = "TWOBOT_OAUTH_PASSWORD_FILE")]
    pub oauth_password_file: Option<PathBuf>,

    /// Hosts an HTTPS redirect URI may name, comma-separated (a loopback `http` redirect URI is always allowed).
    #[arg(long, env = "TWOBOT_OAUTH_REDIRECT_HOSTS", value_delimiter = ',', default_value = DEFAULT_REDIRECT_HOSTS)]
    pub oauth_redirect_hosts: Vec<String>,

    /// Seconds an access token (a JWT) lives.
    #[arg(long, env = "TWOBOT_OAUTH_ACCESS_TOKEN_TTL_SEC", default_value_t = 3600, value_parser = clap::value_parser!(u64).range(60..=86_400))]
    pub oauth_access_token_ttl_sec: u64,

    /// Seconds a refresh token lives (each use rotates it and starts a new period).
    #[arg(long, env = "TWOBOT_OAUTH_REFRESH_TOKEN_TTL_SEC", default_value_t = 2_592_000, value_parser = clap::value_parser!(u64).range(60..=31_536_000))]
    pub oauth_refresh_token_ttl_sec: u64,

    /// Days a signing key signs before a successor takes over (the old key is still accepted until every token it signed has expired); every instance of a service shares the key set.
    #[arg(long, env = "TWOBOT_OAUTH_KEY_ROTATION_DAYS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3650))]
    pub oauth_key_rotation_days: u64,

    /// Fetch client metadata documents (CIMD) from loopback and private addresses too; for a closed network or tests only (link-local addresses are never fetched).
    #[arg(long, env = "TWOBOT_OAUTH_CIMD_ALLOW_PRIVATE", default_value = "false", value_parser = parse_bool, action = clap::ArgAction::Set)]
    pub oauth_cimd_allow_private: bool,

    /// Start the built-in server although Codex can read its state directory (no separate TWOBOT_CODEX_USER): a caller's Codex command can then read the signing key; warned at every start.
    #[arg(long, env = "TWOBOT_OAUTH_ALLOW_SHARED_CODEX_USER", default_value = "false", value_parser = parse_bool, action = clap::ArgAction::Set)]
    pub oauth_allow_shared_codex_user: bool,
}

/// The settings of an external issuer that are set in `http`: with the built-in
/// authorization server 2Bot is the only issuer, so each of these is a conflict (the
/// server refuses to start; `doctor` names them).
pub fn builtin_conflicts(http: &HttpArgs) -> Vec<&'static str> {
    [
        ("TWOBOT_JWT_ISSUER", http.jwt_issuer.is_some()),
        ("TWOBOT_JWT_JWKS_URL", http.jwt_jwks_url.is_some()),
        (
            "TWOBOT_JWT_PUBLIC_KEY_FILE",
            http.jwt_public_key_file.is_some(),
        ),
        ("TWOBOT_JWT_SECRET", http.jwt_secret.is_some()),
        ("TWOBOT_JWT_AUDIENCE", http.jwt_audience.is_some()),
        ("TWOBOT_AUTH_SERVERS", !http.auth_servers.is_empty()),
    ]
    .into_iter()
    .filter_map(|(var, set)| set.then_some(var))
    .collect()
}
