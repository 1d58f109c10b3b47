//! The runner, driven through the real binary and a real MCP client with the fake Codex.

use std::time::Duration;

use anyhow::Result;
use serde_json::json;

use crate::common::*;

/// A successful run returns Codex's answer as text and the whole summary as structured content.
#[tokio::test]
async fn a_successful_run_returns_answer_thread_usage_commands_and_changes() -> Result<()> {
    let server = spawn_stdio(Options::default()).await?;
    let result = call(&server.client, json!({"prompt": "scenario:ok please"})).await?;
    assert_eq!(result.is_error, Some(false), "{result:?}");
    assert_eq!(text(&result), "fake answer");
    let s = structured(&result);
    assert_eq!(s["ok"], true);
    assert_eq!(s["exit_code"], 0);
    assert_eq!(s["timed_out"], false);
    assert_eq!(s["cancelled"], false);
    assert!(s["thread_id"].as_str().unwrap().starts_with("fake-thread-"));
    assert_eq!(s["final_message"], "fake answer");
    assert_eq!(
        s["usage"],
        json!({"input_tokens":120,"cached_input_tokens":20,"output_tokens":30,"reasoning_output_tokens":5})
    );
    assert_eq!(
        s["commands"],
        json!([{"command":"ls -a","exit_code":0,"status":"completed","output":"a.txt\n","output_truncated":false}])
    );
    assert_eq!(s["file_changes"], json!([{"path":"a.txt","kind":"update"}]));
    assert_eq!(s["warnings"], json!(["a warning, not fatal"]));
    assert_eq!(s["errors"], json!([]));
    assert!(s.get("events").is_none(), "no event log unless asked");
    assert!(s["duration_ms"].is_u64());
    server.client.cancel().await?;
    Ok(())
}

/// Each parameter maps to its Codex flag; the prompt travels only on stdin.
#[tokio::test]
async fn every_parameter_reaches_codex_as_its_flag_and_the_prompt_only_on_stdin() -> Result<()> {
    let server = spawn_stdio(Options::default()).await?;
    std::fs::create_dir_all(server.root.join("proj/extra"))?;
    let prompt = "scenario:ok SECRET-PROMPT-TEXT with 'quotes' and $(no shell)";
    let result = call(
        &server.client,
        json!({
            "prompt": prompt, "cwd": "proj", "model": "gpt-5.1-codex", "profile": "fast",
            "sandbox": "workspace-write", "approval_policy": "on-request", "allow_edits": true,
            "skip_git_repo_check": true, "add_dirs": ["proj/extra"], "timeout_sec": 60,
            "ephemeral": false, "include_event_log": true
        }),
    )
    .await?;
    assert_eq!(result.is_error, Some(false), "{}", text(&result));
    let run = only_run(&server.record)?;
    // Codex gets the checked directories at their private names in the run's own mount
    // namespace (names no other process can re-point), and starts in the cwd's.
    let proj = "/mnt/proj".to_owned();
    let extra = "/mnt/extra".to_owned();
    assert_eq!(std::fs::read_to_string(run.dir.join("cwd"))?.trim(), proj);
    assert_eq!(
        run.argv,
        [
            "exec",
            "--json",
            "-s",
            "workspace-write",
            "-C",
            &proj,
            "--add-dir",
            &extra,
            "-m",
            "gpt-5.1-codex",
            "-p",
            "fast",
            "--skip-git-repo-check",
            "-c",
            &format!("sandbox_workspace_write.writable_roots=[\"{extra}\"]"),
            "-c",
            "approval_policy=\"on-request\"",
            "-c",
            "approvals_reviewer=\"user\"",
            "-"
        ]
    );
    assert_eq!(run.stdin, prompt);
    assert_eq!(run.cwd, proj, "the child also runs in the validated cwd");
    assert!(!run.argv.iter().any(|a| a.contains("SECRET-PROMPT-TEXT")));
    let s = structured(&result);
    assert!(!s["argv"].to_string().contains("SECRET-PROMPT-TEXT"));
    assert_eq!(
        s["events"].as_array().unwrap().len(),
        8,
        "event log kept on request"
    );
    assert_eq!(s["event_log_truncated"], false);

    // The seed defaults: read-only, ephemeral, no optional flags.
    std::fs::remove_dir_all(&run.dir)?;
    call(&server.client, json!({"prompt": "scenario:ok"})).await?;
    let run = only_run(&server.record)?;
    let root = "/mnt/root".to_owned();
    assert_eq!(
        run.argv,
        [
            "exec",
            "--json",
            "-s",
            "read-only",
            "-C",
            &root,
            "--ephemeral",
            "-c",
            "sandbox_workspace_write.writable_roots=[]",
            "-c",
            "approval_policy=\"never\"",
            "-c",
            "approvals_reviewer=\"user\"",
            "-"
        ]
    );
    server.client.cancel().await?;
    Ok(())
}

