//! `2bot-mcp doctor`: check a set-up before serving it, one line per check.
//!
//! Operators run it after editing the environment, the policy file or the unit, and
//! before pointing ChatGPT at the server. Each check says what it found and, when
//! something is wrong, what to do; the exit code is non-zero if any check failed.
//! The checks use the same code the server does (config loading, HTTP settings
//! validation, the child environment), so "doctor passes" means "the server starts".
//! Nothing secret is printed: credentials are named by where they are, never shown.
//!
//! This file holds the report and the checks of the set-up itself (policy file, roots,
//! secret files, state directory); `codex.rs` checks Codex, `http.rs` the HTTP transport,
//! `oauth.rs` the built-in authorization server, `state.rs` the shared state database.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::config::{Cli, Config};
use crate::policy::PolicyFile;

mod codex;
mod http;
mod oauth;
mod state;

pub use self::codex::{KNOWN_CODEX, missing_flags, parse_version};

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Fine.
    Ok,
    /// Works, but deserves a look.
    Warn,
    /// The server will not work (or not start) this way.
    Fail,
    /// Not checked (not relevant to this set-up, or an earlier check failed).
    Skip,
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// Outcome.
    pub level: Level,
    /// What was checked.
    pub name: &'static str,
    /// What was found, and what to do about it.
    pub detail: String,
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tag = match self.level {
            Level::Ok => "ok  ",
            Level::Warn => "warn",
            Level::Fail => "FAIL",
            Level::Skip => "skip",
        };
        write!(f, "[{tag}] {}: {}", self.name, self.detail)
    }
}

fn check(level: Level, name: &'static str, detail: impl Into<String>) -> Check {
    Check {
        level,
        name,
        detail: detail.into(),
    }
}

/// `2bot-mcp doctor`: every check on stdout, then a summary line; exit 1 if any failed.
pub fn main(cli: Cli) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let report = runtime.block_on(run(cli));
    for check in &report {
        println!("{check}");
    }
    let failed = report.iter().filter(|c| c.level == Level::Fail).count();
    if failed == 0 {
        println!("doctor: no problem found");
        ExitCode::SUCCESS
    } else {
        println!("doctor: {failed} problem(s) found");
        ExitCode::FAILURE
    }
}

/// Run every check for the set-up `cli` describes.
pub async fn run(cli: Cli) -> Vec<Check> {
    let mut report = Vec::new();

    // The policy file, on its own, so a parse error is named as such.
    let file = match &cli.policy_file {
        None => {
            report.push(check(Level::Ok, "policy file", "none (built-in defaults)"));
            Some(PolicyFile::default())
        }
        Some(path) => match PolicyFile::load(path) {
            Ok(file) => {
                report.push(check(Level::Ok, "policy file", path.display().to_string()));
                Some(file)
            }
            Err(e) => {
                report.push(check(
                    Level::Fail,
                    "policy file",
                    format!("TWOBOT_POLICY_FILE: {e}; fix the file (see policies/ for examples)"),
                ));
                None
            }
        },
    };

    // Each allowed root, so every missing one is named.
    let roots = cli
        .allowed_roots
        .clone()
        .or_else(|| file.as_ref().and_then(|f| f.allowed_roots.clone()))
        .unwrap_or_default();
    let roots: Vec<PathBuf> = roots
        .into_iter()
        .filter(|r| !r.as_os_str().is_empty())
        .collect();
    let mut roots_ok = true;
    if roots.is_empty() {
        report.push(check(
            Level::Warn,
            "allowed roots",
            "CODEX_ALLOWED_ROOTS is not set: Codex may be pointed at any directory this user can read; set it to the few directories Codex needs",
        ));
    }
    for root in &roots {
        match std::fs::metadata(root) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                roots_ok = false;
                report.push(check(
                    Level::Fail,
                    "allowed roots",
                    format!(
                        "{} is not a directory; fix CODEX_ALLOWED_ROOTS",
                        root.display()
                    ),
                ));
            }
            Err(e) => {
                roots_ok = false;
                report.push(check(
                    Level::Fail,
                    "allowed roots",
                    format!(
                        "{} does not exist or is unreadable ({e}); create it or fix CODEX_ALLOWED_ROOTS",
                        root.display()
                    ),
                ));
            }
        }
    }
    if roots_ok && !roots.is_empty() {
        let list: Vec<String> = roots.iter().map(|r| r.display().to_string()).collect();
        report.push(check(Level::Ok, "allowed roots", list.join(":")));
    }

    report.extend(secret_file_checks(&cli));
    let codex_user = cli.codex_user.clone().filter(|u| !u.is_empty());

    let config = if file.is_some() && roots_ok {
        match Config::load(cli) {
            Ok(config) => Some(config),
            Err(e) => {
                report.push(check(Level::Fail, "configuration", e.to_string()));
                None
            }
        }
    } else {
        report.push(check(
            Level::Skip,
            "configuration",
            "fix the failures above first",
        ));
        None
    };
    let Some(mut config) = config else {
        return report;
    };
    // Probes start Codex as runs do: through the supervisor, as the Codex user.
    let roots = config.policy.allowed_roots.clone();
    if let Err(e) = config.runner.for_this_binary(roots, codex_user.as_deref()) {
        report.push(check(Level::Fail, "codex user", e.to_string()));
        config.runner.codex_user = None;
    }
    report.push(isolation_check(&config));
    report.push(path_lookup_check());

    report.extend(codex::codex_checks(&config).await);
    report.push(state_dir_check(&config));
    // The state lives in one of the two backends; each is checked read-only.
    match &config.database_url {
        Some(_) => report.extend(state::state_checks(&config).await),
        None => report.push(state_store_check(&config)),
    }
    report.extend(http::http_checks(&config).await);
    report.extend(oauth::oauth_checks(&config, codex_user.as_deref()));
    report
}

