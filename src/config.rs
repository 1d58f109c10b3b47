//! Configuration: the seed's environment variables and flags, the operator's policy
//! file, and their merge into one validated [`Config`].
//!
//! Precedence: a flag, then its environment variable, then the policy file, then the
//! default. Any invalid value stops start-up with exit code 2 and one line naming the
//! variable, the value and what is accepted ([`ConfigError`], [`Cli::parse_or_exit`]).

use std::ffi::OsString;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Parser, ValueEnum};

use crate::job::SandboxMode;
use crate::policy::{Policy, PolicyFile};
use crate::run_queue::RunLimits;
use crate::runner::RunnerConfig;

/// Which transport to serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Transport {
    /// MCP over stdin/stdout, for local clients.
    Stdio,
    /// MCP Streamable HTTP, for ChatGPT and remote clients (behind HTTPS).
    Http,
}

/// `2bot-mcp`: an MCP server that runs the local OpenAI Codex CLI through one controlled tool.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "2bot-mcp",
    version,
    about = "2Bot: an MCP server that lets ChatGPT or any MCP client run the local Codex CLI through one controlled tool, run_codex_prompt.",
    long_about = None,
    after_help = "Every option can also be set through the environment variable shown next to it; a flag wins over its variable, and a variable wins over the policy file."
)]
pub struct Cli {
    /// Transport: stdio for local MCP clients, http for MCP Streamable HTTP.
    #[arg(
        long,
        env = "TWOBOT_TRANSPORT",
        value_enum,
        default_value = "stdio",
        ignore_case = true
    )]
    pub transport: Transport,

    /// HTTP bind address (an IP address).
    #[arg(long, env = "TWOBOT_HOST", default_value = "127.0.0.1")]
    pub host: IpAddr,

    /// HTTP bind port.
    #[arg(long, env = "TWOBOT_PORT", default_value_t = 9000)]
    pub port: u16,

    /// Public HTTPS URL of this server (for docs, OAuth metadata and Origin checks).
    #[arg(long, env = "TWOBOT_BASE_URL", value_parser = parse_base_url)]
    pub base_url: Option<String>,

    /// Log level: TRACE, DEBUG, INFO, WARNING, ERROR, CRITICAL, OFF, or tracing filter directives
    /// (e.g. `twobot=debug,rmcp=info`); another bare word is refused. At INFO rmcp is held to WARN.
    #[arg(long, env = "TWOBOT_LOG_LEVEL", default_value = "INFO", value_parser = parse_log_level)]
    pub log_level: String,

    /// No-auth mode, for first connection tests; set false to require bearer tokens or JWTs.
    /// Booleans: true/false, 1/0, yes/no, on/off, any case.
    #[arg(long, env = "TWOBOT_ENABLE_NO_AUTH", default_value = "true", value_parser = parse_bool, action = clap::ArgAction::Set)]
    pub enable_no_auth: bool,

    /// Directories Codex may work in, `:`-separated; cwd and add_dirs must resolve inside one. Unset: any directory.
    #[arg(long, env = "CODEX_ALLOWED_ROOTS", value_delimiter = ':')]
    pub allowed_roots: Option<Vec<PathBuf>>,

    /// The Codex executable (a path, or a name looked up on PATH).
    #[arg(long, env = "CODEX_BIN", default_value = "codex")]
    pub codex_bin: PathBuf,

    /// Run Codex as this user (name or uid), apart from the secrets 2Bot holds [default: 2Bot's own user]. Needs root or CAP_SETUID, CAP_SETGID and CAP_KILL.
    #[arg(long, env = "TWOBOT_CODEX_USER")]
    pub codex_user: Option<String>,

    /// TOML policy file (see policies/): roots, sandbox ceiling, models, caps, Codex's environment.
    #[arg(long, env = "TWOBOT_POLICY_FILE")]
    pub policy_file: Option<PathBuf>,

    /// Codex processes running at once [default: 4].
    #[arg(long, env = "TWOBOT_MAX_CONCURRENT_RUNS", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub max_concurrent_runs: Option<u32>,

    /// Calls waiting for a free run slot before new ones are refused as busy [default: 16].
    #[arg(long, env = "TWOBOT_MAX_QUEUED_RUNS", value_parser = clap::value_parser!(u32).range(0..=100_000))]
    pub max_queued_runs: Option<u32>,

    /// Calls one principal may have waiting for a run slot (its share of TWOBOT_MAX_QUEUED_RUNS; "quota exceeded" beyond).
    #[arg(long, env = "TWOBOT_MAX_QUEUED_RUNS_PER_PRINCIPAL", default_value_t = 8, value_parser = clap::value_parser!(u32).range(0..=100_000))]
    pub max_queued_runs_per_principal: u32,

    /// Largest timeout_sec a call may ask for, in seconds [default: 7200].
    #[arg(long, env = "TWOBOT_MAX_TIMEOUT_SEC", value_parser = clap::value_parser!(u64).range(1..=604_800))]
    pub max_timeout_sec: Option<u64>,

    /// Largest prompt, in bytes [default: 1048576].
    #[arg(long, env = "TWOBOT_MAX_PROMPT_BYTES", value_parser = clap::value_parser!(u64).range(1..=67_108_864))]
    pub max_prompt_bytes: Option<u64>,

    /// Allow sandbox=danger-full-access (still requires allow_edits=true) [default: false].
    #[arg(long, env = "TWOBOT_ALLOW_DANGER_FULL_ACCESS", value_parser = parse_bool, action = clap::ArgAction::Set)]
    pub allow_danger_full_access: Option<bool>,

    /// Log format: text or json.
    #[arg(
        long,
        env = "TWOBOT_LOG_FORMAT",
        value_enum,
        default_value = "text",
        ignore_case = true
    )]
    pub log_format: LogFormat,

    /// Where 2Bot keeps its small state (who started which thread) [default: $XDG_DATA_HOME/2bot or ~/.local/share/2bot].
    #[arg(long, env = "TWOBOT_STATE_DIR")]
    pub state_dir: Option<PathBuf>,

    /// Offer background runs to clients without MCP tasks: `background` on run_codex_prompt, plus get_codex_run and cancel_codex_run.
    #[arg(long, env = "TWOBOT_ENABLE_BACKGROUND_RUNS", default_value = "false", value_parser = parse_bool, action = clap::ArgAction::Set)]
    pub enable_background_runs: bool,

    /// Run a task-capable client's calls as MCP tasks (SEP-2663: tasks/get, tasks/cancel).
    #[arg(long, env = "TWOBOT_ENABLE_TASKS", default_value = "true", value_parser = parse_bool, action = clap::ArgAction::Set)]
    pub enable_tasks: bool,

    /// Seconds Codex may keep retrying its model connection ("Reconnecting...") before the run is stopped with the reason.
    #[arg(long, env = "TWOBOT_MODEL_UNREACHABLE_SEC", default_value_t = 45, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub model_unreachable_sec: u64,

    /// Seconds a finished background run (or task) stays fetchable.
    #[arg(long, env = "TWOBOT_TASK_TTL_SEC", default_value_t = 21_600, value_parser = clap::value_parser!(u64).range(1..))]
    pub task_ttl_sec: u64,

    /// Background runs and tasks kept at once, running or finished (a clear error beyond).
    #[arg(long, env = "TWOBOT_MAX_RUNS", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub max_runs: u32,

    /// Background runs and tasks one principal keeps at once (its finished ones are evicted oldest first before it is refused).
    #[arg(long, env = "TWOBOT_MAX_RUNS_PER_PRINCIPAL", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub max_runs_per_principal: u32,

    /// Audit log: one JSON line per run and per refusal, appended to this file (created 0600; reopened on SIGHUP) [default: off].
    #[arg(long, env = "TWOBOT_AUDIT_LOG")]
    pub audit_log: Option<PathBuf>,

    /// Keep prompts in the audit log in full (otherwise only their SHA-256 and length).
    #[arg(long, env = "TWOBOT_AUDIT_PROMPTS", default_value = "false", value_parser = parse_bool, action = clap::ArgAction::Set)]
    pub audit_prompts: bool,

    /// Serve Prometheus metrics at http://ADDR/metrics on a listener of their own, e.g. 127.0.0.1:9464 [default: off].
    #[arg(long, env = "TWOBOT_METRICS_ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,

    #[command(flatten)]
    pub http: HttpArgs,

    /// Print the effective configuration (with where each value came from, secrets redacted) and exit.
    #[arg(long)]
    pub print_config: bool,

    /// What to do instead of serving.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Boolean settings as the operator typed them (`off`, `1`…), by variable name, so
    /// an error quotes what was typed rather than what it was read as.
    #[arg(skip)]
    pub as_typed: std::collections::BTreeMap<String, String>,
}