/// Codex never sees 2Bot's secrets, but does get the rest of the environment.
#[tokio::test]
async fn the_child_environment_holds_no_twobot_secret() -> Result<()> {
    let server = spawn_stdio(Options {
        env: vec![
            ("TWOBOT_AUTH_TOKENS".into(), "tok-secret-1".into()),
            ("TWOBOT_JWT_SECRET".into(), "jwt-secret-2".into()),
            ("OPENAI_API_KEY".into(), "sk-for-codex".into()),
        ],
        ..Options::default()
    })
    .await?;
    call(&server.client, json!({"prompt": "scenario:ok"})).await?;
    let run = only_run(&server.record)?;
    assert!(
        !run.env.keys().any(|k| k.starts_with("TWOBOT_")),
        "{:?}",
        run.env.keys()
    );
    let all = std::fs::read_to_string(run.dir.join("env"))?;
    assert!(!all.contains("tok-secret-1") && !all.contains("jwt-secret-2"));
    assert_eq!(run.env["OPENAI_API_KEY"], "sk-for-codex");
    server.client.cancel().await?;
    Ok(())
}

/// Failures are tool errors with a reason, and keep what Codex printed.
#[tokio::test]
async fn codex_failures_are_tool_errors_that_say_why() -> Result<()> {
    let server = spawn_stdio(Options::default()).await?;

    let r = call(&server.client, json!({"prompt": "scenario:turn_failed"})).await?;
    assert_eq!(r.is_error, Some(true));
    assert_eq!(text(&r), "Codex turn failed: model quota exceeded");
    assert_eq!(structured(&r)["exit_code"], 1);
    assert!(
        structured(&r)["thread_id"].is_string(),
        "partial output kept"
    );

    let r = call(&server.client, json!({"prompt": "scenario:exit_nonzero"})).await?;
    assert_eq!(r.is_error, Some(true));
    assert_eq!(
        text(&r),
        "Codex exited with status 3: config profile `nope` not found"
    );
    let stderr = structured(&r)["stderr_tail"].as_str().unwrap().to_owned();
    assert!(
        !stderr.contains("backtrace") && !stderr.contains("<unknown>"),
        "{stderr}"
    );

    let r = call(&server.client, json!({"prompt": "scenario:no_turn"})).await?;
    assert_eq!(
        r.is_error,
        Some(true),
        "exit 0 without turn.completed is not success"
    );
    assert!(
        text(&r).starts_with("Codex exited without completing its turn"),
        "{}",
        text(&r)
    );
    assert_eq!(structured(&r)["final_message"], "half done");

    let r = call(&server.client, json!({"prompt": "scenario:stderr_flood"})).await?;
    assert_eq!(text(&r), "Codex exited with status 2: the real reason");
    assert!(structured(&r)["stderr_tail"].as_str().unwrap().len() <= 16 * 1024 + 16);
    server.client.cancel().await?;
    Ok(())
}

