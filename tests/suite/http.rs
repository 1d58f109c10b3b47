//! The Streamable HTTP gateway over real HTTP on an ephemeral loopback port.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Result;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};

use crate::common::http::*;
use crate::common::inproc::serve_in_process;
use crate::common::*;

fn key(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/keys")
        .join(name)
        .display()
        .to_string()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

const SECRET: &str = "an-hs256-secret-of-at-least-32-bytes!";

/// A full session: initialize, list, call with progress on the SSE stream, then DELETE.
#[tokio::test]
async fn a_full_mcp_session_over_streamable_http() -> Result<()> {
    let server = serve_in_process(&[]).await?;
    let client = http_client(&server.url, None).await?;
    assert_eq!(
        client
            .peer_info()
            .unwrap()
            .server_info
            .as_ref()
            .unwrap()
            .name,
        "2Bot"
    );
    let tools = client.list_all_tools().await?;
    assert_eq!(tools.len(), 1);
    let result = call(&client, json!({"prompt": "scenario:slow"})).await?;
    assert_eq!(text(&result), "slow answer");
    let progress = client.service().progress.lock().unwrap().clone();
    assert!(
        progress.iter().any(|p| p == "command: cargo test (exit 0)"),
        "progress before the result: {progress:?}"
    );
    client.cancel().await?;

    // DELETE ends a session; the dead session is 404.
    let id = raw_session(&server.url, None).await?;
    let delete = reqwest::Client::new()
        .delete(&server.url)
        .header("mcp-session-id", &id)
        .send()
        .await?;
    assert!(delete.status().is_success(), "{}", delete.status());
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

/// Health endpoints answer without auth; readiness runs the Codex binary.
#[tokio::test]
async fn health_and_readiness_are_served_outside_auth() -> Result<()> {
    let server = serve_in_process(&[
        ("TWOBOT_ENABLE_NO_AUTH", "false"),
        ("TWOBOT_AUTH_TOKENS", "ops:tok"),
    ])
    .await?;
    let health = reqwest::get(format!("{}/healthz", server.base)).await?;
    assert_eq!(health.status(), 200);
    let ready = reqwest::get(format!("{}/readyz", server.base)).await?;
    assert_eq!(ready.status(), 200);
    let body: Value = ready.json().await?;
    assert_eq!(body["codex"], "codex-cli 0.169.0 (fake)");
    let mcp = post(&server.url, &initialize_body()).send().await?;
    assert_eq!(mcp.status(), 401, "only /mcp needs auth");

    let broken = serve_in_process(&[("CODEX_BIN", "/nonexistent/codex")]).await?;
    let ready = reqwest::get(format!("{}/readyz", broken.base)).await?;
    assert_eq!(ready.status(), 503, "no Codex, not ready");
    Ok(())
}

fn jwt_claims(aud: &str) -> Value {
    json!({"sub": "carol", "aud": aud, "iss": "https://issuer.test", "exp": now() + 600, "scope": "codex:run"})
}

/// Auth turned on by env: valid credentials pass, every broken one is 401, a missing scope 403.
#[tokio::test]
async fn auth_accepts_valid_tokens_and_refuses_every_broken_one() -> Result<()> {
    let server = spawn_http(&[
        ("TWOBOT_ENABLE_NO_AUTH", "false"),
        ("TWOBOT_AUTH_TOKENS", "ci:static-token-1"),
        ("TWOBOT_JWT_SECRET", SECRET),
        ("TWOBOT_JWT_PUBLIC_KEY_FILE", &key("rsa-public.pem")),
        ("TWOBOT_JWT_ISSUER", "https://issuer.test"),
        ("TWOBOT_REQUIRED_SCOPES", "codex:run"),
    ])
    .await?;
    let aud = server.url.clone();

    // The metadata document, without auth; its resource is the audience.
    let meta: Value = reqwest::get(format!(
        "{}/.well-known/oauth-protected-resource/mcp",
        server.base
    ))
    .await?
    .json()
    .await?;
    assert_eq!(meta["resource"], aud);
    assert_eq!(meta["bearer_methods_supported"], json!(["header"]));
    assert_eq!(meta["scopes_supported"], json!(["codex:run"]));

    let hs = encode(
        &Header::new(Algorithm::HS256),
        &jwt_claims(&aud),
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )?;
    let rsa = EncodingKey::from_rsa_pem(&std::fs::read(key("rsa-private.pem"))?)?;
    let rs = encode(&Header::new(Algorithm::RS256), &jwt_claims(&aud), &rsa)?;
    for token in ["static-token-1", hs.as_str(), rs.as_str()] {
        let client = http_client(&server.url, Some(token)).await?;
        assert_eq!(client.list_all_tools().await?.len(), 1);
        client.cancel().await?;
    }

    // No token: 401 naming the metadata URL and the scopes to ask for (MCP's scope
    // selection reads the challenge's `scope` first).
    let resp = post(&server.url, &initialize_body()).send().await?;
    assert_eq!(resp.status(), 401);
    let challenge = resp.headers()["www-authenticate"].to_str()?.to_owned();
    assert_eq!(
        challenge,
        format!(
            "Bearer resource_metadata=\"{}/.well-known/oauth-protected-resource/mcp\", scope=\"codex:run\"",
            server.base
        )
    );

    let with = |claims: Value| {
        encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap()
    };
    let mut expired = jwt_claims(&aud);
    expired["exp"] = json!(now() - 120);
    let mut early = jwt_claims(&aud);
    early["nbf"] = json!(now() + 600);
    let mut wrong_aud = jwt_claims(&aud);
    wrong_aud["aud"] = json!("https://elsewhere.test/mcp");
    let mut wrong_iss = jwt_claims(&aud);
    wrong_iss["iss"] = json!("https://evil.test");
    let b64 = |v: Value| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let alg_none = format!(
        "{}.{}.",
        b64(json!({"alg":"none","typ":"JWT"})),
        b64(jwt_claims(&aud))
    );
    let confused = encode(
        &Header::new(Algorithm::HS256),
        &jwt_claims(&aud),
        &EncodingKey::from_secret(&std::fs::read(key("rsa-public.pem"))?),
    )?;
    for (name, token) in [
        ("garbage", "garbage".to_owned()),
        ("alg none", alg_none),
        ("hs256 signed with the rsa public key", confused),
        ("expired", with(expired)),
        ("not yet valid", with(early)),
        ("wrong aud", with(wrong_aud)),
        ("wrong iss", with(wrong_iss)),
    ] {
        let resp = post(&server.url, &initialize_body())
            .bearer_auth(&token)
            .send()
            .await?;
        assert_eq!(resp.status(), 401, "{name}");
        let challenge = resp.headers()["www-authenticate"].to_str()?;
        assert!(
            challenge.contains("error=\"invalid_token\"")
                && challenge.contains("resource_metadata="),
            "{name}: {challenge}"
        );
        let body: Value = resp.json().await?;
        assert_eq!(body["error"], "unauthorized", "{name}: {body}");
        assert_eq!(
            body["reason"],
            "this endpoint requires a valid bearer token (Authorization: Bearer <token>); WWW-Authenticate names the resource metadata",
            "{name}: no detail leaks"
        );
    }

    let mut no_scope = jwt_claims(&aud);
    no_scope["scope"] = json!("other");
    let resp = post(&server.url, &initialize_body())
        .bearer_auth(with(no_scope))
        .send()
        .await?;
    assert_eq!(resp.status(), 403);
    assert!(
        resp.headers()["www-authenticate"]
            .to_str()?
            .contains("insufficient_scope")
    );
    let log = std::fs::read_to_string(&server.log)?;
    assert!(
        !log.contains("static-token-1") && !log.contains(&hs),
        "tokens never reach the log"
    );
    Ok(())
}

/// Evil Origin, Origin: null and evil Host are 403; an oversized body is 413.
#[tokio::test]
async fn hostile_origins_hosts_and_oversized_bodies_are_refused() -> Result<()> {
    let server =
        crate::common::inproc::serve_in_process(&[("TWOBOT_MAX_BODY_BYTES", "2048")]).await?;
    for (header, value) in [
        ("origin", "https://evil.example"),
        ("origin", "null"),
        ("origin", "http://localhost.evil.com"),
        ("host", "evil.example"),
    ] {
        let resp = post(&server.url, &initialize_body())
            .header(header, value)
            .send()
            .await?;
        assert_eq!(resp.status(), 403, "{header}: {value}");
        let body: Value = serde_json::from_str(&resp.text().await?)?;
        let reason = body["reason"].as_str().unwrap_or_default();
        assert!(
            reason.starts_with(&format!("{header} not allowed")) && reason.contains("TWOBOT_"),
            "the 403 says what was refused and how to allow it: {body}"
        );
    }
    let ok = post(&server.url, &initialize_body())
        .header("origin", "http://localhost:6274")
        .send()
        .await?;
    assert_eq!(ok.status(), 200);
    let big =
        json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"pad": "x".repeat(4096)}});
    let resp = post(&server.url, &big).send().await?;
    assert_eq!(resp.status(), 413);
    assert!(resp.headers().contains_key("x-request-id"));
    Ok(())
}

