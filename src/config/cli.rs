//! The command line: clap's types for every flag and its environment variable (reading
//! argv into them is `argv.rs`). What a setting means is documented here once, and shows
//! in `--help`, in README's table and in `--print-config` (which walks these same
//! arguments).

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Parser, ValueEnum};

use super::http::HttpArgs;
use super::oauth::OAuthArgs;
use super::parse::{parse_base_url, parse_bool, parse_log_level};
use super::peers::PeerArgs;
use super::principal::PrincipalLimits;

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

    /// Codex processes one principal may have running at once, at most TWOBOT_MAX_CONCURRENT_RUNS [default: one less than it, at least 1, so one principal's long runs always leave a slot for another].
    #[arg(long, env = "TWOBOT_MAX_CONCURRENT_RUNS_PER_PRINCIPAL", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub max_concurrent_runs_per_principal: Option<u32>,

    /// Calls waiting for a free run slot before new ones are refused as busy [default: 16].
    #[arg(long, env = "TWOBOT_MAX_QUEUED_RUNS", value_parser = clap::value_parser!(u32).range(0..=100_000))]
    pub max_queued_runs: Option<u32>,

    /// Calls one principal may have waiting for a run slot (its share of TWOBOT_MAX_QUEUED_RUNS; "quota exceeded" beyond).
    #[arg(long, env = "TWOBOT_MAX_QUEUED_RUNS_PER_PRINCIPAL", default_value_t = PrincipalLimits::QUEUED, value_parser = clap::value_parser!(u32).range(0..=100_000))]
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

    /// Run each Codex in private mount and PID namespaces (auto: where the machine allows it, warned otherwise; required: refuse to start without; off: never).
    #[arg(
        long,
        env = "TWOBOT_RUN_NAMESPACES",
        value_enum,
        default_value = "auto",
        ignore_case = true
    )]
    pub run_namespaces: RunNamespaces,

    /// How Codex is driven: exec (`codex exec --json -`, headless) or app-server (`codex app-server`, one per run: approvals a person answers, steering, interrupt, diffs).
    #[arg(
        long,
        env = "TWOBOT_CODEX_BACKEND",
        value_enum,
        default_value = "exec",
        ignore_case = true
    )]
    pub codex_backend: CodexBackend,

    /// Seconds an approval request (app-server backend) waits for a person before it is declined (1 to 3600).
    #[arg(long, env = "TWOBOT_APPROVAL_TIMEOUT_SEC", default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub approval_timeout_sec: u64,

    /// Where 2Bot keeps its small state (who started which thread) [default: $XDG_DATA_HOME/2bot or ~/.local/share/2bot].
    #[arg(long, env = "TWOBOT_STATE_DIR")]
    pub state_dir: Option<PathBuf>,

    /// Keep the state in this PostgreSQL database instead, shared by every instance of one service (postgres://user:password@host/db?sslmode=verify-full; libpq's sslmode and sslrootcert).
    #[arg(long, env = "TWOBOT_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// Offer background runs to clients without MCP tasks: `background` on run_codex_prompt, plus get_codex_run and cancel_codex_run.
    #[arg(long, env = "TWOBOT_ENABLE_BACKGROUND_RUNS", default_value = "false", value_parser = parse_bool, action = clap::ArgAction::Set)]
    pub enable_background_runs: bool,

    /// List ask_codex beside run_codex_prompt: a read-only tool (sandbox read-only, no approvals, readOnlyHint), so hosts that confirm every other tool (ChatGPT) ask no confirmation for questions about code.
    #[arg(long, env = "TWOBOT_ENABLE_ASK_TOOL", default_value = "false", value_parser = parse_bool, action = clap::ArgAction::Set)]
    pub enable_ask_tool: bool,

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
    #[arg(long, env = "TWOBOT_MAX_RUNS_PER_PRINCIPAL", default_value_t = PrincipalLimits::KEPT, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub max_runs_per_principal: u32,

    /// Audit log: one JSON line per run and per refusal, appended to this file (created 0600; reopened on SIGHUP) [default: off].
    #[arg(long, env = "TWOBOT_AUDIT_LOG")]
    pub audit_log: Option<PathBuf>,

    /// Keep prompts in the audit log in full (otherwise only their SHA-256 and length).
    #[arg(long, env = "TWOBOT_AUDIT_PROMPTS", default_value = "false", value_parser = parse_bool, action = clap::ArgAction::Set)]
    pub audit_prompts: bool,

    /// Bytes the audit log may reach before it is rotated (to FILE.1, FILE.2, …); every caller string in it is cut to 256 bytes.
    #[arg(long, env = "TWOBOT_AUDIT_MAX_BYTES", default_value_t = 100 * 1024 * 1024, value_parser = clap::value_parser!(u64).range(65_536..))]
    pub audit_max_bytes: u64,

    /// Rotated audit files kept (the oldest is deleted; 0 keeps none): the log takes at most MAX_BYTES × (KEEP + 1).
    #[arg(long, env = "TWOBOT_AUDIT_KEEP", default_value_t = 5, value_parser = clap::value_parser!(u32).range(0..=1000))]
    pub audit_keep: u32,

    /// Seconds between the audit lines that count unauthenticated refusals (one per client address).
    #[arg(long, env = "TWOBOT_AUDIT_SUMMARY_SEC", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub audit_summary_sec: u64,

    /// Serve Prometheus metrics at http://ADDR/metrics on a listener of their own, e.g. 127.0.0.1:9464 [default: off].
    #[arg(long, env = "TWOBOT_METRICS_ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,

    #[command(flatten)]
    pub http: HttpArgs,

    #[command(flatten)]
    pub oauth: OAuthArgs,

    #[command(flatten)]
    pub peers: PeerArgs,

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
#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum Command {
    /// Check the set-up (Codex binary and version, credentials, roots, policy file, auth, port), one line per check; exit 1 if any fails.
    Doctor,
    /// Manage the built-in OAuth authorization server (TWOBOT_OAUTH_BUILTIN).
    #[command(subcommand)]
    Oauth(OauthCommand),
}

