//! Containment at the edges of the HTTP gateway (issue 11, points 4, 6, 7, 8): a body
//! that trickles in, JWTs with missing claims or unknown critical headers, no-auth
//! exposed through a proxy, and refusals that must not reveal the server's filesystem;
//! images read with no more privilege than Codex has (issue 19 point 3).

use std::io::{ErrorKind, Read, Write};
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::common::http::*;

fn addr(server: &HttpServer) -> String {
    server.base.trim_start_matches("http://").to_owned()
}

/// What a client that sends its headers and then one body byte every 300 ms saw: the
/// server's whole answer, and whether the server closed the connection.
struct Trickled {
    answer: String,
    closed: bool,
}

/// Send a POST whose 1 000-byte body trickles in, until the server closes the connection
/// or `limit` passes. Blocking I/O on a thread of its own: the trickle is the point.
fn trickle(addr: &str, limit: Duration) -> Result<Trickled> {
    let mut stream = std::net::TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_millis(300)))?;
    write!(
        stream,
        "POST /mcp HTTP/1.1\r\nHost: {addr}\r\ncontent-type: application/json\r\naccept: application/json, text/event-stream\r\ncontent-length: 1000\r\n\r\n{{"
    )?;
    let start = Instant::now();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while start.elapsed() < limit {
        // The server may already have closed its side: a failed write is expected then.
        let _ = stream.write_all(b" ");
        match stream.read(&mut buf) {
            Ok(0) => {
                return Ok(Trickled {
                    answer: String::from_utf8_lossy(&answer).into_owned(),
                    closed: true,
                });
            }
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            // A reset after the answer is a close too (our trickle hit a closed socket).
            Err(_) => {
                return Ok(Trickled {
                    answer: String::from_utf8_lossy(&answer).into_owned(),
                    closed: true,
                });
            }
        }
    }
    Ok(Trickled {
        answer: String::from_utf8_lossy(&answer).into_owned(),
        closed: false,
    })
}

crate::both_backends!(a_body_that_trickles_in_gets_408_and_a_closed_connection);
async fn a_body_that_trickles_in_gets_408_and_a_closed_connection() -> Result<()> {
    let server = spawn_http(&[("TWOBOT_BODY_READ_TIMEOUT_SEC", "2")]).await?;
    let addr = addr(&server);
    let started = Instant::now();
    let seen =
        tokio::task::spawn_blocking(move || trickle(&addr, Duration::from_secs(20))).await??;
    let took = started.elapsed();
    assert!(
        seen.answer.starts_with("HTTP/1.1 408"),
        "after {took:?}: {:?}",
        seen.answer
    );
    let lower = seen.answer.to_ascii_lowercase();
    assert!(lower.contains("connection: close"), "{}", seen.answer);
    assert!(
        lower.contains("content-type: application/json"),
        "{}",
        seen.answer
    );
    assert!(
        seen.answer.contains("TWOBOT_BODY_READ_TIMEOUT_SEC"),
        "{}",
        seen.answer
    );
    assert!(seen.closed, "the connection stayed open: {}", seen.answer);
    assert!(
        took >= Duration::from_secs(2),
        "408 before the deadline: {took:?}"
    );
    Ok(())
}

