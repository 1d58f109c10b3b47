//! The HTTP edge before auth (issue 19, points 2, 5 and 8): per-address limits on
//! requests and connections, forwarding headers only from trusted proxies, an audit log
//! callers cannot grow at will, and no public no-auth through an allowed host or origin.
//! Distinct clients are distinct loopback addresses (127.0.0.2, 127.0.0.3, …), which
//! Linux lets a socket bind without any set-up.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use super::operators::sample;
use crate::common::http::*;
use crate::common::*;

fn from(last: u8) -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)))
        .build()?)
}

fn post_from(client: &reqwest::Client, url: &str, body: &Value) -> reqwest::RequestBuilder {
    client
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(body.to_string())
}

/// A TCP connection to `server` from 127.0.0.`last`.
async fn connect_from(server: &HttpServer, last: u8) -> Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind((Ipv4Addr::new(127, 0, 0, last), 0).into())?;
    Ok(socket
        .connect(server.base.trim_start_matches("http://").parse()?)
        .await?)
}

/// POST `body` to `/mcp` with a bearer token on a fresh connection from 127.0.0.`last`,
/// as a flooder does: the whole request is written whether or not the server has
/// answered already (a refusal before the body is read may reset the connection under
/// the writer), then the answer's status is read.
async fn raw_post(server: &HttpServer, last: u8, token: &str, body: &str) -> Result<u16> {
    let mut stream = connect_from(server, last).await?;
    let head = format!(
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nAuthorization: Bearer {token}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(body.as_bytes()).await;
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    let read = async {
        while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read).await?;
    let text = String::from_utf8_lossy(&answer);
    text.strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .with_context(|| format!("no status line in {text:?}"))
}

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The issue's repro: 300 unauthenticated `tools/call`s with 100 KB `cwd`/`model`
/// strings. Most get 429 from the per-address limit before auth; the audit log stays
/// small (one detailed record, cut, and one summary line counting the 401s); another
/// address is unaffected, and the refusals are counted.
#[tokio::test]
async fn an_unauthenticated_flood_is_mostly_429_and_leaves_the_audit_log_small() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let audit = dir.path().join("audit.jsonl");
    let server = spawn_http(&[
        ("TWOBOT_ENABLE_NO_AUTH", "false"),
        ("TWOBOT_AUTH_TOKENS", "alice:tok-alice"),
        ("TWOBOT_AUDIT_LOG", audit.to_str().context("utf-8 path")?),
        ("TWOBOT_AUDIT_SUMMARY_SEC", "1"),
        ("TWOBOT_METRICS_ADDR", "127.0.0.1:0"),
        ("TWOBOT_LOG_LEVEL", "info"),
    ])
    .await?;
    let metrics = metrics_url(&server.log).await?;
    let big = "x".repeat(100 * 1024);
    let call = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
        "params": {"name": "run_codex_prompt",
                   "arguments": {"prompt": "let me in", "cwd": format!("/{big}"), "model": big}}});
    let call = call.to_string();
    let started = Instant::now();
    let (mut limited, mut unauthorized) = (0u32, 0u64);
    for _ in 0..300 {
        let status = raw_post(&server, 2, "not-a-token", &call).await?;
        match status {
            429 => limited += 1,
            401 => unauthorized += 1,
            other => anyhow::bail!("unexpected {other}"),
        }
    }
    let took = started.elapsed();
    assert!(
        limited >= 200,
        "{limited} of 300 limited, {unauthorized} got 401, in {took:?}"
    );

    // Another address: its own budget, before and after auth.
    let other = from(3)?;
    let ok = post_from(&other, &server.url, &initialize_body())
        .bearer_auth("tok-alice")
        .send()
        .await?;
    assert_eq!(ok.status(), 200);
    let refused = post_from(&other, &server.url, &initialize_body())
        .send()
        .await?;
    assert_eq!(refused.status(), 401, "not 429: .3 has its own budget");

    // The summary interval is 1 s: wait for the lines that count .2's 401s (the flood
    // may span more than one interval: one line per interval, never one per request).
    let summaries = |records: &[Value]| -> Vec<Value> {
        records
            .iter()
            .filter(|r| r["kind"] == "unauthenticated" && r["client"] == "127.0.0.2")
            .cloned()
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let records = loop {
        let records = lines(&audit);
        let counted: u64 = summaries(&records)
            .iter()
            .map(|r| r["refused"].as_u64().unwrap_or(0))
            .sum();
        if counted == unauthorized {
            break records;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{counted} of {unauthorized} counted: {records:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let size = std::fs::metadata(&audit)?.len();
    assert!(size < 8 * 1024, "the audit log holds {size} bytes");
    let summaries = summaries(&records);
    assert!(
        summaries.len() <= 1 + took.as_secs() as usize,
        "{summaries:?}"
    );
    for summary in &summaries {
        assert_eq!(
            summary["reasons"]["invalid"], summary["refused"],
            "{summary}"
        );
    }
    let detailed: Vec<&Value> = records
        .iter()
        .filter(|r| r["principal"] == "unauthenticated")
        .collect();
    assert!(
        !detailed.is_empty() && detailed.len() <= summaries.len(),
        "at most one detailed record per interval: {records:?}"
    );
    for field in ["cwd", "model"] {
        let value = detailed[0][field].as_str().context("a string")?;
        assert!(value.len() <= 256, "{field}: {} bytes", value.len());
        assert!(value.contains("[cut: "), "{field}: {value}");
    }

    let exposition = reqwest::get(&metrics).await?.text().await?;
    let counted = sample(
        &exposition,
        r#"twobot_address_refusals_total{limit="requests"}"#,
    );
    assert_eq!(counted, f64::from(limited), "{exposition}");
    Ok(())
}

/// Issue 19 point 8: 45 sockets from one address trickling their headers against a cap
/// of 40 connections used to leave no slot for anyone else. Now that address holds at
/// most `TWOBOT_MAX_CONNECTIONS_PER_ADDRESS` (32), is told so beyond (429), and 50
/// requests from another address, each on a fresh connection, all succeed.
#[tokio::test]
async fn trickling_sockets_from_one_address_leave_connections_for_another() -> Result<()> {
    let server = spawn_http(&[
        ("TWOBOT_MAX_CONNECTIONS", "40"),
        ("TWOBOT_HEADER_READ_TIMEOUT_SEC", "60"),
        ("TWOBOT_LOG_LEVEL", "info"),
        ("TWOBOT_METRICS_ADDR", "127.0.0.1:0"),
    ])
    .await?;
    let metrics = metrics_url(&server.log).await?;
    let mut trickling = Vec::new();
    for _ in 0..45 {
        let mut s = connect_from(&server, 2).await?;
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            .await?;
        trickling.push(s);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    // One more from .2, a whole request: its own cap, said as such.
    let mut over = connect_from(&server, 2).await?;
    over.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await?;
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(10), over.read_to_string(&mut answer)).await??;
    assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
    assert!(
        answer.contains("too_many_connections_from_address"),
        "{answer}"
    );
    assert!(
        answer.contains("TWOBOT_MAX_CONNECTIONS_PER_ADDRESS"),
        "{answer}"
    );

    let legit = reqwest::Client::builder()
        .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3)))
        .pool_max_idle_per_host(0)
        .build()?;
    let mut statuses = Vec::new();
    for _ in 0..50 {
        let r = legit.get(format!("{}/healthz", server.base)).send().await?;
        statuses.push(r.status().as_u16());
    }
    let ok = statuses.iter().filter(|s| **s == 200).count();
    assert_eq!(ok, 50, "{statuses:?}");
    let exposition = reqwest::get(&metrics).await?.text().await?;
    let refused = sample(
        &exposition,
        r#"twobot_address_refusals_total{limit="connections"}"#,
    );
    assert!(
        refused >= 14.0,
        "13 trickling and 1 whole request over the cap: {refused}"
    );
    // The trickling sockets are still open (they were neither served nor dropped).
    drop(trickling);
    Ok(())
}

