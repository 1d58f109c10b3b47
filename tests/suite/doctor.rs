//! `2bot-mcp doctor` and `2bot-mcp --print-config`, run as an operator would: the real
//! binary, a real Codex 0.169 (from `npm ci`) for the healthy case, one broken thing at
//! a time for the failures.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::common::real_codex;

/// Codex's configuration: the mock model provider at `addr`.
fn write_codex_config(codex_home: &Path, addr: std::net::SocketAddr) -> Result<()> {
    std::fs::write(
        codex_home.join("config.toml"),
        format!(
            "model_provider = \"mock\"\n[model_providers.mock]\nname = \"mock\"\nbase_url = \"http://{addr}/v1\"\nwire_api = \"responses\"\n"
        ),
    )?;
    Ok(())
}

/// A healthy set-up in a temp dir: an allowed root, a Codex home with a (mock) model
/// provider as its credentials, any free port, HTTP with no-auth on loopback.
pub(super) struct Setup {
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
    /// The model endpoint: a listening socket is enough for doctor's connect-only probe.
    _model: std::net::TcpListener,
}

impl Setup {
    pub(super) fn healthy() -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let base = dir.path().canonicalize()?;
        let root = base.join("root");
        let codex_home = base.join("codex-home");
        std::fs::create_dir_all(&root)?;
        std::fs::create_dir_all(&codex_home)?;
        let model = std::net::TcpListener::bind("127.0.0.1:0")?;
        write_codex_config(&codex_home, model.local_addr()?)?;
        let policy = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/default.toml");
        let env = vec![
            ("PATH".into(), std::env::var("PATH").unwrap_or_default()),
            ("HOME".into(), base.display().to_string()),
            ("CODEX_HOME".into(), codex_home.display().to_string()),
            ("CODEX_BIN".into(), real_codex().display().to_string()),
            ("CODEX_ALLOWED_ROOTS".into(), root.display().to_string()),
            ("TWOBOT_POLICY_FILE".into(), policy.display().to_string()),
            (
                "TWOBOT_STATE_DIR".into(),
                base.join("state").display().to_string(),
            ),
            ("TWOBOT_TRANSPORT".into(), "http".into()),
            // Any free port: one picked here could be taken before doctor binds it.
            ("TWOBOT_PORT".into(), "0".into()),
        ];
        Ok(Self {
            dir,
            env,
            _model: model,
        })
    }

    /// Codex's model provider at `addr` instead.
    fn point_codex_at(&self, addr: std::net::SocketAddr) -> Result<()> {
        write_codex_config(&self.dir.path().join("codex-home"), addr)
    }

    pub(super) fn with(mut self, key: &str, value: impl Into<String>) -> Self {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.into(), value.into()));
        self
    }

    pub(super) fn without(mut self, key: &str) -> Self {
        self.env.retain(|(k, _)| k != key);
        self
    }

    pub(super) fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub(super) async fn run(&self, args: &[&str]) -> Result<(Option<i32>, String, String)> {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_2bot-mcp"))
            .args(args)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(std::process::Stdio::null())
            .output()
            .await?;
        Ok((
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    }
}

#[tokio::test]
async fn doctor_passes_on_a_healthy_setup() -> Result<()> {
    let setup = Setup::healthy()?;
    let (code, out, err) = setup.run(&["doctor"]).await?;
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(!out.contains("[FAIL]"), "{out}");
    for line in [
        "[ok  ] policy file:",
        "[ok  ] allowed roots:",
        "[ok  ] codex: ",
        "(codex-cli 0.169.0)",
        "[ok  ] codex credentials: model provider \"mock\"",
        "[ok  ] codex sandbox: runs a command",
        "[ok  ] model endpoint: 127.0.0.1:",
        "[ok  ] auth: no-auth mode on loopback",
        "[ok  ] port:",
        "[ok  ] state store: sqlite: state.db is created at first start",
        "doctor: no problem found",
    ] {
        assert!(out.contains(line), "missing {line:?} in:\n{out}");
    }
    // How calls look up their paths on this kernel, as the server will.
    let lookups = if twobot::policy::kernel_walks_cached() {
        "[ok  ] path lookups: from the kernel's lookup caches first"
    } else {
        "[ok  ] path lookups: every path is looked up on the blocking pool"
    };
    assert!(out.contains(lookups), "missing {lookups:?} in:\n{out}");
    Ok(())
}

/// The state store is checked read-only: its schema version once it exists, and one
/// written by a newer 2Bot is a failure (the server would refuse to start on it).
#[tokio::test]
async fn doctor_reports_the_state_schema_and_fails_on_a_newer_one() -> Result<()> {
    let setup = Setup::healthy()?;
    let state = setup.path("state");
    std::fs::create_dir_all(&state)?;
    let db = state.join("state.db");
    let conn = rusqlite::Connection::open(&db)?;
    conn.execute_batch(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_ms INTEGER NOT NULL);
         INSERT INTO schema_migrations VALUES (1, 0);",
    )?;
    let (code, out, _) = setup.run(&["doctor"]).await?;
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("[ok  ] state store: sqlite: state.db at schema version 1"),
        "{out}"
    );
    conn.execute("INSERT INTO schema_migrations VALUES (99, 0)", [])?;
    let (code, out, _) = setup.run(&["doctor"]).await?;
    assert_eq!(code, Some(1), "{out}");
    let failures: Vec<&str> = out.lines().filter(|l| l.starts_with("[FAIL]")).collect();
    assert_eq!(failures.len(), 1, "{out}");
    assert!(
        failures[0].starts_with("[FAIL] state store: sqlite: the state schema is at version 99"),
        "{out}"
    );
    Ok(())
}

