//! The doctor's checks of Codex itself: the binary and its flags, its credentials, and
//! whether its sandbox can run a command on this machine. They start Codex with the very
//! environment a run gives it, so what passes here is what a run will meet.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Check, Level, check};
use crate::codex::command::{EXEC_FLAGS, RESUME_FLAGS};
use crate::config::Config;
use crate::runner::{RunnerConfig, spawn};

/// The Codex release 2Bot is built and tested against.
pub const KNOWN_CODEX: (u64, u64) = (0, 169);

pub(super) async fn codex_checks(config: &Config) -> Vec<Check> {
    let mut report = Vec::new();
    let program = &config.runner.program;
    let env = crate::runner::env::child_env(std::env::vars_os(), &config.runner.env, None);
    let Some(path) = find_program(program, env.get(&OsString::from("PATH"))) else {
        report.push(check(
            Level::Fail,
            "codex",
            format!(
                "{} not found (CODEX_BIN={}); install it with `npm install -g @openai/codex@0.169.0` or point CODEX_BIN at it",
                program.display(),
                program.display()
            ),
        ));
        return report;
    };

    // Probes start Codex as runs do (supervisor, Codex user, scrubbed environment).
    let mut runner = config.runner.clone();
    runner.program = path.clone();
    let version = match output(&runner, &["--version"]).await {
        Ok(text) => text.trim().to_owned(),
        Err(e) => {
            report.push(check(
                Level::Fail,
                "codex",
                format!("{} does not answer --version: {e}", path.display()),
            ));
            return report;
        }
    };
    let help = output(&runner, &["exec", "--help"]).await;
    let resume_help = output(&runner, &["exec", "resume", "--help"]).await;
    let mut missing: Vec<String> = Vec::new();
    match &help {
        Ok(text) => missing.extend(
            missing_flags(text, EXEC_FLAGS)
                .into_iter()
                .map(|f| format!("exec {f}")),
        ),
        Err(_) => missing.push("exec --help".to_owned()),
    }
    match &resume_help {
        Ok(text) => missing.extend(
            missing_flags(text, RESUME_FLAGS)
                .into_iter()
                .map(|f| format!("exec resume {f}")),
        ),
        Err(_) => missing.push("exec resume --help".to_owned()),
    }
    let known =
        parse_version(&version).is_some_and(|(major, minor, _)| (major, minor) == KNOWN_CODEX);
    let (level, detail) = match (known, missing.is_empty()) {
        (true, true) => (Level::Ok, format!("{} ({version})", path.display())),
        (false, true) => (
            Level::Warn,
            format!(
                "{} ({version}) is not the release 2Bot is tested with (0.169.x), though every flag it uses exists",
                path.display()
            ),
        ),
        (_, false) => (
            Level::Fail,
            format!(
                "{} ({version}) is not a Codex 2Bot knows: missing {}; install @openai/codex@0.169.0",
                path.display(),
                missing.join(", ")
            ),
        ),
    };
    report.push(check(level, "codex", detail));
    report.push(backend_check(&runner, &config.policy.default_cwd).await);
    report.push(credentials_check(&env));
    report.push(model_endpoint_check(&env).await);
    report.push(sandbox_check(&runner, &config.policy.default_cwd).await);
    report
}

/// Which backend runs Codex (`TWOBOT_CODEX_BACKEND`), and for app-server whether this
/// Codex has `app-server` (started as a run starts it).
async fn backend_check(runner: &RunnerConfig, cwd: &Path) -> Check {
    const NAME: &str = "codex backend";
    match runner.backend {
        crate::runner::Backend::Exec => check(
            Level::Ok,
            NAME,
            "exec: one `codex exec --json -` per run (TWOBOT_CODEX_BACKEND=exec)",
        ),
        crate::runner::Backend::AppServer => {
            match spawn::probe(runner, &["app-server", "--help"], cwd, PROBE_TIMEOUT).await {
                Ok(out) if out.status.success() => check(
                    Level::Ok,
                    NAME,
                    "app-server: one `codex app-server` per run, with approvals and steering (TWOBOT_CODEX_BACKEND=app-server; profiles need exec)",
                ),
                Ok(out) => check(
                    Level::Fail,
                    NAME,
                    format!(
                        "TWOBOT_CODEX_BACKEND=app-server, but `codex app-server --help` exited with {}: install @openai/codex@0.169.0 or use TWOBOT_CODEX_BACKEND=exec",
                        out.status
                    ),
                ),
                Err(e) => check(
                    Level::Fail,
                    NAME,
                    format!(
                        "TWOBOT_CODEX_BACKEND=app-server, but `codex app-server --help` failed: {e}"
                    ),
                ),
            }
        }
    }
}