/// `X-Forwarded-For` from a peer that is not a trusted proxy changes nothing: the spoofer
/// stays limited. From a trusted proxy, its right-most untrusted hop is the client.
#[tokio::test]
async fn a_spoofed_x_forwarded_for_does_not_change_the_address_key() -> Result<()> {
    let server = spawn_http(&[
        ("TWOBOT_TRUSTED_PROXIES", "127.0.0.1"),
        ("TWOBOT_ADDRESS_RATE_PER_MINUTE", "1"),
        ("TWOBOT_ADDRESS_RATE_BURST", "3"),
    ])
    .await?;
    let health = initialize_body();
    let send = |client: reqwest::Client, xff: Option<String>| {
        let url = server.url.clone();
        let body = health.clone();
        async move {
            let mut req = post_from(&client, &url, &body);
            if let Some(xff) = xff {
                req = req.header("x-forwarded-for", xff);
            }
            Ok::<u16, anyhow::Error>(req.send().await?.status().as_u16())
        }
    };
    let spoofer = from(2)?;
    for i in 0..3 {
        assert_ne!(
            send(spoofer.clone(), Some(format!("10.0.0.{i}"))).await?,
            429
        );
    }
    for i in 0..5 {
        assert_eq!(
            send(spoofer.clone(), Some(format!("198.51.100.{i}"))).await?,
            429,
            "a new X-Forwarded-For is not a new client"
        );
    }
    // Through the trusted proxy (127.0.0.1), each forwarded client has its own budget,
    // and what the caller wrote left of the proxy's hop does not count.
    let proxy = from(1)?;
    for i in 0..3 {
        let xff = format!("203.0.113.77, 192.0.2.{i}");
        assert_ne!(send(proxy.clone(), Some(xff)).await?, 429, "client {i}");
    }
    Ok(())
}