/// A burst over the limit gets 429 with Retry-After; another principal is unaffected.
#[tokio::test]
async fn a_burst_over_the_limit_is_429_and_other_principals_are_unaffected() -> Result<()> {
    let server = crate::common::inproc::serve_in_process(&[
        ("TWOBOT_ENABLE_NO_AUTH", "false"),
        ("TWOBOT_AUTH_TOKENS", "alice:tok-a,bob:tok-b"),
        ("TWOBOT_RATE_LIMIT_PER_MINUTE", "6"),
        ("TWOBOT_RATE_LIMIT_BURST", "3"),
    ])
    .await?;
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..4 {
        let resp = post(&server.url, &initialize_body())
            .bearer_auth("tok-a")
            .send()
            .await?;
        statuses.push(resp.status().as_u16());
        if resp.status() == 429 {
            retry_after = resp
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned());
            assert!(
                resp.headers().contains_key("x-request-id"),
                "request id on 429 too"
            );
        }
    }
    assert_eq!(statuses, [200, 200, 200, 429]);
    let secs: u64 = retry_after.expect("Retry-After").parse()?;
    assert!((1..=10).contains(&secs), "{secs}");
    let bob = post(&server.url, &initialize_body())
        .bearer_auth("tok-b")
        .send()
        .await?;
    assert_eq!(bob.status(), 200, "bob has his own budget");
    Ok(())
}

