//! What a new user meets first (issue 13, points 1, 6 and 7), through the real binary:
//! the tool list every client can read (pinned, linted by the MCP Inspector's
//! `--strict`, under 10 KB), configuration mistakes that stop with exit 2 and say
//! what was typed, logs that stay quiet at INFO, and HTTP answers a plain client can
//! read (no OAuth metadata without auth, a 413 after an oversized body).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::Value;

use crate::common::inproc::serve_in_process;
use crate::common::programs::{APT_PYTHON, NPM_CI, require};
use crate::common::*;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// `tools/list` as a client receives it (the `tools` array), over stdio.
async fn listed_tools(env: &[(&str, &str)]) -> Result<Value> {
    let server = spawn_stdio(Options {
        env: env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        ..Options::default()
    })
    .await?;
    let tools = server.client.list_all_tools().await?;
    server.client.cancel().await?;
    Ok(serde_json::to_value(tools)?)
}

/// Compare `actual` with the pinned file; `TWOBOT_BLESS=1` rewrites the file instead.
fn pinned(file: &str, actual: &Value) -> Result<()> {
    let path = repo(file);
    let text = serde_json::to_string_pretty(actual)? + "\n";
    if std::env::var_os("TWOBOT_BLESS").is_some() {
        std::fs::write(&path, &text)?;
        return Ok(());
    }
    let expected = std::fs::read_to_string(&path).with_context(|| path.display().to_string())?;
    assert!(
        expected == text,
        "{file} is the schema clients see and no longer matches; if the change is meant, \
         rerun with TWOBOT_BLESS=1 and review the diff. Now listed:\n{text}"
    );
    Ok(())
}

/// Executable documentation: the exact default tool list (one tool), and that it stays
/// small enough for a model's context.
#[tokio::test]
async fn the_default_tool_list_is_the_pinned_schema_and_under_10_kb() -> Result<()> {
    let tools = listed_tools(&[]).await?;
    pinned("tests/fixtures/tools-list.json", &tools)?;
    let names: Vec<&str> = tools
        .as_array()
        .context("tools")?
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(names, ["run_codex_prompt"]);
    let size = serde_json::to_string(&serde_json::json!({ "tools": tools }))?.len();
    assert!(size <= 10 * 1024, "tools/list is {size} bytes");
    Ok(())
}

/// The three tools of background mode are pinned too.
#[tokio::test]
async fn the_background_tool_list_is_the_pinned_schema() -> Result<()> {
    let tools = listed_tools(&[("TWOBOT_ENABLE_BACKGROUND_RUNS", "true")]).await?;
    pinned("tests/fixtures/tools-list-background.json", &tools)?;
    let background = &tools[0]["inputSchema"]["properties"]["background"]["description"];
    assert!(
        !background.as_str().context("description")?.contains("  "),
        "{background}"
    );
    Ok(())
}

/// `TWOBOT_ENABLE_ASK_TOOL=true` lists the read-only `ask_codex` beside the run tool,
/// pinned; ChatGPT asks no confirmation for a tool with `readOnlyHint: true`.
#[tokio::test]
async fn the_ask_tool_is_listed_only_when_enabled_read_only_and_pinned() -> Result<()> {
    let tools = listed_tools(&[("TWOBOT_ENABLE_ASK_TOOL", "true")]).await?;
    pinned("tests/fixtures/tools-list-ask.json", &tools)?;
    let names: Vec<&str> = tools
        .as_array()
        .context("tools")?
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(names, ["run_codex_prompt", "ask_codex"]);
    let ask = &tools[1];
    assert_eq!(ask["annotations"]["readOnlyHint"], true);
    assert_eq!(ask["annotations"]["destructiveHint"], false);
    assert_eq!(ask["annotations"]["openWorldHint"], false);
    for absent in ["sandbox", "allow_edits", "approval_policy", "background"] {
        assert!(
            ask["inputSchema"]["properties"].get(absent).is_none(),
            "{absent}"
        );
    }
    Ok(())
}

