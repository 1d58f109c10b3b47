//! Approvals of a run started as an MCP task (issue 20), answered from the run card the
//! way a background run's are: the card reads the pending request and its token with
//! `get_codex_run` (the task id is the run id) and answers with `answer_codex_approval`,
//! owner-checked. With background runs off the card's tools are still listed, app-only
//! (hosts let a view call only listed tools; the model never sees them), so the card
//! follows, answers, steers and cancels a task there too. The real binary over
//! Streamable HTTP on the app-server backend, the fake Codex asking to `touch` a marker,
//! so what the answer did is seen on disk.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rmcp::RoleClient;
use rmcp::model::{CallToolRequestParams, CallToolResult, GetTaskParams, TaskPayload, TaskStatus};
use rmcp::service::RunningService;
use serde_json::{Value, json};

use crate::common::http::*;
use crate::common::inproc::{InProcess, serve_in_process};
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

/// A server on the app-server backend, with tokens for alice and bob when `auth`,
/// background runs on or off, and a ceiling that lets a command approval reach a person
/// (src/policy/approvals.rs). Either way the card's `get_codex_run` and
/// `answer_codex_approval` are listed (app-only with background runs off).
async fn server(auth: bool, background: bool) -> Result<InProcess> {
    let mut env = vec![
        ("TWOBOT_CODEX_BACKEND", "app-server"),
        ("TWOBOT_ALLOW_DANGER_FULL_ACCESS", "true"),
    ];
    if background {
        env.push(("TWOBOT_ENABLE_BACKGROUND_RUNS", "true"));
    }
    if auth {
        env.extend([
            ("TWOBOT_ENABLE_NO_AUTH", "false"),
            ("TWOBOT_AUTH_TOKENS", "alice:tok-alice,bob:tok-bob"),
        ]);
    }
    serve_in_process(&env).await
}

/// Start, as a task, a run whose Codex asks to `touch` a marker; the task id and marker.
async fn start_task(client: &Client, server: &InProcess) -> Result<(String, PathBuf)> {
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
    Ok((start_as_task(client, args).await?, marker))
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
    let server = server(true, true).await?;
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
    let server = server(false, true).await?;
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

/// Every tool `tools/list` shows `client`: its name and its `_meta`.
async fn listed(client: &Client) -> Result<Vec<(String, Value)>> {
    Ok(client
        .list_all_tools()
        .await?
        .into_iter()
        .map(|t| {
            let meta = serde_json::to_value(&t.meta).unwrap_or_default();
            (t.name.to_string(), meta)
        })
        .collect())
}

/// The tools the card calls, in the order `tools/list` shows them after the run tool.
const CARD_TOOLS: [&str; 4] = [
    "get_codex_run",
    "cancel_codex_run",
    "steer_codex_run",
    "answer_codex_approval",
];

/// Background runs off: the card's tools are listed for the host but hidden from the
/// model by both spellings, a background start is still refused, an unknown id gets
/// a clear error, and the card answers alice's task's approval (bob cannot).
#[tokio::test]
async fn with_background_runs_off_the_card_answers_a_tasks_approval_through_app_only_tools()
-> Result<()> {
    let server = server(true, false).await?;
    let alice = http_task_client(&server.url, Some("tok-alice")).await?;
    let bob = http_client(&server.url, Some("tok-bob")).await?;

    let tools = listed(&alice).await?;
    let names: Vec<&str> = tools.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names[0], "run_codex_prompt");
    assert_eq!(names[1..], CARD_TOOLS);
    for (name, meta) in &tools[1..] {
        assert_eq!(meta["ui"]["visibility"], json!(["app"]), "{name}: {meta}");
        assert_eq!(meta["openai/visibility"], "private", "{name}: {meta}");
    }
    let run_tool = &alice.list_all_tools().await?[0];
    assert!(
        run_tool.input_schema["properties"]
            .get("background")
            .is_none(),
        "no background flag is offered"
    );

    let background = tool(
        &alice,
        "run_codex_prompt",
        json!({"prompt": "scenario:ok", "background": true}),
    )
    .await?;
    assert_eq!(background.is_error, Some(true), "{}", text(&background));
    assert!(
        text(&background).contains("TWOBOT_ENABLE_BACKGROUND_RUNS"),
        "{}",
        text(&background)
    );
    assert!(
        recorded(&server.record)?.is_empty(),
        "a refused background start spawned Codex"
    );
    let unknown = "00000000-0000-4000-8000-000000000000";
    for name in ["get_codex_run", "cancel_codex_run"] {
        let r = tool(&alice, name, json!({"run_id": unknown})).await?;
        assert_eq!(r.is_error, Some(true), "{name}: {}", text(&r));
        assert!(
            text(&r).contains(&format!("no run \"{unknown}\" for this caller")),
            "{name}: {}",
            text(&r)
        );
    }

    let (task_id, marker) = start_task(&alice, &server).await?;
    let (approval_id, token) = pending(&alice, &task_id).await?;
    let refused = tool(
        &bob,
        "answer_codex_approval",
        answer(&task_id, &approval_id, &token),
    )
    .await?;
    assert_eq!(refused.is_error, Some(true), "{}", text(&refused));
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
    Ok(())
}