/// The caller's x-request-id is echoed and reaches the Codex child's environment.
#[tokio::test]
async fn the_request_id_is_echoed_and_reaches_codex() -> Result<()> {
    let server = crate::common::inproc::serve_in_process(&[]).await?;
    let generated = reqwest::get(format!("{}/healthz", server.base)).await?;
    assert!(
        generated
            .headers()
            .get("x-request-id")
            .is_some_and(|v| v.len() >= 32)
    );
    let session = raw_session(&server.url, None).await?;
    let call = json!({"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"run_codex_prompt","arguments":{"prompt":"scenario:ok"}}});
    let resp = post(&server.url, &call)
        .header("mcp-session-id", &session)
        .header("x-request-id", "req-4242-abc")
        .send()
        .await?;
    assert_eq!(resp.headers()["x-request-id"], "req-4242-abc");
    let body = resp.text().await?;
    assert!(body.contains("fake answer"), "{body}");
    let run = only_run(&server.record)?;
    assert_eq!(
        run.env.get("TWOBOT_REQUEST_ID").map(String::as_str),
        Some("req-4242-abc")
    );
    Ok(())
}

/// MCP: a dropped connection is not a cancellation. The client goes away mid-call and
/// Codex still runs to its end (the fake marks a finished run).
#[tokio::test]
async fn a_dropped_http_connection_does_not_cancel_the_running_call() -> Result<()> {
    let server = spawn_http(&[("FAKE_CODEX_QUIET_SEC", "3")]).await?;
    let session = raw_session(&server.url, None).await?;
    let call = json!({"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"run_codex_prompt","arguments":{"prompt":"scenario:quiet"}}});
    let resp = post(&server.url, &call)
        .header("mcp-session-id", &session)
        .send()
        .await?;
    assert_eq!(resp.status(), 200);
    let run = wait_for_run_dir(&server.record, Duration::from_secs(20)).await?;
    drop(resp);
    let finished = wait_for_file(&run.join("finished"), Duration::from_secs(20)).await;
    assert!(
        finished.is_ok(),
        "Codex was stopped when the client went away: {}",
        std::fs::read_to_string(&server.log)?
    );
    let health = reqwest::get(format!("{}/healthz", server.base)).await?;
    assert_eq!(health.status(), 200);
    Ok(())
}

/// SIGTERM mid-call: the call completes, the process exits 0, no child survives.
#[tokio::test]
async fn sigterm_lets_the_running_call_finish_then_exits_zero() -> Result<()> {
    let mut server = spawn_http(&[]).await?;
    let client = http_client(&server.url, None).await?;
    let call = tokio::spawn(async move {
        let r = call(&client, json!({"prompt": "scenario:slow"})).await;
        (r, client)
    });
    wait_for_run_dir(&server.record, Duration::from_secs(20)).await?;
    let pid = nix::unistd::Pid::from_raw(server.child.id().unwrap() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM)?;
    let (result, _client) = call.await?;
    assert_eq!(text(&result?), "slow answer", "the running call completed");
    let status = tokio::time::timeout(Duration::from_secs(30), server.child.wait()).await??;
    assert!(status.success(), "{status}");
    Ok(())
}

/// After the grace period, a call still running is killed and the server exits 0.
#[tokio::test]
async fn after_the_grace_period_running_codex_is_killed() -> Result<()> {
    let mut server = spawn_http(&[("TWOBOT_SHUTDOWN_GRACE_SEC", "1")]).await?;
    let client = http_client(&server.url, None).await?;
    let call = tokio::spawn(async move {
        let _ = call(
            &client,
            json!({"prompt": "scenario:hang", "timeout_sec": 600}),
        )
        .await;
    });
    let grandchild = hanging_run(&server.record).await?.grandchild;
    let pid = nix::unistd::Pid::from_raw(server.child.id().unwrap() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM)?;
    let status = tokio::time::timeout(Duration::from_secs(30), server.child.wait()).await??;
    assert!(status.success(), "{status}");
    assert!(
        gone_within(&grandchild, Duration::from_secs(5)).await,
        "grandchild survived shutdown"
    );
    call.abort();
    Ok(())
}

/// Unsafe or incomplete set-ups refuse to start: one line, exit code 2.
#[tokio::test]
async fn unsafe_setups_refuse_to_start_with_one_line() -> Result<()> {
    let cases: Vec<(Vec<(&str, String)>, &str)> = vec![
        (
            vec![("TWOBOT_HOST", "0.0.0.0".into())],
            "TWOBOT_ENABLE_NO_AUTH",
        ),
        (
            vec![("TWOBOT_ENABLE_NO_AUTH", "false".into())],
            "no credential",
        ),
        (
            vec![
                ("TWOBOT_ENABLE_NO_AUTH", "false".into()),
                ("TWOBOT_JWT_PUBLIC_KEY_FILE", "/nonexistent/key.pem".into()),
            ],
            "TWOBOT_JWT_PUBLIC_KEY_FILE",
        ),
        (
            vec![
                ("TWOBOT_ENABLE_NO_AUTH", "false".into()),
                ("TWOBOT_JWT_PUBLIC_KEY_FILE", key("README.md")),
            ],
            "not a PEM",
        ),
        (
            vec![("OTEL_EXPORTER_OTLP_ENDPOINT", "::not-a-url".into())],
            "OTEL_EXPORTER_OTLP_ENDPOINT",
        ),
        (
            vec![("TWOBOT_MAX_SESSIONS", "0".into())],
            "TWOBOT_MAX_SESSIONS",
        ),
    ];
    for (env, expect) in cases {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_2bot-mcp"));
        cmd.env_clear()
            .env("TWOBOT_TRANSPORT", "http")
            .env("TWOBOT_PORT", "0");
        for (k, v) in &env {
            cmd.env(k, v);
        }
        let out = cmd.stdin(std::process::Stdio::null()).output().await?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{env:?}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{env:?}: {stderr}");
        assert!(stderr.contains(expect), "{env:?}: {stderr}");
    }
    // With explicit consent, public no-auth starts (and warns).
    let server = spawn_http(&[
        ("TWOBOT_HOST", "0.0.0.0"),
        ("TWOBOT_ALLOW_PUBLIC_NO_AUTH", "true"),
    ])
    .await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let log = std::fs::read_to_string(&server.log)?;
    assert!(log.contains("WITHOUT AUTH"), "{log}");
    Ok(())
}

/// A JWT's scopes lower the sandbox ceiling through the policy file, and the token never reaches Codex.
#[tokio::test]
async fn jwt_scopes_narrow_the_sandbox_and_the_token_never_reaches_codex() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let policy = dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        "[scopes]\n\"codex:read\" = \"read-only\"\n\"codex:write\" = \"workspace-write\"\n",
    )?;
    let server = serve_in_process(&[
        ("TWOBOT_ENABLE_NO_AUTH", "false"),
        ("TWOBOT_JWT_SECRET", SECRET),
        ("TWOBOT_POLICY_FILE", &policy.display().to_string()),
    ])
    .await?;
    let token = |scope: &str| {
        let mut claims = jwt_claims(&server.url);
        claims["scope"] = json!(scope);
        encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap()
    };
    let write = json!({"prompt": "scenario:ok", "sandbox": "workspace-write", "allow_edits": true});

    let reader = token("codex:read");
    let client = http_client(&server.url, Some(&reader)).await?;
    let r = call(&client, write.clone()).await?;
    assert_eq!(r.is_error, Some(true));
    assert!(
        text(&r).contains("above the sandbox this caller may use (read-only)"),
        "{}",
        text(&r)
    );
    assert!(
        recorded(&server.record)?.is_empty(),
        "nothing spawned for a refused call"
    );
    client.cancel().await?;

    let writer = token("codex:write");
    let client = http_client(&server.url, Some(&writer)).await?;
    let r = call(&client, write.clone()).await?;
    assert_eq!(r.is_error, Some(false), "{}", text(&r));
    client.cancel().await?;
    let run = only_run(&server.record)?;
    let env = std::fs::read_to_string(run.dir.join("env"))?;
    assert!(
        !env.contains(&writer) && !env.contains(SECRET),
        "no credential reaches Codex"
    );
    Ok(())
}
