//! Fail fast, say why (issue 13, point 3): a Codex that cannot reach its model retries
//! for minutes ("Reconnecting..."); 2Bot stops the run after TWOBOT_MODEL_UNREACHABLE_SEC
//! and names the endpoint and the cause. Driven with the real Codex 0.169 against a dead
//! loopback port (no network needed) and with the fake Codex's reconnect loop.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::json;

use crate::common::*;

/// A loopback port that refuses every connection: bound and never listening, so the
/// port stays held (no other process can take it and answer) for as long as the socket
/// lives.
fn dead_port() -> Result<(tokio::net::TcpSocket, u16)> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind("127.0.0.1:0".parse()?)?;
    let port = socket.local_addr()?.port();
    Ok((socket, port))
}

/// A Codex home whose model provider points at `127.0.0.1:port`, with Codex's own retries
/// left at their defaults (as an operator's would be).
fn codex_home(home: &Path, port: u16) -> Result<()> {
    std::fs::write(
        home.join("config.toml"),
        format!(
            "model = \"mock-model\"\nmodel_provider = \"mock\"\n\n[model_providers.mock]\nname = \"mock\"\nbase_url = \"http://127.0.0.1:{port}/v1\"\nwire_api = \"responses\"\n"
        ),
    )?;
    Ok(())
}

/// The real Codex pointed at a dead port ends well before its timeout, as an error that
/// names the endpoint and the cause, not "timed out".
#[tokio::test]
async fn real_codex_that_cannot_reach_its_model_ends_early_and_says_why() -> Result<()> {
    let codex = real_codex();
    assert!(
        codex.exists(),
        "{} is missing: run `npm ci`",
        codex.display()
    );
    let home = tempfile::tempdir()?;
    let (_held, port) = dead_port()?;
    codex_home(home.path(), port)?;
    let server = spawn_stdio(Options {
        codex,
        env: vec![
            ("CODEX_HOME".into(), home.path().display().to_string()),
            ("TWOBOT_MODEL_UNREACHABLE_SEC".into(), "5".into()),
        ],
    })
    .await?;
    let started = Instant::now();
    let result = call(
        &server.client,
        json!({"prompt": "say hi", "skip_git_repo_check": true, "timeout_sec": 600}),
    )
    .await?;
    let took = started.elapsed();
    let text = text(&result);
    assert_eq!(result.is_error, Some(true), "{text}");
    // 5 s of retries plus Codex's start-up and the kill; generous for a busy machine.
    assert!(took < Duration::from_secs(90), "took {took:?}: {text}");
    assert!(
        text.starts_with(&format!(
            "Codex cannot reach its model endpoint 127.0.0.1:{port}: connection refused"
        )),
        "{text}"
    );
    assert!(
        text.contains("Codex's last error: Reconnecting..."),
        "{text}"
    );
    let s = structured(&result);
    assert_eq!(s["timed_out"], false);
    assert_eq!(s["ok"], false);
    server.client.cancel().await?;
    Ok(())
}

/// The stop is measured from the first reconnect, and is configurable.
#[tokio::test]
async fn a_reconnect_loop_is_stopped_after_the_configured_seconds() -> Result<()> {
    let home = tempfile::tempdir()?;
    let (_held, port) = dead_port()?;
    codex_home(home.path(), port)?;
    let server = spawn_stdio(Options {
        env: vec![
            ("CODEX_HOME".into(), home.path().display().to_string()),
            ("TWOBOT_MODEL_UNREACHABLE_SEC".into(), "3".into()),
        ],
        ..Options::default()
    })
    .await?;
    let started = Instant::now();
    let result = call(
        &server.client,
        json!({"prompt": "scenario:reconnecting", "timeout_sec": 600}),
    )
    .await?;
    let took = started.elapsed();
    let text = text(&result);
    assert_eq!(result.is_error, Some(true), "{text}");
    assert!(
        took >= Duration::from_secs(3),
        "stopped before the grace: {took:?}"
    );
    assert!(took < Duration::from_secs(60), "took {took:?}");
    assert!(
        text.contains(&format!(
            "model endpoint 127.0.0.1:{port}: connection refused"
        )),
        "{text}"
    );
    assert!(text.contains("TWOBOT_MODEL_UNREACHABLE_SEC"), "{text}");
    server.client.cancel().await?;
    Ok(())
}

/// A run that times out says what Codex last complained about.
#[tokio::test]
async fn a_timeout_text_carries_codexs_last_error() -> Result<()> {
    let server = spawn_stdio(Options {
        env: vec![("TWOBOT_MODEL_UNREACHABLE_SEC".into(), "3600".into())],
        ..Options::default()
    })
    .await?;
    let result = call(
        &server.client,
        json!({"prompt": "scenario:reconnecting", "timeout_sec": 3}),
    )
    .await?;
    let text = text(&result);
    assert_eq!(result.is_error, Some(true));
    assert!(text.starts_with("timed out after 3 s"), "{text}");
    assert!(
        text.contains("Codex's last error: Reconnecting... waiting for network (Connection failed: error sending request)"),
        "{text}"
    );
    assert_eq!(structured(&result)["timed_out"], true);
    server.client.cancel().await?;
    Ok(())
}