/// Issue 19 point 5: no-auth with a non-loopback `TWOBOT_ALLOWED_HOSTS` or
/// `TWOBOT_ALLOWED_ORIGINS` is public (the tunnel layout) and refuses to start unless
/// the operator opts in; `doctor` fails the same; with the opt-in it serves that Host.
#[tokio::test]
async fn no_auth_with_a_public_allowed_host_or_origin_refuses_to_start_unless_opted_in()
-> Result<()> {
    for (var, value) in [
        ("TWOBOT_ALLOWED_HOSTS", "mcp.example.com"),
        ("TWOBOT_ALLOWED_ORIGINS", "https://chatgpt.com"),
    ] {
        for args in [&[][..], &["doctor"][..]] {
            let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_2bot-mcp"))
                .args(args)
                .env_clear()
                .env("PATH", std::env::var("PATH").unwrap_or_default())
                .env("TWOBOT_TRANSPORT", "http")
                .env("TWOBOT_PORT", "0")
                .env("CODEX_BIN", fake_codex())
                .env(var, value)
                .stdin(std::process::Stdio::null())
                .kill_on_drop(true)
                .output();
            let out = tokio::time::timeout(Duration::from_secs(30), run)
                .await
                .with_context(|| format!("{var}={value} {args:?}: still running after 30 s"))??;
            let stdout = String::from_utf8_lossy(&out.stdout);
            let stderr = String::from_utf8_lossy(&out.stderr);
            if args.is_empty() {
                assert_eq!(out.status.code(), Some(2), "{var}: {stderr}");
                assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
                assert!(stderr.contains(var) && stderr.contains(value), "{stderr}");
                assert!(stderr.contains("TWOBOT_ALLOW_PUBLIC_NO_AUTH"), "{stderr}");
            } else {
                assert_eq!(out.status.code(), Some(1), "{stdout}");
                assert!(
                    stdout.lines().any(|l| l.starts_with("[FAIL] auth")
                        && l.contains(var)
                        && l.contains("TWOBOT_ALLOW_PUBLIC_NO_AUTH")),
                    "{stdout}"
                );
            }
        }
    }
    let server = spawn_http(&[
        ("TWOBOT_ALLOWED_HOSTS", "mcp.example.com"),
        ("TWOBOT_ALLOW_PUBLIC_NO_AUTH", "true"),
    ])
    .await?;
    let r = post(&server.url, &initialize_body())
        .header("host", "mcp.example.com")
        .send()
        .await?;
    assert_eq!(r.status(), 200);
    let log = std::fs::read_to_string(&server.log)?;
    assert!(
        log.contains("WITHOUT AUTH") && log.contains("TWOBOT_ALLOWED_HOSTS"),
        "{log}"
    );
    Ok(())
}