/// Subcommands; without one, `2bot-mcp` serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::Subcommand)]
pub enum Command {
    /// Check the set-up (Codex binary and version, credentials, roots, policy file, auth, port), one line per check; exit 1 if any fails.
    Doctor,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Settings of the Streamable HTTP transport (ignored in stdio mode).
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "HTTP transport")]
pub struct HttpArgs {
    /// Path of the MCP endpoint.
    #[arg(long, env = "TWOBOT_HTTP_PATH", default_value = "/mcp", value_parser = parse_http_path)]
    pub http_path: String,

    /// Seconds an idle MCP session lives.
    #[arg(long, env = "TWOBOT_SESSION_IDLE_SEC", default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..))]
    pub session_idle_sec: u64,

    /// Seconds a finished response stream stays resumable (`Last-Event-ID`); its events are held in memory that long.
    #[arg(long, env = "TWOBOT_SSE_RESUME_SEC", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub sse_resume_sec: u64,

    /// Largest request body, in bytes (413 beyond; a body declared larger is discarded, up to 16 MiB, so the client reads the 413).
    #[arg(long, env = "TWOBOT_MAX_BODY_BYTES", default_value_t = 4 * 1024 * 1024, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_body_bytes: u64,

    /// Extra allowed `Origin` values, comma-separated (the base URL's origin and loopback are always allowed).
    #[arg(long, env = "TWOBOT_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,

