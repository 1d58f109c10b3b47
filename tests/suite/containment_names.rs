//! Containment, second round (issue 19, points 1, 9 and 11), tried as a hostile caller
//! would: each run's Codex lives in private mount and PID namespaces.
//!
//! - Codex never receives a directory name another process can re-point: a swap loop
//!   outside any run, and one inside a writing run, never lead a later run outside.
//! - A command cannot kill its supervisor, and nothing it starts outlives the run.
//! - A server started with SIGTERM ignored still stops Codex at once.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rmcp::ServiceExt;
use rmcp::transport::TokioChildProcess;
use serde_json::json;

use crate::common::*;

/// How many runs each race gets (the issue: 0 escapes in at least 200 tries).
const TRIES: usize = 200;

/// Markers the fake Codex left in `dir` (it writes one where it resolved its `-C` name).
fn markers(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("twobot-marker-"))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A directory outside the server's allowed root.
fn outside_dir(server: &StdioServer) -> Result<PathBuf> {
    let outside = server
        .root
        .parent()
        .context("base")?
        .join("outside-the-roots");
    std::fs::create_dir_all(&outside)?;
    Ok(outside)
}

crate::both_backends!(a_name_swapped_while_codex_resolves_it_never_leads_a_run_outside_the_roots);
/// A loop outside any run swaps a checked directory with a symlink to outside the roots
/// (`renameat2(RENAME_EXCHANGE)`) while 200 runs each have Codex resolve its `-C` name a
/// moment after the spawn and write a marker there: every marker lands in the directory
/// that was checked, none outside.
async fn a_name_swapped_while_codex_resolves_it_never_leads_a_run_outside_the_roots() -> Result<()>
{
    let server = spawn_stdio(Options::default()).await?;
    let outside = outside_dir(&server)?;
    let work = server.root.join("work");
    let link = server.root.join("work-swap");
    std::fs::create_dir_all(&work)?;
    std::os::unix::fs::symlink(&outside, &link)?;
    let swapping = swap_loop(&work, &link);
    let mut started = 0;
    for _ in 0..TRIES {
        let r = call(
            &server.client,
            json!({"prompt": "scenario:touch_by_name", "cwd": "work"}),
        )
        .await?;
        if r.is_error == Some(false) {
            started += 1;
        }
    }
    drop(swapping);
    let escaped = markers(&outside);
    assert!(
        escaped.is_empty(),
        "{} of {started} runs wrote outside the roots: {escaped:?}",
        escaped.len()
    );
    // Whichever name the directory has now, every run that started wrote into it.
    let inside = markers(&work).len() + markers(&link).len();
    assert_eq!(inside, started, "each started run wrote its marker inside");
    assert!(started >= 20, "only {started} of {TRIES} runs started");
    server.client.cancel().await?;
    Ok(())
}

crate::both_backends!(a_run_that_swaps_names_in_a_loop_cannot_lead_later_runs_outside_the_roots);
/// With tool calls alone: run 1 (workspace-write) makes `b` a symlink to outside the roots
/// and swaps `a` and `b` in a loop; 200 later runs with `cwd=proj/a` never write outside.
async fn a_run_that_swaps_names_in_a_loop_cannot_lead_later_runs_outside_the_roots() -> Result<()> {
    let server = spawn_stdio(Options::default()).await?;
    let outside = outside_dir(&server)?;
    let proj = server.root.join("proj");
    std::fs::create_dir_all(proj.join("a"))?;
    let swapping = start_call(
        &server.client,
        json!({
            "prompt": format!("scenario:swap_loop {}", outside.display()),
            "cwd": "proj", "sandbox": "workspace-write", "allow_edits": true,
            "timeout_sec": 600
        }),
    )
    .await?;
    // The loop runs once `b` exists.
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::fs::symlink_metadata(proj.join("b")).is_err() {
        anyhow::ensure!(Instant::now() < deadline, "run 1 never made its symlink");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (mut started, mut refused) = (0, 0);
    for _ in 0..TRIES {
        let r = call(
            &server.client,
            json!({"prompt": "scenario:touch_by_name", "cwd": "proj/a"}),
        )
        .await?;
        if r.is_error == Some(false) {
            started += 1;
        } else {
            refused += 1;
        }
    }
    swapping.cancel(Some("done".into())).await?;
    let escaped = markers(&outside);
    assert!(
        escaped.is_empty(),
        "{} of {started} runs wrote outside the roots ({refused} refused): {escaped:?}",
        escaped.len()
    );
    assert!(started >= 20, "only {started} of {TRIES} runs started");
    server.client.cancel().await?;
    Ok(())
}

crate::both_backends!(a_command_cannot_kill_its_supervisor_and_its_setsid_child_dies_with_the_run);
/// A command that SIGKILLs every `2bot-mcp` process it can see (its supervisor among
/// them, were it visible) and leaves a `setsid` process behind: the run still ends
/// normally, and the `setsid` process is gone with it.
async fn a_command_cannot_kill_its_supervisor_and_its_setsid_child_dies_with_the_run() -> Result<()>
{
    let server = spawn_stdio(Options::default()).await?;
    let r = call(
        &server.client,
        json!({"prompt": "scenario:kill_supervisor", "timeout_sec": 60}),
    )
    .await?;
    assert_eq!(r.is_error, Some(false), "{}", text(&r));
    assert_eq!(structured(&r)["final_message"], "tried to kill 2bot-mcp");
    let run = only_run(&server.record)?;
    let setsid = read_run_pid(&run.dir.join("setsid.pid"))?;
    assert!(
        gone_within(&setsid, Duration::from_secs(5)).await,
        "the setsid process {setsid} outlived its run"
    );
    server.client.cancel().await?;
    Ok(())
}

crate::both_backends!(a_server_started_with_sigterm_ignored_still_stops_codex_at_once);
/// 2Bot started from a wrapper that ignores SIGTERM (`trap '' TERM`; an ignored signal
/// stays ignored across exec): a cancelled run's Codex is still stopped at once, well
/// within the grace period, not SIGKILLed after it.
async fn a_server_started_with_sigterm_ignored_still_stops_codex_at_once() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let base = tmp.path().canonicalize()?;
    let (root, record) = (base.join("root"), base.join("record"));
    std::fs::create_dir_all(&root)?;
    std::fs::create_dir_all(&record)?;
    let mut cmd = tokio::process::Command::new("/bin/sh");
    cmd.arg("-c")
        .arg("trap '' TERM; exec \"$0\"")
        .arg(env!("CARGO_BIN_EXE_2bot-mcp"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("CODEX_BIN", fake_codex())
        .env("CODEX_ALLOWED_ROOTS", &root)
        .env("FAKE_CODEX_RECORD", &record)
        .env("TWOBOT_STATE_DIR", base.join("state"))
        .current_dir(&base);
    crate::common::with_backend(&mut cmd);
    let (transport, _) = TokioChildProcess::builder(cmd)
        .stderr(Stdio::null())
        .spawn()?;
    let client = Recorder::default().serve(transport).await?;
    let handle = start_call(
        &client,
        json!({"prompt": "scenario:hang", "timeout_sec": 600}),
    )
    .await?;
    let HangingRun { codex, grandchild } = hanging_run(&record).await?;
    assert!(codex.is_alive(), "the hang run is running");
    handle.cancel(Some("stop".into())).await?;
    // The grace period is 3 s: SIGTERM must have done it.
    assert!(
        gone_within(&codex, Duration::from_millis(1500)).await,
        "Codex outlived SIGTERM"
    );
    assert!(gone_within(&grandchild, Duration::from_millis(1500)).await);
    client.cancel().await?;
    Ok(())
}

/// What each probe of Codex recorded (`FAKE_CODEX_PROBE_RECORD`): its environment, and
/// its parent's command line as `PARENT=`.
fn probes(dir: &Path) -> Result<Vec<String>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_none() {
            found.push(std::fs::read_to_string(path)?);
        }
    }
    Ok(found)
}

