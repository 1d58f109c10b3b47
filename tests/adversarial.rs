//! The adversarial suite: hostile input of every kind against the real binary, each
//! case asserting the exact refusal, and every group ending with the same proof that
//! nothing was lost: the server still answers, no Codex process (or anything Codex
//! started) is left, and the server's memory is back near where it started.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[allow(dead_code)]
mod common;

use std::os::unix::fs::symlink;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::{Value, json};

use common::http::*;
use common::*;

/// The end of every group: no process left behind, memory near its baseline.
async fn assert_nothing_lost(pid: u32, record: &Path, baseline_kib: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = codex_leftovers(record);
        if left.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "processes left behind: {left:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let now = current_rss_kib(pid).expect("server alive");
    // Allocators keep some freed memory; a leak of the inputs (MBs each) would not fit.
    let limit = baseline_kib + baseline_kib / 2 + 24 * 1024;
    assert!(
        now <= limit,
        "server RSS {now} KiB, baseline {baseline_kib} KiB (limit {limit})"
    );
}

async fn stdio_healthy(server: &StdioServer) -> Result<()> {
    let tools = server.client.list_all_tools().await?;
    assert_eq!(tools.len(), 1, "server still answers");
    let r = call(&server.client, json!({"prompt": "scenario:ok"})).await?;
    assert_eq!(text(&r), "fake answer", "server still runs Codex");
    Ok(())
}

async fn refused_exactly(server: &StdioServer, args: &Value, expect: &str) -> Result<()> {
    let before = recorded(&server.record)?.len();
    let r = call(&server.client, args.clone()).await;
    let message = match r {
        Ok(r) => {
            assert_eq!(r.is_error, Some(true), "{args}: {r:?}");
            text(&r)
        }
        // Arguments that do not fit the schema are a JSON-RPC error, with the reason.
        Err(e) => e.to_string(),
    };
    assert!(
        message.contains(expect),
        "{args}:\n  got      {message:?}\n  expected {expect:?}"
    );
    assert_eq!(
        recorded(&server.record)?.len(),
        before,
        "{args}: Codex was spawned"
    );
    Ok(())
}

