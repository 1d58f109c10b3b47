//! The end of an MCP session over HTTP, as a client sees it: a DELETE is answered with a
//! status the SDKs accept (`204`), and the runs that session's direct calls wait on stop
//! with it, before the answer (nobody could receive their results any more).

use std::time::Duration;

use anyhow::Result;
use serde_json::json;

use crate::common::http::*;
use crate::common::inproc::serve_in_process;
use crate::common::*;

fn delete(url: &str, session: &str) -> reqwest::RequestBuilder {
    reqwest::Client::new()
        .delete(url)
        .header("mcp-session-id", session)
        .header("mcp-protocol-version", "2025-06-18")
}

/// A DELETE of an idle session is answered `204 No Content`, and the session is gone.
#[tokio::test]
async fn a_session_delete_is_answered_204_no_content() -> Result<()> {
    let server = serve_in_process(&[]).await?;
    let session = raw_session(&server.url, None).await?;
    let answer = delete(&server.url, &session).send().await?;
    assert_eq!(answer.status(), 204);
    let again = delete(&server.url, &session).send().await?;
    assert_eq!(again.status(), 404, "the session ended");
    Ok(())
}

/// A DELETE while a direct call's run is working stops that run at once: its Codex and
/// the command Codex started are gone by the time the DELETE is answered.
#[tokio::test]
async fn deleting_a_session_stops_its_running_codex_before_answering() -> Result<()> {
    let server = serve_in_process(&[]).await?;
    let session = raw_session(&server.url, None).await?;
    let call = post(
        &server.url,
        &json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
            "name": "run_codex_prompt",
            "arguments": {"prompt": "scenario:hang", "timeout_sec": 600}}}),
    )
    .header("mcp-session-id", &session)
    .send();
    let call = tokio::spawn(async move { call.await?.text().await });
    let run = wait_for_run_dir(&server.record, Duration::from_secs(20)).await?;
    let codex = wait_for_run_pid(&run.join("codex.pid"), Duration::from_secs(20)).await?;
    let grandchild = read_run_pid(&run.join("grandchild.pid"))?;
    assert!(
        codex.is_alive() && grandchild.is_alive(),
        "the run is working"
    );

    let answer = delete(&server.url, &session).send().await?;
    assert_eq!(answer.status(), 204);
    assert!(
        !codex.is_alive(),
        "Codex {codex} outlived its session's DELETE"
    );
    assert!(
        !grandchild.is_alive(),
        "Codex's command {grandchild} outlived its session's DELETE"
    );
    call.abort();
    Ok(())
}

/// Ending one session leaves another session's run alone.
#[tokio::test]
async fn deleting_a_session_leaves_other_sessions_runs_running() -> Result<()> {
    let server = serve_in_process(&[]).await?;
    let mine = raw_session(&server.url, None).await?;
    let other = raw_session(&server.url, None).await?;
    let call = post(
        &server.url,
        &json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
            "name": "run_codex_prompt",
            "arguments": {"prompt": "scenario:hang", "timeout_sec": 600}}}),
    )
    .header("mcp-session-id", &other)
    .send();
    let call = tokio::spawn(async move { call.await?.text().await });
    let run = wait_for_run_dir(&server.record, Duration::from_secs(20)).await?;
    let codex = wait_for_run_pid(&run.join("codex.pid"), Duration::from_secs(20)).await?;

    let answer = delete(&server.url, &mine).send().await?;
    assert_eq!(answer.status(), 204);
    // A DELETE stops its session's runs before it is answered: had it touched this one,
    // it would be gone now.
    assert!(
        codex.is_alive(),
        "another session's DELETE stopped this run"
    );
    call.abort();
    Ok(())
}