const TOKEN: &str = "tok-probe-5c1e9a7b3d2f";
const JWT_SECRET: &str = "jwt-probe-secret-8e2d4c6a0b1f3579";

crate::both_backends!(the_readiness_probe_starts_codex_as_a_run_does_without_the_servers_secrets);
/// Every probe sees what a run sees: the Codex `--version` of `/readyz` starts through the
/// run supervisor with Codex's scrubbed environment, never the server's secrets.
async fn the_readiness_probe_starts_codex_as_a_run_does_without_the_servers_secrets() -> Result<()>
{
    let probe_dir = tempfile::tempdir()?;
    let dir = probe_dir.path().display().to_string();
    let server = crate::common::http::spawn_http(&[
        ("TWOBOT_AUTH_TOKENS", &format!("alice:{TOKEN}")),
        ("TWOBOT_ENABLE_NO_AUTH", "false"),
        ("TWOBOT_JWT_SECRET", JWT_SECRET),
        ("FAKE_CODEX_PROBE_RECORD", &dir),
    ])
    .await?;
    let ready = reqwest::get(format!("{}/readyz", server.base)).await?;
    assert_eq!(ready.status(), 200, "{}", ready.text().await?);
    let seen = probes(probe_dir.path())?;
    assert_eq!(seen.len(), 1, "one --version probe");
    assert_probe_is_scrubbed(&seen[0]);
    Ok(())
}

crate::both_backends!(doctor_starts_codex_as_a_run_does_without_the_servers_secrets);
/// `doctor` probes Codex the same way (`--version`, flag help, its sandbox).
async fn doctor_starts_codex_as_a_run_does_without_the_servers_secrets() -> Result<()> {
    let probe_dir = tempfile::tempdir()?;
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_2bot-mcp"))
        .arg("doctor")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("CODEX_BIN", fake_codex())
        .env("CODEX_ALLOWED_ROOTS", probe_dir.path())
        .env("TWOBOT_STATE_DIR", probe_dir.path().join("state"))
        .env("TWOBOT_AUTH_TOKENS", format!("alice:{TOKEN}"))
        .env("TWOBOT_JWT_SECRET", JWT_SECRET)
        .env("FAKE_CODEX_PROBE_RECORD", probe_dir.path())
        .output()
        .await?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("codex-cli 0.169.0 (fake)"), "{stdout}");
    let seen = probes(probe_dir.path())?;
    assert!(!seen.is_empty(), "doctor probed --version:\n{stdout}");
    for probe in &seen {
        assert_probe_is_scrubbed(probe);
    }
    Ok(())
}

fn assert_probe_is_scrubbed(probe: &str) {
    assert!(
        probe.contains("PARENT=2bot-mcp __supervise "),
        "started by the run supervisor: {probe}"
    );
    for secret in ["TWOBOT_AUTH_TOKENS", "TWOBOT_JWT_SECRET", TOKEN, JWT_SECRET] {
        assert!(
            !probe.contains(secret),
            "{secret} reached the probe: {probe}"
        );
    }
}