    /// Extra allowed `Host` values, comma-separated (loopback and the base URL's host are always allowed).
    #[arg(long, env = "TWOBOT_ALLOWED_HOSTS", value_delimiter = ',')]
    pub allowed_hosts: Vec<String>,

    /// Most live MCP sessions at once (503 for a new session beyond).
    #[arg(long, env = "TWOBOT_MAX_SESSIONS", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_sessions: u32,

    /// Most live MCP sessions one principal holds (no-auth: one client address); 429 beyond.
    #[arg(long, env = "TWOBOT_MAX_SESSIONS_PER_PRINCIPAL", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_sessions_per_principal: u32,

    /// Most open TCP connections at once (503 and close beyond).
    #[arg(long, env = "TWOBOT_MAX_CONNECTIONS", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,

    /// Most HTTP requests one principal has in flight, open SSE streams included (no-auth: one client address); 429 and close beyond.
    #[arg(long, env = "TWOBOT_MAX_INFLIGHT_PER_PRINCIPAL", default_value_t = 512, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_inflight_per_principal: u32,

    /// Seconds a connection may take to send a request's headers, idle keep-alive included (slowloris).
    #[arg(long, env = "TWOBOT_HEADER_READ_TIMEOUT_SEC", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub header_read_timeout_sec: u64,

    /// Seconds a request may take to send its body once its headers are in (408 and close beyond).
    #[arg(long, env = "TWOBOT_BODY_READ_TIMEOUT_SEC", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub body_read_timeout_sec: u64,

    /// Static bearer tokens, comma-separated, each `name:token` (or a bare token).
    #[arg(long, env = "TWOBOT_AUTH_TOKENS", hide_env_values = true)]
    pub auth_tokens: Option<String>,

    /// File of static bearer tokens, one `name:token` per line.
    #[arg(long, env = "TWOBOT_AUTH_TOKENS_FILE")]
    pub auth_tokens_file: Option<PathBuf>,

    /// HMAC secret for HS256/HS384/HS512 JWTs.
    #[arg(long, env = "TWOBOT_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,

    /// PEM public key for RS*/PS*/ES*/EdDSA JWTs.
    #[arg(long, env = "TWOBOT_JWT_PUBLIC_KEY_FILE")]
    pub jwt_public_key_file: Option<PathBuf>,

    /// JWKS URL of the authorization server (https, or http on loopback): fetched at start, cached, refreshed on an unknown `kid`.
    #[arg(long, env = "TWOBOT_JWT_JWKS_URL")]
    pub jwt_jwks_url: Option<String>,

    /// Least seconds between two JWKS fetches triggered by tokens with an unknown `kid`.
    #[arg(long, env = "TWOBOT_JWT_JWKS_MIN_REFRESH_SEC", default_value_t = 30)]
    pub jwt_jwks_min_refresh_sec: u64,

    /// Required JWT issuer (`iss`).
    #[arg(long, env = "TWOBOT_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,

    /// Required JWT audience (`aud`) [default: TWOBOT_BASE_URL + TWOBOT_HTTP_PATH].
    #[arg(long, env = "TWOBOT_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,

