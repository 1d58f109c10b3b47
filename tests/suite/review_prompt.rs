//! `review` with a target (uncommitted, base, commit) through a real MCP client: Codex
//! reviews with its own instructions, so no `prompt` is needed, and a bad target is
//! refused for what it is, not for the missing prompt.

use anyhow::Result;
use serde_json::{Value, json};

use crate::common::*;

/// The tool's input schema as `tools/list` shows it.
async fn input_schema(server: &StdioServer) -> Result<Value> {
    let tools = server.client.list_all_tools().await?;
    let tool = tools
        .iter()
        .find(|t| t.name == "run_codex_prompt")
        .ok_or_else(|| anyhow::anyhow!("run_codex_prompt is listed"))?;
    Ok(Value::Object((*tool.input_schema).clone()))
}

/// The schema no longer requires `prompt`, and a review of uncommitted changes sent
/// without one runs `codex exec review --uncommitted`, with no warning about a prompt.
#[tokio::test]
async fn a_review_with_a_target_runs_without_a_prompt() -> Result<()> {
    let server = spawn_stdio(Options::default()).await?;
    let schema = input_schema(&server).await?;
    let required = schema["required"].as_array().cloned().unwrap_or_default();
    assert!(
        !required.contains(&json!("prompt")),
        "prompt is not required: {schema:#}"
    );
    assert!(
        schema["properties"]["prompt"]["description"]
            .as_str()
            .is_some_and(|d| d.contains("Optional with a `review` target")),
        "{schema:#}"
    );
    let r = call(&server.client, json!({"review": {"uncommitted": true}})).await?;
    let s = structured(&r);
    assert_eq!(r.is_error, Some(false), "{}\n{s:#}", text(&r));
    let run = only_run(&server.record)?;
    assert!(
        run.argv.iter().any(|a| a == "review") && run.argv.iter().any(|a| a == "--uncommitted"),
        "{:?}",
        run.argv
    );
    assert!(
        !s["warnings"].to_string().contains("prompt"),
        "no prompt was sent, so none was left out: {s:#}"
    );
    server.client.cancel().await?;
    Ok(())
}

/// A review of a bad branch sent without a prompt is refused for the branch name.
#[tokio::test]
async fn a_bad_review_branch_without_a_prompt_is_refused_for_the_branch() -> Result<()> {
    let server = spawn_stdio(Options::default()).await?;
    let r = call(
        &server.client,
        json!({"review": {"base": "--output=/tmp/x"}}),
    )
    .await?;
    assert_eq!(r.is_error, Some(true));
    assert!(
        text(&r).contains(r#"review.base = "--output=/tmp/x": must be a branch name"#),
        "{}",
        text(&r)
    );
    assert!(recorded(&server.record)?.is_empty(), "nothing ran");
    server.client.cancel().await?;
    Ok(())
}

/// A custom review still needs the prompt (it is the review's instructions), and so
/// does a run without a review.
#[tokio::test]
async fn a_custom_review_or_a_plain_run_without_a_prompt_is_refused_for_the_prompt() -> Result<()> {
    let server = spawn_stdio(Options::default()).await?;
    for args in [json!({"review": {"custom": true}}), json!({})] {
        let r = call(&server.client, args.clone()).await?;
        assert_eq!(r.is_error, Some(true), "{args}");
        assert!(
            text(&r).contains("the prompt must not be empty"),
            "{args}: {}",
            text(&r)
        );
    }
    assert!(recorded(&server.record)?.is_empty(), "nothing ran");
    server.client.cancel().await?;
    Ok(())
}