crate::both_backends!(tricklers_beyond_the_connection_cap_do_not_keep_healthz_down);
async fn tricklers_beyond_the_connection_cap_do_not_keep_healthz_down() -> Result<()> {
    const CAP: usize = 3;
    let server = spawn_http(&[
        ("TWOBOT_BODY_READ_TIMEOUT_SEC", "2"),
        ("TWOBOT_MAX_CONNECTIONS", "3"),
    ])
    .await?;
    let tricklers: Vec<_> = (0..CAP + 5)
        .map(|_| {
            let addr = addr(&server);
            tokio::task::spawn_blocking(move || trickle(&addr, Duration::from_secs(20)))
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tricklers {
        let seen = t.await??;
        assert!(
            seen.closed,
            "a trickler is still connected: {:?}",
            seen.answer
        );
        statuses.push(seen.answer.split(' ').nth(1).unwrap_or("none").to_owned());
    }
    assert!(
        statuses.iter().all(|s| s == "408" || s == "503"),
        "{statuses:?}"
    );
    assert!(statuses.iter().any(|s| s == "408"), "{statuses:?}");

    let health = reqwest::get(format!("{}/healthz", server.base)).await?;
    assert_eq!(health.status(), 200);
    Ok(())
}

/// The binary with `env` on top of a bare HTTP set-up on loopback, run to completion.
async fn run_binary(args: &[&str], env: &[(&str, &str)]) -> Result<(Option<i32>, String, String)> {
    let root = tempfile::tempdir()?;
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_2bot-mcp"));
    crate::common::with_backend(&mut cmd);
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("TWOBOT_TRANSPORT", "http")
        .env("TWOBOT_PORT", "0")
        .env("CODEX_BIN", crate::common::fake_codex())
        .env("CODEX_ALLOWED_ROOTS", root.path());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        cmd.stdin(std::process::Stdio::null()).output(),
    )
    .await??;
    Ok((
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

crate::both_backends!(
    no_auth_behind_a_public_base_url_refuses_to_start_unless_the_operator_opts_in
);
async fn no_auth_behind_a_public_base_url_refuses_to_start_unless_the_operator_opts_in()
-> Result<()> {
    let public = [("TWOBOT_BASE_URL", "https://mcp.example.com")];
    let (code, _, stderr) = run_binary(&[], &public).await?;
    assert_eq!(code, Some(2), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("TWOBOT_ALLOW_PUBLIC_NO_AUTH"), "{stderr}");
    assert!(stderr.contains("https://mcp.example.com"), "{stderr}");

    // doctor says the same, as a FAIL line.
    let (code, stdout, _) = run_binary(&["doctor"], &public).await?;
    assert_eq!(code, Some(1), "{stdout}");
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("[FAIL] auth") && l.contains("TWOBOT_ALLOW_PUBLIC_NO_AUTH")),
        "{stdout}"
    );

    // A loopback base URL (a local test) is not public.
    let (code, stdout, _) =
        run_binary(&["doctor"], &[("TWOBOT_BASE_URL", "http://localhost:9000")]).await?;
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("[ok  ] auth: no-auth mode on loopback")),
        "{code:?} {stdout}"
    );

    // With the explicit opt-in it starts, and says what it is doing.
    let server = spawn_http(&[
        ("TWOBOT_BASE_URL", "https://mcp.example.com"),
        ("TWOBOT_ALLOW_PUBLIC_NO_AUTH", "true"),
    ])
    .await?;
    let health = reqwest::get(format!("{}/healthz", server.base)).await?;
    assert_eq!(health.status(), 200);
    let log = std::fs::read_to_string(&server.log)?;
    assert!(
        log.contains("WITHOUT AUTH") && log.contains("https://mcp.example.com"),
        "{log}"
    );
    Ok(())
}

crate::both_backends!(a_refused_path_reveals_neither_etc_nor_the_server_s_directory);
async fn a_refused_path_reveals_neither_etc_nor_the_server_s_directory() -> Result<()> {
    let server = spawn_http(&[]).await?;
    // spawn_http leaves the server in the test's own working directory.
    let server_cwd = std::env::current_dir()?.canonicalize()?;
    let root = server
        .record
        .parent()
        .map(|p| p.join("root"))
        .ok_or_else(|| anyhow::anyhow!("no temp dir"))?;
    std::os::unix::fs::symlink("/etc", root.join("etc-link"))?;
    std::os::unix::fs::symlink(&server_cwd, root.join("home-link"))?;
    let client = http_client(&server.url, None).await?;
    for args in [
        serde_json::json!({"prompt": "p", "cwd": "etc-link"}),
        serde_json::json!({"prompt": "p", "cwd": "home-link"}),
        serde_json::json!({"prompt": "p", "cwd": "../../../../../../../../../.."}),
        serde_json::json!({"prompt": "p", "add_dirs": ["etc-link/ssl"]}),
        serde_json::json!({"prompt": "p", "add_dirs": ["home-link/src"]}),
    ] {
        let result = crate::common::call(&client, args.clone()).await?;
        let text = crate::common::text(&result);
        assert_eq!(result.is_error, Some(true), "{args}: {text}");
        assert!(text.starts_with("refused by policy: "), "{args}: {text}");
        assert!(text.contains(&root.display().to_string()), "{args}: {text}");
        assert!(!text.contains("/etc"), "{args}: {text}");
        assert!(
            !text.contains(&server_cwd.display().to_string()),
            "{args}: {text}"
        );
    }
    client.cancel().await?;
    Ok(())
}

