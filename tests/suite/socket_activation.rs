//! Socket activation (`LISTEN_FDS=1`, the listening socket at fd 3, as systemd's
//! `.socket` units pass it): the HTTP endpoint serves the passed socket whatever
//! `TWOBOT_PORT` says, Codex never holds it, and a hand-over 2Bot cannot serve stops the
//! start with the reason.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use command_fds::{CommandFdExt, FdMapping};
use serde_json::json;

use crate::common::http::*;
use crate::common::{call, only_run, structured};

#[tokio::test]
async fn a_passed_socket_is_served_instead_of_the_port_and_never_reaches_codex() -> Result<()> {
    let (listener, port) = loopback_listener()?;
    // TWOBOT_PORT names a port that is taken: binding it would fail the start.
    let (_taken, taken_port) = loopback_listener()?;
    let taken_port = taken_port.to_string();
    let server = spawn_http_on(listener, &[("TWOBOT_PORT", &taken_port)]).await?;
    ensure!(
        server.url == format!("http://127.0.0.1:{port}/mcp"),
        "listening on {}, not the passed socket's port {port}",
        server.url
    );
    let log = std::fs::read_to_string(&server.log)?;
    ensure!(log.contains("LISTEN_FDS=1"), "no line says so:\n{log}");

    let client = http_client(&server.url, None).await?;
    let r = call(&client, json!({"prompt": "scenario:ok"})).await?;
    ensure!(r.is_error == Some(false), "{:?}", r);
    ensure!(structured(&r)["final_message"] == "fake answer");
    let run = only_run(&server.record)?;
    let fds = std::fs::read_to_string(run.dir.join("fds"))?;
    ensure!(fds.contains("pipe:"), "no open files recorded: {fds}");
    ensure!(
        !fds.contains("socket:"),
        "Codex holds a socket (the listener leaked):\n{fds}"
    );
    ensure!(
        !run.env.contains_key("LISTEN_FDS") && !run.env.contains_key("LISTEN_PID"),
        "the hand-over variables reached Codex: {:?}",
        run.env
    );
    Ok(())
}

/// Run `2bot-mcp --transport http` with `LISTEN_FDS=count` and `fd3` at fd 3; its exit
/// code and stderr.
async fn handed(count: &str, fd3: std::os::fd::OwnedFd) -> Result<(Option<i32>, String)> {
    let state = tempfile::tempdir()?;
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_2bot-mcp"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("TWOBOT_TRANSPORT", "http")
        .env("TWOBOT_PORT", "0")
        .env("TWOBOT_STATE_DIR", state.path())
        .env("CODEX_ALLOWED_ROOTS", state.path())
        .env("LISTEN_FDS", count)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd.fd_mappings(vec![FdMapping {
        parent_fd: fd3,
        child_fd: 3,
    }])?;
    let out = tokio::time::timeout(Duration::from_secs(30), cmd.output())
        .await
        .context("2bot-mcp served instead of refusing")??;
    Ok((
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

#[tokio::test]
async fn more_than_one_passed_socket_stops_the_start_naming_the_count() -> Result<()> {
    let (listener, _) = loopback_listener()?;
    let (code, stderr) = handed("2", listener.into()).await?;
    ensure!(code == Some(2), "exit {code:?}: {stderr}");
    ensure!(
        stderr.contains("LISTEN_FDS=2: 2Bot serves one socket"),
        "{stderr}"
    );
    Ok(())
}

#[tokio::test]
async fn a_passed_file_that_is_no_socket_stops_the_start_with_the_reason() -> Result<()> {
    let file = tempfile::tempfile()?;
    let (code, stderr) = handed("1", file.into()).await?;
    ensure!(code == Some(2), "exit {code:?}: {stderr}");
    ensure!(
        stderr.contains("LISTEN_FDS=1: the passed socket (fd 3) cannot be served")
            && stderr.contains("not a socket"),
        "{stderr}"
    );
    Ok(())
}