/// Portability, checked without any client: no `$ref`/`$defs`, one `type` per schema,
/// no boolean schema, in every listed schema of every tool.
#[tokio::test]
async fn every_listed_schema_is_self_contained_single_typed_and_has_no_boolean_schema() -> Result<()>
{
    fn check(schema: &Value, path: &str, problems: &mut Vec<String>) {
        match schema {
            Value::Bool(_) => problems.push(format!("{path}: boolean schema")),
            Value::Object(map) => {
                for bad in ["$ref", "$defs", "definitions"] {
                    if map.contains_key(bad) {
                        problems.push(format!("{path}: {bad}"));
                    }
                }
                if map.get("type").is_some_and(Value::is_array) {
                    problems.push(format!("{path}: type array"));
                }
                for (key, child) in map {
                    match key.as_str() {
                        "properties" => {
                            for (name, s) in child.as_object().into_iter().flatten() {
                                check(s, &format!("{path}.properties.{name}"), problems);
                            }
                        }
                        "items" | "not" => check(child, &format!("{path}.{key}"), problems),
                        "anyOf" | "oneOf" | "allOf" => {
                            for (i, s) in child.as_array().into_iter().flatten().enumerate() {
                                check(s, &format!("{path}.{key}[{i}]"), problems);
                            }
                        }
                        _ => {}
                    }
                }
            }
            _ => problems.push(format!("{path}: not a schema")),
        }
    }
    let tools = listed_tools(&[
        ("TWOBOT_ENABLE_BACKGROUND_RUNS", "true"),
        ("TWOBOT_ENABLE_ASK_TOOL", "true"),
    ])
    .await?;
    let mut problems = Vec::new();
    for tool in tools.as_array().context("tools")? {
        let name = tool["name"].as_str().unwrap_or("?");
        check(
            &tool["inputSchema"],
            &format!("{name}.input"),
            &mut problems,
        );
        check(
            &tool["outputSchema"],
            &format!("{name}.output"),
            &mut problems,
        );
    }
    assert!(problems.is_empty(), "{problems:#?}");
    Ok(())
}

/// `null` is still accepted for an optional parameter (absent and null mean the same),
/// and a result leaves out what it does not know rather than sending `null`, which the
/// single-typed output schema would not accept.
#[tokio::test]
async fn optional_parameters_still_accept_null_and_results_carry_no_nulls() -> Result<()> {
    let server = spawn_stdio(Options::default()).await?;
    let result = call(
        &server.client,
        serde_json::json!({"prompt": "scenario:ok", "cwd": null, "model": null, "thread_id": null}),
    )
    .await?;
    assert_eq!(text(&result), "fake answer");
    let content = structured(&result);
    let nulls: Vec<&String> = content
        .as_object()
        .context("object")?
        .iter()
        .filter(|(_, v)| v.is_null())
        .map(|(k, _)| k)
        .collect();
    assert!(nulls.is_empty(), "null fields: {nulls:?} in {content:#}");
    server.client.cancel().await?;
    Ok(())
}

fn inspector() -> Result<PathBuf> {
    let bin = repo("node_modules/.bin/mcp-inspector");
    require(&[&bin.display().to_string()], "the MCP Inspector", NPM_CI)
}

/// The MCP Inspector's schema lint (`--strict`) finds no error and no warning, in the
/// default tool list and in background mode's five tools (with `ask_codex`: six).
#[tokio::test]
async fn the_mcp_inspector_strict_lint_finds_nothing_to_report() -> Result<()> {
    let bin = inspector()?;
    let root = tempfile::tempdir()?;
    for background in ["false", "true"] {
        let out = tokio::process::Command::new(&bin)
            .arg("--cli")
            .arg("-e")
            .arg(format!("CODEX_BIN={}", fake_codex().display()))
            .arg("-e")
            .arg(format!(
                "CODEX_ALLOWED_ROOTS={}",
                root.path().canonicalize()?.display()
            ))
            .args(["-e", "TWOBOT_LOG_LEVEL=error", "-e"])
            .arg(format!("TWOBOT_ENABLE_BACKGROUND_RUNS={background}"))
            .arg("-e")
            .arg(format!("TWOBOT_ENABLE_ASK_TOOL={background}"))
            .arg("-e")
            .arg(format!(
                "TWOBOT_STATE_DIR={}",
                root.path().join("state").display()
            ))
            .arg(env!("CARGO_BIN_EXE_2bot-mcp"))
            .args(["--method", "tools/list", "--strict"])
            .stdin(std::process::Stdio::null())
            .output()
            .await?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "background={background}: {}: {stderr}",
            out.status
        );
        for finding in ["Warning", "Error", "warning", "error"] {
            assert!(
                !stderr.contains(finding),
                "background={background}: {stderr}"
            );
        }
        let listed: Value = serde_json::from_slice(&out.stdout)?;
        let count = listed["tools"].as_array().map_or(0, Vec::len);
        assert_eq!(count, if background == "true" { 6 } else { 1 });
    }
    Ok(())
}

