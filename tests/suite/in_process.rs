//! The in-process harness (`common::inproc`) is the real stack: a call made through it
//! by rmcp's client runs the fake Codex through the real supervisor and comes back as a
//! user sees it, and the edge refuses what the binary refuses.

use anyhow::{Result, ensure};
use serde_json::json;

use crate::common::http::{http_client, post};
use crate::common::inproc::serve_in_process;
use crate::common::{call, only_run, structured, text};

#[tokio::test]
async fn a_call_through_the_in_process_stack_runs_codex_like_the_binary() -> Result<()> {
    let server = serve_in_process(&[
        ("TWOBOT_ENABLE_NO_AUTH", "false"),
        ("TWOBOT_AUTH_TOKENS", "alice:tok-alice"),
    ])
    .await?;
    let refused = post(
        &server.url,
        &json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
    )
    .send()
    .await?;
    ensure!(refused.status() == 401, "{}", refused.status());

    let client = http_client(&server.url, Some("tok-alice")).await?;
    let r = call(&client, json!({"prompt": "scenario:ok"})).await?;
    ensure!(r.is_error == Some(false), "{}", text(&r));
    ensure!(structured(&r)["final_message"] == "fake answer");
    let run = only_run(&server.record)?;
    ensure!(run.stdin.starts_with("scenario:ok"), "{}", run.stdin);
    Ok(())
}