    /// Clock leeway for `exp`/`nbf`, in seconds.
    #[arg(long, env = "TWOBOT_JWT_LEEWAY_SEC", default_value_t = 30)]
    pub jwt_leeway_sec: u64,

    /// Scopes every JWT must carry, comma- or space-separated (403 insufficient_scope otherwise).
    #[arg(long, env = "TWOBOT_REQUIRED_SCOPES")]
    pub required_scopes: Option<String>,

    /// OAuth authorization servers advertised in the protected-resource metadata, comma-separated.
    #[arg(long, env = "TWOBOT_AUTH_SERVERS", value_delimiter = ',')]
    pub auth_servers: Vec<String>,

    /// Serve no-auth although the bind address or TWOBOT_BASE_URL's host is not loopback (warned at every start).
    #[arg(long, env = "TWOBOT_ALLOW_PUBLIC_NO_AUTH", default_value = "false", value_parser = parse_bool, action = clap::ArgAction::Set)]
    pub allow_public_no_auth: bool,

    /// Trust X-Forwarded-For / Forwarded for the client address (only behind your own proxy).
    #[arg(long, env = "TWOBOT_TRUST_PROXY_HEADERS", default_value = "false", value_parser = parse_bool, action = clap::ArgAction::Set)]
    pub trust_proxy_headers: bool,

    /// Requests per minute per principal (or client address).
    #[arg(long, env = "TWOBOT_RATE_LIMIT_PER_MINUTE", default_value_t = 120, value_parser = clap::value_parser!(u32).range(1..))]
    pub rate_limit_per_minute: u32,

    /// Requests allowed in a burst.
    #[arg(long, env = "TWOBOT_RATE_LIMIT_BURST", default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..))]
    pub rate_limit_burst: u32,

    /// Seconds running calls may finish after SIGTERM before they are killed.
    #[arg(long, env = "TWOBOT_SHUTDOWN_GRACE_SEC", default_value_t = 30)]
    pub shutdown_grace_sec: u64,
}

/// `/` followed by a path without query, fragment or trailing slash.
fn parse_http_path(s: &str) -> Result<String, String> {
    let ok = s.starts_with('/')
        && s.len() > 1
        && !s.ends_with('/')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '-' | '_' | '.'));
    if ok {
        Ok(s.to_owned())
    } else {
        Err("expected a path such as /mcp".to_owned())
    }
}

/// A configuration that cannot be used; printed as one line, exit code 2.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A value that parsed but cannot work.
    #[error("{var}: {value:?} {reason}")]
    Invalid {
        /// The variable (and flag).
        var: &'static str,
        /// The value given.
        value: String,
        /// What is wrong and what is accepted.
        reason: String,
    },
    /// The policy file is unreadable or invalid.
    #[error("TWOBOT_POLICY_FILE: {0}")]
    PolicyFile(#[from] crate::policy::file::PolicyFileError),
}

/// Everything the server needs, validated.
#[derive(Debug, Clone)]
pub struct Config {
    /// The transport to serve.
    pub transport: Transport,
    /// HTTP bind address.
    pub host: IpAddr,
    /// HTTP bind port.
    pub port: u16,
    /// Public base URL.
    pub base_url: Option<String>,
    /// The tracing filter.
    pub log_filter: String,
    /// No-auth mode.
    pub enable_no_auth: bool,
    /// Boolean settings as typed, by variable name (see [`Config::typed`]).
    pub as_typed: std::collections::BTreeMap<String, String>,
    /// The effective policy.
    pub policy: Arc<Policy>,
    /// Limits on Codex processes.
    pub limits: RunLimits,
    /// How Codex is started.
    pub runner: RunnerConfig,
    /// Log format.
    pub log_format: LogFormat,
    /// HTTP settings, validated by `http::HttpConfig` when the transport is http.
    pub http: HttpArgs,
    /// State directory (`None`: nothing persists).
    pub state_dir: Option<PathBuf>,
    /// Background runs and their registry bounds.
    pub runs: crate::runs::KeptConfig,
    /// The audit log's file, if any.
    pub audit_log: Option<PathBuf>,
    /// Whether audit records keep prompts in full.
    pub audit_prompts: bool,
    /// Where `/metrics` is served, if anywhere.
    pub metrics_addr: Option<std::net::SocketAddr>,
}

impl Cli {
    /// Parse argv and the environment; on bad input print one line naming the variable and exit 2.
    pub fn parse_or_exit() -> Self {
        Self::parse_with_matches_or_exit().0
    }

