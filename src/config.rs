//! Configuration: the seed's environment variables and flags, the operator's policy
//! file, and their merge into one validated [`Config`].
//!
//! Precedence: a flag, then its environment variable, then the policy file, then the
//! default. Any invalid value stops start-up with exit code 2 and one line naming the
//! variable, the value and what is accepted ([`ConfigError`], [`Cli::parse_or_exit`]).
//!
//! Here: [`Config`] and its loading. `cli.rs` holds clap's types (every flag and its
//! variable), `argv.rs` reads argv into them (each error in one line), `http.rs` the
//! HTTP transport's settings, `parse.rs` the shared value parsers, and `settings.rs` the
//! plain settings types the run lifecycle reads.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

// Only plain data of inner modules: config is read by the stack's assembly (main, http,
// runs) and never imports it; see settings.rs for the settings the stack reads back.
use crate::policy::{Policy, PolicyFile};
use crate::run::SandboxMode;
use crate::runner::RunnerConfig;

mod argv;
mod cli;
mod http;
mod issuance;
mod oauth;
mod parse;
mod peers;
mod principal;
mod settings;

pub use self::cli::{
    Cli, CodexBackend, Command, LogFormat, OauthCommand, RunNamespaces, Transport,
};
pub use self::http::{HttpArgs, public_exposure};
pub use self::issuance::{Clash, Issuance};
pub use self::oauth::{DEFAULT_REDIRECT_HOSTS, OAuthArgs, builtin_conflicts};
pub use self::parse::{BOOL_SPELLINGS, parse_bool, parse_log_level};
pub use self::peers::{MIN_SECRET_BYTES, PeerArgs, PeerConfig, PeerSecret};
pub use self::principal::PrincipalLimits;
pub use self::settings::{KeptConfig, RunLimits};

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
    /// Limits on Codex processes, all principals together.
    pub limits: RunLimits,
    /// Each principal's share: runs, queue places, kept runs, sessions, requests.
    pub per_principal: PrincipalLimits,
    /// How Codex is started.
    pub runner: RunnerConfig,
    /// Log format.
    pub log_format: LogFormat,
    /// Whether runs get private namespaces (`runner.isolate` says whether they do).
    pub run_namespaces: RunNamespaces,
    /// How long an approval request waits for a person (`TWOBOT_APPROVAL_TIMEOUT_SEC`).
    pub approval_timeout: std::time::Duration,
    /// Whether `ask_codex` is listed (`TWOBOT_ENABLE_ASK_TOOL`).
    pub enable_ask_tool: bool,
    /// HTTP settings, validated by `http::HttpConfig` when the transport is http.
    pub http: HttpArgs,
    /// The built-in authorization server's settings, validated by `oauth::OAuthSettings`.
    pub oauth: OAuthArgs,
    /// State directory (`None`: nothing persists).
    pub state_dir: Option<PathBuf>,
    /// The shared PostgreSQL database (`TWOBOT_DATABASE_URL`), checked to parse; when
    /// set, the state lives there instead of `state_dir`. It holds a password: show
    /// [`crate::state::redact_url`]'s form.
    pub database_url: Option<String>,
    /// How this instance reaches the others of its service, and they it.
    pub peers: PeerConfig,
    /// Background runs and their registry bounds.
    pub runs: KeptConfig,
    /// The audit log's file, if any.
    pub audit_log: Option<PathBuf>,
    /// Whether audit records keep prompts in full.
    pub audit_prompts: bool,
    /// The audit log's size bound and summary interval.
    pub audit_limits: crate::audit::AuditLimits,
    /// Where `/metrics` is served, if anywhere.
    pub metrics_addr: Option<std::net::SocketAddr>,
}

/// `$XDG_DATA_HOME/2bot`, else `$HOME/.local/share/2bot`: the state directory when
/// TWOBOT_STATE_DIR is unset.
pub fn default_state_dir() -> Option<PathBuf> {
    let nonempty = |var: &str| {
        std::env::var_os(var)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    nonempty("XDG_DATA_HOME")
        .or_else(|| nonempty("HOME").map(|h| h.join(".local/share")))
        .map(|d| d.join("2bot"))
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
        let running_per_principal = PrincipalLimits::running_share(
            max_concurrent_runs,
            cli.max_concurrent_runs_per_principal,
        )
        .map_err(|reason| ConfigError::Invalid {
            var: "TWOBOT_MAX_CONCURRENT_RUNS_PER_PRINCIPAL",
            value: cli
                .max_concurrent_runs_per_principal
                .map(|n| n.to_string())
                .unwrap_or_default(),
            reason: reason.to_string(),
        })?;
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
        runner.backend = match cli.codex_backend {
            CodexBackend::Exec => crate::runner::Backend::Exec,
            CodexBackend::AppServer => crate::runner::Backend::AppServer,
        };

        let database_url = cli.database_url.filter(|u| !u.is_empty());
        if let Some(url) = &database_url
            && let Some(reason) = crate::state::postgres::DatabaseUrl::problem(url)
        {
            return Err(ConfigError::Invalid {
                var: "TWOBOT_DATABASE_URL",
                value: crate::state::redact_url(url),
                reason: reason.to_string(),
            });
        }

        let per_principal = PrincipalLimits {
            running: running_per_principal,
            queued: cli.max_queued_runs_per_principal as usize,
            kept: cli.max_runs_per_principal as usize,
            sessions: cli.http.max_sessions_per_principal as usize,
            inflight: cli.http.max_inflight_per_principal as usize,
        };
        let peers = PeerConfig::from_args(cli.peers, database_url.is_some())?;
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
            },
            per_principal,
            runner,
            log_format: cli.log_format,
            run_namespaces: cli.run_namespaces,
            approval_timeout: std::time::Duration::from_secs(cli.approval_timeout_sec),
            enable_ask_tool: cli.enable_ask_tool,
            http: cli.http,
            oauth: cli.oauth,
            state_dir: cli.state_dir.or_else(default_state_dir),
            database_url,
            peers,
            runs: KeptConfig {
                background: cli.enable_background_runs,
                tasks: cli.enable_tasks,
                ttl: std::time::Duration::from_secs(cli.task_ttl_sec),
                max_runs: cli.max_runs as usize,
                max_runs_per_principal: per_principal.kept,
            },
            audit_log: cli.audit_log,
            audit_prompts: cli.audit_prompts,
            audit_limits: crate::audit::AuditLimits {
                max_bytes: cli.audit_max_bytes,
                keep: cli.audit_keep,
                summary_every: std::time::Duration::from_secs(cli.audit_summary_sec),
            },
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
            max_queued_runs_per_principal = self.per_principal.queued,
            max_concurrent_runs_per_principal = self.per_principal.running,
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