/// Whether runs get private mount and PID namespaces here (`TWOBOT_RUN_NAMESPACES`).
fn isolation_check(config: &Config) -> Check {
    use crate::config::RunNamespaces;
    const NAME: &str = "run isolation";
    if config.run_namespaces == RunNamespaces::Off {
        return check(
            Level::Warn,
            NAME,
            "TWOBOT_RUN_NAMESPACES=off: Codex receives directory names that a concurrent run able to write beneath a root could re-point, and a command can signal its supervisor",
        );
    }
    let supervisor = config.runner.supervisor.clone().unwrap_or_default();
    match crate::runner::namespace::probe(&supervisor, config.runner.codex_user.as_ref()) {
        Ok(()) => check(
            Level::Ok,
            NAME,
            "each run gets private mount and PID namespaces (its directories at private names under /mnt)",
        ),
        Err(reason) => check(
            if config.run_namespaces == RunNamespaces::Required {
                Level::Fail
            } else {
                Level::Warn
            },
            NAME,
            format!(
                "runs cannot be isolated here ({reason}); TWOBOT_RUN_NAMESPACES={} {}",
                config.run_namespaces.as_str(),
                if config.run_namespaces == RunNamespaces::Required {
                    "refuses to start"
                } else {
                    "runs them without (see SECURITY.md, Containment)"
                }
            ),
        ),
    }
}

/// Whether the policy check and the run's preparation can walk a call's paths from the
/// kernel's lookup caches on the runtime thread (`RESOLVE_CACHED`, Linux 5.12), or must
/// look up every one on the blocking pool: correct either way, the second slower.
fn path_lookup_check() -> Check {
    const NAME: &str = "path lookups";
    if crate::policy::kernel_walks_cached() {
        check(
            Level::Ok,
            NAME,
            "from the kernel's lookup caches first (openat2 RESOLVE_CACHED); a path not cached is looked up on the blocking pool",
        )
    } else {
        check(
            Level::Ok,
            NAME,
            "every path is looked up on the blocking pool: this kernel (or a seccomp filter) refuses openat2's RESOLVE_CACHED, which Linux 5.12 has; about 0.2 ms more per call",
        )
    }
}

