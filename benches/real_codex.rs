//! `cargo bench --bench real_codex`: what a call through 2Bot costs over running the real
//! Codex CLI 0.169 directly, on each backend. See BENCHMARKS.md ("the real Codex").
//!
//! The fake Codex of `--bench gateway` isolates 2Bot's own time; this bench answers the
//! operator's question instead: with the real Codex (offline, against the mock Responses
//! API on 127.0.0.1, one plain turn per call), how much slower is a call through 2Bot than
//! `codex exec --json -` spawned by hand, on the exec backend and on the app-server one
//! (one `codex app-server` per call: initialize, thread/start, turn/start, turn/completed)?
//! The three are measured interleaved (direct, exec, app-server, direct, …) so that a
//! change in the machine's load hits each row alike. No timing assertions: figures only.
//!
//! `BENCH_REAL_CALLS` (default 30) sets the calls per row.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common/mod.rs"]
#[allow(dead_code)]
mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use common::mock_responses::MockResponses;
use common::*;

const PROMPT: &str = "say hello";

/// One `codex exec --json -` of the real CLI, spawned as 2Bot's exec runner would (no
/// shell, prompt on stdin, its own process group), read to EOF and reaped.
async fn direct(home: &Path, root: &Path) -> Result<Duration> {
    let t = Instant::now();
    let mut child = tokio::process::Command::new(real_codex())
        .args(["exec", "--json", "-s", "read-only", "--skip-git-repo-check"])
        .args(["--ephemeral", "-C"])
        .arg(root)
        .arg("-")
        .current_dir(root)
        // The environment 2Bot gives Codex (its own minus TWOBOT_*): without this the
        // baseline would read the user's whole environment, which Codex's start-up
        // shell snapshot pays for, and the comparison would flatter 2Bot.
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env(
            "HOME",
            std::env::var("HOME").unwrap_or_else(|_| "/tmp".into()),
        )
        .env("CODEX_HOME", home)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()?;
    let mut stdin = child.stdin.take().context("stdin")?;
    stdin.write_all(PROMPT.as_bytes()).await?;
    drop(stdin);
    let mut out = Vec::new();
    child
        .stdout
        .take()
        .context("stdout")?
        .read_to_end(&mut out)
        .await?;
    let status = child.wait().await?;
    let took = t.elapsed();
    anyhow::ensure!(
        status.success() && out.windows(9).any(|w| w == b"mock done"),
        "codex exec failed: {status}\n{}",
        String::from_utf8_lossy(&out)
    );
    Ok(took)
}

/// A stdio 2Bot on `backend` that runs the real Codex with `home`.
async fn server(home: &Path, backend: &str) -> Result<StdioServer> {
    spawn_stdio(Options {
        codex: real_codex(),
        env: vec![
            ("CODEX_HOME".into(), home.display().to_string()),
            ("TWOBOT_CODEX_BACKEND".into(), backend.into()),
            ("TWOBOT_LOG_LEVEL".into(), "info".into()),
        ],
    })
    .await
}

/// One call through `server`: the client's latency, and the run's own `duration_ms`.
async fn through(server: &StdioServer) -> Result<(Duration, Duration)> {
    let t = Instant::now();
    let r = call(
        &server.client,
        json!({"prompt": PROMPT, "skip_git_repo_check": true, "timeout_sec": 120}),
    )
    .await?;
    let took = t.elapsed();
    anyhow::ensure!(text(&r) == "mock done", "{}", text(&r));
    let run = structured(&r)["duration_ms"].as_u64().unwrap_or(0);
    Ok((took, Duration::from_millis(run)))
}

fn quantile(samples: &[Duration], p: f64) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or_default()
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() -> Result<()> {
    let calls: usize = std::env::var("BENCH_REAL_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    anyhow::ensure!(
        real_codex().exists(),
        "{} is missing: run `npm ci` in the repository root",
        real_codex().display()
    );
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("2Bot real-Codex benchmark: {calls} calls per row, interleaved, {cores} cores\n");

    // An empty script: every request is answered "mock done", one plain turn.
    let mock = MockResponses::start(Vec::new()).await?;
    let home = tempfile::tempdir()?;
    mock.write_codex_home(home.path())?;
    let root = tempfile::tempdir()?;
    let root = root.path().canonicalize()?;
    let exec = server(home.path(), "exec").await?;
    let app = server(home.path(), "app-server").await?;

    // Warm the page cache (Codex is a large binary) and both servers.
    for _ in 0..3 {
        direct(home.path(), &root).await?;
        through(&exec).await?;
        through(&app).await?;
    }
    let (mut d, mut e, mut a) = (Vec::new(), Vec::new(), Vec::new());
    let (mut e_own, mut a_own) = (Vec::new(), Vec::new());
    for _ in 0..calls {
        d.push(direct(home.path(), &root).await?);
        let (latency, run) = through(&exec).await?;
        e.push(latency);
        e_own.push(latency.saturating_sub(run));
        let (latency, run) = through(&app).await?;
        a.push(latency);
        a_own.push(latency.saturating_sub(run));
    }
    exec.client.cancel().await?;
    app.client.cancel().await?;

    let base = quantile(&d, 0.5);
    println!(
        "| per call, real Codex 0.169, one plain turn | p50 | p90 | p50 vs direct | p50 difference |"
    );
    println!("|---|---|---|---|---|");
    for (what, samples) in [
        ("codex exec --json - spawned directly", &d),
        ("through 2Bot, stdio, exec backend", &e),
        ("through 2Bot, stdio, app-server backend", &a),
    ] {
        let p50 = quantile(samples, 0.5);
        println!(
            "| {what} | {} | {} | {:.3}x | {:+.1} ms |",
            ms(p50),
            ms(quantile(samples, 0.9)),
            p50.as_secs_f64() / base.as_secs_f64(),
            (p50.as_secs_f64() - base.as_secs_f64()) * 1000.0
        );
    }
    println!("\n| 2Bot's own time per call: latency minus the run's duration_ms | p50 | p90 |");
    println!("|---|---|---|");
    for (what, samples) in [("exec backend", &e_own), ("app-server backend", &a_own)] {
        println!(
            "| {what} | {} | {} |",
            ms(quantile(samples, 0.5)),
            ms(quantile(samples, 0.9))
        );
    }
    Ok(())
}
