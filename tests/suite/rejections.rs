//! Every refusal at the HTTP edge, provoked through the real binary: each one answers
//! with the same body shape (`{"error": code, "reason": text}`, or for refusals of a
//! JSON-RPC body a JSON-RPC error carrying exactly that as `data`), the raw-socket 503
//! included; and the HTTP-side metrics that go with them (`twobot_sessions_active`
//! follows live sessions, the raw 503 is counted).

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use jsonwebtoken::{EncodingKey, Header, encode};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::http::*;

const SECRET: &str = "rejections-test-secret-0123456789abcdef";

/// One answer as the client saw it.
struct Answer {
    status: u16,
    /// Header names in lower case.
    headers: HashMap<String, String>,
    body: String,
}

impl Answer {
    async fn of(response: reqwest::Response) -> Result<Self> {
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect();
        Ok(Self {
            status,
            headers,
            body: response.text().await?,
        })
    }

    /// Parse a raw HTTP/1.1 response (the server sends a `content-length`).
    fn parse(raw: &[u8]) -> Result<Self> {
        let text = String::from_utf8_lossy(raw);
        let (head, body) = text.split_once("\r\n\r\n").context("a complete head")?;
        let mut lines = head.lines();
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .context("a status line")?;
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        Ok(Self {
            status,
            headers,
            body: body.to_owned(),
        })
    }