// === Configuration and logs (point 6) ===

/// Run `2bot-mcp ARGS` with `env` (and nothing else from ours); exit code and stderr.
fn run_binary(args: &[&str], env: &[(&str, &str)]) -> Result<(Option<i32>, String, String)> {
    let root = tempfile::tempdir()?;
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_2bot-mcp"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("CODEX_BIN", fake_codex())
        .env("CODEX_ALLOWED_ROOTS", root.path())
        .env("TWOBOT_STATE_DIR", root.path().join("state"))
        .args(args)
        .stdin(std::process::Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output()?;
    Ok((
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// A log level that is not one is a mistake, not a filter for a target of that name
/// (which used to turn every log line off without a word).
#[test]
fn a_log_level_that_is_not_a_level_stops_with_exit_2_and_the_accepted_values() -> Result<()> {
    for typed in ["verbose", "loud", "info,verbose"] {
        let (code, _, stderr) = run_binary(&["--print-config"], &[("TWOBOT_LOG_LEVEL", typed)])?;
        assert_eq!(code, Some(2), "{typed}: {stderr}");
        assert!(stderr.contains("TWOBOT_LOG_LEVEL"), "{stderr}");
        assert!(stderr.contains(&format!("{typed:?}")), "{stderr}");
        for level in ["DEBUG", "INFO", "WARNING", "ERROR"] {
            assert!(stderr.contains(level), "{stderr}");
        }
    }
    // Full filter directives stay accepted.
    for fine in ["twobot=debug,rmcp=info", "warning", "DEBUG", "off"] {
        let (code, _, stderr) = run_binary(&["--print-config"], &[("TWOBOT_LOG_LEVEL", fine)])?;
        assert_eq!(code, Some(0), "{fine}: {stderr}");
    }
    Ok(())
}

/// Every boolean variable's error quotes what was typed, not what it was read as.
#[test]
fn a_boolean_setting_is_quoted_as_typed_in_its_error() -> Result<()> {
    let (code, _, stderr) = run_binary(
        &[],
        &[
            ("TWOBOT_TRANSPORT", "http"),
            ("TWOBOT_ENABLE_NO_AUTH", "off"),
        ],
    )?;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("TWOBOT_ENABLE_NO_AUTH"), "{stderr}");
    assert!(stderr.contains("\"off\""), "{stderr}");
    assert!(!stderr.contains("\"false\""), "{stderr}");
    let (code, _, stderr) = run_binary(
        &[],
        &[
            ("TWOBOT_TRANSPORT", "http"),
            ("TWOBOT_HOST", "0.0.0.0"),
            ("TWOBOT_ENABLE_NO_AUTH", "Yes"),
        ],
    )?;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("\"Yes\""), "{stderr}");
    let (code, _, stderr) = run_binary(&[], &[("TWOBOT_ENABLE_TASKS", "nope")])?;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("\"nope\""), "{stderr}");
    assert!(
        stderr.contains("true, false, 1, 0, yes, no, on, off"),
        "{stderr}"
    );
    Ok(())
}

/// `--print-config` shows a boolean as it was read, and says "default" for the policy
/// when there is no policy file.
#[test]
fn print_config_shows_booleans_as_parsed_and_the_default_policy() -> Result<()> {
    let (code, stdout, stderr) = run_binary(
        &["--print-config"],
        &[
            ("TWOBOT_ENABLE_NO_AUTH", "off"),
            ("TWOBOT_ENABLE_BACKGROUND_RUNS", "1"),
        ],
    )?;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.contains("TWOBOT_ENABLE_NO_AUTH=false  # environment (typed \"off\")"),
        "{stdout}"
    );
    assert!(
        stdout.contains("TWOBOT_ENABLE_BACKGROUND_RUNS=true  # environment (typed \"1\")"),
        "{stdout}"
    );
    assert!(
        stdout.contains("TWOBOT_ENABLE_TASKS=true  # default"),
        "{stdout}"
    );
    assert!(
        stdout.contains("TWOBOT_POLICY_FILE=  # default: no policy file"),
        "{stdout}"
    );
    assert!(
        stdout.contains("TWOBOT_MAX_CONCURRENT_RUNS=4  # default"),
        "{stdout}"
    );
    Ok(())
}