/// Argument injection, filesystem escapes and a 10 MB prompt: 31 cases, each refused with its reason
/// and without starting Codex.
#[tokio::test]
async fn injected_arguments_and_path_escapes_are_refused_exactly() -> Result<()> {
    let server = spawn_stdio(Options {
        env: vec![("TWOBOT_MAX_PROMPT_BYTES".into(), "100000".into())],
        ..Options::default()
    })
    .await?;
    let baseline = current_rss_kib(server.pid).context("rss")?;
    let root = server.root.clone();
    let base = root.parent().unwrap().to_owned();
    std::fs::create_dir_all(root.join("app"))?;
    std::fs::create_dir_all(base.join("root-evil"))?;
    std::fs::write(root.join("file.txt"), "x")?;
    symlink("/", root.join("to-slash"))?;
    symlink("/etc", root.join("app/etc-link"))?;
    let sibling = base.join("root-evil").display().to_string();
    let long = format!("{}/{}", root.display(), "a".repeat(5000));

    let cases: Vec<(Value, String)> = vec![
        // Argument injection through values that would become flags.
        (
            json!({"prompt": "p", "model": "--dangerously-bypass-approvals-and-sandbox"}),
            "refused by policy: model = \"--dangerously-bypass-approvals-and-sandbox\"".into(),
        ),
        (
            json!({"prompt": "p", "model": "-c"}),
            "refused by policy: model = \"-c\"".into(),
        ),
        (
            json!({"prompt": "p", "model": "gpt 5"}),
            "refused by policy: model = \"gpt 5\"".into(),
        ),
        (
            json!({"prompt": "p", "model": "o3\n-c"}),
            "refused by policy: model = \"o3\\n-c\"".into(),
        ),
        (
            json!({"prompt": "p", "model": ""}),
            "refused by policy: model = \"\"".into(),
        ),
        (
            json!({"prompt": "p", "profile": "--dangerously-bypass-approvals-and-sandbox"}),
            "refused by policy: profile = \"--dangerously-bypass-approvals-and-sandbox\"".into(),
        ),
        (
            json!({"prompt": "p", "profile": "-c"}),
            "refused by policy: profile = \"-c\"".into(),
        ),
        (
            json!({"prompt": "p", "profile": "dev team"}),
            "refused by policy: profile = \"dev team\"".into(),
        ),
        (
            json!({"prompt": "p", "add_dirs": ["-C"]}),
            "refused by policy: add_dirs[0] = \"-C\"".into(),
        ),
        (
            json!({"prompt": "p", "add_dirs": ["--add-dir=/"]}),
            "refused by policy: add_dirs[0] = \"--add-dir=/\"".into(),
        ),
        (
            json!({"prompt": "p", "add_dirs": ["/"]}),
            "refused by policy: add_dirs[0] = \"/\"".into(),
        ),
        (
            json!({"prompt": "p", "add_dirs": ["~"]}),
            "refused by policy: add_dirs[0] = \"~\"".into(),
        ),
        (
            json!({"prompt": "p", "add_dirs": ["/proc/self/root"]}),
            "refused by policy: add_dirs[0] = \"/proc/self/root\"".into(),
        ),
        (
            json!({"prompt": "p", "add_dirs": ["app", "to-slash"]}),
            "refused by policy: add_dirs[1] = \"to-slash\"".into(),
        ),
        (
            json!({"prompt": "p", "thread_id": "--last"}),
            "refused by policy: thread_id = \"--last\"".into(),
        ),
        (
            json!({"prompt": "p", "thread_id": "../../x"}),
            "refused by policy: thread_id = \"../../x\"".into(),
        ),
        (
            json!({"prompt": "p", "thread_id": "a b"}),
            "refused by policy: thread_id = \"a b\"".into(),
        ),
        // Filesystem escapes.
        (
            json!({"prompt": "p", "cwd": ".."}),
            "refused by policy: cwd = \"..\"".into(),
        ),
        (
            json!({"prompt": "p", "cwd": "app/../../root-evil"}),
            "refused by policy: cwd = \"app/../../root-evil\"".into(),
        ),
        (
            json!({"prompt": "p", "cwd": "/etc"}),
            "refused by policy: cwd = \"/etc\"".into(),
        ),
        (
            json!({"prompt": "p", "cwd": sibling}),
            format!("refused by policy: cwd = {sibling:?}"),
        ),
        (
            json!({"prompt": "p", "cwd": "to-slash"}),
            "refused by policy: cwd = \"to-slash\"".into(),
        ),
        (
            json!({"prompt": "p", "cwd": "app/etc-link"}),
            "refused by policy: cwd = \"app/etc-link\"".into(),
        ),
        (
            json!({"prompt": "p", "cwd": "file.txt"}),
            "refused by policy: cwd = \"file.txt\"".into(),
        ),
        (
            json!({"prompt": "p", "cwd": long}),
            "refused by policy: cwd = ".into(),
        ),
        (
            json!({"prompt": "p", "cwd": "app\u{0}/../.."}),
            "refused by policy: cwd = \"app\\0/../..\"".into(),
        ),
        // Values outside what the operator allows, and arguments outside the schema.
        (
            json!({"prompt": "p", "sandbox": "danger-full-access", "allow_edits": true}),
            "refused by policy: sandbox = \"danger-full-access\"".into(),
        ),
        (
            json!({"prompt": "p", "sandbox": "workspace-write"}),
            "refused by policy: sandbox = \"workspace-write\"".into(),
        ),
        (
            json!({"prompt": "p", "shell": "rm -rf /"}),
            "unknown field `shell`".into(),
        ),
        (
            json!({"prompt": "x".repeat(100_001)}),
            "refused by policy: prompt = <100001 bytes>".into(),
        ),
        (
            json!({"prompt": "x".repeat(10 * 1024 * 1024)}),
            "refused by policy: prompt = <10485760 bytes>".into(),
        ),
    ];
    assert!(cases.len() >= 30);
    for (args, expect) in &cases {
        refused_exactly(&server, args, expect).await?;
    }
    stdio_healthy(&server).await?;
    assert_nothing_lost(server.pid, &server.record, baseline).await;
    server.client.cancel().await?;
    Ok(())
}