    /// [`Self::parse_or_exit`], also returning clap's matches (which say where each value came from).
    pub fn parse_with_matches_or_exit() -> (Self, clap::ArgMatches) {
        use clap::{CommandFactory, FromArgMatches};
        let parsed = Self::command()
            .try_get_matches_from(std::env::args_os())
            .and_then(|matches| {
                Self::from_arg_matches(&matches).map(|mut cli| {
                    cli.as_typed = booleans_as_typed(&matches);
                    (cli, matches)
                })
            })
            .map_err(name_the_variable);
        parsed.unwrap_or_else(|e| e.exit())
    }

    /// Parse, rewriting value errors so they name the environment variable as well as the flag.
    pub fn try_parse_from_env<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        Self::try_parse_from(args).map_err(name_the_variable)
    }
}

/// The raw text of every boolean setting the operator gave (flag or environment).
fn booleans_as_typed(matches: &clap::ArgMatches) -> std::collections::BTreeMap<String, String> {
    use clap::CommandFactory;
    use clap::parser::ValueSource;
    let cmd = Cli::command();
    let mut typed = std::collections::BTreeMap::new();
    for arg in cmd.get_arguments() {
        let id = arg.get_id().as_str();
        let given = matches!(
            matches.value_source(id),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        );
        let is_bool = matches.try_get_one::<bool>(id).is_ok_and(|v| v.is_some());
        if let (true, true, Some(env), Some(mut raw)) =
            (given, is_bool, arg.get_env(), matches.get_raw(id))
            && let Some(value) = raw.next()
        {
            typed.insert(
                env.to_string_lossy().into_owned(),
                value.to_string_lossy().into_owned(),
            );
        }
    }
    typed
}

/// Turn clap's multi-line value errors into one line that names the variable.
fn name_the_variable(err: clap::Error) -> clap::Error {
    use clap::CommandFactory;
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if !matches!(
        err.kind(),
        ErrorKind::InvalidValue | ErrorKind::ValueValidation
    ) {
        return err;
    }
    let arg = match err.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(s)) => s.clone(),
        _ => return err,
    };
    let value = match err.get(ContextKind::InvalidValue) {
        Some(ContextValue::String(s)) => s.clone(),
        _ => String::new(),
    };
    let flag = arg.split_whitespace().next().unwrap_or(&arg).to_owned();
    let cmd = Cli::command();
    let var = cmd
        .get_arguments()
        .find(|a| a.get_long().is_some_and(|l| format!("--{l}") == flag))
        .and_then(|a| a.get_env())
        .map(|e| e.to_string_lossy().into_owned());
    let accepted = match err.get(ContextKind::ValidValue) {
        Some(ContextValue::Strings(v)) => format!("accepted: {}", v.join(", ")),
        _ => {
            // clap's own text ends with the reason after the last ": ".
            let rendered = err.to_string();
            let first = rendered.lines().next().unwrap_or_default().to_owned();
            first
                .rsplit_once(": ")
                .map(|(_, r)| r.to_owned())
                .unwrap_or(first)
        }
    };
    let name = match var {
        Some(var) => format!("{var} ({flag})"),
        None => flag,
    };
    clap::Error::raw(
        ErrorKind::ValueValidation,
        format!("{name}: invalid value {value:?}: {accepted}\n"),
    )
    .with_cmd(&cmd)
}

/// `$XDG_DATA_HOME/2bot`, else `$HOME/.local/share/2bot`.
fn default_state_dir() -> Option<PathBuf> {
    let nonempty = |var: &str| {
        std::env::var_os(var)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    nonempty("XDG_DATA_HOME")
        .or_else(|| nonempty("HOME").map(|h| h.join(".local/share")))
        .map(|d| d.join("2bot"))
}

/// Every boolean setting accepts these spellings, in any case.
pub const BOOL_SPELLINGS: &str = "true, false, 1, 0, yes, no, on, off";

/// `true/false`, `1/0`, `yes/no`, `on/off`, any case (see [`BOOL_SPELLINGS`]).
pub fn parse_bool(s: &str) -> Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(format!("accepted (any case) {BOOL_SPELLINGS}")),
    }
}

