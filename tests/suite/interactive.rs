//! The MCP side of interactive runs (issue 20), through the real binary: `ask_codex`
//! is read-only whatever the caller sends, steering and the card's answer tool are
//! owner- and token-checked with clear errors, and a `requestState` a client echoes back
//! is never trusted to start, find or answer someone's run.

use anyhow::{Context, Result};
use rmcp::model::CallToolRequestParams;
use serde_json::{Value, json};

use crate::common::http::*;
use crate::common::*;

fn object(v: Value) -> serde_json::Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => serde_json::Map::new(),
    }
}

async fn call_tool(
    server: &StdioServer,
    name: &'static str,
    args: Value,
) -> Result<rmcp::model::CallToolResult> {
    Ok(server
        .client
        .call_tool(CallToolRequestParams::new(name).with_arguments(object(args)))
        .await?)
}

/// ChatGPT asks no confirmation for `ask_codex`, so nothing it is sent may widen it:
/// Codex runs with `--sandbox read-only` and `approval_policy="never"`, and a caller that
/// tries to add write access is refused before anything is spawned.
#[tokio::test]
async fn ask_codex_runs_codex_read_only_and_refuses_any_parameter_that_would_widen_it() -> Result<()>
{
    let server = spawn_stdio(Options {
        env: vec![("TWOBOT_ENABLE_ASK_TOOL".into(), "true".into())],
        ..Options::default()
    })
    .await?;
    for widen in [
        json!({"prompt": "scenario:ok", "sandbox": "workspace-write"}),
        json!({"prompt": "scenario:ok", "allow_edits": true}),
        json!({"prompt": "scenario:ok", "approval_policy": "on-request"}),
        json!({"prompt": "scenario:ok", "background": true}),
    ] {
        let refused = call_tool(&server, "ask_codex", widen.clone()).await?;
        assert_eq!(refused.is_error, Some(true), "{widen}");
        assert!(
            text(&refused).contains("invalid arguments for ask_codex"),
            "{}",
            text(&refused)
        );
    }
    assert!(
        recorded(&server.record)?.is_empty(),
        "a refused call spawned Codex"
    );
    let answered = call_tool(&server, "ask_codex", json!({"prompt": "scenario:ok"})).await?;
    assert_eq!(text(&answered), "fake answer");
    let argv = only_run(&server.record)?.argv.join(" ");
    assert!(argv.contains("-s read-only"), "{argv}");
    assert!(argv.contains("approval_policy=\"never\""), "{argv}");
    server.client.cancel().await?;
    Ok(())
}

/// Steering needs the app-server backend; on exec the caller is told so, and empty or
/// oversized messages and unknown runs get their own errors. The card's answer tool
/// never answers without the approval's token.
#[tokio::test]
async fn steering_and_the_card_answer_refuse_clearly_on_a_run_that_cannot_take_them() -> Result<()>
{
    let server = spawn_stdio(Options {
        env: vec![
            ("TWOBOT_ENABLE_BACKGROUND_RUNS".into(), "true".into()),
            ("TWOBOT_MAX_PROMPT_BYTES".into(), "64".into()),
        ],
        ..Options::default()
    })
    .await?;
    let started = call(
        &server.client,
        json!({"prompt": "scenario:hang", "background": true, "timeout_sec": 120}),
    )
    .await?;
    let run_id = structured(&started)["run_id"]
        .as_str()
        .context("run_id")?
        .to_owned();
    assert!(
        started.meta.is_none(),
        "no approval pending, no token: {:?}",
        started.meta
    );

    let steer = |message: &str| json!({"run_id": run_id, "message": message});
    let exec = call_tool(&server, "steer_codex_run", steer("also run the tests")).await?;
    assert_eq!(exec.is_error, Some(true));
    assert!(
        text(&exec).contains("TWOBOT_CODEX_BACKEND=app-server"),
        "{}",
        text(&exec)
    );
    let empty = call_tool(&server, "steer_codex_run", steer("  ")).await?;
    assert!(text(&empty).contains("empty"), "{}", text(&empty));
    let long = call_tool(&server, "steer_codex_run", steer(&"x".repeat(65))).await?;
    assert!(
        text(&long).contains("prompt limit of 64 bytes"),
        "{}",
        text(&long)
    );
    let unknown = call_tool(
        &server,
        "steer_codex_run",
        json!({"run_id": "00000000-0000-4000-8000-000000000000", "message": "hi"}),
    )
    .await?;
    assert!(text(&unknown).contains("no run"), "{}", text(&unknown));

    let answer = call_tool(
        &server,
        "answer_codex_approval",
        json!({"run_id": run_id, "approval_id": "a1", "token": "guessed", "decision": "approve"}),
    )
    .await?;
    assert_eq!(answer.is_error, Some(true));
    assert!(text(&answer).contains("not pending"), "{}", text(&answer));
    let bad = call_tool(
        &server,
        "answer_codex_approval",
        json!({"run_id": run_id, "approval_id": "a1", "token": "t", "decision": "yes"}),
    )
    .await?;
    assert!(text(&bad).contains("invalid arguments"), "{}", text(&bad));

    // The card's tool is listed for the host, marked app-only for the model.
    let tools = serde_json::to_value(server.client.list_all_tools().await?)?;
    let card = tools
        .as_array()
        .context("tools")?
        .iter()
        .find(|t| t["name"] == "answer_codex_approval")
        .context("listed")?;
    assert_eq!(card["_meta"]["ui"]["visibility"], json!(["app"]));

    let cancelled = call_tool(&server, "cancel_codex_run", json!({"run_id": run_id})).await?;
    assert_eq!(structured(&cancelled)["status"], "cancelled");
    server.client.cancel().await?;
    Ok(())
}