/// A checked directory swapped for a symlink while the call waits for a slot is caught
/// by the check right before the spawn.
#[tokio::test]
async fn a_directory_swapped_for_a_symlink_after_the_check_is_caught_before_spawn() -> Result<()> {
    let server = spawn_stdio(Options {
        env: vec![("TWOBOT_MAX_CONCURRENT_RUNS".into(), "1".into())],
        ..Options::default()
    })
    .await?;
    let baseline = current_rss_kib(server.pid).context("rss")?;
    let app = server.root.join("app");
    std::fs::create_dir_all(&app)?;
    // Hold the only slot for 3 s.
    let blocker = start_call(
        &server.client,
        json!({"prompt": "scenario:hang", "timeout_sec": 3}),
    )
    .await?;
    wait_for_run_dir(&server.record, Duration::from_secs(20)).await?;
    // Checked now (app is a real directory inside the root), then queued.
    let queued = start_call(
        &server.client,
        json!({"prompt": "scenario:ok", "cwd": "app"}),
    )
    .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    std::fs::remove_dir(&app)?;
    symlink("/etc", &app)?;
    let _ = blocker.await_response().await;
    let response = queued.await_response().await?;
    let rmcp::model::ServerResult::CallToolResult(r) = response else {
        anyhow::bail!("unexpected {response:?}");
    };
    assert_eq!(r.is_error, Some(true));
    let message = text(&r);
    assert!(
        message.starts_with("refused: cwd = ")
            && message.contains("changed after it was checked")
            && message.contains("allowed roots"),
        "{message}"
    );
    assert!(
        !message.contains("/etc"),
        "the refusal names no path outside the roots: {message}"
    );
    assert_eq!(recorded(&server.record)?.len(), 1, "only the blocker ran");
    std::fs::remove_file(&app)?;
    stdio_healthy(&server).await?;
    assert_nothing_lost(server.pid, &server.record, baseline).await;
    server.client.cancel().await?;
    Ok(())
}

/// Codex misbehaving: each case ends as a clear result, never a hang or a crash.
#[tokio::test]
async fn a_misbehaving_codex_is_contained() -> Result<()> {
    let server = spawn_stdio(Options::default()).await?;
    let baseline = current_rss_kib(server.pid).context("rss")?;
    type Check = fn(&Value) -> bool;
    let cases: Vec<(Value, Check, &str)> = vec![
        (
            json!({"prompt": "scenario:hang", "timeout_sec": 2}),
            |s| s["timed_out"] == true && s["ok"] == false,
            "never closes stdout: killed at the timeout",
        ),
        (
            json!({"prompt": "scenario:endless", "timeout_sec": 3}),
            |s| s["timed_out"] == true && s["thread_id"].is_string(),
            "endless output: killed at the timeout, partial result kept",
        ),
        (
            json!({"prompt": "scenario:giant_line"}),
            |s| s["ok"] == true && s["final_message"] == "after the giant line",
            "a 20 MB line is skipped, the run goes on",
        ),
        (
            json!({"prompt": "scenario:no_turn"}),
            |s| {
                s["ok"] == false
                    && s["exit_code"] == 0
                    && s["error"]
                        .as_str()
                        .is_some_and(|e| e.contains("without completing its turn"))
            },
            "exit 0 without turn.completed is not success",
        ),
        (
            json!({"prompt": "scenario:signal"}),
            |s| {
                s["ok"] == false
                    && s["error"]
                        .as_str()
                        .is_some_and(|e| e.contains("killed by a signal") && e.contains("SIGKILL"))
            },
            "killed by a signal: said so",
        ),
        (
            json!({"prompt": "scenario:flood", "timeout_sec": 120}),
            |s| s["ok"] == true && s["final_message"] == "flood done",
            "58 MB of output: read through with bounded memory",
        ),
    ];
    for (args, check, what) in cases {
        let r = call(&server.client, args.clone()).await?;
        let s = structured(&r);
        assert!(check(&s), "{what}: {s:#}");
        assert_nothing_lost(server.pid, &server.record, baseline).await;
    }
    stdio_healthy(&server).await?;
    server.client.cancel().await?;

    // A missing binary is a clear tool error.
    let missing = spawn_stdio(Options {
        codex: "/nonexistent/codex".into(),
        ..Options::default()
    })
    .await?;
    let r = call(&missing.client, json!({"prompt": "p"})).await?;
    assert_eq!(r.is_error, Some(true));
    assert!(
        text(&r).starts_with("cannot start Codex (/nonexistent/codex): No such file"),
        "{}",
        text(&r)
    );
    missing.client.cancel().await?;
    Ok(())
}

