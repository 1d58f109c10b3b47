//! The files in `deploy/`, run for real where a test machine can: nginx (Debian's
//! package, installed by `scripts/test`) with `deploy/nginx/2bot.conf` in front of a real
//! 2Bot, over TLS with a certificate made here; `systemd-analyze verify` on the unit;
//! and the facts the Dockerfile and compose file must keep (pinned Codex, non-root,
//! health check on /readyz).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rmcp::ServiceExt;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::json;

use crate::common::http::*;
use crate::common::nginx::Nginx;
use crate::common::programs::require;
use crate::common::*;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// nginx running `deploy/nginx/2bot.conf` on held sockets, and its TLS port.
struct Proxy {
    _nginx: Nginx,
    port: u16,
    _dir: tempfile::TempDir,
}

async fn start_nginx(upstream_port: u16) -> Result<(Proxy, Vec<u8>)> {
    let dir = tempfile::tempdir()?;
    let d = dir.path();
    let (cert, key) = (d.join("cert.pem"), d.join("key.pem"));
    let status = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args([
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        // A server certificate, not a CA: rustls refuses a CA as the end entity.
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .args(["-addext", "extendedKeyUsage=serverAuth"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .context("openssl")?;
    anyhow::ensure!(status.success(), "openssl failed");

    let ((tls, tls_port), (plain, plain_port)) = (loopback_listener()?, loopback_listener()?);
    // Only addresses and certificate paths change; everything else is the shipped file.
    let site = std::fs::read_to_string(repo("deploy/nginx/2bot.conf"))?
        .replace(
            "listen 443 ssl;",
            &format!("listen 127.0.0.1:{tls_port} ssl;"),
        )
        .replace("listen 80;", &format!("listen 127.0.0.1:{plain_port};"))
        .replace(
            "server 127.0.0.1:9000;",
            &format!("server 127.0.0.1:{upstream_port};"),
        )
        .replace(
            "/etc/letsencrypt/live/mcp.example.com/fullchain.pem",
            &cert.display().to_string(),
        )
        .replace(
            "/etc/letsencrypt/live/mcp.example.com/privkey.pem",
            &key.display().to_string(),
        );
    // The frame Debian's /etc/nginx/nginx.conf would give, confined to the temp dir.
    let nginx = Nginx::start(d, &format!("  access_log off;\n{site}"), vec![tls, plain]).await?;
    let pem = std::fs::read(&cert)?;
    Ok((
        Proxy {
            _nginx: nginx,
            port: tls_port,
            _dir: dir,
        },
        pem,
    ))
}

/// An HTTPS client that trusts the test's certificate, sending from `source`.
fn https_client(pem: &[u8], source: Ipv4Addr) -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(pem)?)
        .local_address(IpAddr::V4(source))
        .build()?)
}

/// ChatGPT's path: HTTPS through nginx to 2Bot. A full MCP session works, progress
/// arrives while Codex works (nothing buffered), and with trusted proxy headers each
/// client address has its own rate limit (spoofed X-Forwarded-For does not help).
#[tokio::test]
async fn behind_the_shipped_nginx_config_a_session_streams_and_rate_limits_key_on_clients()
-> Result<()> {
    let server = spawn_http(&[
        ("TWOBOT_TRUSTED_PROXIES", "127.0.0.1"),
        ("TWOBOT_RATE_LIMIT_PER_MINUTE", "1"),
        ("TWOBOT_RATE_LIMIT_BURST", "12"),
    ])
    .await?;
    let upstream: SocketAddr = server.base.trim_start_matches("http://").parse()?;
    let (proxy, pem) = start_nginx(upstream.port()).await?;
    let url = format!("https://127.0.0.1:{}/mcp", proxy.port);

    // A full session over TLS, from 127.0.0.1.
    let transport = StreamableHttpClientTransport::with_client(
        https_client(&pem, Ipv4Addr::LOCALHOST)?,
        StreamableHttpClientTransportConfig::with_uri(url.clone()),
    );
    let client = Recorder::default().serve(transport).await?;
    let info = client.peer_info().context("server info")?;
    assert_eq!(
        info.server_info.as_ref().map(|i| i.name.as_str()),
        Some("2Bot")
    );
    assert_eq!(client.list_all_tools().await?.len(), 1);
    let result = call(&client, json!({"prompt": "scenario:slow"})).await?;
    let done = Instant::now();
    assert_eq!(text(&result), "slow answer");
    let first = client
        .service()
        .arrived
        .lock()
        .unwrap()
        .first()
        .copied()
        .context("no progress arrived")?;
    // The fake Codex spreads its events over ~3 s: unbuffered, the first one arrives
    // long before the result; buffered, all of them arrive with it.
    assert!(
        done.duration_since(first) >= Duration::from_millis(1500),
        "progress was held back: first {:?} before the result",
        done.duration_since(first)
    );
    let run = only_run(&server.record)?;
    let forwarded = run
        .env
        .get("TWOBOT_REQUEST_ID")
        .cloned()
        .unwrap_or_default();
    assert!(!forwarded.is_empty(), "a request id reached Codex");
    client.cancel().await?;

    // Rate limits: client .2 spends its burst; .3 is unaffected; spoofing does not help.
    let ping = json!({"jsonrpc":"2.0","id":1,"method":"ping"});
    let send = |client: reqwest::Client, spoof: Option<&'static str>| {
        let url = url.clone();
        let body = ping.to_string();
        async move {
            let mut req = client
                .post(&url)
                .header("content-type", "application/json")
                .header("accept", "application/json, text/event-stream")
                .body(body);
            if let Some(ip) = spoof {
                req = req.header("x-forwarded-for", ip);
            }
            req.send().await.map(|r| r.status().as_u16())
        }
    };
    let two = https_client(&pem, Ipv4Addr::new(127, 0, 0, 2))?;
    let three = https_client(&pem, Ipv4Addr::new(127, 0, 0, 3))?;
    let mut statuses = Vec::new();
    for _ in 0..14 {
        statuses.push(send(two.clone(), None).await?);
    }
    assert!(
        statuses[..12].iter().all(|s| *s != 429),
        "the burst is allowed: {statuses:?}"
    );
    assert_eq!(statuses[13], 429, "beyond the burst: {statuses:?}");
    assert_eq!(
        send(two.clone(), Some("10.9.8.7")).await?,
        429,
        "a spoofed X-Forwarded-For is not a new client"
    );
    assert_ne!(
        send(three, None).await?,
        429,
        "another client address has its own budget"
    );
    drop(proxy);
    Ok(())
}