/// A model endpoint nobody listens on is named, with why, before any run retries into it.
#[tokio::test]
async fn doctor_names_a_model_endpoint_it_cannot_connect_to() -> Result<()> {
    let setup = Setup::healthy()?;
    // A socket bound and not listening: its port is held (no other process can take it
    // and answer), and every connection to it is refused.
    let refusing = tokio::net::TcpSocket::new_v4()?;
    refusing.bind("127.0.0.1:0".parse()?)?;
    let addr = refusing.local_addr()?;
    setup.point_codex_at(addr)?;
    let (code, out, _) = setup.run(&["doctor"]).await?;
    assert_eq!(code, Some(1), "{out}");
    let line =
        format!("[FAIL] model endpoint: {addr}: connection refused (model provider \"mock\"");
    assert!(out.contains(&line), "missing {line:?} in:\n{out}");
    assert!(out.ends_with("doctor: 1 problem(s) found\n"), "{out}");
    Ok(())
}

/// Each broken set-up fails with exactly one clear line and exit code 1.
#[tokio::test]
async fn doctor_names_each_broken_setup_in_one_line() -> Result<()> {
    let held = std::net::TcpListener::bind("127.0.0.1:0")?;
    let busy_port = held.local_addr()?.port();

    let old = Setup::healthy()?;
    let old_codex = old.path("old-codex");
    std::fs::write(
        &old_codex,
        "#!/bin/sh\nif [ \"$1\" = --version ]; then echo 'codex-cli 0.50.0'; exit 0; fi\nprintf 'Options:\\n  -m, --model <MODEL>\\n  -c, --config <key=value>\\n'\n",
    )?;
    std::fs::set_permissions(&old_codex, std::fs::Permissions::from_mode(0o755))?;
    let bad_policy = old.path("bad-policy.toml");
    std::fs::write(&bad_policy, "sandbox_ceiling = \"everything\"\n")?;

    let cases: Vec<(Setup, &str, &str)> = vec![
        (
            Setup::healthy()?.with("CODEX_BIN", "/nonexistent/codex"),
            "[FAIL] codex: /nonexistent/codex not found",
            "CODEX_BIN",
        ),
        (
            Setup::healthy()?.with("CODEX_BIN", old_codex.display().to_string()),
            "[FAIL] codex: ",
            "is not a Codex 2Bot knows: missing exec --json",
        ),
        (
            Setup::healthy()?.with("CODEX_ALLOWED_ROOTS", "/nonexistent/root"),
            "[FAIL] allowed roots: /nonexistent/root does not exist",
            "CODEX_ALLOWED_ROOTS",
        ),
        (
            Setup::healthy()?.with("TWOBOT_POLICY_FILE", bad_policy.display().to_string()),
            "[FAIL] policy file: TWOBOT_POLICY_FILE:",
            "sandbox_ceiling",
        ),
        (
            Setup::healthy()?.with("TWOBOT_ENABLE_NO_AUTH", "false"),
            "[FAIL] auth: TWOBOT_ENABLE_NO_AUTH:",
            "no credential is configured",
        ),
        (
            Setup::healthy()?.with("CODEX_HOME", old.path("empty-home").display().to_string()),
            "[FAIL] codex credentials: none found",
            "codex login",
        ),
        (
            Setup::healthy()?.with("TWOBOT_PORT", busy_port.to_string()),
            "[FAIL] port: cannot listen on",
            "TWOBOT_PORT",
        ),
    ];
    for (setup, line, hint) in cases {
        let (code, out, err) = setup.run(&["doctor"]).await?;
        assert_eq!(code, Some(1), "{line}: {out}{err}");
        let failures: Vec<&str> = out.lines().filter(|l| l.starts_with("[FAIL]")).collect();
        assert_eq!(failures.len(), 1, "exactly one failure for {line}:\n{out}");
        assert!(failures[0].starts_with(line), "{line}:\n{out}");
        assert!(failures[0].contains(hint), "{hint} in:\n{out}");
        assert!(out.ends_with("doctor: 1 problem(s) found\n"), "{out}");
    }
    drop(held);
    Ok(())
}