/// Whether Codex's sandbox can run one command here, as a run would: same environment,
/// started in the default cwd (Codex ignores a `bwrap` found under its cwd). When it cannot,
/// Codex refuses every command of every run while the turn still "succeeds".
async fn sandbox_check(runner: &RunnerConfig, cwd: &Path) -> Check {
    const NAME: &str = "codex sandbox";
    let probe = spawn::probe(runner, &["sandbox", "--", "true"], cwd, PROBE_TIMEOUT).await;
    let why = match probe {
        Ok(out) if out.status.success() => {
            return check(Level::Ok, NAME, "runs a command (`codex sandbox -- true`)");
        }
        Ok(out) => {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let line = stderr
                .lines()
                .map(str::trim)
                .rfind(|l| !l.is_empty() && !l.starts_with("WARNING: proceeding"))
                .unwrap_or("no message")
                .to_owned();
            // Codex's own `Error:` (a bad config, a missing CODEX_HOME) stops it before any
            // sandbox starts: another check names that problem; this one cannot tell.
            if line.starts_with("Error:") {
                return check(
                    Level::Warn,
                    NAME,
                    format!("not tested: Codex stopped before starting its sandbox ({line})"),
                );
            }
            format!("exited with {}: {line}", out.status)
        }
        Err(e) => e.to_string(),
    };
    check(
        Level::Fail,
        NAME,
        format!(
            "Codex's sandbox cannot run a command here (`codex sandbox -- true` in {}: {why}), so Codex will refuse every command while its turns still look successful. Codex prefers a `bwrap` found on PATH (e.g. Debian's bubblewrap package): let it create user namespaces (on Ubuntu/AppArmor, an AppArmor profile for bwrap or kernel.apparmor_restrict_unprivileged_userns=0; in a container, allow user namespaces), or take that bwrap off the PATH Codex gets so Codex uses the one it bundles; then run `2bot-mcp doctor` again",
            cwd.display()
        ),
    )
}

/// Can this machine open a connection to Codex's model endpoint? (Here, not in
/// `model_endpoint`, which the runner uses too and so must not know the doctor's report.)
async fn model_endpoint_check(env: &BTreeMap<OsString, OsString>) -> Check {
    use crate::model_endpoint::{PROBE_TIMEOUT, for_env, probe};
    let missing_home = env
        .get(&OsString::from("CODEX_HOME"))
        .filter(|h| !h.is_empty() && !Path::new(h).is_dir());
    let (level, detail) = match (missing_home, for_env(env)) {
        // Codex stops at start-up then (the sandbox check says so); it never calls its model.
        (Some(home), _) => (
            Level::Skip,
            format!(
                "not probed: CODEX_HOME {} does not exist",
                Path::new(home).display()
            ),
        ),
        (None, result) => match result {
            Err(e) => (
                Level::Fail,
                format!("{e}; Codex cannot send a prompt anywhere"),
            ),
            Ok(endpoint) => match probe(&endpoint, PROBE_TIMEOUT).await {
                Ok(()) => (
                    Level::Ok,
                    format!(
                        "{endpoint} accepts connections (model provider {:?}, {}; TCP connect only, nothing sent)",
                        endpoint.provider, endpoint.url
                    ),
                ),
                Err(why) => (
                    Level::Fail,
                    format!(
                        "{endpoint}: {why} (model provider {:?}, {}); every run would retry, then stop after TWOBOT_MODEL_UNREACHABLE_SEC; check the network, a proxy, or base_url in Codex's config.toml",
                        endpoint.provider, endpoint.url
                    ),
                ),
            },
        },
    };
    Check {
        level,
        name: "model endpoint",
        detail,
    }
}

