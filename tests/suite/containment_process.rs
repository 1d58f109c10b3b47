//! Containment of the Codex process tree (issue 11, points 1, 2 and 9), tried the way a
//! caller would: through the real binary and a real MCP client, with a fake Codex whose
//! commands go after the server's secrets, leave their process group, or race the cwd.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::json;
use tokio::io::AsyncBufReadExt;

use crate::common::http::http_client;
use crate::common::proc_tree::{assert_all_gone, descendants};
use crate::common::*;

const TOKEN: &str = "tok-9f3c1d7e5a2b4c6d8e0f";
const JWT_SECRET: &str = "jwt-hs256-secret-7a1b2c3d4e5f60718293";

/// The uid/gid the server runs as in these tests: ourselves, or `nobody` when the tests
/// run as root (root reads every process's /proc entries whatever they say, so only a
/// non-root server shows what a same-user Codex command can reach).
fn unprivileged() -> Option<(u32, u32)> {
    nix::unistd::geteuid().is_root().then_some((65534, 65534))
}

/// An HTTP server started as `user` (when given), in a temp dir that user can use.
struct Server {
    child: tokio::process::Child,
    url: String,
    record: PathBuf,
    _tmp: tempfile::TempDir,
}

async fn spawn_http_as(user: Option<(u32, u32)>, env: &[(&str, &str)]) -> Result<Server> {
    let tmp = tempfile::tempdir()?;
    let base = tmp.path().canonicalize()?;
    let root = base.join("root");
    let record = base.join("record");
    std::fs::create_dir_all(&root)?;
    std::fs::create_dir_all(&record)?;
    for dir in [&base, &root, &record] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777))?;
    }
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_2bot-mcp"));
    crate::common::with_backend(&mut cmd);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("TWOBOT_TRANSPORT", "http")
        .env("TWOBOT_PORT", "0")
        .env("CODEX_BIN", fake_codex())
        .env("CODEX_ALLOWED_ROOTS", &root)
        .env("FAKE_CODEX_RECORD", &record)
        .env("TWOBOT_STATE_DIR", base.join("state"))
        .current_dir(&base)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    if let Some((uid, gid)) = user {
        cmd.uid(uid).gid(gid);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn()?;
    let stdout = child.stdout.take().context("stdout")?;
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .context("no listening line")??
        .context("server exited before listening")?;
    let url = line.rsplit(' ').next().context("a URL")?.to_owned();
    Ok(Server {
        child,
        url,
        record,
        _tmp: tmp,
    })
}

crate::both_backends!(a_codex_command_reading_the_servers_proc_entries_finds_no_secret);
/// A Codex command reading /proc/<pid>/environ and /proc/<pid>/mem of every ancestor up
/// to the server sees none of the server's secrets, and neither does the caller.
async fn a_codex_command_reading_the_servers_proc_entries_finds_no_secret() -> Result<()> {
    let server = spawn_http_as(
        unprivileged(),
        &[
            ("TWOBOT_AUTH_TOKENS", &format!("alice:{TOKEN}")),
            ("TWOBOT_JWT_SECRET", JWT_SECRET),
        ],
    )
    .await?;
    let client = http_client(&server.url, Some(TOKEN)).await?;
    let r = call(&client, json!({"prompt": "scenario:proc_secrets"})).await?;
    let everything = format!("{} {}", text(&r), structured(&r));
    let run = only_run(&server.record)?;
    let seen = std::fs::read_to_string(run.dir.join("seen"))?;
    // The walk went up to pid 1 of the run's PID namespace (the run's init, a fork of
    // the supervisor) and no further: the server has no pid there at all.
    assert!(
        seen.contains("[1 "),
        "the command walked up to its namespace's init: {seen}"
    );
    assert!(
        !seen.contains("[1 2bot-mcp]") || !seen.contains("TWOBOT_"),
        "{seen}"
    );
    for secret in [TOKEN, JWT_SECRET] {
        assert!(
            !everything.contains(secret),
            "{secret} leaked: {everything}"
        );
        assert!(!seen.contains(secret), "{secret} readable: {seen}");
    }
    client.cancel().await?;
    Ok(())
}

