//! `2bot-mcp doctor`: check a set-up before serving it, one line per check.
//!
//! Operators run it after editing the environment, the policy file or the unit, and
//! before pointing ChatGPT at the server. Each check says what it found and, when
//! something is wrong, what to do; the exit code is non-zero if any check failed.
//! The checks use the same code the server does (config loading, HTTP settings
//! validation, the child environment), so "doctor passes" means "the server starts".
//! Nothing secret is printed: credentials are named by where they are, never shown.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::codex::command::{EXEC_FLAGS, RESUME_FLAGS};
use crate::config::{Cli, Config, Transport};
use crate::policy::PolicyFile;

/// The Codex release 2Bot is built and tested against.
pub const KNOWN_CODEX: (u64, u64) = (0, 169);

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
    let Some(config) = config else {
        return report;
    };

    report.extend(codex_checks(&config).await);
    report.push(state_dir_check(&config));
    report.extend(http_checks(&config).await);
    report
}

/// Each secret file 2Bot reads, against the user Codex runs as (`TWOBOT_CODEX_USER`, else
/// 2Bot's own): a file Codex's commands can read hands every caller its secrets.
fn secret_file_checks(cli: &Cli) -> Vec<Check> {
    use crate::runner::user;
    use std::os::unix::fs::MetadataExt;
    let files: Vec<(&str, &Path)> = [("TWOBOT_AUTH_TOKENS_FILE", &cli.http.auth_tokens_file)]
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

async fn codex_checks(config: &Config) -> Vec<Check> {
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

    let version = match output(&path, &["--version"], &env).await {
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
    let help = output(&path, &["exec", "--help"], &env).await;
    let resume_help = output(&path, &["exec", "resume", "--help"], &env).await;
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
    report.push(credentials_check(&env));
    report.push(crate::model_endpoint::doctor_check(&env).await);
    report.push(sandbox_check(&path, &config.policy.default_cwd, &env).await);
    report
}

/// Whether Codex's sandbox can run one command here, as a run would: same environment,
/// started in the default cwd (Codex ignores a `bwrap` found under its cwd). When it cannot,
/// Codex refuses every command of every run while the turn still "succeeds".
async fn sandbox_check(
    codex: &Path,
    cwd: &Path,
    env: &std::collections::BTreeMap<OsString, OsString>,
) -> Check {
    const NAME: &str = "codex sandbox";
    let probe = tokio::process::Command::new(codex)
        .args(["sandbox", "--", "true"])
        .current_dir(cwd)
        .env_clear()
        .envs(env)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .output();
    let why = match tokio::time::timeout(Duration::from_secs(20), probe).await {
        Ok(Ok(out)) if out.status.success() => {
            return check(Level::Ok, NAME, "runs a command (`codex sandbox -- true`)");
        }
        Ok(Ok(out)) => {
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
        Ok(Err(e)) => e.to_string(),
        Err(_) => "did not finish within 20 s".to_owned(),
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

async fn http_checks(config: &Config) -> Vec<Check> {
    if config.transport != Transport::Http {
        return vec![check(
            Level::Skip,
            "http",
            "transport is stdio (TWOBOT_TRANSPORT=http to check the HTTP set-up)",
        )];
    }
    let mut report = Vec::new();
    let bind = std::net::SocketAddr::new(config.host, config.port);
    let settings = match crate::http::HttpSettings::new(config, bind) {
        Ok(settings) => settings,
        Err(e) => {
            report.push(check(Level::Fail, "auth", e.to_string()));
            return report;
        }
    };
    report.extend(auth_coherence(config, &settings));
    match tokio::net::TcpListener::bind(bind).await {
        Ok(_) => report.push(check(Level::Ok, "port", format!("{bind} is free"))),
        Err(e) => report.push(check(
            Level::Fail,
            "port",
            format!("cannot listen on {bind}: {e}; stop what holds it or set TWOBOT_PORT"),
        )),
    }
    report
}

/// Auth settings that start but will not work with a real authorization server.
fn auth_coherence(config: &Config, settings: &crate::http::HttpSettings) -> Vec<Check> {
    let mut report = Vec::new();
    let Some(auth) = &settings.auth else {
        report.push(match &settings.public_no_auth {
            None => check(
                Level::Ok,
                "auth",
                "no-auth mode on loopback (for first tests; set TWOBOT_ENABLE_NO_AUTH=false with credentials before exposing it)",
            ),
            Some(exposure) => check(
                Level::Warn,
                "auth",
                format!(
                    "no-auth mode on {exposure} (TWOBOT_ALLOW_PUBLIC_NO_AUTH=true): anyone who reaches it can run Codex"
                ),
            ),
        });
        return report;
    };
    let mut kinds = Vec::new();
    if !auth.tokens.is_empty() {
        kinds.push(format!("{} static token(s)", auth.tokens.len()));
    }
    if !auth.jwt_keys.is_empty() {
        kinds.push(format!("{} JWT key(s)", auth.jwt_keys.len()));
    }
    if let Some(url) = &auth.jwks_url {
        kinds.push(format!("JWKS {url}"));
    }
    report.push(check(Level::Ok, "auth", kinds.join(", ")));
    let jwt = !auth.jwt_keys.is_empty() || auth.jwks_url.is_some();
    let resource = settings.resource();
    if jwt && config.base_url.is_none() {
        report.push(check(
            Level::Warn,
            "auth",
            format!(
                "TWOBOT_BASE_URL is not set: the JWT audience and the OAuth resource are {resource}, which no public authorization server issues tokens for; set TWOBOT_BASE_URL to the public HTTPS URL"
            ),
        ));
    }
    if jwt && auth.audience != resource {
        report.push(check(
            Level::Warn,
            "auth",
            format!(
                "TWOBOT_JWT_AUDIENCE={:?} differs from the resource URL {resource:?} in the protected-resource metadata; OAuth clients (ChatGPT) ask for tokens whose audience is the resource",
                auth.audience
            ),
        ));
    }
    if jwt && auth.issuer.is_none() {
        report.push(check(
            Level::Warn,
            "auth",
            "TWOBOT_JWT_ISSUER is not set: tokens from any issuer holding the key are accepted",
        ));
    }
    if let Some(base) = &config.base_url
        && base.starts_with("http://")
    {
        report.push(check(
            Level::Warn,
            "base url",
            format!("TWOBOT_BASE_URL={base} is not https; ChatGPT needs an HTTPS URL"),
        ));
    }
    report
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

/// Run `program args` with Codex's environment and no stdin; its stdout, within 20 s.
async fn output(
    program: &Path,
    args: &[&str],
    env: &std::collections::BTreeMap<OsString, OsString>,
) -> Result<String, String> {
    let child = tokio::process::Command::new(program)
        .args(args)
        .env_clear()
        .envs(env)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(Duration::from_secs(20), child).await {
        Ok(Ok(out)) if out.status.success() => {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        }
        Ok(Ok(out)) => Err(format!("`{}` exited with {}", args.join(" "), out.status)),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("`{}` did not answer within 20 s", args.join(" "))),
    }
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
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn versions_are_read_from_what_codex_prints() {
        for (text, expect) in [
            ("codex-cli 0.169.0", Some((0, 169, 0))),
            ("codex-cli 0.169.2\n", Some((0, 169, 2))),
            ("codex-cli 0.170.0-alpha.1", Some((0, 170, 0))),
            ("codex-cli 0.169.0 (fake)", Some((0, 169, 0))),
            ("codex 1.2", None),
            ("not a version", None),
            ("", None),
        ] {
            assert_eq!(parse_version(text), expect, "{text:?}");
        }
    }

    #[test]
    fn flags_count_only_when_listed_as_options_not_mentioned_in_prose() {
        let help = "Options:\n  -s, --sandbox <SANDBOX_MODE>\n          Persists even with --ephemeral.\n      --json\n  -c, --config <key=value>\n";
        assert_eq!(
            missing_flags(help, &["-s", "--sandbox", "--json", "-c"]),
            Vec::<&str>::new()
        );
        assert_eq!(
            missing_flags(help, &["--ephemeral", "-C"]),
            ["--ephemeral", "-C"]
        );
        assert_eq!(missing_flags("", &["--json"]), ["--json"]);
    }

    #[test]
    fn a_custom_model_provider_counts_as_credentials_and_openai_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "model_provider = \"mock\"\n").unwrap();
        assert_eq!(custom_provider(&path).as_deref(), Some("mock"));
        std::fs::write(&path, "model_provider = \"openai\"\n").unwrap();
        assert_eq!(custom_provider(&path), None);
        std::fs::write(&path, "not toml [").unwrap();
        assert_eq!(custom_provider(&path), None);
    }

    #[test]
    fn a_bare_name_is_looked_up_on_path_and_a_path_is_taken_as_is() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("codex");
        std::fs::write(&bin, "#!/bin/sh\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = OsString::from(format!("/nonexistent:{}", dir.path().display()));
        assert_eq!(
            find_program(Path::new("codex"), Some(&path)),
            Some(bin.clone())
        );
        assert_eq!(find_program(&bin, None), Some(bin.clone()));
        assert_eq!(find_program(Path::new("codex"), None), None);
        assert_eq!(find_program(&dir.path().join("nope"), Some(&path)), None);
    }
}