const SECRET: &str = "an-hs256-secret-of-at-least-32-bytes!";
const ISSUER: &str = "https://issuer.test";

fn hs_token(header: jsonwebtoken::Header, claims: &serde_json::Value) -> Result<String> {
    Ok(jsonwebtoken::encode(
        &header,
        claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )?)
}

fn claims_for(aud: &str, iss: Option<&str>, sub: Option<&str>) -> serde_json::Value {
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
        + 600;
    let mut claims = serde_json::json!({"aud": aud, "exp": exp});
    if let Some(iss) = iss {
        claims["iss"] = iss.into();
    }
    if let Some(sub) = sub {
        claims["sub"] = sub.into();
    }
    claims
}

crate::both_backends!(jwts_without_iss_or_sub_or_with_an_unknown_crit_are_401_with_a_reason);
async fn jwts_without_iss_or_sub_or_with_an_unknown_crit_are_401_with_a_reason() -> Result<()> {
    let server = spawn_http(&[
        ("TWOBOT_ENABLE_NO_AUTH", "false"),
        ("TWOBOT_JWT_SECRET", SECRET),
        ("TWOBOT_JWT_ISSUER", ISSUER),
    ])
    .await?;
    let aud = server.url.clone();
    let plain = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    let mut crit = plain.clone();
    crit.crit = Some(vec!["urn:example:must-understand".into()]);
    let cases = [
        (
            "no iss",
            hs_token(plain.clone(), &claims_for(&aud, None, Some("carol")))?,
            "iss",
        ),
        (
            "no sub",
            hs_token(plain.clone(), &claims_for(&aud, Some(ISSUER), None))?,
            "sub",
        ),
        (
            "unknown crit",
            hs_token(crit, &claims_for(&aud, Some(ISSUER), Some("carol")))?,
            "crit",
        ),
    ];
    for (name, token, reason) in cases {
        let response = post(&server.url, &initialize_body())
            .bearer_auth(&token)
            .send()
            .await?;
        assert_eq!(response.status(), 401, "{name}");
        let challenge = response.headers()["www-authenticate"].to_str()?.to_owned();
        assert!(
            challenge.starts_with("Bearer error=\"invalid_token\""),
            "{name}: {challenge}"
        );
        assert!(challenge.contains(reason), "{name}: {challenge}");
        let body: serde_json::Value = response.json().await?;
        assert_eq!(body["error"], "invalid_token", "{name}: {body}");
        assert!(
            body["reason"].as_str().is_some_and(|r| r.contains(reason)),
            "{name}: {body}"
        );
    }
    // The same token with both claims and no crit is fine.
    let good = hs_token(plain, &claims_for(&aud, Some(ISSUER), Some("carol")))?;
    raw_session(&server.url, Some(&good)).await?;
    Ok(())
}