/// Garbage, unknown events and non-UTF-8 bytes are kept and counted, never fatal.
#[tokio::test]
async fn garbage_and_non_utf8_output_is_survived() -> Result<()> {
    let server = spawn_stdio(Options::default()).await?;
    let r = call(
        &server.client,
        json!({"prompt": "scenario:garbage", "include_event_log": true}),
    )
    .await?;
    assert_eq!(r.is_error, Some(false), "{}", text(&r));
    let s = structured(&r);
    assert_eq!(s["final_message"], "survived garbage");
    assert_eq!(s["unrecognized_lines"], 4);
    let events = s["events"].as_array().unwrap();
    assert!(
        events.iter().any(|e| e["type"] == "2bot.unparsed_line"
            && e["line"].as_str().unwrap().contains('\u{FFFD}'))
    );
    server.client.cancel().await?;
    Ok(())
}

/// A timeout kills Codex and the command it started, and returns what was seen.
#[tokio::test]
async fn a_timeout_kills_the_whole_tree_and_keeps_partial_output() -> Result<()> {
    let server = spawn_stdio(Options::default()).await?;
    let r = call(
        &server.client,
        json!({"prompt": "scenario:hang", "timeout_sec": 2}),
    )
    .await?;
    assert_eq!(r.is_error, Some(true));
    let s = structured(&r);
    assert_eq!(s["timed_out"], true);
    assert_eq!(s["ok"], false);
    assert!(text(&r).starts_with("timed out after 2 s"), "{}", text(&r));
    assert!(s["thread_id"].is_string(), "partial output kept: {s}");
    assert_eq!(s["commands"][0]["command"], "sleep 300");
    let run = only_run(&server.record)?;
    let grandchild = read_run_pid(&run.dir.join("grandchild.pid"))?;
    let codex = read_run_pid(&run.dir.join("codex.pid"))?;
    assert!(
        gone_within(&codex, Duration::from_secs(2)).await,
        "codex survived"
    );
    assert!(
        gone_within(&grandchild, Duration::from_secs(2)).await,
        "grandchild {grandchild} survived"
    );
    server.client.cancel().await?;
    Ok(())
}

/// A Codex that ignores SIGTERM is SIGKILLed after the grace period.
#[tokio::test]
async fn a_codex_ignoring_sigterm_is_killed_after_the_grace_period() -> Result<()> {
    let server = spawn_stdio(Options::default()).await?;
    let r = call(
        &server.client,
        json!({"prompt": "scenario:ignore_term", "timeout_sec": 1}),
    )
    .await?;
    let s = structured(&r);
    assert_eq!(s["timed_out"], true);
    assert!(s["exit_code"].is_null(), "killed by a signal: {s}");
    let run = only_run(&server.record)?;
    let codex = read_run_pid(&run.dir.join("codex.pid"))?;
    assert!(gone_within(&codex, Duration::from_secs(2)).await);
    server.client.cancel().await?;
    Ok(())
}

/// `notifications/cancelled` kills the process group at once.
#[tokio::test]
async fn cancelling_a_call_kills_codex_and_its_children() -> Result<()> {
    let server = spawn_stdio(Options::default()).await?;
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
        "codex survived cancellation"
    );
    assert!(
        gone_within(&grandchild, Duration::from_secs(10)).await,
        "grandchild survived cancellation"
    );
    // The server is still healthy afterwards.
    let r = call(&server.client, json!({"prompt": "scenario:ok"})).await?;
    assert_eq!(r.is_error, Some(false));
    let log = std::fs::read_to_string(&server.log)?;
    assert!(
        log.contains("cancelled=true"),
        "the run's span records the cancellation"
    );
    server.client.cancel().await?;
    Ok(())
}

/// Progress notifications follow Codex's items while it works.
#[tokio::test]
async fn progress_notifications_report_each_codex_item() -> Result<()> {
    let server = spawn_stdio(Options::default()).await?;
    let r = call(&server.client, json!({"prompt": "scenario:slow"})).await?;
    assert_eq!(text(&r), "slow answer");
    let progress = server.recorder.progress.lock().unwrap().clone();
    for expected in [
        "turn started",
        "command: cargo test (running)",
        "command: cargo test (exit 0)",
        "message: slow answer",
    ] {
        assert!(
            progress.iter().any(|p| p == expected),
            "{expected:?} not in {progress:?}"
        );
    }
    server.client.cancel().await?;
    Ok(())
}

