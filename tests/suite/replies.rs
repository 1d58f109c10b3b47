//! Replies a model can take (issue 13, points 2 and 3), through the real binary: a run
//! that prints 50 MB answers within 256 KB on every path with its answer intact and says
//! what it cut; a Codex that cannot reach its model is stopped early with the reason.

use std::time::{Duration, Instant};

use anyhow::Result;
use rmcp::RoleClient;
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::RunningService;
use serde_json::{Value, json};

use crate::common::http::*;
use crate::common::inproc::serve_in_process;
use crate::common::*;

/// What issue 13 promises: a whole tool result within 256 KB.
const REPLY_MAX: usize = 256 * 1024;

fn json_size(result: &CallToolResult) -> usize {
    serde_json::to_vec(result)
        .map(|v| v.len())
        .unwrap_or(usize::MAX)
}

/// The run a `scenario:huge_reply` produced, as the client reads it: 2 000 commands of 25 KB
/// each, 20 000 file changes, a 60 KB answer.
fn assert_bounded_and_described(text: &str, s: &Value) {
    assert!(
        text.starts_with("ANSWER-START "),
        "{}",
        &text[..80.min(text.len())]
    );
    assert!(
        text.contains(" ANSWER-END"),
        "the answer is whole in the text"
    );
    let message = s["final_message"].as_str().unwrap_or_default();
    assert!(message.starts_with("ANSWER-START ") && message.ends_with(" ANSWER-END"));
    assert_eq!(
        message.len(),
        "ANSWER-START ".len() + 60_000 + " ANSWER-END".len()
    );
    assert!(
        text.contains("[2Bot] This reply was shortened to stay small:")
            && text.contains("older commands left out")
            && text.contains("include_event_log"),
        "the text says what was cut: {}",
        &text[text.len().saturating_sub(600)..]
    );
    let t = &s["truncated"];
    let commands = s["commands"].as_array().cloned().unwrap_or_default();
    assert!(!commands.is_empty());
    assert_eq!(
        t["commands_dropped"].as_u64(),
        Some(2000 - commands.len() as u64),
        "{t}"
    );
    // The most recent commands, each with the head and tail of its output.
    assert_eq!(
        commands.last().map(|c| c["command"].clone()),
        Some(json!("step 2000"))
    );
    for c in &commands {
        let n = c["command"]
            .as_str()
            .unwrap_or_default()
            .trim_start_matches("step ");
        let out = c["output"].as_str().unwrap_or_default();
        assert!(out.starts_with(&format!("HEAD{n}")) && out.ends_with(&format!("TAIL{n}")));
        assert!(out.contains("bytes cut here]") && c["output_truncated"] == true);
    }
    assert!(t["output_bytes_cut"].as_u64().unwrap_or(0) > 0, "{t}");
    let files = s["file_changes"].as_array().map_or(0, Vec::len) as u64;
    assert_eq!(
        t["file_changes_dropped"].as_u64(),
        Some(20_000 - files),
        "{t}"
    );
    assert_eq!(t["final_message_bytes_cut"], 0);
}

/// A direct call whose commands print 50 MB answers in ≤ 256 KB, answer intact, cuts named.
#[tokio::test]
async fn a_run_printing_fifty_megabytes_answers_within_256_kb_with_its_answer_whole() -> Result<()>
{
    let server = spawn_stdio(Options::default()).await?;
    let result = call(&server.client, json!({"prompt": "scenario:huge_reply"})).await?;
    assert_eq!(result.is_error, Some(false), "{}", &text(&result)[..200]);
    let size = json_size(&result);
    assert!(size <= REPLY_MAX, "the reply is {size} bytes");
    assert_bounded_and_described(&text(&result), &structured(&result));
    assert!(structured(&result).get("events").is_none());
    server.client.cancel().await?;
    Ok(())
}

/// The whole stream stays available on request, within its own 8 MiB cap.
#[tokio::test]
async fn the_event_log_still_carries_the_stream_when_asked_for() -> Result<()> {
    let server = spawn_stdio(Options::default()).await?;
    let result = call(
        &server.client,
        json!({"prompt": "scenario:huge_reply", "include_event_log": true}),
    )
    .await?;
    let s = structured(&result);
    let events = s["events"].as_array().map_or(0, Vec::len);
    assert!(events > 200, "{events} events kept");
    assert_eq!(
        s["event_log_truncated"], true,
        "50 MB is over the 8 MiB cap"
    );
    assert!(json_size(&result) <= 9 * 1024 * 1024 + REPLY_MAX);
    // Without the events, the reply is the same bounded one.
    let mut rest = s.clone();
    rest.as_object_mut().map(|o| o.remove("events"));
    assert!(serde_json::to_vec(&rest)?.len() <= REPLY_MAX);
    server.client.cancel().await?;
    Ok(())
}

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

/// A background run's result, read with get_codex_run, is bounded the same way.
#[tokio::test]
async fn a_background_run_printing_fifty_megabytes_is_fetched_within_256_kb() -> Result<()> {
    let server = serve_in_process(&[("TWOBOT_ENABLE_BACKGROUND_RUNS", "true")]).await?;
    let client = http_client(&server.url, None).await?;
    let r = call(
        &client,
        json!({"prompt": "scenario:huge_reply", "background": true}),
    )
    .await?;
    let run_id = structured(&r)["run_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let started = Instant::now();
    let done = loop {
        let r = tool(
            &client,
            "get_codex_run",
            json!({"run_id": run_id, "wait_sec": 30}),
        )
        .await?;
        if structured(&r)["status"] != "working" {
            break r;
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "never finished"
        );
    };
    let size = json_size(&done);
    assert!(size <= REPLY_MAX, "the reply is {size} bytes");
    assert_bounded_and_described(&text(&done), &structured(&done)["result"]);
    client.cancel().await?;
    Ok(())
}

/// A task's result (tasks/get once completed) is the direct call's result, bounded the same way.
#[tokio::test]
async fn a_task_printing_fifty_megabytes_completes_within_256_kb() -> Result<()> {
    use rmcp::model::{
        CallToolResponse, ClientCapabilities, GetTaskParams, MetaObject, RequestMetaObject,
        TaskPayload,
    };
    let server = serve_in_process(&[]).await?;
    let client = http_task_client(&server.url, None).await?;
    let mut params = CallToolRequestParams::new("run_codex_prompt").with_arguments(
        json!({"prompt": "scenario:huge_reply"})
            .as_object()
            .cloned()
            .unwrap_or_default(),
    );
    let mut meta = RequestMetaObject(MetaObject::default());
    meta.set_client_capabilities(ClientCapabilities::builder().enable_tasks().build());
    params.meta = Some(meta);
    let CallToolResponse::Task(created) = client.call_tool_once(params).await? else {
        anyhow::bail!("expected a task");
    };
    let started = Instant::now();
    let result = loop {
        let task = client
            .get_task(GetTaskParams::new(&created.task.task_id))
            .await?
            .task;
        if let TaskPayload::Completed { result } = &task.payload {
            break Value::Object(result.clone());
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "never finished"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let size = serde_json::to_vec(&result)?.len();
    assert!(size <= REPLY_MAX, "the task result is {size} bytes");
    let text = result["content"][0]["text"].as_str().unwrap_or_default();
    assert_bounded_and_described(text, &result["structuredContent"]);
    client.cancel().await?;
    Ok(())
}