/// The pid of the `setsid` process the fake Codex left behind.
async fn setsid_pid(record: &Path) -> Result<RunPid> {
    let run = wait_for_run_dir(record, Duration::from_secs(20)).await?;
    wait_for_run_pid(&run.join("setsid.pid"), Duration::from_secs(20)).await
}

const WITHIN: Duration = Duration::from_secs(5);

crate::both_backends!(a_setsid_process_dies_when_its_run_ends_normally);
/// A command that leaves Codex's process group with `setsid` dies when the run ends normally.
async fn a_setsid_process_dies_when_its_run_ends_normally() -> Result<()> {
    let server = spawn_stdio(Options::default()).await?;
    let r = call(&server.client, json!({"prompt": "scenario:setsid"})).await?;
    assert_eq!(r.is_error, Some(false), "{}", text(&r));
    let pid = setsid_pid(&server.record).await?;
    assert!(
        gone_within(&pid, WITHIN).await,
        "setsid process {pid} survived the run"
    );
    server.client.cancel().await?;
    Ok(())
}

crate::both_backends!(a_setsid_process_dies_when_its_run_times_out);
/// ... and when the run times out (the result is the usual timeout).
async fn a_setsid_process_dies_when_its_run_times_out() -> Result<()> {
    let server = spawn_stdio(Options::default()).await?;
    let r = call(
        &server.client,
        json!({"prompt": "scenario:setsid_hang", "timeout_sec": 2}),
    )
    .await?;
    let s = structured(&r);
    assert_eq!(s["timed_out"], true, "{s}");
    if backend() == "app-server" {
        // The turn is interrupted first; the server then ends on its own, cleanly.
        assert_eq!(
            s["exit_code"], 0,
            "the app-server ended after turn/interrupt: {s}"
        );
    } else {
        assert!(
            s["exit_code"].is_null(),
            "killed by a signal, as before: {s}"
        );
    }
    let pid = setsid_pid(&server.record).await?;
    assert!(
        gone_within(&pid, WITHIN).await,
        "setsid process {pid} survived the timeout"
    );
    server.client.cancel().await?;
    Ok(())
}

crate::both_backends!(a_setsid_process_dies_when_its_call_is_cancelled);
/// ... and when the client cancels the call (`notifications/cancelled`).
async fn a_setsid_process_dies_when_its_call_is_cancelled() -> Result<()> {
    let server = spawn_stdio(Options::default()).await?;
    let handle = start_call(
        &server.client,
        json!({"prompt": "scenario:setsid_hang", "timeout_sec": 600}),
    )
    .await?;
    let pid = setsid_pid(&server.record).await?;
    server
        .client
        .peer()
        .notify_cancelled(rmcp::model::CancelledNotificationParam::new(
            Some(handle.id.clone()),
            Some("stop".into()),
        ))
        .await?;
    assert!(
        gone_within(&pid, WITHIN).await,
        "setsid process {pid} survived the cancel"
    );
    server.client.cancel().await?;
    Ok(())
}

crate::both_backends!(a_setsid_process_dies_when_the_stdio_server_is_killed);
/// ... and when the stdio server is SIGKILLed mid-run (MCP clients do that).
async fn a_setsid_process_dies_when_the_stdio_server_is_killed() -> Result<()> {
    let server = spawn_stdio(Options::default()).await?;
    let _handle = start_call(
        &server.client,
        json!({"prompt": "scenario:setsid_hang", "timeout_sec": 600}),
    )
    .await?;
    let pid = setsid_pid(&server.record).await?;
    let run = wait_for_run_dir(&server.record, Duration::from_secs(5)).await?;
    let codex = wait_for_run_pid(&run.join("codex.pid"), Duration::from_secs(20)).await?;
    // Everything the server started for the run: its spawner, the supervisor, the init.
    let tree = descendants(i32::try_from(server.pid)?);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(server.pid)?),
        nix::sys::signal::Signal::SIGKILL,
    )?;
    assert!(
        gone_within(&pid, WITHIN).await,
        "setsid process {pid} survived the server"
    );
    assert!(
        gone_within(&codex, WITHIN).await,
        "codex {codex} survived the server"
    );
    assert_all_gone(&tree, WITHIN).await;
    Ok(())
}