crate::both_backends!(
    threads_are_owned_by_issuer_and_subject_and_old_subject_only_records_stay_closed
);
async fn threads_are_owned_by_issuer_and_subject_and_old_subject_only_records_stay_closed()
-> Result<()> {
    let state = tempfile::tempdir()?;
    // A record from before ownership included the issuer: carol's, keyed by subject only.
    std::fs::write(
        state.path().join("threads.jsonl"),
        "{\"thread_id\":\"old-carol-thread\",\"owner\":\"jwt:carol\",\"ephemeral\":false}\n",
    )?;
    // No TWOBOT_JWT_ISSUER: tokens of any issuer holding the key are taken, so the issuer
    // is what tells two "carol"s apart.
    let server = spawn_http(&[
        ("TWOBOT_ENABLE_NO_AUTH", "false"),
        ("TWOBOT_JWT_SECRET", SECRET),
        ("TWOBOT_STATE_DIR", &state.path().display().to_string()),
    ])
    .await?;
    let aud = server.url.clone();
    let plain = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    let carol_a = hs_token(
        plain.clone(),
        &claims_for(&aud, Some("https://a.test"), Some("carol")),
    )?;
    let carol_b = hs_token(
        plain,
        &claims_for(&aud, Some("https://b.test"), Some("carol")),
    )?;
    let a = http_client(&server.url, Some(&carol_a)).await?;
    let b = http_client(&server.url, Some(&carol_b)).await?;

    let first = crate::common::call(
        &a,
        serde_json::json!({"prompt": "scenario:ok", "ephemeral": false}),
    )
    .await?;
    let thread = crate::common::structured(&first)["thread_id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("no thread id: {first:?}"))?;

    let stolen = crate::common::call(
        &b,
        serde_json::json!({"prompt": "scenario:ok", "thread_id": thread, "ephemeral": false}),
    )
    .await?;
    assert_eq!(stolen.is_error, Some(true), "{stolen:?}");
    assert!(
        crate::common::text(&stolen).contains("only your own threads"),
        "{}",
        crate::common::text(&stolen)
    );
    let own = crate::common::call(
        &a,
        serde_json::json!({"prompt": "scenario:ok", "thread_id": thread, "ephemeral": false}),
    )
    .await?;
    assert_ne!(own.is_error, Some(true), "{}", crate::common::text(&own));

    // The subject-only record is nobody's now: not carol of a.test, not carol of b.test.
    for client in [&a, &b] {
        let old = crate::common::call(
            client,
            serde_json::json!({"prompt": "scenario:ok", "thread_id": "old-carol-thread"}),
        )
        .await?;
        assert_eq!(old.is_error, Some(true), "{old:?}");
        assert!(
            crate::common::text(&old).contains("only your own threads"),
            "{}",
            crate::common::text(&old)
        );
    }
    a.cancel().await?;
    b.cancel().await?;
    Ok(())
}

/// `spawn_http` without CODEX_ALLOWED_ROOTS: any path may be named, as in the issue.
async fn spawn_http_without_roots(env: &[(&str, &str)]) -> Result<HttpServer> {
    use anyhow::Context;
    use tokio::io::AsyncBufReadExt;
    let tmp = tempfile::tempdir()?;
    let base = tmp.path().canonicalize()?;
    let record = base.join("record");
    std::fs::create_dir_all(base.join("root"))?;
    std::fs::create_dir_all(&record)?;
    let log = base.join("server.log");
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_2bot-mcp"));
    crate::common::with_backend(&mut cmd);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("TWOBOT_TRANSPORT", "http")
        .env("TWOBOT_PORT", "0")
        .env("CODEX_BIN", crate::common::fake_codex())
        .env("FAKE_CODEX_RECORD", &record)
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&log)?)
        .kill_on_drop(true);
    let mut child = cmd.spawn()?;
    let stdout = child.stdout.take().context("stdout")?;
    let line = tokio::time::timeout(
        Duration::from_secs(20),
        tokio::io::BufReader::new(stdout).lines().next_line(),
    )
    .await
    .context("no listening line")??
    .with_context(|| std::fs::read_to_string(&log).unwrap_or_default())?;
    let url = line.rsplit(' ').next().context("URL")?.to_owned();
    Ok(HttpServer {
        child,
        base: url.trim_end_matches("/mcp").to_owned(),
        url,
        record,
        log,
        _tmp: tmp,
    })
}