/// A 2026-07-28 retry names its run only by `requestState`, which the client controls:
/// a forged or foreign state starts nothing and finds nothing, and says so.
#[tokio::test]
async fn a_forged_request_state_starts_no_run_and_finds_no_one_elses() -> Result<()> {
    let server = spawn_http(&[]).await?;
    let retry = |state: &str| {
        json!({
            "jsonrpc": "2.0", "id": 3, "method": "tools/call",
            "params": {
                "name": "run_codex_prompt",
                "arguments": {"prompt": "scenario:ok"},
                "requestState": state,
                "inputResponses": {"a1": {"action": "accept", "content": {"approve": true}}},
                "_meta": {
                    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                    "io.modelcontextprotocol/clientCapabilities": {"elicitation": {"form": {}}},
                    "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "0"}
                }
            }
        })
    };
    for (state, says) in [
        ("not-a-state", "invalid requestState"),
        ("../../etc/passwd~a1", "invalid requestState"),
        ("0b5c6a3e-1f2d-4c1b-9d8e-7a6b5c4d3e2f~a1", "no run"),
    ] {
        let response = post(&server.url, &retry(state))
            .header("mcp-protocol-version", "2026-07-28")
            .header("mcp-method", "tools/call")
            .header("mcp-name", "run_codex_prompt")
            .send()
            .await?;
        let body = response.text().await?;
        assert!(body.contains(says), "{state}: {body}");
        assert!(body.contains("\"isError\":true"), "{state}: {body}");
    }
    assert!(
        recorded(&server.record)?.is_empty(),
        "a retry never starts a run"
    );
    Ok(())
}

/// `/metrics` of the real binary has `twobot_approvals_total` for every decision and
/// channel from the start (at zero), so dashboards see the series before the first one.
#[tokio::test]
async fn the_approvals_metric_is_served_for_every_decision_and_channel() -> Result<()> {
    let server = spawn_http(&[("TWOBOT_METRICS_ADDR", "127.0.0.1:0")]).await?;
    let metrics = metrics_url(&server.log).await?;
    let text = reqwest::get(&metrics).await?.text().await?;
    assert!(
        text.contains("# TYPE twobot_approvals_total counter"),
        "{text}"
    );
    for decision in ["accept", "decline", "cancel"] {
        for channel in [
            "elicitation",
            "input_required",
            "card",
            "timeout",
            "unreachable",
            "run_ended",
        ] {
            let series = format!(
                "twobot_approvals_total{{decision=\"{decision}\",channel=\"{channel}\"}} 0"
            );
            assert!(text.contains(&series), "{series} missing");
        }
    }
    Ok(())
}

/// The official Python SDK, declaring elicitation, in both generations: a legacy
/// (2025-11-25) session and the 2026-07-28 default. A call with nothing to approve
/// answers as before, with no dialog shown and no `input_required` round.
#[tokio::test]
async fn a_python_sdk_client_that_declares_elicitation_gets_the_plain_result_in_both_generations()
-> Result<()> {
    let python = crate::common::programs::python_sdk()?;
    let server = spawn_http(&[]).await?;
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/clients/python_approval_client.py");
    for (mode, protocol) in [("legacy", "2025-11-25"), ("modern", "2026-07-28")] {
        let out = tokio::process::Command::new(&python)
            .arg(&script)
            .args([server.url.as_str(), mode, "accept", "scenario:ok"])
            .stdin(std::process::Stdio::null())
            .output()
            .await?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{mode}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report: Value = serde_json::from_str(stdout.trim())?;
        assert_eq!(report["protocol"], protocol, "{report}");
        assert_eq!(report["text"], json!(["fake answer"]), "{report}");
        assert_eq!(report["shown"], json!([]), "{report}");
        assert_eq!(report["structuredContent"]["ok"], true, "{report}");
    }
    Ok(())
}
