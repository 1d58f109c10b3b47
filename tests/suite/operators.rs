//! What operators see: the audit log (`TWOBOT_AUDIT_LOG`) and the Prometheus metrics
//! (`TWOBOT_METRICS_ADDR`). Every way into a run — a direct call, an MCP task, a
//! background run, on stdio and on HTTP — and every refusal writes the same record
//! and moves the same counters.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, ClientCapabilities, GetTaskParams, MetaObject,
    RequestMetaObject, TaskStatus,
};
use serde_json::{Value, json};

use crate::common::http::*;
use crate::common::*;

const TOKENS: &str = "alice:tok-alice,bob:tok-bob";

/// The audit log's records, once there are at least `n`.
async fn records(path: &Path, n: usize) -> Result<Vec<Value>> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<Value> = text
            .lines()
            .map(serde_json::from_str)
            .collect::<Result<_, _>>()
            .context("every audit line is one JSON object")?;
        if lines.len() >= n || tokio::time::Instant::now() > deadline {
            return Ok(lines);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The value of one sample line (`name{labels} value`) in the exposition, 0 if absent.
pub fn sample(exposition: &str, series: &str) -> f64 {
    exposition
        .lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

fn find<'a>(records: &'a [Value], path: &str, outcome: &str) -> Option<&'a Value> {
    records
        .iter()
        .find(|r| r["path"] == path && r["outcome"] == outcome)
}

