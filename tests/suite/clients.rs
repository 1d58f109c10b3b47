//! MCP clients that are not ours, against the real binary: the MCP Inspector CLI
//! (`@modelcontextprotocol/inspector --cli`, pinned in package.json) over stdio and
//! Streamable HTTP, and the official Python SDK (`mcp`, pinned in
//! tests/clients/requirements.txt, installed into .venv by `scripts/test`) over Streamable
//! HTTP with a bearer token.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::Value;

use crate::common::http::*;
use crate::common::programs::{NPM_CI, python_report, require};
use crate::common::*;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn inspector() -> Result<PathBuf> {
    let bin = repo("node_modules/.bin/mcp-inspector");
    require(&[&bin.display().to_string()], "the MCP Inspector", NPM_CI)
}

/// Run the Inspector CLI; its stdout parsed as JSON, or the failure.
async fn inspect(args: &[String]) -> Result<std::result::Result<Value, String>> {
    let bin = inspector()?;
    let out = tokio::process::Command::new(bin)
        .arg("--cli")
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .await?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        return Ok(Err(format!("{}: {stdout}{stderr}", out.status)));
    }
    Ok(serde_json::from_str(&stdout).map_err(|e| format!("{e}: {stdout}{stderr}")))
}

#[tokio::test]
async fn the_mcp_inspector_lists_and_calls_the_tool_over_stdio() -> Result<()> {
    inspector()?;
    let root = tempfile::tempdir()?;
    let base = vec![
        "-e".to_owned(),
        format!("CODEX_BIN={}", fake_codex().display()),
        "-e".to_owned(),
        format!(
            "CODEX_ALLOWED_ROOTS={}",
            root.path().canonicalize()?.display()
        ),
        "-e".to_owned(),
        "TWOBOT_LOG_LEVEL=error".to_owned(),
        "-e".to_owned(),
        format!("TWOBOT_STATE_DIR={}", root.path().join("state").display()),
        env!("CARGO_BIN_EXE_2bot-mcp").to_owned(),
    ];
    let mut list = base.clone();
    list.extend(["--method".to_owned(), "tools/list".to_owned()]);
    let tools = inspect(&list).await?.map_err(anyhow::Error::msg)?;
    let names: Vec<&str> = tools["tools"]
        .as_array()
        .context("tools")?
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(names, ["run_codex_prompt"]);

    let mut call = base;
    call.extend(
        [
            "--method",
            "tools/call",
            "--tool-name",
            "run_codex_prompt",
            "--tool-arg",
            "prompt=scenario:ok",
        ]
        .map(str::to_owned),
    );
    let result = inspect(&call).await?.map_err(anyhow::Error::msg)?;
    assert_eq!(result["content"][0]["text"], "fake answer", "{result:#}");
    assert_eq!(result["structuredContent"]["ok"], true, "{result:#}");
    Ok(())
}

#[tokio::test]
async fn the_mcp_inspector_calls_the_tool_over_http_with_a_bearer_token() -> Result<()> {
    inspector()?;
    let server = spawn_http(&[
        ("TWOBOT_ENABLE_NO_AUTH", "false"),
        ("TWOBOT_AUTH_TOKENS", "inspector:tok-inspector"),
    ])
    .await?;
    let call = |token: &str| {
        let mut args: Vec<String> = [
            server.url.as_str(),
            "--transport",
            "http",
            "--method",
            "tools/call",
            "--tool-name",
            "run_codex_prompt",
            "--tool-arg",
            "prompt=scenario:ok",
        ]
        .map(str::to_owned)
        .to_vec();
        args.extend([
            "--header".to_owned(),
            format!("Authorization: Bearer {token}"),
        ]);
        args
    };
    let result = inspect(&call("tok-inspector"))
        .await?
        .map_err(anyhow::Error::msg)?;
    assert_eq!(result["content"][0]["text"], "fake answer", "{result:#}");
    let refused = inspect(&call("wrong-token")).await?;
    assert!(refused.is_err(), "a wrong token must fail: {refused:?}");
    Ok(())
}

#[tokio::test]
async fn the_official_python_sdk_runs_a_session_over_http_with_a_bearer_token() -> Result<()> {
    let python = crate::common::programs::python_sdk()?;
    let server = spawn_http(&[
        ("TWOBOT_ENABLE_NO_AUTH", "false"),
        ("TWOBOT_AUTH_TOKENS", "python:tok-python"),
    ])
    .await?;
    let script = repo("tests/clients/python_mcp_client.py");
    let run = |token: &'static str| {
        tokio::process::Command::new(&python)
            .arg(&script)
            .arg(&server.url)
            .arg(token)
            .arg("scenario:slow")
            .stdin(std::process::Stdio::null())
            .output()
    };
    let out = run("tok-python").await?;
    let report = python_report(&out)?;
    assert_eq!(report["server"], "2Bot");
    assert_eq!(report["tools"], serde_json::json!(["run_codex_prompt"]));
    assert_eq!(report["text"], serde_json::json!(["slow answer"]));
    assert_eq!(report["isError"], false);
    assert_eq!(report["structuredContent"]["ok"], true);
    let progress: Vec<&str> = report["progress"]
        .as_array()
        .context("progress")?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        progress.contains(&"command: cargo test (exit 0)"),
        "progress reached the Python client: {progress:?}"
    );
    let recorded = only_run(&server.record)?;
    assert!(
        !recorded.env.values().any(|v| v.contains("tok-python")),
        "the bearer token never reaches Codex"
    );

    let refused = run("wrong-token").await?;
    assert!(!refused.status.success(), "a wrong token must fail");
    Ok(())
}