    /// Assert the status, `Content-Type: application/json` and the one body shape;
    /// returns the common part `{error, reason}`.
    fn rejection(&self, status: u16, code: &str, what: &str) -> Result<Value> {
        assert_eq!(self.status, status, "{what}: {}", self.body);
        assert_eq!(
            self.headers.get("content-type").map(String::as_str),
            Some("application/json"),
            "{what}"
        );
        let body: Value = serde_json::from_str(&self.body)
            .with_context(|| format!("{what}: the body is JSON: {}", self.body))?;
        let common = if body.get("jsonrpc").is_some() {
            // JSON-RPC error without an id; the common body is its data, the reason its message.
            assert_eq!(body["jsonrpc"], "2.0", "{what}");
            assert!(body["id"].is_null(), "{what}: {body}");
            assert!(body["error"]["code"].is_i64(), "{what}: {body}");
            assert_eq!(
                body["error"]["message"], body["error"]["data"]["reason"],
                "{what}"
            );
            body["error"]["data"].clone()
        } else {
            body
        };
        let keys: Vec<&String> = common.as_object().context("an object")?.keys().collect();
        assert_eq!(keys, ["error", "reason"], "{what}: {common}");
        assert_eq!(common["error"], code, "{what}: {common}");
        assert!(
            common["reason"].as_str().is_some_and(|r| r.len() > 10),
            "{what}: a reason a human can act on: {common}"
        );
        Ok(common)
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

/// Send `request` on a fresh connection and read the answer until the server closes
/// it (or `limit` passes).
async fn raw(addr: &str, request: &[u8], limit: Duration) -> Result<Answer> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.write_all(request).await?;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(limit, stream.read_to_end(&mut answer)).await;
    Answer::parse(&answer)
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn jwt(claims: &Value) -> Result<String> {
    Ok(encode(
        &Header::default(),
        claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )?)
}

fn tool_call(id: u64, prompt: &str) -> Value {
    json!({"jsonrpc":"2.0","id": id,"method":"tools/call",
           "params":{"name":"run_codex_prompt","arguments":{"prompt": prompt}}})
}

/// Auth, Host/Origin, rate, in-flight, session and body refusals on an authenticated
/// server: each status with its code and headers, one body shape for all.
#[tokio::test]
async fn every_refusal_at_the_http_edge_answers_with_the_same_body_shape() -> Result<()> {
    // In this process: the whole stack as the binary builds it, no process to start.
    let server = crate::common::inproc::serve_in_process(&[
        ("TWOBOT_ENABLE_NO_AUTH", "false"),
        (
            "TWOBOT_AUTH_TOKENS",
            "alice:tok-alice,bob:tok-bob,carol:tok-carol,dave:tok-dave,rl:tok-rl",
        ),
        ("TWOBOT_JWT_SECRET", SECRET),
        ("TWOBOT_REQUIRED_SCOPES", "codex:run"),
        ("TWOBOT_RATE_LIMIT_PER_MINUTE", "1"),
        ("TWOBOT_RATE_LIMIT_BURST", "6"),
        ("TWOBOT_MAX_SESSIONS", "3"),
        ("TWOBOT_MAX_SESSIONS_PER_PRINCIPAL", "1"),
        ("TWOBOT_MAX_INFLIGHT_PER_PRINCIPAL", "2"),
        ("TWOBOT_MAX_BODY_BYTES", "4096"),
        ("FAKE_CODEX_STEPS", "30"),
    ])
    .await?;
    let url = &server.url;
    let addr = server.base.trim_start_matches("http://").to_owned();
    let list = json!({"jsonrpc":"2.0","id":9,"method":"tools/list"});

    // --- authentication ---
    let none = Answer::of(post(url, &initialize_body()).send().await?).await?;
    none.rejection(401, "unauthorized", "no token")?;
    assert!(none.header("www-authenticate").is_some());
    let bad = Answer::of(post(url, &list).bearer_auth("nope").send().await?).await?;
    let common = bad.rejection(401, "unauthorized", "a wrong token")?;
    assert_eq!(
        common,
        none.rejection(401, "unauthorized", "no token")?,
        "no detail of a bad token leaks"
    );
    let no_sub = jwt(&json!({"aud": url, "exp": now() + 600, "scope": "codex:run"}))?;
    Answer::of(post(url, &list).bearer_auth(no_sub).send().await?)
        .await?
        .rejection(401, "invalid_token", "a JWT without sub")?;
    let no_scope = jwt(&json!({"sub": "erin", "aud": url, "exp": now() + 600, "scope": "x"}))?;
    let scope = Answer::of(post(url, &list).bearer_auth(no_scope).send().await?).await?;
    scope.rejection(403, "insufficient_scope", "a JWT without the scope")?;
    assert!(
        scope
            .header("www-authenticate")
            .is_some_and(|c| c.contains("insufficient_scope"))
    );
    let twice = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("authorization", "Bearer tok-alice")
        .header("authorization", "Bearer tok-bob")
        .body(list.to_string())
        .send()
        .await?;
    Answer::of(twice)
        .await?
        .rejection(400, "invalid_request", "two Authorization headers")?;

    // --- DNS-rebinding protection ---
    let evil_host = Answer::of(
        post(url, &list)
            .bearer_auth("tok-alice")
            .header("host", "evil.example")
            .send()
            .await?,
    )
    .await?;
    let common = evil_host.rejection(403, "host_not_allowed", "an evil Host")?;
    assert!(
        common["reason"]
            .as_str()
            .is_some_and(|r| r.contains("TWOBOT_ALLOWED_HOSTS"))
    );
    Answer::of(
        post(url, &list)
            .bearer_auth("tok-alice")
            .header("origin", "null")
            .send()
            .await?,
    )
    .await?
    .rejection(403, "origin_not_allowed", "Origin: null")?;

    // --- sessions: per-principal share, server cap, someone else's id ---
    let dave = raw_session(url, Some("tok-dave")).await?;
    let alice = raw_session(url, Some("tok-alice")).await?;
    let quota = Answer::of(
        post(url, &initialize_body())
            .bearer_auth("tok-alice")
            .send()
            .await?,
    )
    .await?;
    quota.rejection(429, "session_quota_exceeded", "Alice's second session")?;
    assert_eq!(quota.header("retry-after"), Some("30"));
    let bob = raw_session(url, Some("tok-bob")).await?;
    let cap = Answer::of(
        post(url, &initialize_body())
            .bearer_auth("tok-carol")
            .send()
            .await?,
    )
    .await?;
    cap.rejection(503, "too_many_sessions", "a fourth session")?;
    assert_eq!(cap.header("retry-after"), Some("30"));
    Answer::of(
        post(url, &list)
            .bearer_auth("tok-bob")
            .header("mcp-session-id", &alice)
            .send()
            .await?,
    )
    .await?
    .rejection(404, "session_not_found", "Bob with Alice's session id")?;

    // --- JSON-RPC bodies: the JSON-RPC shape, the common body as its data ---
    // (in Bob's session: a request without one would ask for a fifth session)
    let body = |bytes: &'static [u8]| {
        post(url, &Value::Null)
            .bearer_auth("tok-bob")
            .header("mcp-session-id", &bob)
            .body(bytes)
    };
    Answer::of(body(b"{").send().await?).await?.rejection(
        400,
        "malformed_json",
        "a truncated body",
    )?;
    Answer::of(
        body(b"[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}]")
            .send()
            .await?,
    )
    .await?
    .rejection(400, "not_one_jsonrpc_message", "a batch")?;
    let big = Answer::of(
        post(url, &Value::Null)
            .bearer_auth("tok-bob")
            .header("mcp-session-id", &bob)
            .body(vec![b' '; 5000])
            .send()
            .await?,
    )
    .await?;
    big.rejection(413, "body_too_large", "a declared body over the limit")?;
    assert_eq!(big.header("connection"), Some("close"));
    let chunked = format!(
        "POST /mcp HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer tok-bob\r\nMcp-Session-Id: {bob}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n1388\r\n{}\r\n0\r\n\r\n",
        " ".repeat(5000)
    );
    Answer::parse(&raw_bytes(&addr, chunked.as_bytes()).await?)?.rejection(
        413,
        "body_too_large",
        "a chunked body over the limit",
    )?;

    // --- requests in flight: a reused id, then Dave's share ---
    let first = post(url, &tool_call(1, "scenario:long"))
        .bearer_auth("tok-dave")
        .header("mcp-session-id", &dave)
        .send()
        .await?;
    assert_eq!(first.status(), 200);
    Answer::of(
        post(url, &tool_call(1, "scenario:long"))
            .bearer_auth("tok-dave")
            .header("mcp-session-id", &dave)
            .send()
            .await?,
    )
    .await?
    .rejection(400, "request_id_in_flight", "an id already in flight")?;
    let second = post(url, &tool_call(2, "scenario:long"))
        .bearer_auth("tok-dave")
        .header("mcp-session-id", &dave)
        .send()
        .await?;
    assert_eq!(second.status(), 200);
    let inflight = Answer::of(
        post(url, &list)
            .bearer_auth("tok-dave")
            .header("mcp-session-id", &dave)
            .send()
            .await?,
    )
    .await?;
    inflight.rejection(429, "too_many_in_flight", "Dave's third request in flight")?;
    assert_eq!(inflight.header("retry-after"), Some("5"));
    assert_eq!(inflight.header("connection"), Some("close"));
    drop((first, second));

    // --- rate: a burst of 6, then 429 with Retry-After ---
    let mut limited = None;
    for _ in 0..8 {
        let answer = Answer::of(post(url, &list).bearer_auth("tok-rl").send().await?).await?;
        if answer.status == 429 {
            limited = Some(answer);
            break;
        }
    }
    let limited = limited.context("the burst was exceeded")?;
    limited.rejection(429, "rate_limited", "over the burst")?;
    assert!(
        limited
            .header("retry-after")
            .and_then(|s| s.parse::<u64>().ok())
            .is_some_and(|s| s >= 1)
    );
    Ok(())
}

/// Write `request`, read until the server closes (bounded), return the bytes.
async fn raw_bytes(addr: &str, request: &[u8]) -> Result<Vec<u8>> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.write_all(request).await?;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut answer)).await;
    Ok(answer)
}

