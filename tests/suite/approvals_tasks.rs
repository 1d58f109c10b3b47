//! Approvals of a run started as an MCP task (issue 20), answered from the run card the
//! way a background run's are: the card reads the pending request and its token with
//! `get_codex_run` (the task id is the run id) and answers with `answer_codex_approval`,
//! owner-checked. The real binary over Streamable HTTP on the app-server backend, the
//! fake Codex asking to `touch` a marker, so what the answer did is seen on disk.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rmcp::RoleClient;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ClientCapabilities, GetTaskParams,
    MetaObject, RequestMetaObject, TaskPayload, TaskStatus,
};
use rmcp::service::RunningService;
use serde_json::{Value, json};

use crate::common::http::*;
use crate::common::*;

type Client = RunningService<RoleClient, Recorder>;

async fn tool(client: &Client, name: &'static str, args: Value) -> Result<CallToolResult> {
    let Value::Object(map) = args else {
        anyhow::bail!("arguments must be an object")
    };
    Ok(client
        .call_tool(CallToolRequestParams::new(name).with_arguments(map))
        .await?)
}

/// A server with tokens for alice and bob, the background tools listed (the card's
/// `get_codex_run` and `answer_codex_approval`), and a ceiling that lets a command
/// approval reach a person (src/policy/approvals.rs).
async fn server(auth: bool) -> Result<HttpServer> {
    let mut env = vec![
        ("TWOBOT_CODEX_BACKEND", "app-server"),
        ("TWOBOT_ALLOW_DANGER_FULL_ACCESS", "true"),
        ("TWOBOT_ENABLE_BACKGROUND_RUNS", "true"),
    ];
    if auth {
        env.extend([
            ("TWOBOT_ENABLE_NO_AUTH", "false"),
            ("TWOBOT_AUTH_TOKENS", "alice:tok-alice,bob:tok-bob"),
        ]);
    }
    spawn_http(&env).await
}

/// Start, as a task, a run whose Codex asks to `touch` a marker; the task id and marker.
async fn start_task(client: &Client, server: &HttpServer) -> Result<(String, PathBuf)> {
    let marker = server
        .record
        .parent()
        .context("base")?
        .join("root")
        .join("task-approved-marker");
    let args = json!({
        "prompt": format!("scenario:approve_command touch {} && echo ran-it", marker.display()),
        "sandbox": "workspace-write", "allow_edits": true, "approval_policy": "on-request",
    });
    let Value::Object(map) = args else {
        anyhow::bail!("object")
    };
    let mut params = CallToolRequestParams::new("run_codex_prompt").with_arguments(map);
    let mut meta = RequestMetaObject(MetaObject::default());
    meta.set_client_capabilities(ClientCapabilities::builder().enable_tasks().build());
    params.meta = Some(meta);
    match client.call_tool_once(params).await? {
        CallToolResponse::Task(created) => Ok((created.task.task_id, marker)),
        other => anyhow::bail!("expected a task, got {other:?}"),
    }
}

/// Poll `get_codex_run` as the card does until a request is pending; its id and token.
async fn pending(client: &Client, run_id: &str) -> Result<(String, String)> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = tool(
            client,
            "get_codex_run",
            json!({"run_id": run_id, "wait_sec": 5}),
        )
        .await?;
        let snapshot = structured(&got);
        if let Some(p) = snapshot["pending_approvals"].get(0) {
            let id = p["id"].as_str().context("approval id")?.to_owned();
            let meta = serde_json::to_value(&got.meta)?;
            let token = meta["2bot/approvalTokens"][&id]
                .as_str()
                .with_context(|| format!("the card's token in _meta: {meta}"))?
                .to_owned();
            return Ok((id, token));
        }
        anyhow::ensure!(
            Instant::now() < deadline && snapshot["status"] == "working",
            "no pending approval: {snapshot:#}"
        );
    }
}

/// The task's result once it ends.
async fn task_result(client: &Client, id: &str) -> Result<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let task = client.get_task(GetTaskParams::new(id)).await?.task;
        if task.status() != TaskStatus::Working {
            return match task.payload {
                TaskPayload::Completed { result } => Ok(Value::Object(result)),
                other => anyhow::bail!("task ended {other:?}"),
            };
        }
        anyhow::ensure!(Instant::now() < deadline, "the task never ended");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn answer(run_id: &str, approval_id: &str, token: &str) -> Value {
    json!({"run_id": run_id, "approval_id": approval_id, "token": token, "decision": "approve"})
}

/// Alice's task waits on an approval: Bob, even holding the card's token, can neither
/// see the run nor answer it; Alice's card answers it, the command runs, and the task's
/// result records a card accept by alice.
#[tokio::test]
async fn a_tasks_pending_approval_is_answered_from_the_card_by_its_owner_only() -> Result<()> {
    let server = server(true).await?;
    let alice = http_task_client(&server.url, Some("tok-alice")).await?;
    let bob = http_client(&server.url, Some("tok-bob")).await?;
    let (task_id, marker) = start_task(&alice, &server).await?;
    let (approval_id, token) = pending(&alice, &task_id).await?;

    let refused = tool(
        &bob,
        "answer_codex_approval",
        answer(&task_id, &approval_id, &token),
    )
    .await?;
    assert_eq!(refused.is_error, Some(true), "{}", text(&refused));
    assert!(text(&refused).contains("no run"), "{}", text(&refused));
    let peek = tool(&bob, "get_codex_run", json!({"run_id": task_id})).await?;
    assert_eq!(peek.is_error, Some(true), "{}", text(&peek));
    assert!(!marker.exists(), "bob's answer ran the command");

    let answered = tool(
        &alice,
        "answer_codex_approval",
        answer(&task_id, &approval_id, &token),
    )
    .await?;
    assert_ne!(answered.is_error, Some(true), "{}", text(&answered));
    let result = task_result(&alice, &task_id).await?;
    let s = &result["structuredContent"];
    assert!(
        marker.exists(),
        "the approved command did not run: {result:#}"
    );
    assert_eq!(s["approvals"][0]["decision"], "accept", "{result:#}");
    assert_eq!(s["approvals"][0]["channel"], "card", "{result:#}");
    assert_eq!(s["approvals"][0]["answered_by"], "alice", "{result:#}");
    assert_eq!(s["commands"][0]["status"], "completed", "{result:#}");
    Ok(())
}

/// Without authentication every HTTP caller is the same anonymous principal, so a task
/// belongs to the session that started it: the card on that session answers it, a
/// caller on another session finds no such run.
#[tokio::test]
async fn an_anonymous_tasks_approval_is_answered_only_from_its_own_session() -> Result<()> {
    let server = server(false).await?;
    let mine = http_task_client(&server.url, None).await?;
    let other = http_client(&server.url, None).await?;
    let (task_id, marker) = start_task(&mine, &server).await?;
    let (approval_id, token) = pending(&mine, &task_id).await?;

    let refused = tool(
        &other,
        "answer_codex_approval",
        answer(&task_id, &approval_id, &token),
    )
    .await?;
    assert_eq!(refused.is_error, Some(true), "{}", text(&refused));
    assert!(!marker.exists(), "another session's answer ran the command");

    let answered = tool(
        &mine,
        "answer_codex_approval",
        answer(&task_id, &approval_id, &token),
    )
    .await?;
    assert_ne!(answered.is_error, Some(true), "{}", text(&answered));
    let result = task_result(&mine, &task_id).await?;
    assert!(
        marker.exists(),
        "the approved command did not run: {result:#}"
    );
    assert_eq!(
        result["structuredContent"]["approvals"][0]["channel"], "card",
        "{result:#}"
    );
    Ok(())
}
