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
/// run, and the result says so. (The server allows danger-full-access: below it the
/// policy declines first, see the next test.)
#[tokio::test]
async fn an_approval_nobody_can_answer_is_declined_at_once_and_the_command_does_not_run()
-> Result<()> {
    let mut opts = app_server();
    opts.env
        .push(("TWOBOT_ALLOW_DANGER_FULL_ACCESS".into(), "true".into()));
    let server = spawn_stdio(opts).await?;
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
    // The person would see the caller's real directory, never Codex's private name.
    assert_eq!(
        s["approvals"][0]["request"]["cwd"],
        server.root.display().to_string(),
        "{s}"
    );
    assert_eq!(s["commands"][0]["status"], "declined", "{s}");
    server.client.cancel().await?;
    Ok(())
}

/// Codex 0.169 runs an approved command outside its sandbox: below danger-full-access
/// nobody is even asked; the policy declines, says why, and the command does not run.
#[tokio::test]
async fn an_approval_beyond_the_callers_ceiling_is_declined_by_policy_without_asking() -> Result<()>
{
    let server = spawn_stdio(app_server()).await?;
    let marker = server.root.join("ran");
    let result = call(
        &server.client,
        json!({"prompt": format!("scenario:approve_command touch {}", marker.display()),
               "sandbox": "workspace-write", "approval_policy": "on-request", "allow_edits": true}),
    )
    .await?;
    let s = structured(&result);
    assert!(!marker.exists(), "a command beyond the ceiling ran");
    assert_eq!(s["approvals"][0]["decision"], "decline", "{s}");
    assert_eq!(s["approvals"][0]["channel"], "policy", "{s}");
    let note = s["approvals"][0]["note"].as_str().unwrap_or_default();
    assert!(
        note.contains("outside Codex's sandbox") && note.contains("workspace-write"),
        "{s}"
    );
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

/// Cancel interrupts the turn, then the group goes: nothing of the run is left.
#[tokio::test]
async fn cancelling_an_app_server_run_leaves_no_process() -> Result<()> {
    let server = spawn_stdio(app_server()).await?;
    let handle = start_call(
        &server.client,
        json!({"prompt": "scenario:hang", "timeout_sec": 600}),
    )
    .await?;
    let HangingRun { codex, grandchild } = hanging_run(&server.record).await?;
    server
        .client
        .peer()
        .notify_cancelled(rmcp::model::CancelledNotificationParam::new(
            Some(handle.id.clone()),
            Some("user pressed stop".into()),
        ))
        .await?;
    assert!(
        gone_within(&codex, Duration::from_secs(10)).await,
        "codex survived"
    );
    assert!(
        gone_within(&grandchild, Duration::from_secs(10)).await,
        "grandchild survived"
    );
    let r = call(&server.client, json!({"prompt": "scenario:ok"})).await?;
    assert_eq!(r.is_error, Some(false));
    assert!(std::fs::read_to_string(&server.log)?.contains("cancelled=true"));
    server.client.cancel().await?;
    Ok(())
}

/// A server that dies mid-run: not ok, with its exit status and its last words.
#[tokio::test]
async fn an_app_server_that_dies_mid_run_gives_a_failed_result_with_the_reason() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let script = dir.path().join("dying-codex");
    std::fs::write(
        &script,
        "#!/bin/sh\nread -r line\necho '{\"id\":1,\"result\":{}}'\nread -r line\necho 'Error: the server fell over' >&2\nexit 3\n",
    )?;
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    let mut opts = app_server();
    opts.codex = script;
    let server = spawn_stdio(opts).await?;
    let started = Instant::now();
    let s = structured(&call(&server.client, json!({"prompt": "hello"})).await?);
    assert!(started.elapsed() < Duration::from_secs(20), "no hang");
    assert_eq!(s["ok"], false, "{s}");
    let error = s["error"].as_str().unwrap_or_default();
    assert!(
        error.contains('3') && error.contains("the server fell over"),
        "{error}"
    );
    server.client.cancel().await?;
    Ok(())
}
