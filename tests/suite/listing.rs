//! A plain `tools/list` is answered from bytes serialized once (`http::listing`): the
//! same message rmcp sends, behind the same auth, limits and session guard, for the plain
//! stateless request and a session's plain request, keeping the session's idle clock.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use serde_json::{Value, json};

use crate::common::http::{http_client, raw_session};
use crate::common::inproc::serve_in_process;

const TOKEN: &str = "tok-alice-0123456789";

fn listing(id: Value) -> Value {
    json!({
        "jsonrpc": "2.0", "id": id, "method": "tools/list",
        "params": {"_meta": {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {},
            "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "0"}
        }}
    })
}

/// The JSON-RPC message of a response: the body itself, or an SSE stream's one message.
fn message_bytes(content_type: &str, body: &str) -> Result<String> {
    if content_type.starts_with("application/json") {
        return Ok(body.to_owned());
    }
    body.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(str::trim_start)
        .find(|d| d.contains("\"jsonrpc\""))
        .map(str::to_owned)
        .context(format!("no JSON-RPC message in the stream: {body}"))
}

/// A POST as a 2026-07-28 client sends it: the version and the method in headers too.
fn stateless(url: &str, body: &Value) -> reqwest::RequestBuilder {
    stateless_as(
        url,
        body,
        "application/json",
        "application/json, text/event-stream",
    )
}

/// [`stateless`] with its own `Content-Type` and `Accept`.
fn stateless_as(
    url: &str,
    body: &Value,
    content_type: &str,
    accept: &str,
) -> reqwest::RequestBuilder {
    reqwest::Client::new()
        .post(url)
        .header("content-type", content_type)
        .header("accept", accept)
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/list")
        .body(body.to_string())
}

async fn send(request: reqwest::RequestBuilder) -> Result<(u16, String, String)> {
    let response = request.send().await?;
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    Ok((status, content_type, response.text().await?))
}

#[tokio::test]
async fn a_stateless_tools_list_gets_the_bytes_rmcp_would_send() -> Result<()> {
    let server = serve_in_process(&[
        ("TWOBOT_ENABLE_NO_AUTH", "false"),
        ("TWOBOT_AUTH_TOKENS", &format!("alice:{TOKEN}")),
    ])
    .await?;
    let body = listing(json!("id-1"));
    let (status, content_type, cached) =
        send(stateless(&server.url, &body).bearer_auth(TOKEN)).await?;
    ensure!(status == 200, "{status}: {cached}");
    ensure!(content_type == "application/json", "{content_type}");

    // A weighted Accept entry is not the plain case: rmcp itself answers this one.
    let (status, content_type, from_rmcp) = send(
        stateless_as(
            &server.url,
            &body,
            "application/json",
            "application/json;q=1, text/event-stream",
        )
        .bearer_auth(TOKEN),
    )
    .await?;
    ensure!(
        content_type.starts_with("text/event-stream"),
        "rmcp streams its answer: {content_type}"
    );
    ensure!(status == 200, "{status}: {from_rmcp}");
    let from_rmcp = message_bytes(&content_type, &from_rmcp)?;
    ensure!(
        cached == from_rmcp,
        "the cached answer differs from rmcp's:\n{cached}\n{from_rmcp}"
    );

    // And the list is the one a session's client sees.
    let parsed: Value = serde_json::from_str(&cached)?;
    let client = http_client(&server.url, Some(TOKEN)).await?;
    let tools = serde_json::to_value(client.list_all_tools().await?)?;
    ensure!(parsed["result"]["tools"] == tools, "{parsed}");
    ensure!(parsed["id"] == "id-1");
    Ok(())
}

#[tokio::test]
async fn a_stateless_tools_list_is_refused_without_a_token_and_counted_by_the_rate_limit()
-> Result<()> {
    let server = serve_in_process(&[
        ("TWOBOT_ENABLE_NO_AUTH", "false"),
        ("TWOBOT_AUTH_TOKENS", &format!("alice:{TOKEN}")),
        ("TWOBOT_RATE_LIMIT_PER_MINUTE", "1"),
        ("TWOBOT_RATE_LIMIT_BURST", "2"),
    ])
    .await?;
    let (status, _, body) = send(stateless(&server.url, &listing(json!(1)))).await?;
    ensure!(status == 401, "no token: {status}: {body}");
    for id in 1..=2 {
        let (status, _, body) =
            send(stateless(&server.url, &listing(json!(id))).bearer_auth(TOKEN)).await?;
        ensure!(status == 200, "within the burst: {status}: {body}");
        ensure!(body.contains(&format!("\"id\":{id},")), "{body}");
    }
    let (status, _, body) =
        send(stateless(&server.url, &listing(json!(3))).bearer_auth(TOKEN)).await?;
    ensure!(status == 429, "beyond the burst: {status}: {body}");
    Ok(())
}