/// Each secret file 2Bot reads, against the user Codex runs as (`TWOBOT_CODEX_USER`, else
/// 2Bot's own): a file Codex's commands can read hands every caller its secrets.
fn secret_file_checks(cli: &Cli) -> Vec<Check> {
    use crate::runner::user;
    use std::os::unix::fs::MetadataExt;
    let files: Vec<(&str, &Path)> = [
        ("TWOBOT_AUTH_TOKENS_FILE", &cli.http.auth_tokens_file),
        // A hash, but one Codex can read is open to an offline guess.
        ("TWOBOT_OAUTH_PASSWORD_FILE", &cli.oauth.oauth_password_file),
    ]
    .into_iter()
    .filter_map(|(var, f)| f.as_deref().map(|f| (var, f)))
    .collect();
    if files.is_empty() {
        return Vec::new();
    }
    let codex = match cli.codex_user.as_deref().filter(|s| !s.is_empty()) {
        Some(spec) => match user::resolve(spec) {
            Ok(u) => u,
            Err(e) => return vec![check(Level::Fail, "codex user", e.to_string())],
        },
        None => user::CodexUser {
            name: "2Bot's own user".to_owned(),
            uid: nix::unistd::geteuid().as_raw(),
            gid: nix::unistd::getegid().as_raw(),
            groups: nix::unistd::getgroups()
                .unwrap_or_default()
                .into_iter()
                .map(nix::unistd::Gid::as_raw)
                .collect(),
        },
    };
    files
        .into_iter()
        .map(|(var, path)| match std::fs::metadata(path) {
            Ok(m) if user::readable_by(m.mode(), m.uid(), m.gid(), codex.uid, &codex.groups) => check(
                Level::Warn,
                "secret file",
                format!(
                    "{var} {} is readable by the user Codex runs as ({}, uid {}), so any caller's Codex command can read it; set TWOBOT_CODEX_USER to a separate user and make the file 0640 root:<2Bot's group> (or use systemd LoadCredential=)",
                    path.display(),
                    codex.name,
                    codex.uid
                ),
            ),
            Ok(_) => check(
                Level::Ok,
                "secret file",
                format!("{var} {} is not readable by Codex's user ({})", path.display(), codex.name),
            ),
            // A missing or unreadable file is reported where the HTTP settings are checked.
            Err(e) => check(Level::Skip, "secret file", format!("{var} {}: {e}", path.display())),
        })
        .collect()
}

/// The state store: reachable, and at a schema version this build knows (read only).
fn state_store_check(config: &Config) -> Check {
    use crate::state::{SqliteStore, sqlite::SCHEMA_VERSION};
    let Some(dir) = &config.state_dir else {
        return check(Level::Skip, "state store", "in memory (no state directory)");
    };
    match SqliteStore::inspect(dir) {
        Ok(None) => check(
            Level::Ok,
            "state store",
            format!("sqlite: state.db is created at first start (schema version {SCHEMA_VERSION})"),
        ),
        Ok(Some(v)) if v == SCHEMA_VERSION => check(
            Level::Ok,
            "state store",
            format!("sqlite: state.db at schema version {v}"),
        ),
        Ok(Some(v)) => check(
            Level::Ok,
            "state store",
            format!(
                "sqlite: state.db at schema version {v}; migrated to {SCHEMA_VERSION} at the next start"
            ),
        ),
        Err(e) => check(Level::Fail, "state store", format!("sqlite: {e}")),
    }
}

fn state_dir_check(config: &Config) -> Check {
    match &config.state_dir {
        None => check(
            Level::Warn,
            "state dir",
            "no TWOBOT_STATE_DIR and no HOME: thread ownership is kept in memory and lost at restart",
        ),
        Some(dir) => match std::fs::metadata(dir) {
            Ok(m) if m.is_dir() => check(Level::Ok, "state dir", dir.display().to_string()),
            Ok(_) => check(
                Level::Fail,
                "state dir",
                format!("{} is not a directory; fix TWOBOT_STATE_DIR", dir.display()),
            ),
            Err(_) => check(
                Level::Ok,
                "state dir",
                format!("{} (created at first start)", dir.display()),
            ),
        },
    }
}