/// Python's level names (the seed's), case-insensitive, or a tracing filter directive.
pub fn parse_log_level(s: &str) -> Result<String, String> {
    let level = match s.trim().to_ascii_uppercase().as_str() {
        "TRACE" => "trace",
        "DEBUG" => "debug",
        "INFO" => "info",
        "WARN" | "WARNING" => "warn",
        "ERROR" | "CRITICAL" | "FATAL" => "error",
        "OFF" => "off",
        _ => {
            // A bare word in a filter is a *target*: `verbose` would mean "only the
            // target named verbose", which silently turns every log line off.
            const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];
            if let Some(word) = s.split(',').map(str::trim).find(|part| {
                !part.is_empty()
                    && !part.contains(['=', '['])
                    && !LEVELS.iter().any(|l| part.eq_ignore_ascii_case(l))
            }) {
                return Err(format!(
                    "{word:?} is not a level; expected TRACE, DEBUG, INFO, WARNING, ERROR, CRITICAL, OFF or filter directives such as twobot=debug,rmcp=info"
                ));
            }
            return tracing_subscriber::EnvFilter::builder()
                .parse(s)
                .map(|_| s.to_owned())
                .map_err(|e| {
                    format!("expected DEBUG, INFO, WARNING, ERROR, CRITICAL or a tracing filter such as `twobot=debug,info` ({e})")
                });
        }
    };
    Ok(level.to_owned())
}

/// An absolute http(s) URL without query or fragment.
fn parse_base_url(s: &str) -> Result<String, String> {
    let uri: http::Uri = s
        .parse()
        .map_err(|e| format!("expected an absolute URL such as https://mcp.example.com ({e})"))?;
    match (uri.scheme_str(), uri.host()) {
        (Some("https" | "http"), Some(_)) if uri.query().is_none() => {
            Ok(s.trim_end_matches('/').to_owned())
        }
        _ => Err("expected an absolute http(s) URL such as https://mcp.example.com".to_owned()),
    }
}

/// Where a server without auth would be reachable from beyond this machine, if anywhere:
/// a non-loopback bind address, or a base URL whose host is not loopback (the proxy or
/// tunnel layout, where the server binds 127.0.0.1 and the world reaches it anyway).
pub fn public_exposure(host: IpAddr, base_url: Option<&str>) -> Option<String> {
    if !host.is_loopback() {
        return Some(format!("the non-loopback address {host}"));
    }
    let base = base_url?;
    let uri: http::Uri = base.parse().ok()?;
    let name = uri.host()?;
    let name = name.trim_start_matches('[').trim_end_matches(']');
    let loopback = match name.parse::<IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            name == "localhost" || name.ends_with(".localhost")
        }
    };
    (!loopback).then(|| format!("the public base URL {base} (TWOBOT_BASE_URL)"))
}

impl Config {
    /// Merge `cli` (flags and environment) with the policy file and validate the result.
    pub fn load(cli: Cli) -> Result<Self, ConfigError> {
        let file = match &cli.policy_file {
            Some(path) => PolicyFile::load(path)?,
            None => PolicyFile::default(),
        };
        let server_cwd = std::env::current_dir().map_err(|e| ConfigError::Invalid {
            var: "cwd",
            value: String::new(),
            reason: format!("the server's working directory is unreadable: {e}"),
        })?;

        let (roots_var, raw_roots) = match (&cli.allowed_roots, &file.allowed_roots) {
            (Some(roots), _) => ("CODEX_ALLOWED_ROOTS", roots.clone()),
            (None, Some(roots)) => ("TWOBOT_POLICY_FILE allowed_roots", roots.clone()),
            (None, None) => ("CODEX_ALLOWED_ROOTS", Vec::new()),
        };
        let mut allowed_roots = Vec::new();
        for root in raw_roots.iter().filter(|r| !r.as_os_str().is_empty()) {
            let invalid = |reason: String| ConfigError::Invalid {
                var: roots_var,
                value: root.display().to_string(),
                reason,
            };
            let canonical = std::fs::canonicalize(root)
                .map_err(|e| invalid(format!("is not a usable directory: {e}")))?;
            if !canonical.is_dir() {
                return Err(invalid("is not a directory".to_owned()));
            }
            allowed_roots.push(canonical);
        }

        let allow_danger = cli
            .allow_danger_full_access
            .or(file.allow_danger_full_access)
            .unwrap_or(false);
        let default_ceiling = if allow_danger {
            SandboxMode::DangerFullAccess
        } else {
            SandboxMode::WorkspaceWrite
        };
        let sandbox_ceiling = file.sandbox_ceiling.unwrap_or(default_ceiling);
        if sandbox_ceiling == SandboxMode::DangerFullAccess && !allow_danger {
            return Err(ConfigError::Invalid {
                var: "TWOBOT_POLICY_FILE sandbox_ceiling",
                value: sandbox_ceiling.to_string(),
                reason: "needs TWOBOT_ALLOW_DANGER_FULL_ACCESS=true (or allow_danger_full_access = true)".into(),
            });
        }
        let positive = |var: &'static str, v: u64| {
            if v == 0 {
                Err(ConfigError::Invalid {
                    var,
                    value: "0".into(),
                    reason: "must be at least 1".into(),
                })
            } else {
                Ok(v)
            }
        };
        let max_timeout_sec = positive(
            "TWOBOT_MAX_TIMEOUT_SEC",
            cli.max_timeout_sec.or(file.max_timeout_sec).unwrap_or(7200),
        )?;
        let max_prompt_bytes = positive(
            "TWOBOT_MAX_PROMPT_BYTES",
            cli.max_prompt_bytes
                .or(file.max_prompt_bytes.map(|b| b as u64))
                .unwrap_or(1024 * 1024),
        )?;
        let max_concurrent_runs = positive(
            "TWOBOT_MAX_CONCURRENT_RUNS",
            cli.max_concurrent_runs
                .map(u64::from)
                .or(file.max_concurrent_runs.map(|n| n as u64))
                .unwrap_or(4),
        )?;
        let max_queued_runs = cli
            .max_queued_runs
            .map(u64::from)
            .or(file.max_queued_runs.map(|n| n as u64))
            .unwrap_or(16);