/// Direct, task and background runs over HTTP, a policy refusal and a busy refusal:
/// one audit record each with the same fields, and the matching counters.
#[tokio::test]
async fn every_path_writes_the_same_audit_record_and_moves_the_same_metrics() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let audit = dir.path().join("audit.jsonl");
    let server = spawn_http(&[
        ("TWOBOT_ENABLE_NO_AUTH", "false"),
        ("TWOBOT_AUTH_TOKENS", TOKENS),
        ("TWOBOT_ENABLE_BACKGROUND_RUNS", "true"),
        ("TWOBOT_AUDIT_LOG", audit.to_str().context("utf-8 path")?),
        ("TWOBOT_METRICS_ADDR", "127.0.0.1:0"),
        ("TWOBOT_MAX_CONCURRENT_RUNS", "1"),
        ("TWOBOT_MAX_QUEUED_RUNS", "0"),
    ])
    .await?;
    let metrics = metrics_url(&server.log).await?;
    let client = http_task_client(&server.url, Some("tok-alice")).await?;

    // Direct.
    let direct = call(
        &client,
        json!({"prompt": "scenario:ok direct secret-prompt"}),
    )
    .await?;
    assert_eq!(direct.is_error, Some(false), "{}", text(&direct));

    // Task: the request declares the tasks extension.
    let Value::Object(args) = json!({"prompt": "scenario:ok as a task"}) else {
        unreachable!()
    };
    let mut params = CallToolRequestParams::new("run_codex_prompt").with_arguments(args);
    let mut meta = RequestMetaObject(MetaObject::default());
    meta.set_client_capabilities(ClientCapabilities::builder().enable_tasks().build());
    params.meta = Some(meta);
    let CallToolResponse::Task(created) = client.call_tool_once(params).await? else {
        anyhow::bail!("expected a task");
    };
    // One slot: let the task end before the next run.
    for _ in 0..100 {
        let task = client
            .get_task(GetTaskParams::new(created.task.task_id.clone()))
            .await?;
        if !matches!(task.task.status(), TaskStatus::Working) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Background, then followed to its end.
    let bg = call(
        &client,
        json!({"prompt": "scenario:ok background", "background": true}),
    )
    .await?;
    let run_id = structured(&bg)["run_id"]
        .as_str()
        .context("run_id")?
        .to_owned();
    let mut done = false;
    for _ in 0..20 {
        let Value::Object(args) = json!({"run_id": run_id, "wait_sec": 5}) else {
            unreachable!()
        };
        let got = client
            .call_tool(CallToolRequestParams::new("get_codex_run").with_arguments(args))
            .await?;
        if structured(&got)["status"] != "working" {
            done = true;
            break;
        }
    }
    assert!(done, "the background run ended");

    // A policy refusal, then a busy one (one slot, no queue, held by a hanging run).
    let refused = call(&client, json!({"prompt": "scenario:ok", "cwd": "/etc"})).await?;
    assert_eq!(refused.is_error, Some(true));
    let hang = call(
        &client,
        json!({"prompt": "scenario:hang", "background": true}),
    )
    .await?;
    let hang_id = structured(&hang)["run_id"]
        .as_str()
        .context("run_id")?
        .to_owned();
    // The task may still hold the slot briefly; wait until "busy" is what we get.
    let mut busy = None;
    for _ in 0..50 {
        let r = call(&client, json!({"prompt": "scenario:ok busy"})).await?;
        if text(&r).starts_with("busy") {
            busy = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        busy.is_some(),
        "a call beyond the slot and the queue is busy"
    );
    let Value::Object(args) = json!({"run_id": hang_id}) else {
        unreachable!()
    };
    client
        .call_tool(CallToolRequestParams::new("cancel_codex_run").with_arguments(args))
        .await?;

    let all = records(&audit, 6).await?;
    let mode = std::fs::metadata(&audit)?.permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the audit log is private");

    let direct = find(&all, "direct", "ok").context("a direct ok record")?;
    for field in [
        "time",
        "request_id",
        "principal",
        "transport",
        "path",
        "cwd",
        "sandbox",
        "model",
        "thread_id",
        "outcome",
        "reason",
        "exit_code",
        "duration_ms",
        "input_tokens",
        "cached_input_tokens",
        "output_tokens",
        "commands",
        "files_changed",
        "prompt",
    ] {
        assert!(direct.get(field).is_some(), "{field} missing from {direct}");
    }
    assert_eq!(direct["principal"], "token:alice");
    assert_eq!(direct["transport"], "http");
    assert_eq!(direct["sandbox"], "read-only");
    assert_eq!(direct["exit_code"], 0);
    assert_eq!(direct["input_tokens"], 120);
    assert_eq!(direct["commands"], 1);
    assert_eq!(direct["files_changed"], 1);
    assert!(
        direct["thread_id"]
            .as_str()
            .is_some_and(|t| t.starts_with("fake-thread-"))
    );
    assert!(direct["request_id"].as_str().is_some_and(|r| !r.is_empty()));
    assert_eq!(
        direct["prompt"]["len"],
        "scenario:ok direct secret-prompt".len()
    );
    assert_eq!(direct["prompt"]["sha256"].as_str().map(str::len), Some(64));
    let whole = std::fs::read_to_string(&audit)?;
    assert!(
        !whole.contains("secret-prompt"),
        "prompts are hashed by default"
    );

    assert!(find(&all, "task", "ok").is_some(), "{all:#?}");
    assert!(find(&all, "background", "ok").is_some(), "{all:#?}");
    let refusal = find(&all, "direct", "refused").context("a refusal record")?;
    assert_eq!(
        refusal["cwd"], "/etc",
        "a refusal records the caller's input"
    );
    assert!(
        refusal["reason"]
            .as_str()
            .is_some_and(|r| r.contains("cwd"))
    );
    assert!(find(&all, "direct", "busy").is_some(), "{all:#?}");
    let cancelled = records(&audit, 7).await?;
    assert!(
        find(&cancelled, "background", "cancelled").is_some(),
        "{cancelled:#?}"
    );

    let exposition = reqwest::get(&metrics).await?.text().await?;
    for (series, at_least) in [
        (
            r#"twobot_runs_total{outcome="ok",transport="http",path="direct"}"#,
            1.0,
        ),
        (
            r#"twobot_runs_total{outcome="ok",transport="http",path="task"}"#,
            1.0,
        ),
        (
            r#"twobot_runs_total{outcome="ok",transport="http",path="background"}"#,
            1.0,
        ),
        (
            r#"twobot_runs_total{outcome="refused",transport="http",path="direct"}"#,
            1.0,
        ),
        (
            r#"twobot_runs_total{outcome="busy",transport="http",path="direct"}"#,
            1.0,
        ),
        (r#"twobot_refusals_total{reason="policy"}"#, 1.0),
        (r#"twobot_refusals_total{reason="busy"}"#, 1.0),
        (r#"twobot_codex_tokens_total{kind="input"}"#, 360.0),
        ("twobot_run_duration_seconds_count", 4.0),
    ] {
        let got = sample(&exposition, series);
        assert!(
            got >= at_least,
            "{series} = {got}, want >= {at_least}\n{exposition}"
        );
    }
    assert!(
        !exposition.contains("alice"),
        "labels never carry principals"
    );
    assert!(!exposition.contains("/etc"), "labels never carry paths");

    // The MCP listener does not serve metrics.
    let on_mcp = reqwest::get(format!("{}/metrics", server.base)).await?;
    assert_ne!(on_mcp.status(), reqwest::StatusCode::OK);
    Ok(())
}

/// stdio runs are audited too; the prompt is kept in full only when asked for; a
/// rotated log is reopened on SIGHUP; a log that cannot be written never fails a run.
#[tokio::test]
async fn stdio_runs_are_audited_rotated_on_sighup_and_never_failed_by_the_log() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let audit = dir.path().join("audit.jsonl");
    let server = spawn_stdio(Options {
        env: vec![
            ("TWOBOT_AUDIT_LOG".into(), audit.display().to_string()),
            ("TWOBOT_AUDIT_PROMPTS".into(), "true".into()),
        ],
        ..Options::default()
    })
    .await?;
    let r = call(&server.client, json!({"prompt": "scenario:ok keep me"})).await?;
    assert_eq!(r.is_error, Some(false));
    let first = records(&audit, 1).await?;
    assert_eq!(first[0]["transport"], "stdio");
    assert_eq!(first[0]["principal"], "local");
    assert_eq!(first[0]["prompt"]["text"], "scenario:ok keep me");

    // logrotate: move the file, SIGHUP the server, the next record lands in a new file.
    let rotated = dir.path().join("audit.jsonl.1");
    std::fs::rename(&audit, &rotated)?;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(server.pid)?),
        nix::sys::signal::Signal::SIGHUP,
    )?;
    file_when(&server.log, |t| t.contains("audit log reopened")).await?;
    call(
        &server.client,
        json!({"prompt": "scenario:ok after rotation"}),
    )
    .await?;
    let after = records(&audit, 1).await?;
    assert_eq!(after.len(), 1);
    assert_eq!(after[0]["prompt"]["text"], "scenario:ok after rotation");
    assert_eq!(std::fs::read_to_string(&rotated)?.lines().count(), 1);

    // /dev/full takes the open and refuses every write.
    let full = spawn_stdio(Options {
        env: vec![("TWOBOT_AUDIT_LOG".into(), "/dev/full".into())],
        ..Options::default()
    })
    .await?;
    let r = call(&full.client, json!({"prompt": "scenario:ok"})).await?;
    assert_eq!(r.is_error, Some(false), "{}", text(&r));
    file_when(&full.log, |t| t.contains("AUDIT RECORD LOST")).await?;
    Ok(())
}

/// An audit log that cannot be opened stops start-up with one line naming the variable.
#[tokio::test]
async fn an_unopenable_audit_log_stops_start_up_naming_the_variable() -> Result<()> {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_2bot-mcp"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("CODEX_BIN", fake_codex())
        .env("TWOBOT_STATE_DIR", tempfile::tempdir()?.path())
        .env("TWOBOT_AUDIT_LOG", "/nonexistent-dir/audit.jsonl")
        .stdin(std::process::Stdio::null())
        .output()
        .await?;
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("TWOBOT_AUDIT_LOG"), "{stderr}");
    Ok(())
}

