//! What a new user meets first (issue 13, points 1, 6 and 7), through the real binary:
//! the tool list every client can read (pinned, linted by the MCP Inspector's
//! `--strict`, under 10 KB), configuration mistakes that stop with exit 2 and say
//! what was typed, logs that stay quiet at INFO, and HTTP answers a plain client can
//! read (no OAuth metadata without auth, a 413 after an oversized body).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::Value;

use crate::common::*;
use crate::suite::deploy::installed;

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
    let tools = listed_tools(&[("TWOBOT_ENABLE_BACKGROUND_RUNS", "true")]).await?;
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

fn inspector() -> Option<PathBuf> {
    let bin = repo("node_modules/.bin/mcp-inspector");
    installed(&[&bin.display().to_string()], "the MCP Inspector (npm ci)")
}

/// The MCP Inspector's schema lint (`--strict`) finds no error and no warning, in the
/// default tool list and in background mode's three tools.
#[tokio::test]
async fn the_mcp_inspector_strict_lint_finds_nothing_to_report() -> Result<()> {
    let Some(bin) = inspector() else {
        return Ok(());
    };
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
        assert_eq!(count, if background == "true" { 3 } else { 1 });
    }
    Ok(())
}
