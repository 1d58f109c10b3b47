//! Socket and session limits of the HTTP gateway: slowloris, connection cap, session
//! cap, session ownership and idle expiry.

use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::http::*;
use crate::common::inproc::serve_in_process;
use crate::common::*;

/// `host:port` of a server's base URL.
fn addr(base: &str) -> String {
    base.trim_start_matches("http://").to_owned()
}

/// Read until the server closes the connection; how long that took.
async fn closed_after(stream: &mut TcpStream, limit: Duration) -> Result<Duration> {
    let start = Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(limit, stream.read(&mut buf)).await {
            Err(_) => anyhow::bail!("connection still open after {limit:?}"),
            Ok(Ok(0)) | Ok(Err(_)) => return Ok(start.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test]
async fn slow_or_silent_clients_are_cut_off_but_a_long_sse_call_is_not() -> Result<()> {
    let server = spawn_http(&[("TWOBOT_HEADER_READ_TIMEOUT_SEC", "1")]).await?;

    // A connection that never sends a byte.
    let mut silent = TcpStream::connect(addr(&server.base)).await?;
    let took = closed_after(&mut silent, Duration::from_secs(10)).await?;
    assert!(
        took < Duration::from_secs(5),
        "silent connection lived {took:?}"
    );

    // Slowloris: headers started, never finished.
    let mut slow = TcpStream::connect(addr(&server.base)).await?;
    slow.write_all(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .await?;
    let took = closed_after(&mut slow, Duration::from_secs(10)).await?;
    assert!(took < Duration::from_secs(5), "slowloris lived {took:?}");

    // A call that streams for ~3 s (three times the header deadline) is unaffected.
    let client = http_client(&server.url, None).await?;
    let result = call(&client, json!({"prompt": "scenario:slow"})).await?;
    assert_eq!(text(&result), "slow answer");
    client.cancel().await?;

    let health = reqwest::get(format!("{}/healthz", server.base)).await?;
    assert_eq!(health.status(), 200);
    Ok(())
}

#[tokio::test]
async fn connections_beyond_the_cap_get_503_and_the_server_recovers() -> Result<()> {
    let server = serve_in_process(&[
        ("TWOBOT_MAX_CONNECTIONS", "3"),
        ("TWOBOT_HEADER_READ_TIMEOUT_SEC", "60"),
    ])
    .await?;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(TcpStream::connect(addr(&server.base)).await?);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    let over = reqwest::get(format!("{}/healthz", server.base)).await?;
    assert_eq!(over.status(), 503);
    assert_eq!(over.headers()["retry-after"], "1");
    let body = over.text().await?;
    assert!(body.contains("TWOBOT_MAX_CONNECTIONS"), "{body}");

    drop(held);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let status = reqwest::get(format!("{}/healthz", server.base))
            .await?
            .status();
        if status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still {status} after the connections closed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

#[tokio::test]
async fn sessions_are_capped_and_serve_only_the_principal_that_created_them() -> Result<()> {
    let server = crate::common::inproc::serve_in_process(&[
        ("TWOBOT_ENABLE_NO_AUTH", "false"),
        ("TWOBOT_AUTH_TOKENS", "alice:tok-alice,bob:tok-bob"),
        ("TWOBOT_MAX_SESSIONS", "2"),
    ])
    .await?;
    let first = raw_session(&server.url, Some("tok-alice")).await?;
    let _second = raw_session(&server.url, Some("tok-alice")).await?;

    let third = post(&server.url, &initialize_body())
        .bearer_auth("tok-bob")
        .send()
        .await?;
    assert_eq!(third.status(), 503);
    assert_eq!(third.headers()["retry-after"], "30");
    let body = third.text().await?;
    assert!(body.contains("TWOBOT_MAX_SESSIONS"), "{body}");

    // Bob holding Alice's session id sees no such session; Alice still uses it.
    let list = json!({"jsonrpc":"2.0","id":2,"method":"tools/list"});
    let stolen = post(&server.url, &list)
        .bearer_auth("tok-bob")
        .header("mcp-session-id", &first)
        .send()
        .await?;
    assert_eq!(stolen.status(), 404);
    let stolen_delete = reqwest::Client::new()
        .delete(&server.url)
        .bearer_auth("tok-bob")
        .header("mcp-session-id", &first)
        .send()
        .await?;
    assert_eq!(stolen_delete.status(), 404);
    let own = post(&server.url, &list)
        .bearer_auth("tok-alice")
        .header("mcp-session-id", &first)
        .send()
        .await?;
    assert_eq!(own.status(), 200);
    assert!(own.text().await?.contains("run_codex_prompt"));

    // Ending a session frees its place.
    let delete = reqwest::Client::new()
        .delete(&server.url)
        .bearer_auth("tok-alice")
        .header("mcp-session-id", &first)
        .send()
        .await?;
    assert!(delete.status().is_success());
    raw_session(&server.url, Some("tok-bob")).await?;
    Ok(())
}

#[tokio::test]
async fn an_idle_session_expires_and_frees_its_place() -> Result<()> {
    let server = serve_in_process(&[
        ("TWOBOT_SESSION_IDLE_SEC", "1"),
        ("TWOBOT_MAX_SESSIONS", "1"),
    ])
    .await?;
    let id = raw_session(&server.url, None).await?;
    // Polled, not slept: the session ends on the server's clock (1 s idle). The poll
    // opens new sessions, which the cap of one refuses until the idle one is gone
    // (a request on the idle session itself would keep it alive).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while raw_session(&server.url, None).await.is_err() {
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "the idle session still holds the only place after 15 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let after = post(
        &server.url,
        &json!({"jsonrpc":"2.0","id":2,"method":"tools/list"}),
    )
    .header("mcp-session-id", &id)
    .send()
    .await?;
    assert_eq!(after.status(), 404);
    Ok(())
}

/// A 2026-07-28 `tools/list`: no session, everything in the request.
fn stateless_list() -> serde_json::Value {
    json!({"jsonrpc":"2.0","id":"s-1","method":"tools/list","params":{"_meta":{
        "io.modelcontextprotocol/protocolVersion":"2026-07-28",
        "io.modelcontextprotocol/clientCapabilities":{},
        "io.modelcontextprotocol/clientInfo":{"name":"t","version":"0"}}}})
}

#[tokio::test]
async fn stateless_requests_take_no_session_place_so_a_full_house_still_serves_them() -> Result<()>
{
    let server = serve_in_process(&[
        ("TWOBOT_ENABLE_NO_AUTH", "false"),
        ("TWOBOT_AUTH_TOKENS", "alice:tok-alice,bob:tok-bob"),
        ("TWOBOT_MAX_SESSIONS", "1"),
        ("TWOBOT_MAX_SESSIONS_PER_PRINCIPAL", "1"),
    ])
    .await?;
    let _held = raw_session(&server.url, Some("tok-alice")).await?;
    let refused = post(&server.url, &initialize_body())
        .bearer_auth("tok-bob")
        .send()
        .await?;
    assert_eq!(refused.status(), 503, "the house is full of sessions");

    // Bob (at the server's cap) and Alice (at her own) still list tools statelessly.
    for token in ["tok-bob", "tok-alice"] {
        let listed = post(&server.url, &stateless_list())
            .bearer_auth(token)
            .header("mcp-protocol-version", "2026-07-28")
            .header("mcp-method", "tools/list")
            .send()
            .await?;
        assert_eq!(listed.status(), 200, "{token}");
        assert!(listed.headers().get("mcp-session-id").is_none());
        assert!(listed.text().await?.contains("run_codex_prompt"), "{token}");
    }

    // An initialize whose Mcp-Method header says otherwise is refused before any session
    // exists; one that says nothing, or says so on a legacy version, still counts.
    let mut modern_initialize = initialize_body();
    modern_initialize["params"]["protocolVersion"] = json!("2026-07-28");
    let disguised = post(&server.url, &modern_initialize)
        .bearer_auth("tok-bob")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/list")
        .send()
        .await?;
    assert_eq!(disguised.status(), 400);
    assert!(disguised.headers().get("mcp-session-id").is_none());
    assert!(disguised.text().await?.contains("-32020"));
    let legacy = post(&server.url, &initialize_body())
        .bearer_auth("tok-bob")
        .header("mcp-protocol-version", "2025-06-18")
        .header("mcp-method", "tools/list")
        .send()
        .await?;
    assert_eq!(
        legacy.status(),
        503,
        "a legacy version's header is not checked by rmcp"
    );
    Ok(())
}