/// The HTTP edge reports too: a `tools/call` refused by authentication gets an audit
/// record, and 401s, auth failures and 429s are counted.
#[tokio::test]
async fn refusals_at_the_http_edge_are_audited_and_counted() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let audit = dir.path().join("audit.jsonl");
    let server = spawn_http(&[
        ("TWOBOT_ENABLE_NO_AUTH", "false"),
        ("TWOBOT_AUTH_TOKENS", TOKENS),
        ("TWOBOT_AUDIT_LOG", audit.to_str().context("utf-8 path")?),
        ("TWOBOT_METRICS_ADDR", "127.0.0.1:0"),
        ("TWOBOT_RATE_LIMIT_PER_MINUTE", "1"),
        ("TWOBOT_RATE_LIMIT_BURST", "2"),
    ])
    .await?;
    let metrics = metrics_url(&server.log).await?;
    let call = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
        "params": {"name": "run_codex_prompt",
                   "arguments": {"prompt": "scenario:ok let me in", "cwd": "/srv/x"}}});
    let denied = post(&server.url, &call)
        .bearer_auth("not-a-token")
        .send()
        .await?;
    assert_eq!(denied.status(), reqwest::StatusCode::UNAUTHORIZED);
    let all = records(&audit, 1).await?;
    let record = find(&all, "direct", "refused").context("an audit record of the denied call")?;
    assert_eq!(record["principal"], "unauthenticated");
    assert_eq!(record["cwd"], "/srv/x");
    assert!(
        record["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("authentication"))
    );
    assert_eq!(record["prompt"]["len"], "scenario:ok let me in".len());

    // The same caller, authenticated, beyond its burst: 429.
    let mut limited = false;
    for _ in 0..5 {
        let r = post(&server.url, &initialize_body())
            .bearer_auth("tok-alice")
            .send()
            .await?;
        limited |= r.status() == reqwest::StatusCode::TOO_MANY_REQUESTS;
    }
    assert!(limited, "the burst of 2 was exceeded");

    let exposition = reqwest::get(&metrics).await?.text().await?;
    for series in [
        r#"twobot_auth_failures_total{reason="invalid"}"#,
        r#"twobot_http_requests_total{status="401"}"#,
        r#"twobot_http_requests_total{status="429"}"#,
        "twobot_rate_limited_total",
        r#"twobot_runs_total{outcome="refused",transport="http",path="direct"}"#,
    ] {
        assert!(sample(&exposition, series) >= 1.0, "{series}\n{exposition}");
    }
    Ok(())
}