/// While Codex is silent, a keep-alive progress message arrives at least every 20 s.
#[tokio::test]
async fn a_quiet_codex_still_produces_keepalive_progress() -> Result<()> {
    let server = spawn_stdio(Options {
        env: vec![("FAKE_CODEX_QUIET_SEC".into(), "17".into())],
        ..Options::default()
    })
    .await?;
    let r = call(&server.client, json!({"prompt": "scenario:quiet"})).await?;
    assert_eq!(text(&r), "after silence");
    let progress = server.recorder.progress.lock().unwrap().clone();
    assert!(
        progress
            .iter()
            .any(|p| p.starts_with("codex still running")),
        "{progress:?}"
    );
    server.client.cancel().await?;
    Ok(())
}

/// 50 MB of output and an 8 MB line leave the server's memory bounded.
#[tokio::test]
async fn a_flood_of_output_keeps_server_memory_bounded() -> Result<()> {
    let server = spawn_stdio(Options::default()).await?;
    let r = call(
        &server.client,
        json!({"prompt": "scenario:flood", "include_event_log": true, "timeout_sec": 300}),
    )
    .await?;
    let s = structured(&r);
    assert_eq!(s["final_message"], "flood done", "{}", text(&r));
    assert_eq!(s["event_log_truncated"], true);
    assert!(s["unrecognized_lines"].as_u64().unwrap() >= 50_000);
    let peak = peak_rss_kib(server.pid).unwrap();
    eprintln!(
        "server peak RSS after 58 MB of Codex output: {} MiB",
        peak / 1024
    );
    assert!(peak < 120 * 1024, "peak RSS {peak} KiB");
    server.client.cancel().await?;
    Ok(())
}

/// Beyond the running and queued limits, a call is refused as busy at once.
#[tokio::test]
async fn beyond_the_run_and_queue_limits_calls_are_refused_as_busy() -> Result<()> {
    let server = spawn_stdio(Options {
        env: vec![
            ("TWOBOT_MAX_CONCURRENT_RUNS".into(), "1".into()),
            ("TWOBOT_MAX_QUEUED_RUNS".into(), "0".into()),
        ],
        ..Options::default()
    })
    .await?;
    let first = start_call(
        &server.client,
        json!({"prompt": "scenario:hang", "timeout_sec": 600}),
    )
    .await?;
    wait_for_run_dir(&server.record, Duration::from_secs(20)).await?;
    let r = call(&server.client, json!({"prompt": "scenario:ok"})).await?;
    assert_eq!(r.is_error, Some(true));
    assert!(text(&r).starts_with("busy:"), "{}", text(&r));
    assert!(text(&r).contains("TWOBOT_MAX_CONCURRENT_RUNS"));
    server
        .client
        .peer()
        .notify_cancelled(rmcp::model::CancelledNotificationParam::new(
            Some(first.id.clone()),
            None,
        ))
        .await?;
    server.client.cancel().await?;
    Ok(())
}

/// A Codex binary that does not exist is a clear tool error, not a crash.
#[tokio::test]
async fn a_missing_codex_binary_is_a_clear_error() -> Result<()> {
    let server = spawn_stdio(Options {
        codex: "/nonexistent/codex".into(),
        ..Options::default()
    })
    .await?;
    let r = call(&server.client, json!({"prompt": "hi"})).await?;
    assert_eq!(r.is_error, Some(true));
    assert!(
        text(&r).contains("cannot start Codex (/nonexistent/codex)"),
        "{}",
        text(&r)
    );
    assert!(text(&r).contains("CODEX_BIN"));
    server.client.cancel().await?;
    Ok(())
}
