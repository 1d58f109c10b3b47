//! The protocol surface over stdio: what any MCP client sees of `2bot-mcp`.

use std::process::Stdio;
use std::time::Duration;

use anyhow::Result;
use serde_json::json;
use tokio::io::AsyncWriteExt;

use crate::common::*;

/// `initialize` names the server 2Bot, and `tools/list` holds exactly the seed's tool.
#[tokio::test]
async fn initialize_names_the_server_2bot_and_lists_exactly_one_tool() -> Result<()> {
    let server = spawn_stdio(Options::default()).await?;
    let info = server.client.peer_info().expect("server info");
    assert_eq!(info.server_info.as_ref().unwrap().name, "2Bot");
    assert!(info.capabilities.tools.is_some());

    let tools = server.client.list_all_tools().await?;
    assert_eq!(tools.len(), 1);
    let tool = &tools[0];
    assert_eq!(tool.name, "run_codex_prompt");
    let schema = serde_json::Value::Object((*tool.input_schema).clone());
    let props = schema["properties"].as_object().unwrap();
    // The seed's twelve parameters, plus optional ones that are absent (or off) by
    // default: `thread_id`, `fork`, `reasoning_effort`, `images`, `output_schema`, `review`.
    assert_eq!(props.len(), 18, "{schema}");
    for optional in [
        "thread_id",
        "reasoning_effort",
        "images",
        "output_schema",
        "review",
    ] {
        assert!(props[optional].get("default").is_none(), "{optional}");
    }
    assert_eq!(props["fork"]["default"], false);
    assert_eq!(props["thread_id"]["default"], json!(null));
    assert_eq!(props["timeout_sec"]["default"], 1800);
    assert_eq!(props["ephemeral"]["default"], true);
    assert_eq!(props["allow_edits"]["default"], false);
    assert_eq!(props["skip_git_repo_check"]["default"], false);
    assert_eq!(props["include_event_log"]["default"], false);
    // `prompt` is needed except with a review target; the policy says so when it is
    // missing (tests/suite/review_prompt.rs), and no other argument is ever required.
    assert_eq!(schema.get("required"), None);
    assert_eq!(schema["additionalProperties"], json!(false));
    let text = schema.to_string();
    assert!(
        text.contains(r#""default":"read-only""#),
        "sandbox default: {text}"
    );
    for value in [
        "workspace-write",
        "danger-full-access",
        "on-request",
        "never",
        "granular",
    ] {
        assert!(text.contains(value), "{value}");
    }
    assert!(tool.output_schema.is_some(), "outputSchema declared");
    let annotations = tool.annotations.clone().unwrap();
    assert_eq!(annotations.destructive_hint, Some(true));
    assert_eq!(annotations.read_only_hint, Some(false));
    server.client.cancel().await?;
    Ok(())
}

/// Unknown arguments are refused with a tool error that names them; nothing runs.
#[tokio::test]
async fn unknown_arguments_are_refused_by_name() -> Result<()> {
    let server = spawn_stdio(Options::default()).await?;
    let result = call(
        &server.client,
        json!({"prompt": "hi", "sandbox_mode": "read-only"}),
    )
    .await?;
    assert_eq!(result.is_error, Some(true));
    assert!(text(&result).contains("sandbox_mode"), "{}", text(&result));
    let result = call(&server.client, json!({"prompt": "hi", "sandbox": "root"})).await?;
    assert_eq!(result.is_error, Some(true));
    assert!(text(&result).contains("root"), "{}", text(&result));
    let result = call(&server.client, json!({"cwd": "."})).await?;
    assert!(text(&result).contains("prompt"), "{}", text(&result));
    assert!(recorded(&server.record)?.is_empty(), "nothing was spawned");
    server.client.cancel().await?;
    Ok(())
}

/// Calling a tool that does not exist is a JSON-RPC error, not a crash.
#[tokio::test]
async fn an_unknown_tool_is_a_protocol_error() -> Result<()> {
    let server = spawn_stdio(Options::default()).await?;
    let err = server
        .client
        .call_tool(rmcp::model::CallToolRequestParams::new("rm_rf"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("rm_rf"), "{err}");
    server.client.cancel().await?;
    Ok(())
}

/// When the client closes stdin mid-run, the server kills Codex and its children and exits 0.
#[tokio::test]
async fn stdin_eof_kills_running_codex_and_exits_zero() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let record = tmp.path().join("record");
    std::fs::create_dir_all(&record)?;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_2bot-mcp"))
        .env("CODEX_BIN", fake_codex())
        .env("CODEX_ALLOWED_ROOTS", tmp.path())
        .env("FAKE_CODEX_RECORD", &record)
        // Its own state, never the home directory's (which another build may have
        // migrated).
        .env("TWOBOT_STATE_DIR", tmp.path().join("state"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let mut stdin = child.stdin.take().unwrap();
    let lines = [
        json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"0"}}}),
        json!({"jsonrpc":"2.0","method":"notifications/initialized"}),
        json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"run_codex_prompt","arguments":{"prompt":"scenario:hang","timeout_sec":600}}}),
    ];
    for line in lines {
        stdin.write_all(format!("{line}\n").as_bytes()).await?;
    }
    stdin.flush().await?;
    let HangingRun { codex, grandchild } = hanging_run(&record).await?;
    drop(stdin);
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait()).await??;
    assert!(status.success(), "exit status {status}");
    assert!(
        gone_within(&codex, Duration::from_secs(5)).await,
        "codex {codex} survived"
    );
    assert!(
        gone_within(&grandchild, Duration::from_secs(5)).await,
        "grandchild {grandchild} survived"
    );
    Ok(())
}