crate::both_backends!(a_setsid_process_dies_when_the_http_server_is_killed);
/// ... and when the HTTP server is SIGKILLed mid-run.
async fn a_setsid_process_dies_when_the_http_server_is_killed() -> Result<()> {
    let mut server = spawn_http_as(None, &[]).await?;
    let client = http_client(&server.url, None).await?;
    let call_task = tokio::spawn(async move {
        let _ = call(
            &client,
            json!({"prompt": "scenario:setsid_hang", "timeout_sec": 600}),
        )
        .await;
    });
    let pid = setsid_pid(&server.record).await?;
    let run = wait_for_run_dir(&server.record, Duration::from_secs(5)).await?;
    let codex = wait_for_run_pid(&run.join("codex.pid"), Duration::from_secs(20)).await?;
    let server_pid = server.child.id().context("server pid")?;
    let tree = descendants(i32::try_from(server_pid)?);
    server.child.start_kill()?;
    assert!(
        gone_within(&pid, WITHIN).await,
        "setsid process {pid} survived the server"
    );
    assert!(
        gone_within(&codex, WITHIN).await,
        "codex {codex} survived the server"
    );
    assert_all_gone(&tree, WITHIN).await;
    call_task.abort();
    Ok(())
}

crate::both_backends!(
    a_cwd_swapped_for_a_symlink_between_check_and_spawn_never_starts_codex_outside
);
/// Swapping the cwd for a symlink to outside the roots while calls are checked and
/// spawned never starts Codex outside the roots, and no refusal names the outside path.
async fn a_cwd_swapped_for_a_symlink_between_check_and_spawn_never_starts_codex_outside()
-> Result<()> {
    let server = spawn_stdio(Options::default()).await?;
    let outside = server
        .root
        .parent()
        .context("base")?
        .join("outside-secret-dir");
    std::fs::create_dir_all(&outside)?;
    let work = server.root.join("work");
    let link = server.root.join("work-swap");
    std::fs::create_dir_all(&work)?;
    std::os::unix::fs::symlink(&outside, &link)?;
    let work_id = dir_id(&work)?;
    let swapping = swap_loop(&work, &link);
    let (mut started, mut refused, mut named) = (0, 0, Vec::new());
    for _ in 0..300 {
        let r = call(
            &server.client,
            json!({"prompt": "scenario:ok", "cwd": "work"}),
        )
        .await?;
        let t = text(&r);
        // (The policy's own refusals are issue 11 point 8, elsewhere; this is the runner's.)
        if t.contains("changed after it was checked") && t.contains("outside-secret-dir") {
            named.push(t.clone());
        }
        if r.is_error == Some(false) {
            started += 1;
        } else {
            refused += 1;
        }
    }
    drop(swapping);
    for run in recorded(&server.record)? {
        // Codex sees its cwd at a private name; what counts is which directory that is.
        let cwd = std::fs::read_to_string(run.dir.join("cwd_id"))?;
        assert_eq!(
            cwd.trim(),
            work_id,
            "Codex started outside the checked directory ({started} started, {refused} refused)"
        );
    }
    assert!(named.is_empty(), "refusals named the target: {named:?}");
    assert!(started > 0, "some calls ran ({refused} refused)");
    server.client.cancel().await?;
    Ok(())
}