/// `systemd-analyze verify` accepts the service unit, and the optional socket unit beside
/// it, with no warning at all (it reports unknown keys and bad values as warnings and
/// still exits 0, so the output must be empty).
#[tokio::test]
async fn the_systemd_units_verify_cleanly() -> Result<()> {
    let unit = std::fs::read_to_string(repo("deploy/systemd/2bot-mcp.service"))?;
    for key in [
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ReadWritePaths=/srv/codex-work",
        "PrivateTmp=yes",
        "ProtectHome=yes",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
        "EnvironmentFile=/etc/2bot/2bot.env",
        "CapabilityBoundingSet=\n",
        "TimeoutStopSec=45",
    ] {
        assert!(unit.contains(key), "the unit lacks {key:?}");
    }
    let socket = std::fs::read_to_string(repo("deploy/systemd/2bot-mcp.socket"))?;
    assert_eq!(
        socket.matches("\nListenStream=").count(),
        1,
        "2Bot serves exactly one passed socket"
    );
    let analyze = require(
        &["systemd-analyze"],
        "systemd-analyze",
        "sudo apt-get install -y systemd",
    )?;
    // Only the binary's path changes: verify checks that ExecStart exists.
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("2bot-mcp.service");
    std::fs::write(
        &path,
        unit.replace("/usr/local/bin/2bot-mcp", env!("CARGO_BIN_EXE_2bot-mcp")),
    )?;
    let socket_path = dir.path().join("2bot-mcp.socket");
    std::fs::write(&socket_path, socket)?;
    let out = tokio::process::Command::new(analyze)
        .arg("verify")
        .arg(&socket_path)
        .arg(&path)
        .output()
        .await?;
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{said}");
    assert!(
        !said.contains("2bot-mcp.service") && !said.contains("2bot-mcp.socket"),
        "systemd found problems in the units:\n{said}"
    );
    Ok(())
}

/// The container files keep what the operators' guide promises: Codex pinned to the
/// version the tests use, a non-root user, a health check on /readyz, no published
/// 2Bot port (only Caddy's), and Caddy flushing the event stream.
#[test]
fn the_container_files_pin_codex_run_as_non_root_and_check_readiness() -> Result<()> {
    let package: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(repo("package.json"))?)?;
    let pinned = package["dependencies"]["@openai/codex"]
        .as_str()
        .context("package.json pins @openai/codex")?;
    let dockerfile = std::fs::read_to_string(repo("deploy/docker/Dockerfile"))?;
    assert!(
        dockerfile.contains(&format!("ARG CODEX_VERSION={pinned}")),
        "the image installs the Codex the tests use ({pinned})"
    );
    assert!(dockerfile.contains("npm install -g \"@openai/codex@${CODEX_VERSION}\""));
    assert!(dockerfile.contains("\nUSER twobot\n"));
    assert!(dockerfile.contains("HEALTHCHECK"));
    assert!(dockerfile.contains("http://127.0.0.1:9000/readyz"));
    assert!(dockerfile.contains("cargo build --release --locked"));
    let compose = std::fs::read_to_string(repo("deploy/docker/compose.yml"))?;
    assert!(compose.contains("dockerfile: deploy/docker/Dockerfile"));
    assert!(compose.contains("../caddy/Caddyfile:/etc/caddy/Caddyfile:ro"));
    assert!(
        !compose.contains("\"9000:9000\""),
        "2Bot is reached through Caddy only"
    );
    let caddy = std::fs::read_to_string(repo("deploy/caddy/Caddyfile"))?;
    assert!(caddy.contains("flush_interval -1"));
    assert!(caddy.contains("max_size 4MB"));
    let tunnel = std::fs::read_to_string(repo("deploy/cloudflared/config.yml"))?;
    assert!(tunnel.contains("service: http://127.0.0.1:9000"));
    assert!(tunnel.contains("service: http_status:404"));
    Ok(())
}