/// A bad value stops start-up with exit code 2 and one line naming the variable.
#[tokio::test]
async fn an_invalid_variable_stops_startup_with_one_line_naming_it() -> Result<()> {
    let cases = [
        ("TWOBOT_PORT", "ninety", "TWOBOT_PORT"),
        ("TWOBOT_TRANSPORT", "carrier-pigeon", "TWOBOT_TRANSPORT"),
        ("TWOBOT_LOG_LEVEL", "LOUD=[", "TWOBOT_LOG_LEVEL"),
        ("TWOBOT_ENABLE_NO_AUTH", "maybe", "TWOBOT_ENABLE_NO_AUTH"),
        (
            "TWOBOT_MAX_CONCURRENT_RUNS",
            "0",
            "TWOBOT_MAX_CONCURRENT_RUNS",
        ),
        (
            "CODEX_ALLOWED_ROOTS",
            "/definitely/not/here",
            "CODEX_ALLOWED_ROOTS",
        ),
        (
            "TWOBOT_POLICY_FILE",
            "/definitely/not/here.toml",
            "TWOBOT_POLICY_FILE",
        ),
    ];
    for (var, value, named) in cases {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_2bot-mcp"))
            .env(var, value)
            .stdin(Stdio::null())
            .output()
            .await?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{var}={value}: {stderr}");
        assert_eq!(
            stderr.trim_end().lines().count(),
            1,
            "{var}={value}: {stderr}"
        );
        assert!(
            stderr.contains(named) && stderr.contains(value.trim_end_matches('[')),
            "{var}: {stderr}"
        );
        assert!(out.stdout.is_empty(), "nothing on stdout");
    }
    Ok(())
}

/// `--help` documents every environment variable.
#[tokio::test]
async fn help_documents_every_variable() -> Result<()> {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_2bot-mcp"))
        .arg("--help")
        .output()
        .await?;
    let help = String::from_utf8_lossy(&out.stdout);
    for var in [
        "TWOBOT_TRANSPORT",
        "TWOBOT_HOST",
        "TWOBOT_PORT",
        "TWOBOT_BASE_URL",
        "TWOBOT_LOG_LEVEL",
        "TWOBOT_ENABLE_NO_AUTH",
        "CODEX_ALLOWED_ROOTS",
        "CODEX_BIN",
        "TWOBOT_POLICY_FILE",
        "TWOBOT_MAX_CONCURRENT_RUNS",
        "TWOBOT_MAX_QUEUED_RUNS",
        "TWOBOT_MAX_TIMEOUT_SEC",
        "TWOBOT_MAX_PROMPT_BYTES",
        "TWOBOT_ALLOW_DANGER_FULL_ACCESS",
    ] {
        assert!(help.contains(var), "{var} missing from --help");
    }
    Ok(())
}