/// One sample's value (`name{labels} value`), 0 when absent.
async fn sample(metrics: &str, series: &str) -> Result<f64> {
    let exposition = reqwest::get(metrics).await?.text().await?;
    Ok(exposition
        .lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0))
}

/// `twobot_sessions_active` counts live sessions: up on initialize, down on DELETE and
/// on idle expiry. The 408 of a slow body and the 503 of the connection cap (written on
/// the raw socket) have the common body, and the 503 is counted in
/// `twobot_http_requests_total{status="503"}`.
#[tokio::test]
async fn the_sessions_gauge_follows_live_sessions_and_the_raw_503_is_counted() -> Result<()> {
    let server = spawn_http(&[
        ("TWOBOT_METRICS_ADDR", "127.0.0.1:0"),
        ("TWOBOT_SESSION_IDLE_SEC", "5"),
        ("TWOBOT_MAX_CONNECTIONS", "3"),
        ("TWOBOT_HEADER_READ_TIMEOUT_SEC", "60"),
        ("TWOBOT_BODY_READ_TIMEOUT_SEC", "1"),
    ])
    .await?;
    let metrics = metrics_url(&server.log).await?;
    let addr = server.base.trim_start_matches("http://").to_owned();
    const ACTIVE: &str = "twobot_sessions_active";

    let first = raw_session(&server.url, None).await?;
    let second = raw_session(&server.url, None).await?;
    assert_eq!(sample(&metrics, ACTIVE).await?, 2.0, "two live sessions");
    let delete = reqwest::Client::new()
        .delete(&server.url)
        .header("mcp-session-id", &second)
        .send()
        .await?;
    assert!(delete.status().is_success(), "{}", delete.status());
    assert_eq!(sample(&metrics, ACTIVE).await?, 1.0, "one ended by DELETE");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while sample(&metrics, ACTIVE).await? != 0.0 {
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "session {first} never expired in the gauge"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // A body that stops arriving: 408, the common body, the connection closed.
    let head = format!(
        "POST /mcp HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: 100\r\n\r\n{{"
    );
    let slow = raw(&addr, head.as_bytes(), Duration::from_secs(20)).await?;
    slow.rejection(408, "body_timeout", "a body that stops arriving")?;
    assert_eq!(slow.header("connection"), Some("close"));

    // Every connection slot held: the raw-socket 503 has the same shape, and is counted.
    let before = sample(&metrics, r#"twobot_http_requests_total{status="503"}"#).await?;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(TcpStream::connect(&addr).await?);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let over = raw(
        &addr,
        format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes(),
        Duration::from_secs(20),
    )
    .await?;
    over.rejection(503, "too_many_connections", "over the connection cap")?;
    assert_eq!(over.header("retry-after"), Some("1"));
    assert_eq!(over.header("connection"), Some("close"));
    assert_eq!(
        over.header("content-length"),
        Some(over.body.len().to_string().as_str())
    );
    let after = sample(&metrics, r#"twobot_http_requests_total{status="503"}"#).await?;
    assert!(after >= before + 1.0, "503s counted: {before} -> {after}");
    drop(held);
    Ok(())
}