/// The official Python SDK ends its legacy session (a DELETE as its client closes)
/// without the warning it prints for any answer but 200 or 204.
#[tokio::test]
async fn the_official_python_sdk_closes_its_session_without_a_warning() -> Result<()> {
    let (server, out) = python_against_a_server("python_mcp_client.py", &LEGACY_SESSION).await?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        !stderr.contains("Session termination failed"),
        "the SDK warned as it closed: {stderr}"
    );
    let log = std::fs::read_to_string(&server.log)?;
    assert!(
        log.lines()
            .any(|l| l.contains("DELETE") && l.contains("204")),
        "the SDK ended its session with a DELETE, answered 204: {}",
        log.lines()
            .filter(|l| l.contains("DELETE"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    Ok(())
}

/// The example MCP tasks client (tests/clients/python_tasks_client.py, the README's
/// pointer for Python users) starts `run_codex_prompt` as a task, follows it with
/// `tasks/get` (the `Mcp-Name` header carrying its id) and fetches `tasks/result`.
#[tokio::test]
async fn the_example_python_tasks_client_follows_a_task_to_its_result() -> Result<()> {
    let (server, out) =
        python_against_a_server("python_tasks_client.py", &["scenario:slow", "tok-python"]).await?;
    let report = python_report(&out)?;
    assert_eq!(report["protocolVersion"], "2026-07-28", "{report:#}");
    assert_eq!(report["created"]["resultType"], "task", "{report:#}");
    assert_eq!(report["created"]["status"], "working", "{report:#}");
    let polled = report["polled"].as_array().context("polled")?;
    assert!(
        polled.iter().all(|p| p["message"].is_string()),
        "each tasks/get says where the run stands: {report:#}"
    );
    assert_eq!(report["lastGet"]["status"], "completed", "{report:#}");
    let result = &report["result"];
    assert_eq!(result["content"][0]["text"], "slow answer", "{report:#}");
    assert_eq!(result["isError"], false, "{report:#}");
    assert_eq!(result["structuredContent"]["ok"], true, "{report:#}");
    assert_eq!(
        report["lastGet"]["result"]["content"], result["content"],
        "tasks/get folds in the same result: {report:#}"
    );
    let recorded = only_run(&server.record)?;
    assert_eq!(recorded.stdin, "scenario:slow");
    Ok(())
}

/// The official Python SDK lists tools in its legacy session, and takes the answer
/// `http::listing` gives from its cached bytes (JSON, where rmcp would stream it).
#[tokio::test]
async fn the_official_python_sdk_takes_a_session_s_tool_list_from_the_cache() -> Result<()> {
    let (server, out) = python_against_a_server("python_mcp_client.py", &LEGACY_SESSION).await?;
    let report = python_report(&out)?;
    assert_eq!(report["tools"], serde_json::json!(["run_codex_prompt"]));
    // rmcp logs every request its session hands to the handler (the server runs at
    // debug): the call reached it, the listing did not.
    let log = std::fs::read_to_string(&server.log)?;
    assert!(log.contains("request=CallToolRequest"), "{log}");
    assert!(
        !log.contains("request=ListToolsRequest"),
        "the listing went through rmcp: {}",
        log.lines()
            .filter(|l| l.contains("ListToolsRequest"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    Ok(())
}

/// A server that takes the token `tok-python`, and a run of the Python client
/// `tests/clients/SCRIPT` on it: its URL, then `args`.
async fn python_against_a_server(
    script: &str,
    args: &[&str],
) -> Result<(crate::common::http::HttpServer, std::process::Output)> {
    let python = crate::common::programs::python_sdk()?;
    let server = spawn_http(&[
        ("TWOBOT_ENABLE_NO_AUTH", "false"),
        ("TWOBOT_AUTH_TOKENS", "python:tok-python"),
    ])
    .await?;
    let out = tokio::process::Command::new(&python)
        .arg(repo(&format!("tests/clients/{script}")))
        .arg(&server.url)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .await?;
    Ok((server, out))
}

/// `python_mcp_client.py`'s arguments for a legacy session (initialize, list, call, DELETE).
const LEGACY_SESSION: [&str; 3] = ["tok-python", "scenario:ok", "legacy"];
