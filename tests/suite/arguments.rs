//! A wrong JSON type in a tool's arguments, through a real MCP client on the real binary:
//! the error names the argument and says what JSON it must be (an integer, true or false,
//! a string, a list of strings, an object), never serde's Rust (`expected i64`).

use anyhow::Result;
use rmcp::model::CallToolRequestParams;
use serde_json::{Value, json};

use crate::common::*;

/// Call `tool` with `args` on a fresh server (background runs on) and return the error
/// text; fails when the call did not fail or the text speaks Rust.
async fn refused(tool: &str, args: Value) -> Result<String> {
    let server = spawn_stdio(Options {
        env: vec![("TWOBOT_ENABLE_BACKGROUND_RUNS".into(), "true".into())],
        ..Options::default()
    })
    .await?;
    let Value::Object(map) = args else {
        anyhow::bail!("arguments must be an object");
    };
    let result = server
        .client
        .call_tool(CallToolRequestParams::new(tool.to_owned()).with_arguments(map))
        .await?;
    let said = text(&result);
    assert_eq!(result.is_error, Some(true), "{said}");
    for rust in [
        "i64",
        "u64",
        "a boolean",
        "a sequence",
        "a map",
        "struct ",
        "invalid type",
    ] {
        assert!(
            !said.contains(rust),
            "the error speaks Rust ({rust}): {said}"
        );
    }
    assert!(recorded(&server.record)?.is_empty(), "nothing ran");
    server.client.cancel().await?;
    Ok(said)
}

/// `timeout_sec: "10"` is refused as needing an integer, a whole number of seconds.
#[tokio::test]
async fn a_string_for_timeout_sec_is_refused_as_not_an_integer() -> Result<()> {
    let said = refused(
        "run_codex_prompt",
        json!({"prompt": "scenario:ok", "timeout_sec": "10"}),
    )
    .await?;
    assert_eq!(
        said,
        r#"invalid arguments for run_codex_prompt: timeout_sec must be an integer (a whole number of seconds), not the string "10""#
    );
    Ok(())
}

/// `get_codex_run`'s `wait_sec: 1.5` is refused the same way.
#[tokio::test]
async fn a_fraction_for_wait_sec_is_refused_as_not_a_whole_number_of_seconds() -> Result<()> {
    let said = refused("get_codex_run", json!({"run_id": "r", "wait_sec": 1.5})).await?;
    assert_eq!(
        said,
        "invalid arguments for get_codex_run: wait_sec must be an integer (a whole number of seconds), not the number 1.5"
    );
    Ok(())
}

/// `allow_edits: "yes"` is refused as needing true or false.
#[tokio::test]
async fn a_string_for_a_flag_is_refused_as_not_true_or_false() -> Result<()> {
    let said = refused(
        "run_codex_prompt",
        json!({"prompt": "scenario:ok", "allow_edits": "yes"}),
    )
    .await?;
    assert_eq!(
        said,
        r#"invalid arguments for run_codex_prompt: allow_edits must be true or false, not the string "yes""#
    );
    Ok(())
}

/// `prompt: 5` is refused as needing a string.
#[tokio::test]
async fn a_number_for_the_prompt_is_refused_as_not_a_string() -> Result<()> {
    let said = refused("run_codex_prompt", json!({"prompt": 5})).await?;
    assert_eq!(
        said,
        "invalid arguments for run_codex_prompt: prompt must be a string, not the number 5"
    );
    Ok(())
}

/// `add_dirs: "/tmp"` is refused as needing a list of strings; a number inside the list
/// is named by its place.
#[tokio::test]
async fn a_string_for_add_dirs_is_refused_as_not_a_list_of_strings() -> Result<()> {
    let said = refused(
        "run_codex_prompt",
        json!({"prompt": "scenario:ok", "add_dirs": "/tmp"}),
    )
    .await?;
    assert_eq!(
        said,
        r#"invalid arguments for run_codex_prompt: add_dirs must be a list of strings, not the string "/tmp""#
    );
    let said = refused(
        "run_codex_prompt",
        json!({"prompt": "scenario:ok", "images": ["a.png", 3]}),
    )
    .await?;
    assert_eq!(
        said,
        "invalid arguments for run_codex_prompt: images[1] must be a string, not the number 3"
    );
    Ok(())
}

/// `review: "main"` is refused as needing an object.
#[tokio::test]
async fn a_string_for_review_is_refused_as_not_an_object() -> Result<()> {
    let said = refused(
        "run_codex_prompt",
        json!({"prompt": "scenario:ok", "review": "main"}),
    )
    .await?;
    assert_eq!(
        said,
        r#"invalid arguments for run_codex_prompt: review must be an object, not the string "main""#
    );
    Ok(())
}
