//! MCP tasks (SEP-2663, as rmcp 3.11 speaks it): a client that declares the tasks
//! extension gets `run_codex_prompt` as a task, follows it with `tasks/get` (status and
//! the latest progress while it runs, the direct call's result once it is done) and
//! stops it with `tasks/cancel`. Tasks share the run registry's ownership and bounds.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rmcp::RoleClient;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CancelTaskParams, ClientCapabilities, ClientRequest,
    CustomRequest, DetailedTask, GetTaskParams, MetaObject, RequestMetaObject, ServerResult,
    TaskPayload, TaskStatus,
};
use rmcp::service::RunningService;
use serde_json::{Value, json};

use crate::common::http::*;
use crate::common::inproc::serve_in_process;
use crate::common::*;

const TOKENS: &str = "alice:tok-alice,bob:tok-bob";

/// `tools/call run_codex_prompt`, answered either directly or with a task; with
/// `as_task`, the request declares the tasks extension in its `_meta` (SEP-2663).
async fn call_with(
    client: &RunningService<RoleClient, Recorder>,
    args: Value,
    as_task: bool,
) -> Result<CallToolResponse> {
    let Value::Object(map) = args else {
        anyhow::bail!("arguments must be an object")
    };
    let mut params = CallToolRequestParams::new("run_codex_prompt").with_arguments(map);
    if as_task {
        let mut meta = RequestMetaObject(MetaObject::default());
        meta.set_client_capabilities(ClientCapabilities::builder().enable_tasks().build());
        params.meta = Some(meta);
    }
    Ok(client.call_tool_once(params).await?)
}

async fn call_once(
    client: &RunningService<RoleClient, Recorder>,
    args: Value,
) -> Result<CallToolResponse> {
    call_with(client, args, true).await
}

async fn start_task(client: &RunningService<RoleClient, Recorder>, args: Value) -> Result<String> {
    match call_once(client, args).await? {
        CallToolResponse::Task(created) => {
            assert_eq!(created.task.status, TaskStatus::Working);
            assert!(created.task.poll_interval_ms.is_some());
            assert_eq!(created.task.ttl_ms, Some(21_600_000), "TWOBOT_TASK_TTL_SEC");
            Ok(created.task.task_id)
        }
        other => anyhow::bail!("expected a task, got {other:?}"),
    }
}

async fn get(client: &RunningService<RoleClient, Recorder>, id: &str) -> Result<DetailedTask> {
    Ok(client.get_task(GetTaskParams::new(id)).await?.task)
}

/// The `CallToolResult` (as JSON) of a completed task.
fn completed_result(task: &DetailedTask) -> Result<Value> {
    match &task.payload {
        TaskPayload::Completed { result } => Ok(Value::Object(result.clone())),
        other => anyhow::bail!("task is not completed: {other:?}"),
    }
}

crate::both_stores!(a_task_capable_client_follows_a_long_call_as_a_task_to_its_result);
/// A 30 s call runs as a task: answered at once, followed with tasks/get (progress
/// while it works), its result the direct call's; another principal cannot see it.
async fn a_task_capable_client_follows_a_long_call_as_a_task_to_its_result() -> Result<()> {
    let server = serve_in_process(&[
        ("TWOBOT_ENABLE_NO_AUTH", "false"),
        ("TWOBOT_AUTH_TOKENS", TOKENS),
        ("FAKE_CODEX_STEPS", "30"),
    ])
    .await?;
    let alice = http_task_client(&server.url, Some("tok-alice")).await?;
    let bob = http_task_client(&server.url, Some("tok-bob")).await?;
    let caps = alice
        .peer_info()
        .context("server info")?
        .capabilities
        .clone();
    assert!(caps.supports_tasks(), "2Bot declares the tasks extension");

    let started = Instant::now();
    let id = start_task(&alice, json!({"prompt": "scenario:long"})).await?;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "a task starts at once"
    );

    for attempt in [
        bob.get_task(GetTaskParams::new(&id)).await.err(),
        bob.cancel_task(CancelTaskParams::new(&id)).await.err(),
    ] {
        let error = attempt.context("bob must not reach alice's task")?;
        assert!(error.to_string().contains("no run"), "{error}");
    }

    // tasks/result (MCP 2025-11-25) waits for the end and returns the same result.
    let waiting = {
        let peer = alice.peer().clone();
        let id = id.clone();
        tokio::spawn(async move {
            peer.send_request(ClientRequest::CustomRequest(CustomRequest::new(
                "tasks/result",
                Some(json!({"taskId": id})),
            )))
            .await
        })
    };

    let mut messages = Vec::new();
    let done = loop {
        let task = get(&alice, &id).await?;
        if task.status() != TaskStatus::Working {
            break task;
        }
        messages.extend(task.task.status_message.clone());
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "never finished"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    };
    assert!(
        messages.iter().filter(|m| m.contains("step")).count() >= 5,
        "tasks/get shows Codex's progress while it works: {messages:?}"
    );
    assert!(started.elapsed() >= Duration::from_secs(28));
    assert_eq!(done.status(), TaskStatus::Completed);
    let result = completed_result(&done)?;
    assert_eq!(result["isError"], false, "{result:#}");
    assert_eq!(result["content"][0]["text"], "long answer");
    let structured = &result["structuredContent"];
    assert_eq!(structured["ok"], true);
    assert_eq!(structured["final_message"], "long answer");
    assert_eq!(structured["commands"].as_array().map(Vec::len), Some(30));
    assert_eq!(structured["usage"]["output_tokens"], 30);
    // The client reads it as what it is: the tool call's result.
    match waiting.await?? {
        ServerResult::CallToolResult(r) => {
            assert_eq!(text(&r), "long answer");
            assert_eq!(r.is_error, Some(false));
            assert_eq!(r.structured_content.as_ref(), Some(structured));
        }
        other => anyhow::bail!("tasks/result: {other:?}"),
    }

    alice.cancel().await?;
    bob.cancel().await?;
    Ok(())
}

