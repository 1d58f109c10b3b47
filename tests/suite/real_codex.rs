//! The real Codex CLI 0.169 (installed by `scripts/test` with `npm ci`), fully offline
//! against the mock Responses API on 127.0.0.1. These tests never skip: without the
//! binary they fail and say how to install it.

use anyhow::Result;
use serde_json::json;

use crate::common::mock_responses::{MockResponses, exec_command, message};
use crate::common::*;

async fn real_server(mock: &MockResponses) -> Result<(StdioServer, tempfile::TempDir)> {
    let codex = real_codex();
    assert!(
        codex.exists(),
        "{} is missing: run `npm ci` in the repository root (`bash scripts/test` does)",
        codex.display()
    );
    let home = tempfile::tempdir()?;
    mock.write_codex_home(home.path())?;
    let server = spawn_stdio(Options {
        codex,
        env: vec![("CODEX_HOME".into(), home.path().display().to_string())],
    })
    .await?;
    Ok((server, home))
}

crate::both_backends!(real_codex_returns_the_final_message_thread_id_and_usage);
/// The tool returns the model's final message, a thread id and token usage.
async fn real_codex_returns_the_final_message_thread_id_and_usage() -> Result<()> {
    let mock = MockResponses::start(vec![vec![message("hello from the mock model")]]).await?;
    let (server, _home) = real_server(&mock).await?;
    let r = call(
        &server.client,
        json!({"prompt": "say hello", "skip_git_repo_check": true, "timeout_sec": 120}),
    )
    .await?;
    let s = structured(&r);
    assert_eq!(r.is_error, Some(false), "{}\n{s:#}", text(&r));
    assert_eq!(text(&r), "hello from the mock model");
    assert_eq!(s["exit_code"], 0);
    assert!(
        s["thread_id"].as_str().is_some_and(|t| t.len() >= 32),
        "{s}"
    );
    assert_eq!(s["usage"]["input_tokens"], 11);
    assert_eq!(s["usage"]["cached_input_tokens"], 3);
    assert_eq!(s["usage"]["output_tokens"], 7);
    assert_eq!(s["usage"]["reasoning_output_tokens"], 2);
    let requests = mock.requests();
    assert!(
        requests.iter().any(|r| r.to_string().contains("say hello")),
        "the prompt reached the model via stdin"
    );
    server.client.cancel().await?;
    Ok(())
}

crate::both_backends!(real_codex_reports_the_commands_it_ran);
/// A command the model asks for shows up in `commands`, with its output and exit code.
async fn real_codex_reports_the_commands_it_ran() -> Result<()> {
    let mock = MockResponses::start(vec![
        vec![exec_command("echo twobot-was-here")],
        vec![message("ran it")],
    ])
    .await?;
    let (server, _home) = real_server(&mock).await?;
    let r = call(
        &server.client,
        json!({"prompt": "run echo", "skip_git_repo_check": true, "timeout_sec": 120}),
    )
    .await?;
    let s = structured(&r);
    assert_eq!(r.is_error, Some(false), "{}\n{s:#}", text(&r));
    let commands = s["commands"].as_array().unwrap();
    assert_eq!(commands.len(), 1, "{s:#}");
    assert!(
        commands[0]["command"]
            .as_str()
            .unwrap()
            .contains("echo twobot-was-here")
    );
    assert!(
        commands[0]["output"]
            .as_str()
            .unwrap()
            .contains("twobot-was-here")
    );
    assert_eq!(commands[0]["exit_code"], 0);
    assert_eq!(text(&r), "ran it");
    server.client.cancel().await?;
    Ok(())
}

crate::both_backends!(real_codex_sandbox_blocks_writes_unless_edits_are_allowed);
/// Under read-only a write by Codex fails; under workspace-write (with allow_edits) it lands.
async fn real_codex_sandbox_blocks_writes_unless_edits_are_allowed() -> Result<()> {
    let mock = MockResponses::start(vec![
        vec![exec_command("echo data > written-ro.txt")],
        vec![message("tried")],
        vec![exec_command("echo data > written-ww.txt")],
        vec![message("wrote")],
    ])
    .await?;
    let (server, _home) = real_server(&mock).await?;
    let r = call(
        &server.client,
        json!({"prompt": "write", "skip_git_repo_check": true, "timeout_sec": 120}),
    )
    .await?;
    let s = structured(&r);
    assert!(
        !server.root.join("written-ro.txt").exists(),
        "read-only let a write through"
    );
    assert!(
        s["sandbox_refused"].as_u64().is_some_and(|n| n >= 1),
        "{s:#}"
    );

    let r = call(
        &server.client,
        json!({"prompt": "write", "skip_git_repo_check": true, "timeout_sec": 120, "sandbox": "workspace-write", "allow_edits": true}),
    )
    .await?;
    let s = structured(&r);
    assert_eq!(s["commands"][0]["exit_code"], 0, "{s:#}");
    assert!(
        server.root.join("written-ww.txt").exists(),
        "workspace-write did not write in cwd"
    );
    server.client.cancel().await?;
    Ok(())
}