/// `2bot-mcp oauth …`: the operator's side of the built-in authorization server.
#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum OauthCommand {
    /// Read a password on stdin and print its Argon2id hash, for TWOBOT_OAUTH_PASSWORD_FILE.
    HashPassword,
    /// List the registered clients and their live grants (in the state store: TWOBOT_DATABASE_URL, else TWOBOT_STATE_DIR).
    List,
    /// End the grants of one client (its client id) or of `all` clients: refresh tokens stop at once, access tokens at their next use.
    Revoke {
        /// A client id as `oauth list` shows it, or `all`.
        target: String,
    },
    /// Delete one client (its client id) with its grants: its tokens stop as with `revoke`, and it must register (or be consented to) again.
    DeleteClient {
        /// A client id as `oauth list` shows it.
        client_id: String,
    },
}

/// How each run is isolated (`TWOBOT_RUN_NAMESPACES`; SECURITY.md, "Containment").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum RunNamespaces {
    /// Private namespaces where the machine allows them; else Codex gets names (warned).
    #[default]
    Auto,
    /// Private namespaces, or 2Bot does not start.
    Required,
    /// Never: Codex gets the checked directories by name.
    Off,
}

impl RunNamespaces {
    /// The value as the setting spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Required => "required",
            Self::Off => "off",
        }
    }
}

/// How Codex is driven (`TWOBOT_CODEX_BACKEND`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum CodexBackend {
    /// `codex exec --json -` per run: headless, never asks.
    #[default]
    Exec,
    /// `codex app-server` per run, over JSON-RPC: approvals, steering, interrupt, diffs.
    AppServer,
}

impl CodexBackend {
    /// The value as the setting spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Exec => "exec",
            Self::AppServer => "app-server",
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}