/// `doctor` says whose forwarding headers are read, and warns in the proxy layout (bound
/// to loopback, public base URL) when none are: every caller would share one budget.
#[tokio::test]
async fn doctor_names_the_trusted_proxies_and_warns_behind_a_proxy_without_them() -> Result<()> {
    let doctor = |extra: Option<(&'static str, &'static str)>| async move {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_2bot-mcp"));
        cmd.arg("doctor")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("TWOBOT_TRANSPORT", "http")
            .env("TWOBOT_PORT", "0")
            .env("CODEX_BIN", fake_codex())
            .env("TWOBOT_ENABLE_NO_AUTH", "false")
            .env("TWOBOT_AUTH_TOKENS", "alice:tok-alice")
            .env("TWOBOT_BASE_URL", "https://mcp.example.com")
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        if let Some((k, v)) = extra {
            cmd.env(k, v);
        }
        let out = tokio::time::timeout(Duration::from_secs(60), cmd.output()).await??;
        anyhow::Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let none = doctor(None).await?;
    assert!(
        none.lines()
            .any(|l| l.starts_with("[warn] proxies:") && l.contains("TWOBOT_TRUSTED_PROXIES")),
        "{none}"
    );
    let trusted = doctor(Some(("TWOBOT_TRUSTED_PROXIES", "127.0.0.1"))).await?;
    assert!(
        trusted
            .lines()
            .any(|l| l.starts_with("[ok  ] proxies:") && l.contains("127.0.0.1/32")),
        "{trusted}"
    );
    Ok(())
}

/// The old boolean is refused with a line naming its replacement, and a bad proxy
/// entry is refused naming the variable and the entry.
#[tokio::test]
async fn proxy_settings_that_cannot_be_honoured_stop_start_up_with_one_line() -> Result<()> {
    for (var, value, expect) in [
        (
            "TWOBOT_TRUST_PROXY_HEADERS",
            "true",
            "TWOBOT_TRUSTED_PROXIES",
        ),
        ("TWOBOT_TRUSTED_PROXIES", "127.0.0.1,nginx", "\"nginx\""),
        (
            "TWOBOT_TRUSTED_PROXIES",
            "10.0.0.0/33",
            "TWOBOT_TRUSTED_PROXIES",
        ),
    ] {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_2bot-mcp"))
            .env_clear()
            .env("TWOBOT_TRANSPORT", "http")
            .env("TWOBOT_PORT", "0")
            .env(var, value)
            .stdin(std::process::Stdio::null())
            .output()
            .await?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{var}={value}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
        assert!(stderr.contains(var) && stderr.contains(expect), "{stderr}");
    }
    Ok(())
}

/// Under a flood of refused calls, each with 100 KB strings, no audit file grows past
/// `TWOBOT_AUDIT_MAX_BYTES` and only `TWOBOT_AUDIT_KEEP` rotated files remain.
#[tokio::test]
async fn the_audit_log_never_exceeds_its_cap_under_a_flood() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let audit = dir.path().join("audit.jsonl");
    let mut server = spawn_http(&[
        ("TWOBOT_AUDIT_LOG", audit.to_str().context("utf-8 path")?),
        ("TWOBOT_AUDIT_MAX_BYTES", "65536"),
        ("TWOBOT_AUDIT_KEEP", "1"),
        ("TWOBOT_ADDRESS_RATE_BURST", "100000"),
        ("TWOBOT_RATE_LIMIT_BURST", "100000"),
        ("TWOBOT_LOG_LEVEL", "warn"),
    ])
    .await?;
    let client = http_client(&server.url, None).await?;
    let big = "y".repeat(100 * 1024);
    for _ in 0..300 {
        // Outside the allowed roots: refused by policy, one audit record each.
        let r = call(
            &client,
            json!({"prompt": "p", "cwd": format!("/nope/{big}"), "model": big}),
        )
        .await?;
        assert_eq!(r.is_error, Some(true));
    }
    client.cancel().await?;
    // The writer thread writes a moment after the calls: stop the server, which writes
    // everything queued before it exits, then look.
    let pid = nix::unistd::Pid::from_raw(server.child.id().context("pid")? as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM)?;
    let status = tokio::time::timeout(Duration::from_secs(30), server.child.wait()).await??;
    assert!(status.success(), "{status}");
    let rotated = dir.path().join("audit.jsonl.1");
    assert!(rotated.exists(), "the flood filled more than one file");
    let mut names: Vec<String> = std::fs::read_dir(dir.path())?
        .map(|e| Ok(e?.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_>>()?;
    names.sort();
    assert_eq!(names, ["audit.jsonl", "audit.jsonl.1"]);
    for path in [&audit, &rotated] {
        let size = std::fs::metadata(path)?.len();
        assert!(size <= 65536, "{}: {size} bytes", path.display());
        for line in lines(path) {
            let cwd = line["cwd"].as_str().unwrap_or_default();
            assert!(cwd.len() <= 256, "{} bytes", cwd.len());
        }
    }
    Ok(())
}