/// `--print-config` shows every setting with its source and never a secret.
#[tokio::test]
async fn print_config_shows_sources_and_redacts_secrets() -> Result<()> {
    let setup = Setup::healthy()?;
    let policy = setup.path("policy.toml");
    std::fs::write(
        &policy,
        "max_concurrent_runs = 2\n[codex_env.set]\nOPENAI_API_KEY = \"sk-policy-secret\"\n",
    )?;
    let setup = setup
        .with("TWOBOT_POLICY_FILE", policy.display().to_string())
        .with("TWOBOT_AUTH_TOKENS", "alice:tok-very-secret-alice")
        .with(
            "TWOBOT_JWT_SECRET",
            "jwt-secret-of-at-least-thirty-two-bytes!!",
        );
    let (code, out, err) = setup.run(&["--print-config", "--port", "9123"]).await?;
    assert_eq!(code, Some(0), "{out}{err}");
    for secret in ["tok-very-secret-alice", "jwt-secret-of", "sk-policy-secret"] {
        assert!(!out.contains(secret), "{secret} leaked:\n{out}");
        assert!(!err.contains(secret), "{secret} leaked:\n{err}");
    }
    for line in [
        "TWOBOT_AUTH_TOKENS=<redacted>  # environment",
        "TWOBOT_JWT_SECRET=<redacted>  # environment",
        "TWOBOT_PORT=9123  # flag",
        "TWOBOT_TRANSPORT=http  # environment",
        "TWOBOT_RATE_LIMIT_BURST=30  # default",
        "TWOBOT_MAX_CONCURRENT_RUNS=2  # policy file or default",
        "codex_env.set.OPENAI_API_KEY=<redacted>",
    ] {
        assert!(out.contains(line), "missing {line:?} in:\n{out}");
    }

    // A configuration that cannot load is refused as at start-up: one line, exit 2.
    let (code, _, err) = setup
        .with("TWOBOT_MAX_SESSIONS", "0")
        .run(&["--print-config"])
        .await?;
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("TWOBOT_MAX_SESSIONS"), "{err}");
    Ok(())
}