/// Steer `run_id` from `client` as the card does, once its turn takes instructions.
async fn steer(client: &Client, run_id: &str, message: &str) -> Result<CallToolResult> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = tool(
            client,
            "steer_codex_run",
            json!({"run_id": run_id, "message": message}),
        )
        .await?;
        let early =
            text(&r).contains("cannot be steered") || text(&r).contains("no turn is running yet");
        if !(r.is_error == Some(true) && early) {
            return Ok(r);
        }
        anyhow::ensure!(Instant::now() < deadline, "never steerable: {}", text(&r));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Background runs off and no authentication: an anonymous task belongs to its session,
/// and the card there steers it and cancels another; a card on another session finds
/// neither.
#[tokio::test]
async fn with_background_runs_off_the_card_steers_and_cancels_its_own_sessions_task() -> Result<()>
{
    let server = server(false, false).await?;
    let mine = http_task_client(&server.url, None).await?;
    let other = http_client(&server.url, None).await?;
    let steered = start_as_task(&mine, json!({"prompt": "scenario:steerable"})).await?;

    let foreign = tool(
        &other,
        "steer_codex_run",
        json!({"run_id": steered, "message": "from elsewhere"}),
    )
    .await?;
    assert_eq!(foreign.is_error, Some(true), "{}", text(&foreign));
    assert!(text(&foreign).contains("no run"), "{}", text(&foreign));
    let ok = steer(&mine, &steered, "keep going").await?;
    assert_ne!(ok.is_error, Some(true), "{}", text(&ok));
    let result = task_result(&mine, &steered).await?;
    assert_eq!(
        result["structuredContent"]["final_message"], "steered: keep going",
        "{result:#}"
    );

    let cancelled = start_as_task(&mine, json!({"prompt": "scenario:steerable"})).await?;
    let foreign = tool(&other, "cancel_codex_run", json!({"run_id": cancelled})).await?;
    assert_eq!(foreign.is_error, Some(true), "{}", text(&foreign));
    assert!(text(&foreign).contains("no run"), "{}", text(&foreign));
    let r = tool(&mine, "cancel_codex_run", json!({"run_id": cancelled})).await?;
    assert_eq!(structured(&r)["status"], "cancelled", "{}", text(&r));
    let task = mine.get_task(GetTaskParams::new(&cancelled)).await?.task;
    assert_eq!(task.status(), TaskStatus::Cancelled);
    Ok(())
}

/// The card-only tools come with the app-server backend and tasks together: the exec
/// backend's default list stays the one tool, and so does app-server with tasks off.
#[tokio::test]
async fn the_exec_default_list_and_app_server_without_tasks_stay_the_one_tool() -> Result<()> {
    for env in [
        vec![],
        vec![("TWOBOT_CODEX_BACKEND", "exec")],
        vec![
            ("TWOBOT_CODEX_BACKEND", "app-server"),
            ("TWOBOT_ENABLE_TASKS", "false"),
        ],
    ] {
        let server = serve_in_process(&env).await?;
        let client = http_client(&server.url, None).await?;
        let tools = listed(&client).await?;
        let names: Vec<&str> = tools.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["run_codex_prompt"], "{env:?}");
        let r = tool(&client, "get_codex_run", json!({"run_id": "x"})).await;
        assert!(r.is_err(), "{env:?}: get_codex_run is not a tool here");
        client.cancel().await?;
    }
    Ok(())
}