        let default_cwd = allowed_roots.first().cloned().unwrap_or(server_cwd);
        let policy = Policy {
            allowed_roots,
            default_cwd,
            sandbox_ceiling,
            allow_danger_full_access: allow_danger,
            allowed_models: file.allowed_models.clone(),
            allowed_profiles: file.allowed_profiles.clone(),
            max_timeout_sec,
            max_prompt_bytes: usize::try_from(max_prompt_bytes).unwrap_or(usize::MAX),
            scope_sandbox: file.scopes.clone(),
            features: file.features.clone(),
        };
        let mut runner = RunnerConfig::new(cli.codex_bin.clone());
        runner.env = file.codex_env;
        runner.model_unreachable = std::time::Duration::from_secs(cli.model_unreachable_sec);

        Ok(Self {
            transport: cli.transport,
            host: cli.host,
            port: cli.port,
            base_url: cli.base_url,
            log_filter: cli.log_level,
            enable_no_auth: cli.enable_no_auth,
            as_typed: cli.as_typed,
            policy: Arc::new(policy),
            limits: RunLimits {
                max_concurrent_runs: usize::try_from(max_concurrent_runs).unwrap_or(usize::MAX),
                max_queued_runs: usize::try_from(max_queued_runs).unwrap_or(usize::MAX),
                max_queued_runs_per_principal: cli.max_queued_runs_per_principal as usize,
            },
            runner,
            log_format: cli.log_format,
            http: cli.http,
            state_dir: cli.state_dir.or_else(default_state_dir),
            runs: crate::runs::KeptConfig {
                background: cli.enable_background_runs,
                tasks: cli.enable_tasks,
                ttl: std::time::Duration::from_secs(cli.task_ttl_sec),
                max_runs: cli.max_runs as usize,
                max_runs_per_principal: cli.max_runs_per_principal as usize,
            },
            audit_log: cli.audit_log,
            audit_prompts: cli.audit_prompts,
            metrics_addr: cli.metrics_addr,
        })
    }

    /// How the operator wrote boolean setting `var` (`off`, `1`…), for error messages;
    /// `parsed` as `true`/`false` when it was not given (the default).
    pub fn typed(&self, var: &str, parsed: bool) -> String {
        self.as_typed
            .get(var)
            .cloned()
            .unwrap_or_else(|| parsed.to_string())
    }

    /// Log the effective policy once at start-up, so operators see what is enforced.
    pub fn log_effective(&self) {
        let p = &self.policy;
        tracing::info!(
            transport = ?self.transport,
            codex_bin = %self.runner.program.display(),
            allowed_roots = ?p.allowed_roots,
            default_cwd = %p.default_cwd.display(),
            sandbox_ceiling = %p.sandbox_ceiling,
            allow_danger_full_access = p.allow_danger_full_access,
            allowed_models = ?p.allowed_models,
            allowed_profiles = ?p.allowed_profiles,
            max_timeout_sec = p.max_timeout_sec,
            max_prompt_bytes = p.max_prompt_bytes,
            max_concurrent_runs = self.limits.max_concurrent_runs,
            max_queued_runs = self.limits.max_queued_runs,
            max_queued_runs_per_principal = self.limits.max_queued_runs_per_principal,
            scope_sandbox = ?p.scope_sandbox,
            codex_env_inherit = self.runner.env.inherit,
            "effective policy"
        );
        if p.allowed_roots.is_empty() {
            tracing::warn!(
                "CODEX_ALLOWED_ROOTS is not set: Codex may be pointed at any directory this user can read"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn python_level_names_and_filters_are_accepted() {
        for (given, expected) in [
            ("INFO", "info"),
            ("warning", "warn"),
            ("Critical", "error"),
            ("DEBUG", "debug"),
            ("twobot=debug,info", "twobot=debug,info"),
        ] {
            assert_eq!(parse_log_level(given).unwrap(), expected);
        }
        assert!(parse_log_level("LOUD=").is_err() || parse_log_level("[[[").is_err());
        for word in ["verbose", "info,verbose", "twobot"] {
            let e = parse_log_level(word).unwrap_err();
            assert!(e.contains("is not a level"), "{word}: {e}");
        }
    }

    #[test]
    fn booleans_accept_the_usual_spellings_and_refuse_others() {
        assert_eq!(parse_bool("TRUE"), Ok(true));
        assert_eq!(parse_bool("0"), Ok(false));
        assert_eq!(parse_bool("off"), Ok(false));
        assert!(parse_bool("maybe").is_err());
    }

    #[test]
    fn no_auth_is_public_when_the_bind_address_or_the_base_url_is_not_loopback() {
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let lo6: IpAddr = "::1".parse().unwrap();
        let any: IpAddr = "0.0.0.0".parse().unwrap();
        let lan: IpAddr = "192.168.1.5".parse().unwrap();
        let cases: [(IpAddr, Option<&str>, Option<&str>); 11] = [
            (lo, None, None),
            (lo6, None, None),
            (lo, Some("http://127.0.0.1:9000"), None),
            (lo, Some("http://[::1]:9000"), None),
            (lo, Some("http://localhost:9000"), None),
            (lo, Some("http://LOCALHOST."), None),
            (lo, Some("http://app.localhost"), None),
            (
                lo,
                Some("https://mcp.example.com"),
                Some("https://mcp.example.com"),
            ),
            (lo, Some("http://192.168.1.5:9000"), Some("192.168.1.5")),
            (any, None, Some("0.0.0.0")),
            (lan, Some("http://127.0.0.1"), Some("192.168.1.5")),
        ];
        for (host, base, expect) in cases {
            let got = public_exposure(host, base);
            match expect {
                None => assert_eq!(got, None, "{host} {base:?}"),
                Some(part) => assert!(
                    got.as_deref().is_some_and(|g| g.contains(part)),
                    "{host} {base:?}: {got:?}"
                ),
            }
        }
    }

    #[test]
    fn base_urls_must_be_absolute_http() {
        assert_eq!(
            parse_base_url("https://mcp.example.com/").unwrap(),
            "https://mcp.example.com"
        );
        assert!(parse_base_url("mcp.example.com").is_err());
        assert!(parse_base_url("ftp://x").is_err());
    }

    #[test]
    fn the_seed_defaults_apply_with_no_flags() {
        let cli = Cli::try_parse_from_env(["2bot-mcp"]).unwrap();
        assert_eq!(cli.transport, Transport::Stdio);
        assert_eq!(cli.host.to_string(), "127.0.0.1");
        assert_eq!(cli.port, 9000);
        assert!(cli.enable_no_auth);
        assert_eq!(cli.log_level, "info");
    }

    #[test]
    fn flags_parse_and_a_bad_value_names_the_variable_in_one_line() {
        let cli =
            Cli::try_parse_from_env(["2bot-mcp", "--transport", "http", "--port", "1234"]).unwrap();
        assert_eq!(cli.transport, Transport::Http);
        assert_eq!(cli.port, 1234);
        let err = Cli::try_parse_from_env(["2bot-mcp", "--port", "http"]).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("TWOBOT_PORT (--port)"), "{text}");
        assert!(text.contains("\"http\""), "{text}");
        assert_eq!(text.trim_end().lines().count(), 1, "{text}");
        assert_eq!(err.exit_code(), 2);
    }
}