/// A session's listing as the official SDKs send it after `initialize`; `accept` set to
/// a weighted entry leaves it to rmcp.
fn in_session(url: &str, session: &str, id: u32, accept: &str) -> reqwest::RequestBuilder {
    reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", accept)
        .header("mcp-session-id", session)
        .header("mcp-protocol-version", "2025-11-25")
        .body(json!({"jsonrpc": "2.0", "id": id, "method": "tools/list"}).to_string())
}

const PLAIN_ACCEPT: &str = "application/json, text/event-stream";
const WEIGHTED_ACCEPT: &str = "application/json;q=1, text/event-stream";

#[tokio::test]
async fn a_session_s_tools_list_gets_the_message_rmcp_would_stream_and_only_its_owner_does()
-> Result<()> {
    let bob = "tok-bob-0123456789";
    let server = serve_in_process(&[
        ("TWOBOT_ENABLE_NO_AUTH", "false"),
        ("TWOBOT_AUTH_TOKENS", &format!("alice:{TOKEN},bob:{bob}")),
    ])
    .await?;
    let session = raw_session(&server.url, Some(TOKEN)).await?;
    let (status, content_type, cached) =
        send(in_session(&server.url, &session, 5, PLAIN_ACCEPT).bearer_auth(TOKEN)).await?;
    ensure!(status == 200, "{status}: {cached}");
    ensure!(content_type == "application/json", "{content_type}");
    let (status, content_type, streamed) =
        send(in_session(&server.url, &session, 5, WEIGHTED_ACCEPT).bearer_auth(TOKEN)).await?;
    ensure!(status == 200, "{status}: {streamed}");
    ensure!(
        content_type.starts_with("text/event-stream"),
        "rmcp streams its answer: {content_type}"
    );
    let streamed = message_bytes(&content_type, &streamed)?;
    ensure!(
        cached == streamed,
        "the cached answer differs from rmcp's:\n{cached}\n{streamed}"
    );
    ensure!(
        !cached.contains("ttlMs") && cached.contains("run_codex_prompt"),
        "{cached}"
    );

    // The session guard stands before the cache: another principal, or the owner after
    // the session ended, gets the 404 of an unknown session.
    let (status, _, body) =
        send(in_session(&server.url, &session, 6, PLAIN_ACCEPT).bearer_auth(bob)).await?;
    ensure!(status == 404, "another principal: {status}: {body}");
    let deleted = reqwest::Client::new()
        .delete(&server.url)
        .header("mcp-session-id", &session)
        .bearer_auth(TOKEN)
        .send()
        .await?;
    ensure!(deleted.status().is_success(), "{}", deleted.status());
    let (status, _, body) =
        send(in_session(&server.url, &session, 7, PLAIN_ACCEPT).bearer_auth(TOKEN)).await?;
    ensure!(status == 404, "an ended session: {status}: {body}");
    Ok(())
}

#[tokio::test]
async fn listings_answered_from_the_cache_keep_their_session_alive_past_its_idle_limit()
-> Result<()> {
    let server = serve_in_process(&[("TWOBOT_SESSION_IDLE_SEC", "2")]).await?;
    let session = raw_session(&server.url, None).await?;
    // 5 s of listings that never reach rmcp's session worker, which ends a session 2 s
    // after the last event it saw.
    let until = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut id = 10;
    while tokio::time::Instant::now() < until {
        id += 1;
        let (status, content_type, body) =
            send(in_session(&server.url, &session, id, PLAIN_ACCEPT)).await?;
        ensure!(
            status == 200 && content_type == "application/json",
            "{status} {content_type}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // rmcp itself still knows the session.
    let (status, _, body) =
        send(in_session(&server.url, &session, id + 1, WEIGHTED_ACCEPT)).await?;
    ensure!(
        status == 200,
        "the session expired while in use: {status}: {body}"
    );
    ensure!(body.contains("run_codex_prompt"), "{body}");
    Ok(())
}

#[tokio::test]
async fn a_plain_text_body_and_a_cursor_still_go_through_rmcp() -> Result<()> {
    let server = serve_in_process(&[]).await?;
    // A body not declared JSON is rmcp's to refuse (415), however well-formed it is.
    let (status, _, body) = send(stateless_as(
        &server.url,
        &listing(json!(4)),
        "text/plain",
        "application/json, text/event-stream",
    ))
    .await?;
    ensure!(status == 415, "{status}: {body}");

    let mut with_cursor = listing(json!(3));
    with_cursor["params"]["cursor"] = json!("not-a-cursor");
    let (status, content_type, body) = send(stateless(&server.url, &with_cursor)).await?;
    ensure!(status == 200, "{status}: {body}");
    ensure!(
        content_type.starts_with("text/event-stream"),
        "rmcp answers a cursor: {content_type}: {body}"
    );
    Ok(())
}