fn tool_call_body(id: u64, prompt: &str) -> String {
    json!({"jsonrpc":"2.0","id": id,"method":"tools/call","params":{"name":"run_codex_prompt","arguments":{"prompt": prompt}}}).to_string()
}

fn raw(url: &str) -> reqwest::RequestBuilder {
    reqwest::Client::new()
        .post(url)
        .header("accept", "application/json, text/event-stream")
}

/// Hostile HTTP input: each gets a specific status and reason, the server stays up.
#[tokio::test]
async fn hostile_http_input_is_refused_exactly() -> Result<()> {
    let server = spawn_http(&[
        ("TWOBOT_RATE_LIMIT_BURST", "1000"),
        ("TWOBOT_ADDRESS_RATE_BURST", "100000"),
        ("TWOBOT_RATE_LIMIT_PER_MINUTE", "1000"),
    ])
    .await?;
    let pid = server.child.id().context("pid")?;
    let baseline = current_rss_kib(pid).context("rss")?;
    let session = raw_session(&server.url, None).await?;
    let url = server.url.clone();
    let call_body = |prompt: Value| json!({"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"run_codex_prompt","arguments":{"prompt": prompt}}});

    // (what, request, expected status, expected text in the body)
    // A 10 MB body is refused from its Content-Length, before it is read.
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let addr = server.base.trim_start_matches("http://").to_owned();
        let mut stream = tokio::net::TcpStream::connect(&addr).await?;
        let head = format!(
            "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nMcp-Session-Id: {session}\r\nContent-Length: {}\r\n\r\n",
            10 * 1024 * 1024
        );
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(&[b'x'; 65536]).await?;
        let mut response = vec![0u8; 256];
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut response)).await??;
        let status_line = String::from_utf8_lossy(&response[..n]);
        assert!(
            status_line.starts_with("HTTP/1.1 413"),
            "10 MB body: {status_line}"
        );
    }
    let nested = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let cases: Vec<(&str, reqwest::RequestBuilder, u16, &str)> = vec![
        (
            "non-UTF-8 bytes",
            raw(&url).header("content-type", "application/json").header("mcp-session-id", &session).body(vec![0xff, 0xfe, b'{', 0x80]),
            400,
            "\"code\":-32700,\"message\":\"Parse error: expected value",
        ),
        (
            "a lone surrogate",
            raw(&url).header("content-type", "application/json").header("mcp-session-id", &session)
                .body(r#"{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"run_codex_prompt","arguments":{"prompt":"\ud800"}}}"#),
            400,
            "Parse error: unexpected end of hex escape",
        ),
        (
            "100 000 levels of nesting",
            raw(&url).header("content-type", "application/json").header("mcp-session-id", &session).body(nested),
            400,
            "\"code\":-32600,\"message\":\"Invalid Request: JSON-RPC batches are not supported",
        ),
        (
            "a JSON-RPC batch",
            raw(&url).header("content-type", "application/json").header("mcp-session-id", &session)
                .body(json!([{"jsonrpc":"2.0","id":7,"method":"tools/list"},{"jsonrpc":"2.0","id":8,"method":"tools/list"}]).to_string()),
            400,
            "JSON-RPC batches are not supported",
        ),
        (
            "text/plain",
            raw(&url).header("content-type", "text/plain").header("mcp-session-id", &session).body(call_body(json!("p")).to_string()),
            415,
            "",
        ),
        (
            "no Accept for event streams",
            reqwest::Client::new().post(&url).header("content-type", "application/json").header("accept", "application/json").header("mcp-session-id", &session).body(call_body(json!("p")).to_string()),
            406,
            "",
        ),
        (
            "an unsupported MCP-Protocol-Version",
            raw(&url).header("content-type", "application/json").header("mcp-session-id", &session).header("mcp-protocol-version", "1999-01-01").body(json!({"jsonrpc":"2.0","id":9,"method":"tools/list"}).to_string()),
            400,
            "",
        ),
        (
            "a forged Mcp-Session-Id",
            raw(&url).header("content-type", "application/json").header("mcp-session-id", "00000000-0000-0000-0000-000000000000").body(json!({"jsonrpc":"2.0","id":10,"method":"tools/list"}).to_string()),
            404,
            "",
        ),
        (
            "a request without a session",
            raw(&url).header("content-type", "application/json").body(json!({"jsonrpc":"2.0","id":11,"method":"tools/list"}).to_string()),
            400,
            "",
        ),
        (
            "an evil Host",
            raw(&url).header("content-type", "application/json").header("host", "evil.example").body(initialize_body().to_string()),
            403,
            "host not allowed: evil.example",
        ),
        (
            "Origin: null",
            raw(&url).header("content-type", "application/json").header("origin", "null").body(initialize_body().to_string()),
            403,
            "origin not allowed: null",
        ),
    ];
    let mut wrong = Vec::new();
    for (what, request, status, reason) in cases {
        let response = request.send().await.with_context(|| what.to_owned())?;
        let got = response.status().as_u16();
        let body = response.text().await.unwrap_or_default();
        if got != status || !body.contains(reason) {
            wrong.push(format!(
                "{what}: got {got} {body:?}, expected {status} {reason:?}"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // Duplicate keys: the last one wins (serde_json), so this runs the ok scenario.
    let duplicate = r#"{"jsonrpc":"2.0","id":12,"method":"tools/call","params":{"name":"run_codex_prompt","arguments":{"prompt":"scenario:hang","prompt":"scenario:ok"}}}"#;
    let response = raw(&url)
        .header("content-type", "application/json")
        .header("mcp-session-id", &session)
        .body(duplicate)
        .send()
        .await?;
    let body = response.text().await?;
    assert!(body.contains("fake answer"), "{body}");

    // A request id still in flight in the session is refused (rmcp routes responses by
    // id: reusing one would leave a stream waiting forever); once answered, it is free.
    let slow = raw(&url)
        .header("content-type", "application/json")
        .header("mcp-session-id", &session)
        .body(tool_call_body(77, "scenario:slow"))
        .send();
    let slow = tokio::spawn(async move { slow.await?.text().await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let reuse = raw(&url)
        .header("content-type", "application/json")
        .header("mcp-session-id", &session)
        .body(json!({"jsonrpc":"2.0","id":77,"method":"tools/list"}).to_string())
        .send()
        .await?;
    assert_eq!(reuse.status(), 400);
    let body = reuse.text().await?;
    assert!(
        body.contains("request id 77 is already in flight"),
        "{body}"
    );
    assert!(
        slow.await??.contains("slow answer"),
        "the first request is unharmed"
    );
    let again = raw(&url)
        .header("content-type", "application/json")
        .header("mcp-session-id", &session)
        .body(json!({"jsonrpc":"2.0","id":77,"method":"tools/list"}).to_string())
        .send()
        .await?;
    assert_eq!(again.status(), 200, "the id is free once answered");

    // Still healthy: a fresh session lists and calls.
    let client = http_client(&server.url, None).await?;
    assert_eq!(client.list_all_tools().await?.len(), 1);
    let r = call(&client, json!({"prompt": "scenario:ok"})).await?;
    assert_eq!(text(&r), "fake answer");
    client.cancel().await?;
    assert_nothing_lost(pid, &server.record, baseline).await;
    Ok(())
}

/// Authentication tricks: each is refused (401) or, where the standard says so,
/// accepted; nothing gets through without a valid credential.
#[tokio::test]
async fn authentication_tricks_are_refused() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let tokens = dir.path().join("tokens");
    // CRLF line endings and a trailing blank line, as a Windows editor would leave them.
    std::fs::write(&tokens, "alice:tok-alice-0123456789\r\n\r\n")?;
    let server = spawn_http(&[
        ("TWOBOT_ENABLE_NO_AUTH", "false"),
        ("TWOBOT_AUTH_TOKENS_FILE", &tokens.display().to_string()),
        ("TWOBOT_JWT_SECRET", "an-hs256-secret-of-at-least-32-bytes!"),
        ("TWOBOT_RATE_LIMIT_BURST", "1000"),
        ("TWOBOT_ADDRESS_RATE_BURST", "100000"),
    ])
    .await?;
    let pid = server.child.id().context("pid")?;
    let baseline = current_rss_kib(pid).context("rss")?;
    let url = server.url.clone();
    let init = || {
        raw(&url)
            .header("content-type", "application/json")
            .body(initialize_body().to_string())
    };
    let b64 = |v: &Value| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let unsigned = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(&json!({"sub": "mallory", "aud": url, "exp": now + 600}))
    );
    let kid_trick = format!(
        "{}.{}.{}",
        b64(&json!({"alg": "HS256", "kid": "../../../../dev/null"})),
        b64(&json!({"sub": "mallory", "aud": url, "exp": now + 600})),
        "c2lnbmF0dXJl"
    );
    let huge = format!("Bearer {}", "A".repeat(64 * 1024));

    let cases: Vec<(&str, reqwest::RequestBuilder, u16)> = vec![
        ("no credential", init(), 401),
        (
            "garbage",
            init().header("authorization", "Bearer garbage"),
            401,
        ),
        (
            "alg none",
            init().header("authorization", format!("Bearer {unsigned}")),
            401,
        ),
        (
            "kid path trick with a forged signature",
            init().header("authorization", format!("Bearer {kid_trick}")),
            401,
        ),
        ("a 64 KB token", init().header("authorization", huge), 401),
        (
            "two Authorization headers, one valid",
            init()
                .header("authorization", "Bearer tok-alice-0123456789")
                .header("authorization", "Bearer garbage"),
            400,
        ),
        (
            "Basic scheme",
            init().header("authorization", "Basic dG9rLWFsaWNlLTAxMjM0NTY3ODk="),
            401,
        ),
        (
            "token in the query string",
            reqwest::Client::new()
                .post(format!("{url}?access_token=tok-alice-0123456789"))
                .header("accept", "application/json, text/event-stream")
                .header("content-type", "application/json")
                .body(initialize_body().to_string()),
            401,
        ),
        (
            "a token prefix",
            init().header("authorization", "Bearer tok-alice-012345678"),
            401,
        ),
        (
            "the token with a carriage return",
            init().header("authorization", "Bearer tok-alice-0123456789\r"),
            0,
        ),
        // RFC 9110: the scheme is case-insensitive.
        (
            "lowercase scheme, valid token",
            init().header("authorization", "bearer tok-alice-0123456789"),
            200,
        ),
        (
            "the token from a CRLF file",
            init().header("authorization", "Bearer tok-alice-0123456789"),
            200,
        ),
    ];
    for (what, request, status) in cases {
        match request.send().await {
            Ok(response) => {
                let got = response.status().as_u16();
                let challenge = response
                    .headers()
                    .get("www-authenticate")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                assert_eq!(got, status, "{what}");
                if got == 401 || got == 400 {
                    assert!(
                        challenge.starts_with("Bearer ")
                            && challenge.contains("resource_metadata="),
                        "{what}: {challenge}"
                    );
                }
            }
            // A header value with CR is refused by the HTTP client itself.
            Err(e) => assert_eq!(status, 0, "{what}: {e}"),
        }
    }
    let health = reqwest::get(format!("{}/healthz", server.base)).await?;
    assert_eq!(health.status(), 200);
    assert_nothing_lost(pid, &server.record, baseline).await;
    Ok(())
}

/// 500 concurrent calls from one client: at most 4 run and 8 wait (its share of the 16
/// queue places); the rest are refused at once ("quota exceeded", or "busy" once the
/// queue is full); file descriptors come back, no process is left.
#[tokio::test]
async fn five_hundred_concurrent_calls_are_bounded_and_leave_nothing_behind() -> Result<()> {
    let server = spawn_http(&[
        ("TWOBOT_RATE_LIMIT_BURST", "100000"),
        ("TWOBOT_ADDRESS_RATE_BURST", "100000"),
        // 500 connections from one client on purpose: not the per-address cap under test.
        ("TWOBOT_MAX_CONNECTIONS_PER_ADDRESS", "1024"),
        ("TWOBOT_RATE_LIMIT_PER_MINUTE", "100000"),
    ])
    .await?;
    let pid = server.child.id().context("pid")?;
    let baseline = current_rss_kib(pid).context("rss")?;
    let fds = || std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count());
    let fds_before = fds()?;
    let session = raw_session(&server.url, None).await?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()?;
    let mut calls = Vec::new();
    for i in 0..500 {
        let request = client
            .post(&server.url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-session-id", &session)
            .body(
                json!({"jsonrpc":"2.0","id": 1000 + i,"method":"tools/call","params":{"name":"run_codex_prompt","arguments":{"prompt":"scenario:slow"}}})
                    .to_string(),
            );
        calls.push(tokio::spawn(async move {
            let response = request.send().await?;
            anyhow::Ok(response.text().await?)
        }));
    }
    let (mut answered, mut busy, mut other) = (0, 0, Vec::new());
    for call in calls {
        let body = call.await??;
        if body.contains("slow answer") {
            answered += 1;
        } else if body.contains("quota exceeded: this caller already has 8 calls waiting")
            || body.contains("busy: 4 Codex runs are in progress and 16 more are queued")
        {
            busy += 1;
        } else {
            other.push(body);
        }
    }
    assert!(
        other.is_empty(),
        "every call is answered or busy: {:?}",
        other.first()
    );
    // One caller: its 3 running slots (TWOBOT_MAX_CONCURRENT_RUNS_PER_PRINCIPAL, one
    // below the global 4) plus its 8 queue places at least, then what frees up meanwhile.
    assert!((11..=60).contains(&answered), "answered {answered}");
    assert_eq!(answered + busy, 500);
    let runs = recorded(&server.record)?.len();
    assert_eq!(runs, answered, "only admitted calls started Codex");

    tokio::time::sleep(Duration::from_secs(2)).await;
    let fds_after = fds()?;
    assert!(
        fds_after <= fds_before + 16,
        "file descriptors: {fds_before} before, {fds_after} after"
    );
    let health = reqwest::get(format!("{}/healthz", server.base)).await?;
    assert_eq!(health.status(), 200);
    assert_nothing_lost(pid, &server.record, baseline).await;
    Ok(())
}

/// Slowloris connections and a client that never reads its event stream do not
/// hold the server: it keeps serving others, and frees what they held.
#[tokio::test]
async fn slow_and_stuck_clients_do_not_hold_the_server() -> Result<()> {
    use tokio::io::AsyncWriteExt;
    let server = spawn_http(&[
        ("TWOBOT_HEADER_READ_TIMEOUT_SEC", "2"),
        ("TWOBOT_RATE_LIMIT_BURST", "1000"),
        ("TWOBOT_ADDRESS_RATE_BURST", "100000"),
        // The slow clients and the others share 127.0.0.1 here: this is about the header
        // deadline, not the per-address cap (tests/suite/edge.rs covers that).
        ("TWOBOT_MAX_CONNECTIONS_PER_ADDRESS", "1024"),
    ])
    .await?;
    let pid = server.child.id().context("pid")?;
    let baseline = current_rss_kib(pid).context("rss")?;
    let addr = server.base.trim_start_matches("http://").to_owned();

    // 50 connections that send half a request line, then nothing.
    let mut slow = Vec::new();
    for _ in 0..50 {
        let mut stream = tokio::net::TcpStream::connect(&addr).await?;
        stream
            .write_all(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            .await?;
        slow.push(stream);
    }
    // A client that starts a chatty call and never reads the response.
    let session = raw_session(&server.url, None).await?;
    let mut stuck = tokio::net::TcpStream::connect(&addr).await?;
    let body = json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"run_codex_prompt","arguments":{"prompt":"scenario:endless","timeout_sec":4},"_meta":{"progressToken":1}}}).to_string();
    let request = format!(
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nMcp-Session-Id: {session}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stuck.write_all(request.as_bytes()).await?;

    // Meanwhile, an ordinary client is served normally.
    let client = http_client(&server.url, None).await?;
    let r = call(&client, json!({"prompt": "scenario:ok"})).await?;
    assert_eq!(text(&r), "fake answer");
    client.cancel().await?;

    // The slow connections are closed by the header deadline.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for stream in &mut slow {
        let mut buf = [0u8; 64];
        let n = tokio::time::timeout(
            Duration::from_secs(2),
            tokio::io::AsyncReadExt::read(stream, &mut buf),
        )
        .await;
        assert!(
            matches!(n, Ok(Ok(0)) | Ok(Err(_))),
            "a slowloris connection is still open"
        );
    }
    // The stuck client's call ends at its timeout; its Codex is gone.
    tokio::time::sleep(Duration::from_secs(3)).await;
    drop(stuck);
    let health = reqwest::get(format!("{}/healthz", server.base)).await?;
    assert_eq!(health.status(), 200);
    assert_nothing_lost(pid, &server.record, baseline).await;
    Ok(())
}