crate::both_backends!(an_unknown_codex_user_stops_the_server_at_start_up);
/// `TWOBOT_CODEX_USER` names no user: the server refuses to start, with one line and exit 2.
async fn an_unknown_codex_user_stops_the_server_at_start_up() -> Result<()> {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_2bot-mcp"))
        .env("TWOBOT_CODEX_USER", "no-such-user-2bot")
        .env("CODEX_BIN", fake_codex())
        .env(
            "TWOBOT_STATE_DIR",
            std::env::temp_dir().join("2bot-unused-state"),
        )
        .stdin(Stdio::null())
        .output()
        .await?;
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("TWOBOT_CODEX_USER") && stderr.contains("no-such-user-2bot"),
        "{stderr}"
    );
    Ok(())
}

crate::both_backends!(codex_runs_as_the_configured_codex_user);
/// With `TWOBOT_CODEX_USER`, Codex and its commands run under that uid (root only: the
/// switch needs CAP_SETUID/CAP_SETGID; as another user this test fails saying so).
async fn codex_runs_as_the_configured_codex_user() -> Result<()> {
    crate::common::programs::require_root("switching users needs CAP_SETUID/CAP_SETGID")?;
    let server = spawn_http_as(None, &[("TWOBOT_CODEX_USER", "nobody")]).await?;
    let client = http_client(&server.url, None).await?;
    let r = call(&client, json!({"prompt": "scenario:ok"})).await?;
    assert_eq!(r.is_error, Some(false), "{}", text(&r));
    let run = only_run(&server.record)?;
    assert_eq!(
        std::fs::read_to_string(run.dir.join("uid"))?.trim(),
        "65534"
    );
    client.cancel().await?;
    Ok(())
}

crate::both_backends!(doctor_warns_when_a_secret_file_is_readable_by_the_codex_user);
/// `doctor` warns, naming the file and the fix, when the tokens file is readable by the
/// user Codex runs as, and says nothing of the kind once it is not.
async fn doctor_warns_when_a_secret_file_is_readable_by_the_codex_user() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let base = tmp.path().canonicalize()?;
    let tokens = base.join("tokens");
    std::fs::write(&tokens, format!("alice:{TOKEN}\n"))?;
    let doctor = |mode: u32| {
        let tokens = tokens.clone();
        let base = base.clone();
        async move {
            std::fs::set_permissions(&tokens, std::fs::Permissions::from_mode(mode))?;
            let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_2bot-mcp"))
                .arg("doctor")
                .env_clear()
                .env("PATH", std::env::var("PATH").unwrap_or_default())
                .env("CODEX_BIN", fake_codex())
                .env("CODEX_ALLOWED_ROOTS", &base)
                .env("TWOBOT_STATE_DIR", base.join("state"))
                .env("TWOBOT_AUTH_TOKENS_FILE", &tokens)
                .env("TWOBOT_CODEX_USER", "nobody")
                .output()
                .await?;
            anyhow::Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        }
    };
    let open = doctor(0o644).await?;
    let warning: Vec<&str> = open.lines().filter(|l| l.contains("secret file")).collect();
    assert_eq!(warning.len(), 1, "{open}");
    assert!(warning[0].starts_with("[warn]"), "{open}");
    assert!(warning[0].contains(&tokens.display().to_string()), "{open}");
    assert!(warning[0].contains("TWOBOT_CODEX_USER"), "{open}");
    assert!(!open.contains(TOKEN), "doctor never prints a secret");
    let closed = doctor(0o600).await?;
    assert!(
        closed
            .lines()
            .filter(|l| l.contains("secret file"))
            .all(|l| !l.starts_with("[warn]")),
        "{closed}"
    );
    Ok(())
}

/// `<device> <inode>` of a directory, as the fake Codex records its cwd (`stat -c '%d %i'`).
pub fn dir_id(path: &Path) -> Result<String> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path)?;
    Ok(format!("{} {}", meta.dev(), meta.ino()))
}