crate::both_backends!(images_are_read_as_the_codex_user_and_never_from_proc_sys_dev_or_a_fifo);
/// Issue 19 point 3: with no roots and a separate Codex user, 2Bot (root) copied any file
/// as an image, so the least-trusted caller read `/etc/shadow` and `/proc/self/environ`.
/// Now images are read as Codex's user, `/proc`, `/sys` and `/dev` never, FIFOs and
/// devices neither: each is a tool error naming `images[0]`, and Codex never starts. A
/// file Codex's user may read still reaches Codex.
async fn images_are_read_as_the_codex_user_and_never_from_proc_sys_dev_or_a_fifo() -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    crate::common::programs::require_root("switching to the Codex user needs CAP_SETUID")?;
    let server = spawn_http_without_roots(&[("TWOBOT_CODEX_USER", "nobody")]).await?;
    let base = server
        .record
        .parent()
        .ok_or_else(|| anyhow::anyhow!("no temp dir"))?
        .to_owned();
    let root = base.join("root");
    // Codex's user reaches the root and the fake Codex's record, nothing else of ours.
    for (dir, mode) in [(&base, 0o755), (&root, 0o755), (&server.record, 0o777)] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))?;
    }
    let fifo = root.join("fifo.png");
    anyhow::ensure!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()?
            .success()
    );
    std::os::unix::fs::symlink("/proc/self/environ", root.join("env.png"))?;
    let private = root.join("private.png");
    std::fs::write(&private, b"root's own picture")?;
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o600))?;
    // Root's group may read it: 2Bot's supplementary groups must not reach the reader.
    let group = root.join("group.png");
    std::fs::write(&group, b"root group's picture")?;
    std::fs::set_permissions(&group, std::fs::Permissions::from_mode(0o640))?;
    std::os::unix::fs::chown(&group, Some(0), Some(0))?;
    let shown = root.join("shown.png");
    std::fs::write(&shown, b"anyone's picture")?;
    std::fs::set_permissions(&shown, std::fs::Permissions::from_mode(0o644))?;

    let client = http_client(&server.url, None).await?;
    let cwd = root.display().to_string();
    for (image, why) in [
        ("/etc/shadow".to_owned(), "may not read it"),
        (private.display().to_string(), "may not read it"),
        (group.display().to_string(), "may not read it"),
        ("/proc/self/environ".to_owned(), "/proc"),
        (root.join("env.png").display().to_string(), "/proc"),
        ("/dev/zero".to_owned(), "/dev"),
        ("/sys/kernel/uevent_seqnum".to_owned(), "/sys"),
        (fifo.display().to_string(), "not a regular file"),
    ] {
        let asked = Instant::now();
        let r = crate::common::call(
            &client,
            serde_json::json!({"prompt": "scenario:ok", "cwd": cwd, "images": [image]}),
        )
        .await?;
        let text = crate::common::text(&r);
        assert_eq!(r.is_error, Some(true), "{image}: {text}");
        assert!(
            text.contains(&format!("images[0] = {image:?}")) && text.contains(why),
            "{image}: {text}"
        );
        assert!(!text.contains("root:"), "{image}: {text}");
        assert!(asked.elapsed() < Duration::from_secs(10), "{image} hung");
    }
    assert!(
        crate::common::recorded(&server.record)?.is_empty(),
        "Codex was started"
    );
    let r = crate::common::call(
        &client,
        serde_json::json!({"prompt": "scenario:ok", "cwd": cwd, "images": [shown.display().to_string()]}),
    )
    .await?;
    assert_eq!(r.is_error, Some(false), "{}", crate::common::text(&r));
    let run = crate::common::only_run(&server.record)?;
    assert!(
        run.argv
            .iter()
            .any(|a| a.starts_with("--image=") && a.contains("2bot-images-")),
        "{:?}",
        run.argv
    );
    client.cancel().await?;
    Ok(())
}