crate::both_stores!(cancelling_a_task_leaves_no_process_behind);
/// tasks/cancel kills Codex and everything it started; the task reads `cancelled`.
async fn cancelling_a_task_leaves_no_process_behind() -> Result<()> {
    let server = serve_in_process(&[]).await?;
    let client = http_task_client(&server.url, None).await?;
    let id = start_task(
        &client,
        json!({"prompt": "scenario:hang", "timeout_sec": 600}),
    )
    .await?;
    let HangingRun { codex, grandchild } = hanging_run(&server.record).await?;
    assert_eq!(get(&client, &id).await?.status(), TaskStatus::Working);

    client.cancel_task(CancelTaskParams::new(&id)).await?;
    assert!(
        gone_within(&codex, Duration::from_secs(10)).await,
        "codex survived"
    );
    assert!(
        gone_within(&grandchild, Duration::from_secs(10)).await,
        "codex's child survived"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let task = get(&client, &id).await?;
        if task.status() == TaskStatus::Cancelled {
            break;
        }
        assert!(Instant::now() < deadline, "still {:?}", task.status());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let error = client
        .send_request(ClientRequest::CustomRequest(CustomRequest::new(
            "tasks/result",
            Some(json!({"taskId": id})),
        )))
        .await
        .err()
        .context("tasks/result of a cancelled task is an error")?;
    assert!(error.to_string().contains("was cancelled"), "{error}");
    let health = reqwest::get(format!("{}/healthz", server.base)).await?;
    assert_eq!(health.status(), 200);
    client.cancel().await?;
    Ok(())
}

/// Refusals stay immediate tool errors, tasks count against TWOBOT_MAX_RUNS, a task
/// of one no-auth session is invisible to another, clients without tasks get direct
/// results, and TWOBOT_ENABLE_TASKS=false turns tasks off.
#[tokio::test]
async fn tasks_are_bounded_session_bound_and_optional() -> Result<()> {
    let server = serve_in_process(&[("TWOBOT_MAX_RUNS", "1")]).await?;
    let first = http_task_client(&server.url, None).await?;
    let second = http_task_client(&server.url, None).await?;

    // A policy refusal is answered directly, and registers nothing.
    match call_once(
        &first,
        json!({"prompt": "scenario:ok", "sandbox": "workspace-write"}),
    )
    .await?
    {
        CallToolResponse::Complete(r) => {
            assert_eq!(r.is_error, Some(true));
            assert!(text(&r).contains("allow_edits"), "{}", text(&r));
        }
        other => anyhow::bail!("a refusal must not become a task: {other:?}"),
    }

    let id = start_task(
        &first,
        json!({"prompt": "scenario:hang", "timeout_sec": 600}),
    )
    .await?;
    let error = second
        .get_task(GetTaskParams::new(&id))
        .await
        .err()
        .context("another session must not see the task")?;
    assert!(error.to_string().contains("no run"), "{error}");

    match call_once(&second, json!({"prompt": "scenario:ok"})).await? {
        CallToolResponse::Complete(r) => {
            assert_eq!(r.is_error, Some(true));
            assert!(text(&r).contains("TWOBOT_MAX_RUNS"), "{}", text(&r));
        }
        other => anyhow::bail!("a full registry must refuse: {other:?}"),
    }

    // A client that did not declare tasks is answered directly, as always; so is a
    // task-capable client whose call does not ask for a task (MCP Inspector 2.x declares
    // tasks at initialize and calls plainly).
    let plain = http_client(&server.url, None).await?;
    let r = call(&plain, json!({"prompt": "scenario:ok"})).await?;
    assert_eq!(text(&r), "fake answer");
    match call_with(&second, json!({"prompt": "scenario:ok"}), false).await {
        Ok(CallToolResponse::Complete(r)) => assert_eq!(text(&r), "fake answer"),
        other => anyhow::bail!("a plain call is answered directly: {other:?}"),
    }

    first.cancel_task(CancelTaskParams::new(&id)).await?;
    first.cancel().await?;
    second.cancel().await?;
    plain.cancel().await?;

    let off = serve_in_process(&[("TWOBOT_ENABLE_TASKS", "false")]).await?;
    let client = http_task_client(&off.url, None).await?;
    let caps = client
        .peer_info()
        .context("server info")?
        .capabilities
        .clone();
    assert!(!caps.supports_tasks());
    match call_once(&client, json!({"prompt": "scenario:ok"})).await? {
        CallToolResponse::Complete(r) => assert_eq!(text(&r), "fake answer"),
        other => anyhow::bail!("tasks are off: {other:?}"),
    }
    client.cancel().await?;
    Ok(())
}