crate::both_backends!(real_codex_explains_why_untrusted_approval_is_rejected);
/// Codex 0.169 rejects approval_policy="untrusted"; the caller reads Codex's own reason.
async fn real_codex_explains_why_untrusted_approval_is_rejected() -> Result<()> {
    let mock = MockResponses::start(vec![]).await?;
    let (server, _home) = real_server(&mock).await?;
    let r = call(
        &server.client,
        json!({"prompt": "anything", "approval_policy": "untrusted", "skip_git_repo_check": true, "timeout_sec": 120}),
    )
    .await?;
    assert_eq!(r.is_error, Some(true));
    assert_eq!(
        text(&r),
        "Codex exited with status 1: approval_policy = \"untrusted\" is no longer supported; remove this setting"
    );
    let stderr = structured(&r)["stderr_tail"].as_str().unwrap().to_owned();
    assert!(!stderr.contains("Stack backtrace"), "{stderr}");
    assert!(
        mock.requests().is_empty(),
        "Codex stopped before calling the model"
    );
    server.client.cancel().await?;
    Ok(())
}

crate::both_backends!(real_codex_resumes_a_thread_with_the_earlier_conversation);
/// A resumed thread carries the earlier conversation to the model.
async fn real_codex_resumes_a_thread_with_the_earlier_conversation() -> Result<()> {
    let mock = MockResponses::start(vec![
        vec![message("noted: pineapple")],
        vec![message("the word was pineapple")],
    ])
    .await?;
    let (server, _home) = real_server(&mock).await?;
    let first = call(
        &server.client,
        json!({"prompt": "remember the word pineapple", "ephemeral": false,
               "skip_git_repo_check": true, "timeout_sec": 120}),
    )
    .await?;
    assert_eq!(first.is_error, Some(false), "{}", text(&first));
    let thread = structured(&first)["thread_id"].as_str().unwrap().to_owned();

    let second = call(
        &server.client,
        json!({"prompt": "which word?", "thread_id": thread, "ephemeral": false,
               "skip_git_repo_check": true, "timeout_sec": 120}),
    )
    .await?;
    let s = structured(&second);
    assert_eq!(second.is_error, Some(false), "{}\n{s:#}", text(&second));
    assert_eq!(text(&second), "the word was pineapple");
    assert_eq!(s["thread_id"], thread.as_str());
    let requests = mock.requests();
    let last = requests.last().unwrap()["input"].to_string();
    assert!(
        last.contains("remember the word pineapple")
            && last.contains("noted: pineapple")
            && last.contains("which word?"),
        "the resumed turn sends the earlier conversation: {last}"
    );
    server.client.cancel().await?;
    Ok(())
}

crate::both_backends!(a_resumed_real_codex_thread_cannot_escalate_beyond_the_policy);
/// Resuming a thread started with workspace-write does not inherit it: the policy's
/// sandbox for this call (read-only by default) is what the real Codex enforces. Holds on
/// any machine: Codex 0.169 often reports no `command_execution` item for a command its
/// sandbox stopped, so the test asserts the file and the refusal the caller is told of.
async fn a_resumed_real_codex_thread_cannot_escalate_beyond_the_policy() -> Result<()> {
    let mock = MockResponses::start(vec![
        vec![exec_command("touch first.txt")],
        vec![message("wrote first")],
        vec![exec_command("touch second.txt")],
        vec![message("tried second")],
    ])
    .await?;
    let (server, _home) = real_server(&mock).await?;
    let first = call(
        &server.client,
        json!({"prompt": "write first", "ephemeral": false, "sandbox": "workspace-write",
               "allow_edits": true, "skip_git_repo_check": true, "timeout_sec": 120}),
    )
    .await?;
    assert_eq!(first.is_error, Some(false), "{}", text(&first));
    // Where Codex's sandbox cannot run commands at all, the first write fails too; the
    // caller is told so, and the resumed read-only run below still must not write.
    assert!(
        server.root.join("first.txt").exists()
            || structured(&first)["sandbox_refused"].as_u64() > Some(0),
        "workspace-write neither wrote nor reported a refusal: {:#}",
        structured(&first)
    );
    let thread = structured(&first)["thread_id"].as_str().unwrap().to_owned();

    let second = call(
        &server.client,
        json!({"prompt": "write second", "thread_id": thread, "skip_git_repo_check": true,
               "timeout_sec": 120}),
    )
    .await?;
    assert_eq!(second.is_error, Some(false), "{}", text(&second));
    let s = structured(&second);
    assert!(
        !server.root.join("second.txt").exists(),
        "the resumed read-only run must not write: {s:#}"
    );
    assert!(
        s["sandbox_refused"].as_u64().is_some_and(|n| n >= 1),
        "the caller is told the sandbox refused the write: {s:#}"
    );
    assert!(
        text(&second).contains("sandbox refused"),
        "{}",
        text(&second)
    );

    let danger = call(
        &server.client,
        json!({"prompt": "x", "thread_id": thread, "sandbox": "danger-full-access",
               "allow_edits": true}),
    )
    .await?;
    assert_eq!(danger.is_error, Some(true));
    assert!(
        text(&danger).contains("danger-full-access"),
        "{}",
        text(&danger)
    );
    server.client.cancel().await?;
    Ok(())
}