/// At INFO a session (initialize, tools/list, a call) logs one line per request at
/// most: rmcp's session and `initialize` dumps wait for DEBUG. A 2026-07-28 client
/// that cancels its call normally leaves no ERROR behind.
#[tokio::test]
async fn at_info_a_session_logs_a_line_per_request_and_a_cancel_logs_no_error() -> Result<()> {
    let server = http::spawn_http(&[("TWOBOT_LOG_LEVEL", "info")]).await?;
    let client = http::http_client(&server.url, None).await?;
    assert_eq!(client.list_all_tools().await?.len(), 1);
    let r = call(&client, serde_json::json!({"prompt": "scenario:ok"})).await?;
    assert_eq!(text(&r), "fake answer");
    let handle = start_call(
        &client,
        serde_json::json!({"prompt": "scenario:hang", "timeout_sec": 600}),
    )
    .await?;
    let run = wait_for_run_of(
        &server.record,
        "scenario:hang",
        std::time::Duration::from_secs(20),
    )
    .await?;
    let codex =
        wait_for_run_pid(&run.join("codex.pid"), std::time::Duration::from_secs(20)).await?;
    handle.cancel(Some("user pressed stop".into())).await?;
    assert!(gone_within(&codex, std::time::Duration::from_secs(20)).await);
    // The server is healthy and the session still answers.
    assert_eq!(client.list_all_tools().await?.len(), 1);
    client.cancel().await?;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let log = std::fs::read_to_string(&server.log)?;
    let after_start: Vec<&str> = log
        .lines()
        .skip_while(|l| !l.contains("listening"))
        .skip(1)
        .collect();
    assert!(!after_start.iter().any(|l| l.contains(" ERROR ")), "{log}");
    assert!(
        !after_start.iter().any(|l| l.contains("rmcp")),
        "rmcp's own lines belong to DEBUG: {log}"
    );
    // Requests: initialize, tools/list ×2, two calls, the cancel notification.
    assert!(after_start.len() <= 6, "{log}");
    assert!(
        after_start.iter().any(|l| l.contains("codex run finished")),
        "{log}"
    );
    Ok(())
}

