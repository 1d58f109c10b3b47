//! The app-server runner (`TWOBOT_CODEX_BACKEND=app-server`) through the real binary and
//! an rmcp client over stdio, with the fake Codex's app server.

use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::json;

use crate::common::*;

fn app_server() -> Options {
    Options {
        env: vec![("TWOBOT_CODEX_BACKEND".into(), "app-server".into())],
        ..Options::default()
    }
}

/// A plain run on app-server gives the result exec gives.
#[tokio::test]
async fn a_plain_run_on_app_server_gives_the_same_result_shape_as_exec() -> Result<()> {
    let exec = spawn_stdio(Options::default()).await?;
    let app = spawn_stdio(app_server()).await?;
    let a = structured(&call(&exec.client, json!({"prompt": "scenario:ok please"})).await?);
    let b = structured(&call(&app.client, json!({"prompt": "scenario:ok please"})).await?);
    assert_eq!(b["ok"], true, "{b}");
    for key in [
        "final_message",
        "usage",
        "commands",
        "file_changes",
        "warnings",
        "errors",
        "turn_completed",
    ] {
        assert_eq!(a[key], b[key], "{key}: exec {a} / app-server {b}");
    }
    assert!(
        b["thread_id"]
            .as_str()
            .unwrap_or_default()
            .starts_with("fake-thread-"),
        "{b}"
    );
    assert!(
        b["argv"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a == "app-server"),
        "{b}"
    );
    exec.client.cancel().await?;
    app.client.cancel().await?;
    Ok(())
}

/// With no channel to a person, an approval is declined at once, the command does not
/// run, and the result says so.
#[tokio::test]
async fn an_approval_nobody_can_answer_is_declined_at_once_and_the_command_does_not_run()
-> Result<()> {
    let server = spawn_stdio(app_server()).await?;
    let marker = server.root.join("ran");
    let started = Instant::now();
    let result = call(
        &server.client,
        json!({"prompt": format!("scenario:approve_command touch {}", marker.display()),
               "sandbox": "workspace-write", "approval_policy": "on-request", "allow_edits": true}),
    )
    .await?;
    let s = structured(&result);
    assert!(started.elapsed() < Duration::from_secs(20), "no hang");
    assert!(!marker.exists(), "the declined command ran");
    assert_eq!(s["approvals"][0]["decision"], "decline", "{s}");
    assert_eq!(s["approvals"][0]["channel"], "unreachable", "{s}");
    assert_eq!(s["approvals"][0]["request"]["type"], "command", "{s}");
    assert_eq!(s["commands"][0]["status"], "declined", "{s}");
    server.client.cancel().await?;
    Ok(())
}

/// The timeout interrupts, then kills the tree; partial output is kept.
#[tokio::test]
async fn a_timeout_on_app_server_keeps_partial_output_and_says_so() -> Result<()> {
    let server = spawn_stdio(app_server()).await?;
    let result = call(
        &server.client,
        json!({"prompt": "scenario:hang", "timeout_sec": 2}),
    )
    .await?;
    let s = structured(&result);
    assert_eq!(s["ok"], false, "{s}");
    assert_eq!(s["timed_out"], true, "{s}");
    assert!(s["thread_id"].is_string(), "partial output kept: {s}");
    server.client.cancel().await?;
    Ok(())
}

/// A profile cannot be said to `codex app-server`: refused with the way out.
#[tokio::test]
async fn a_profile_on_app_server_is_refused_with_the_reason() -> Result<()> {
    let server = spawn_stdio(app_server()).await?;
    let result = call(
        &server.client,
        json!({"prompt": "scenario:ok", "profile": "fast"}),
    )
    .await?;
    assert_eq!(result.is_error, Some(true));
    assert!(
        text(&result).contains("TWOBOT_CODEX_BACKEND=exec"),
        "{}",
        text(&result)
    );
    server.client.cancel().await?;
    Ok(())
}
