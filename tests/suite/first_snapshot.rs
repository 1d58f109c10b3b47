//! The run card's first state, through a real MCP client: a background run that got a
//! free slot says "running" in its very first snapshot (the card renders it as is), and
//! a run that really waited in the queue is reported running by the poll already open
//! when it starts, not at the end of that poll.

use std::time::Duration;

use anyhow::{Context, Result};
use rmcp::RoleClient;
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::RunningService;
use serde_json::{Value, json};

use crate::common::*;

async fn tool(
    client: &RunningService<RoleClient, Recorder>,
    name: &'static str,
    args: Value,
) -> Result<CallToolResult> {
    let Value::Object(map) = args else {
        anyhow::bail!("arguments must be an object")
    };
    Ok(client
        .call_tool(CallToolRequestParams::new(name).with_arguments(map))
        .await?)
}

fn background_server(env: &[(&str, &str)]) -> Options {
    let mut env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    env.push(("TWOBOT_ENABLE_BACKGROUND_RUNS".into(), "true".into()));
    Options {
        env,
        ..Options::default()
    }
}

/// On an idle server a background run's first snapshot (the tool result the card first
/// renders) is `working` and not `queued`; so is the first `get_codex_run`.
#[tokio::test]
async fn a_background_run_on_an_idle_server_is_running_in_its_first_snapshot() -> Result<()> {
    let server = spawn_stdio(background_server(&[])).await?;
    let started = call(
        &server.client,
        json!({"prompt": "scenario:slow", "background": true}),
    )
    .await?;
    let first = structured(&started);
    assert_eq!(first["status"], "working", "{first:#}");
    assert_eq!(
        first.get("queued"),
        None,
        "a free slot was taken: {first:#}"
    );
    let run_id = first["run_id"].as_str().context("run_id")?;
    let poll = tool(
        &server.client,
        "get_codex_run",
        json!({"run_id": run_id, "wait_sec": 0}),
    )
    .await?;
    let polled = structured(&poll);
    assert_eq!(polled["status"], "working", "{polled:#}");
    assert_eq!(polled.get("queued"), None, "{polled:#}");
    tool(
        &server.client,
        "cancel_codex_run",
        json!({"run_id": run_id}),
    )
    .await?;
    server.client.cancel().await?;
    Ok(())
}

/// With the one slot taken, a second run is `queued`; a `get_codex_run` open on it
/// answers as soon as the first run ends and the second starts, saying it runs.
#[tokio::test]
async fn a_poll_on_a_queued_run_answers_as_it_starts() -> Result<()> {
    let server = spawn_stdio(background_server(&[("TWOBOT_MAX_CONCURRENT_RUNS", "1")])).await?;
    let first = call(
        &server.client,
        json!({"prompt": "scenario:hang", "background": true}),
    )
    .await?;
    let first_id = structured(&first)["run_id"]
        .as_str()
        .context("run_id")?
        .to_owned();
    let second = call(
        &server.client,
        json!({"prompt": "scenario:hang", "background": true}),
    )
    .await?;
    let second = structured(&second);
    assert_eq!(second["queued"], true, "one slot, taken: {second:#}");
    let second_id = second["run_id"].as_str().context("run_id")?.to_owned();

    let peer = server.client.peer().clone();
    let poll = tokio::spawn(async move {
        let args = json!({"run_id": second_id, "wait_sec": 55});
        let Value::Object(map) = args else {
            anyhow::bail!("object")
        };
        Ok::<_, anyhow::Error>(
            peer.call_tool(CallToolRequestParams::new("get_codex_run").with_arguments(map))
                .await?,
        )
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !poll.is_finished(),
        "the poll waits while the run is queued"
    );
    tool(
        &server.client,
        "cancel_codex_run",
        json!({"run_id": first_id}),
    )
    .await?;
    // Far below the poll's 55 s: it answered because the run started.
    let polled = tokio::time::timeout(Duration::from_secs(20), poll).await???;
    let polled = structured(&polled);
    assert_eq!(polled["status"], "working", "{polled:#}");
    assert_eq!(polled.get("queued"), None, "{polled:#}");
    server.client.cancel().await?;
    Ok(())
}