/// A 2026-07-28 client has no session: each request carries its protocol version in
/// `_meta`, and it cancels a call by closing the call's response stream. That kills
/// Codex and is logged as a cancelled run, with no ERROR.
#[tokio::test]
async fn a_2026_07_28_client_that_closes_its_stream_cancels_the_run_without_an_error_logged()
-> Result<()> {
    let server = http::spawn_http(&[("TWOBOT_LOG_LEVEL", "info")]).await?;
    let body = serde_json::json!({
        "jsonrpc": "2.0", "id": 7, "method": "tools/call",
        "params": {
            "name": "run_codex_prompt",
            "arguments": {"prompt": "scenario:hang", "timeout_sec": 600},
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientCapabilities": {},
                "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "0"}
            }
        }
    });
    // A raw connection, so that closing it really closes the socket.
    use tokio::io::AsyncWriteExt;
    let addr = server.base.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&addr).await?;
    let body = body.to_string();
    let request = format!(
        "POST /mcp HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
         accept: application/json, text/event-stream\r\nmcp-protocol-version: 2026-07-28\r\n\
         mcp-method: tools/call\r\nmcp-name: run_codex_prompt\r\n\
         content-length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await?;
    let run = wait_for_run_of(
        &server.record,
        "scenario:hang",
        std::time::Duration::from_secs(20),
    )
    .await?;
    let codex =
        wait_for_run_pid(&run.join("codex.pid"), std::time::Duration::from_secs(20)).await?;
    drop(stream);
    assert!(
        gone_within(&codex, std::time::Duration::from_secs(20)).await,
        "closing the stream must cancel the run"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let log = loop {
        let log = std::fs::read_to_string(&server.log)?;
        if log.contains("cancelled=true") || std::time::Instant::now() > deadline {
            break log;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    // Give rmcp's drain its moment to (not) complain.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let log = std::fs::read_to_string(&server.log).unwrap_or(log);
    assert!(log.contains("cancelled=true"), "{log}");
    assert!(!log.contains(" ERROR "), "{log}");
    Ok(())
}

/// The run directory of the fake Codex run whose prompt was `prompt`.
async fn wait_for_run_of(
    record: &Path,
    prompt: &str,
    limit: std::time::Duration,
) -> Result<PathBuf> {
    let deadline = std::time::Instant::now() + limit;
    loop {
        let found = std::fs::read_dir(record)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|dir| std::fs::read_to_string(dir.join("stdin")).is_ok_and(|s| s == prompt));
        if let Some(dir) = found {
            return Ok(dir);
        }
        anyhow::ensure!(std::time::Instant::now() < deadline, "no run of {prompt:?}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

// === HTTP niceties (point 7) ===

/// Without auth there is no protected-resource metadata to serve (404, both forms);
/// with auth both forms answer 200 and name the resource.
#[tokio::test]
async fn protected_resource_metadata_is_served_only_when_auth_is_on() -> Result<()> {
    let open = serve_in_process(&[]).await?;
    for path in [
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/mcp",
    ] {
        let resp = reqwest::get(format!("{}{path}", open.base)).await?;
        assert_eq!(resp.status(), 404, "no-auth {path}");
    }
    let guarded = serve_in_process(&[
        ("TWOBOT_ENABLE_NO_AUTH", "false"),
        ("TWOBOT_AUTH_TOKENS", "alice:tok-alice"),
    ])
    .await?;
    for path in [
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/mcp",
    ] {
        let resp = reqwest::get(format!("{}{path}", guarded.base)).await?;
        assert_eq!(resp.status(), 200, "auth {path}");
        let doc: Value = resp.json().await?;
        assert_eq!(doc["resource"], guarded.url, "{doc}");
    }
    Ok(())
}

/// A client that writes its whole oversized body before reading anything still reads
/// the 413 (it used to get a reset connection, a broken pipe in Python).
#[tokio::test]
async fn a_client_that_sends_a_whole_oversized_body_first_reads_the_413() -> Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = serve_in_process(&[("TWOBOT_MAX_BODY_BYTES", "1024")]).await?;
    let addr = server.base.trim_start_matches("http://").to_owned();
    let body = vec![b'x'; 4 * 1024 * 1024];
    let mut stream = tokio::net::TcpStream::connect(&addr).await?;
    let head = format!(
        "POST /mcp HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(&body).await?;
    stream.flush().await?;
    let mut response = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(60),
        stream.read_to_end(&mut response),
    )
    .await??;
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
    assert!(response.contains("TWOBOT_MAX_BODY_BYTES"), "{response}");
    Ok(())
}

/// The same with Python's `urllib`, which is how the problem was met.
#[tokio::test]
async fn python_urllib_reads_the_413_for_an_oversized_body() -> Result<()> {
    let python = require(&["python3"], "python3", APT_PYTHON)?;
    let server = serve_in_process(&[("TWOBOT_MAX_BODY_BYTES", "1024")]).await?;
    let script = r#"
import sys, urllib.request, urllib.error
req = urllib.request.Request(sys.argv[1], data=b"x" * (4 * 1024 * 1024), method="POST",
    headers={"Content-Type": "application/json", "Accept": "application/json, text/event-stream"})
try:
    urllib.request.urlopen(req, timeout=60)
    print("no error")
except urllib.error.HTTPError as e:
    print(e.code, e.read().decode())
"#;
    let out = tokio::process::Command::new(python)
        .args(["-c", script, &server.url])
        .output()
        .await?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stdout.starts_with("413 "), "{stdout}{stderr}");
    assert!(stdout.contains("TWOBOT_MAX_BODY_BYTES"), "{stdout}");
    Ok(())
}
