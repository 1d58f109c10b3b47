//! The HTTP stack in the test's own process: the same `http::router` and `http::serve`
//! the binary assembles (every layer, the run stack behind them), configured from the
//! same `TWOBOT_*` pairs `spawn_http` takes (turned into the flags they stand for, so
//! the test's environment is never touched), on a socket the test holds.
//!
//! What it is for: tests of the edge (auth, limits, refusals, headers) that need no
//! process boundary start in milliseconds and fail with the server's own error rather
//! than a line in a log. Codex still runs through the real binary: the runner's
//! supervisor is `2bot-mcp`, not the test executable. Metrics are one registry per
//! process, so tests that read `/metrics` keep spawning the binary, as do tests that
//! read the server's log, signal its process, or set a variable that has no flag
//! (`CODEX_HOME`): the in-process server has no log file, no process and no environment
//! of its own. It follows `both_backends!` and `both_stores!` as `spawn_http` does.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::CommandFactory;
use tokio_util::sync::CancellationToken;
use twobot::config::{Cli, Config};
use twobot::http::{HttpSettings, Shutdown, router, serve};

use super::fake_codex;

/// A server running in this process; stopped when dropped.
pub struct InProcess {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    /// `http://127.0.0.1:PORT/mcp`
    pub url: String,
    /// Where the fake Codex records its runs.
    pub record: PathBuf,
    stop: CancellationToken,
    _tmp: tempfile::TempDir,
}

impl Drop for InProcess {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// The flag `var` stands for (`TWOBOT_AUTH_TOKENS` → `--auth-tokens`), from the CLI's
/// own definition.
fn flag_of(var: &str) -> Result<String> {
    Cli::command()
        .get_arguments()
        .find(|a| a.get_env().is_some_and(|e| e == var))
        .and_then(|a| a.get_long())
        .map(|long| format!("--{long}"))
        .with_context(|| format!("{var} has no command-line flag"))
}

/// Serve the HTTP transport in this process with `env` on top of the test defaults
/// (the fake Codex, a temporary allowed root and state directory).
pub async fn serve_in_process(env: &[(&str, &str)]) -> Result<InProcess> {
    let tmp = tempfile::tempdir()?;
    let base_dir = tmp.path().canonicalize()?;
    let (root, record, state) = (
        base_dir.join("root"),
        base_dir.join("record"),
        base_dir.join("state"),
    );
    for dir in [&root, &record] {
        std::fs::create_dir_all(dir)?;
    }
    let mut args: Vec<String> = vec!["2bot-mcp".into()];
    // The test's own pairs win over these defaults, as they do for `spawn_http`; the
    // backend and the store follow `both_backends!` and `both_stores!`.
    let mut fixed = vec![
        ("TWOBOT_TRANSPORT", "http".to_owned()),
        ("TWOBOT_STATE_DIR", state.display().to_string()),
        ("CODEX_ALLOWED_ROOTS", root.display().to_string()),
        ("CODEX_BIN", fake_codex().display().to_string()),
        ("TWOBOT_CODEX_BACKEND", super::backend().to_owned()),
    ];
    if let Some(url) = super::stores::database_url() {
        fixed.push(("TWOBOT_DATABASE_URL", url));
    }
    fixed.retain(|(var, _)| !env.iter().any(|(k, _)| k == var));
    let given = env.iter().map(|(k, v)| (*k, (*v).to_owned()));
    for (var, value) in fixed.into_iter().chain(given) {
        if var.starts_with("FAKE_CODEX_") {
            continue;
        }
        args.push(format!("{}={value}", flag_of(var)?));
    }
    let cli = Cli::try_parse_from_env(&args).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut config = Config::load(cli)?;
    let roots = config.policy.allowed_roots.clone();
    config.runner.for_this_binary(roots, None)?;
    // The run supervisor is the real binary (this process is the test executable).
    config.runner.supervisor = Some(env!("CARGO_BIN_EXE_2bot-mcp").into());
    // The fake Codex's settings reach it through the runner's environment rules.
    let fake = &mut config.runner.env.set;
    fake.insert("FAKE_CODEX_RECORD".into(), record.display().to_string());
    for (k, v) in env.iter().filter(|(k, _)| k.starts_with("FAKE_CODEX_")) {
        fake.insert((*k).into(), (*v).into());
    }

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let local = listener.local_addr()?;
    let settings = HttpSettings::new(&config, local)?;
    let stop = CancellationToken::new();
    let runs = twobot::runs::assemble::assemble(&config, &stop).await?;
    let shutdown = Shutdown {
        signal: stop.clone(),
        ..Shutdown::default()
    };
    let tracker = runs.tracker();
    let app = router(&settings, runs, &shutdown, None);
    tokio::spawn(serve(
        listener,
        app,
        tracker,
        shutdown,
        settings.serve_limits(),
    ));
    let base = format!("http://{local}");
    Ok(InProcess {
        url: format!("{base}{}", settings.path),
        base,
        record,
        stop,
        _tmp: tmp,
    })
}