/// Where Codex would find credentials, in the environment it will actually get.
fn credentials_check(env: &std::collections::BTreeMap<OsString, OsString>) -> Check {
    let var = |name: &str| {
        env.get(&OsString::from(name))
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    for key in ["OPENAI_API_KEY", "CODEX_API_KEY"] {
        if var(key).is_some() {
            return check(
                Level::Ok,
                "codex credentials",
                format!("{key} is set (value not shown)"),
            );
        }
    }
    let home = var("CODEX_HOME").or_else(|| var("HOME").map(|h| h.join(".codex")));
    let Some(home) = home else {
        return check(
            Level::Fail,
            "codex credentials",
            "neither CODEX_HOME nor HOME is set for Codex, so it has no credentials; set HOME or CODEX_HOME",
        );
    };
    let auth = home.join("auth.json");
    if auth.is_file() {
        return check(
            Level::Ok,
            "codex credentials",
            format!("{} (codex login; not shown)", auth.display()),
        );
    }
    if let Some(provider) = custom_provider(&home.join("config.toml")) {
        return check(
            Level::Ok,
            "codex credentials",
            format!(
                "model provider {provider:?} from {} (its own credentials)",
                home.join("config.toml").display()
            ),
        );
    }
    check(
        Level::Fail,
        "codex credentials",
        format!(
            "none found: no OPENAI_API_KEY, no {}; run `codex login` as the user 2Bot runs as (with the same CODEX_HOME)",
            auth.display()
        ),
    )
}

/// A `model_provider` other than OpenAI's, from Codex's config.toml.
fn custom_provider(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let table: toml::Table = text.parse().ok()?;
    table
        .get("model_provider")
        .and_then(toml::Value::as_str)
        .filter(|p| *p != "openai")
        .map(str::to_owned)
}

/// Find `program` as the server would spawn it: a path as is, a bare name on `PATH`.
fn find_program(program: &Path, path: Option<&OsString>) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.components().count() > 1 {
        return executable(program).then(|| program.to_owned());
    }
    std::env::split_paths(path?)
        .map(|dir| dir.join(program))
        .find(|candidate| executable(candidate))
}

/// How long a probe of Codex may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(20);

/// Why a probe of Codex gave no usable output.
#[derive(Debug, thiserror::Error)]
enum OutputError {
    /// Codex did not start or did not finish.
    #[error(transparent)]
    Probe(#[from] spawn::ProbeError),
    /// Codex ran and failed: an option it lacks, say (the command line, its status).
    #[error("`{0}` exited with {1}")]
    Exit(String, std::process::ExitStatus),
}

/// Run Codex with `args` as a run would start it (but no stdin, in `/`); its stdout.
async fn output(runner: &RunnerConfig, args: &[&str]) -> Result<String, OutputError> {
    let out = spawn::probe(runner, args, Path::new("/"), PROBE_TIMEOUT).await?;
    if !out.status.success() {
        return Err(OutputError::Exit(args.join(" "), out.status));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `codex-cli 0.169.0` → `(0, 169, 0)`.
pub fn parse_version(text: &str) -> Option<(u64, u64, u64)> {
    let word = text
        .split_whitespace()
        .find(|w| w.chars().next().is_some_and(|c| c.is_ascii_digit()))?;
    let mut parts = word.split(['.', '-', '+']);
    let mut next = || parts.next().and_then(|p| p.parse::<u64>().ok());
    Some((next()?, next()?, next()?))
}

/// The flags of `required` that `help` (clap's `--help` output) does not list as options.
pub fn missing_flags<'a>(help: &str, required: &[&'a str]) -> Vec<&'a str> {
    let listed: BTreeSet<&str> = help
        .lines()
        .map(str::trim_start)
        .filter(|line| line.starts_with('-'))
        .flat_map(|line| line.split([' ', ',', '=', '<', '[']))
        .filter(|token| token.starts_with('-') && token.len() > 1)
        .collect();
    required
        .iter()
        .copied()
        .filter(|flag| !listed.contains(flag))
        .collect()
}

#[cfg(test)]
#[path = "codex_tests.rs"]
mod tests;
