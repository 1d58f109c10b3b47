//! `cargo bench --bench gateway`: what 2Bot costs over running Codex directly, printed
//! as a table (no timing assertions: figures, not tests). See BENCHMARKS.md.
//!
//! 1. Per-call latency (p50, p99) of the same fake Codex of fixed cost, spawned
//!    directly, then called through 2Bot over stdio and over HTTP: with the rmcp client,
//!    and with a lean client (hyper, the SSE read by hand) that leaves the client's own
//!    work out, without a progress token (as ChatGPT calls), with one, and stateless.
//! 2. Cold start to a served `initialize`, stdio and HTTP.
//! 3. Server RSS idle, and peak with 32 concurrent calls each streaming 50 MB.
//! 4. HTTP `tools/list` throughput with every layer on (auth, rate limit, tracing), with
//!    a static token and with a built-in OAuth token; the built-in OAuth flow's latency.
//!
//! 5. Several instances (`support/instances.rs`): one on PostgreSQL, the same behind
//!    nginx, three behind round-robin nginx; stateless tools/list throughput and per-call
//!    latency.
//! 6. The seed stack's stand-in (`support/seed_standin.py`: the Python SDK's FastMCP,
//!    now MCPServer, with the seed's one tool behind a static token) beside 2Bot, in the
//!    same run: tools/list throughput and the ratio; and the floor (`support/floor.rs`:
//!    bare axum answering 2Bot's bytes with no layer), the most any server on this
//!    stack could show beside the stand-in.
//! 7. Only when named (`BENCH_ONLY=instructions`, needs valgrind): the instructions per
//!    stateless `tools/list`, 2Bot's and the floor's, counted by callgrind
//!    (`support/instructions.rs`): the same in every run, where the timed rows drift.
//!
//! `BENCH_CALLS` (default 200) sets the calls per latency row; `BENCH_RUN_NAMESPACES`
//! (`auto`, `off`) sets `TWOBOT_RUN_NAMESPACES` for the servers it starts;
//! `BENCH_CODEX_BACKEND` (`exec`, `app-server`) sets `TWOBOT_CODEX_BACKEND` for them, so the
//! rows then compare one `codex app-server` per call (initialize, thread/start, turn/start,
//! turn/completed, stdin EOF; the fake's app server runs the same fixed-cost exec fake
//! inside) with the same direct `codex exec` baseline. `BENCH_ONLY` (a comma list of
//! `calls`, `cold`, `memory`, `throughput`, `oauth`, `instances`, `seed`, `stateless`,
//! the throughput section's stateless row alone, and `instructions`) runs those sections
//! alone, e.g. to profile one of them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common/mod.rs"]
#[allow(dead_code)]
mod common;
#[path = "support/floor.rs"]
mod floor;
#[path = "support/instances.rs"]
mod instances;
#[path = "support/instructions.rs"]
mod instructions;
#[path = "support/load.rs"]
mod load;
#[path = "support/previous.rs"]
mod previous;

use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use common::http::*;
use common::*;
use previous::{Previous, table};

/// The fake Codex's fixed cost per run, in ms: a realistic floor, and none at all
/// (which leaves only process start-up, so 2Bot's own cost shows best).
const COSTS_MS: [&str; 2] = ["50", "0"];

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn us(d: Duration) -> String {
    format!("{} µs", d.as_micros())
}

struct Row {
    what: String,
    p50: Duration,
    p99: Duration,
}

fn row(what: &str, mut samples: Vec<Duration>) -> Row {
    samples.sort();
    Row {
        what: what.to_owned(),
        p50: percentile(&samples, 0.5),
        p99: percentile(&samples, 0.99),
    }
}

/// The baseline: spawn the fake Codex as 2Bot would, prompt on stdin, read to EOF.
async fn direct(calls: usize, root: &std::path::Path, cost: &str) -> Result<Vec<Duration>> {
    let mut samples = Vec::with_capacity(calls);
    for _ in 0..calls {
        let t = Instant::now();
        let mut child = tokio::process::Command::new(fake_codex())
            .args(["exec", "--json", "-s", "read-only", "-C"])
            .arg(root)
            .args(["--ephemeral", "-"])
            .current_dir(root)
            .env("FAKE_CODEX_COST_MS", cost)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()?;
        let mut stdin = child.stdin.take().context("stdin")?;
        stdin.write_all(b"scenario:fixed").await?;
        drop(stdin);
        let mut out = Vec::new();
        child
            .stdout
            .take()
            .context("stdout")?
            .read_to_end(&mut out)
            .await?;
        child.wait().await?;
        anyhow::ensure!(out.windows(12).any(|w| w == b"fixed answer"));
        samples.push(t.elapsed());
    }
    Ok(samples)
}

fn bench_env(cost: &str) -> Vec<(String, String)> {
    let mut env = vec![
        ("FAKE_CODEX_COST_MS".into(), cost.into()),
        // No per-run recording in the fake: the baseline does none either.
        ("FAKE_CODEX_RECORD".into(), String::new()),
        ("TWOBOT_LOG_LEVEL".into(), "info".into()),
    ];
    // `BENCH_RUN_NAMESPACES=off` measures what each run's private namespaces cost.
    if let Ok(mode) = std::env::var("BENCH_RUN_NAMESPACES") {
        env.push(("TWOBOT_RUN_NAMESPACES".into(), mode));
    }
    // `BENCH_CODEX_BACKEND=app-server` measures the app-server runner's per-call cost.
    if let Ok(backend) = std::env::var("BENCH_CODEX_BACKEND") {
        env.push(("TWOBOT_CODEX_BACKEND".into(), backend));
    }
    env
}

/// Latencies seen by the client, 2Bot's own share of each (the latency minus the Codex
/// run's `duration_ms`, spawn to exit, as 2Bot measured it), and the server process's
/// CPU per call in µs (`/proc`; its children's not included): how much of the own time
/// is work, and how much waiting (wake-ups, the client).
type Timings = (Vec<Duration>, Vec<Duration>, f64);

fn own_share(latency: Duration, result: &rmcp::model::CallToolResult) -> Duration {
    let run = structured(result)["duration_ms"].as_u64().unwrap_or(0);
    latency.saturating_sub(Duration::from_millis(run))
}

async fn stdio_calls(calls: usize, cost: &str) -> Result<Timings> {
    let server = spawn_stdio(Options {
        env: bench_env(cost),
        ..Options::default()
    })
    .await?;
    let (mut samples, mut own) = (Vec::with_capacity(calls), Vec::with_capacity(calls));
    let cpu_before = cpu_us(server.pid).context("server cpu time")?;
    for _ in 0..calls {
        let t = Instant::now();
        let r = call(&server.client, json!({"prompt": "scenario:fixed"})).await?;
        let latency = t.elapsed();
        anyhow::ensure!(text(&r) == "fixed answer", "{}", text(&r));
        samples.push(latency);
        own.push(own_share(latency, &r));
    }
    let cpu = cpu_us(server.pid).context("server cpu time")? - cpu_before;
    server.client.cancel().await?;
    Ok((samples, own, cpu as f64 / calls.max(1) as f64))
}

/// The static token every benchmarked server accepts, and its `principal:token` pair.
const SECRET: &str = "tok-bench-0123456789";
const TOKEN: &str = "bench:tok-bench-0123456789";

fn http_env(cost: &str) -> Vec<(String, String)> {
    let mut env = bench_env(cost);
    env.extend([
        ("TWOBOT_ENABLE_NO_AUTH".into(), "false".into()),
        ("TWOBOT_AUTH_TOKENS".into(), TOKEN.into()),
        ("TWOBOT_RATE_LIMIT_PER_MINUTE".into(), "10000000".into()),
        ("TWOBOT_RATE_LIMIT_BURST".into(), "1000000".into()),
        ("TWOBOT_ADDRESS_RATE_PER_MINUTE".into(), "10000000".into()),
        ("TWOBOT_ADDRESS_RATE_BURST".into(), "1000000".into()),
        ("TWOBOT_MAX_CONNECTIONS_PER_ADDRESS".into(), "100000".into()),
    ]);
    env
}

async fn spawn_bench_http(extra: &[(&str, &str)]) -> Result<HttpServer> {
    spawn_bench_http_costing("50", extra).await
}

async fn spawn_bench_http_costing(cost: &str, extra: &[(&str, &str)]) -> Result<HttpServer> {
    let env = http_env(cost);
    let mut all: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    all.extend_from_slice(extra);
    spawn_http(&all).await
}

async fn http_calls(calls: usize, cost: &str, extra: &[(&str, &str)]) -> Result<Timings> {
    let server = spawn_bench_http_costing(cost, extra).await?;
    let client = http_client(&server.url, Some(SECRET)).await?;
    let pid = server.child.id().context("server pid")?;
    let (mut samples, mut own) = (Vec::with_capacity(calls), Vec::with_capacity(calls));
    let cpu_before = cpu_us(pid).context("server cpu time")?;
    for _ in 0..calls {
        let t = Instant::now();
        let r = call(&client, json!({"prompt": "scenario:fixed"})).await?;
        let latency = t.elapsed();
        anyhow::ensure!(text(&r) == "fixed answer", "{}", text(&r));
        samples.push(latency);
        own.push(own_share(latency, &r));
    }
    let cpu = cpu_us(pid).context("server cpu time")? - cpu_before;
    client.cancel().await?;
    Ok((samples, own, cpu as f64 / calls.max(1) as f64))
}

/// How the lean client calls: in a session without a progress token (as ChatGPT calls:
/// it sends none), the same with one (as the rmcp client always does, so 2Bot sends a
/// progress notification per Codex event), or as a 2026-07-28 stateless request.
#[derive(Clone, Copy, PartialEq)]
enum Lean {
    Session,
    Progress,
    Stateless,
}

impl Lean {
    const ALL: [Lean; 3] = [Lean::Session, Lean::Progress, Lean::Stateless];

    fn what(self) -> &'static str {
        match self {
            Lean::Session => "HTTP, a lean client, session, no progress token",
            Lean::Progress => "HTTP, a lean client, session, a progress token",
            Lean::Stateless => "HTTP, a lean client, stateless, no progress token",
        }
    }
}

/// A `tools/call` through a lean client ([`load::Connection`]: one keep-alive
/// connection, the body written by hand, the SSE answer's `data:` lines parsed once),
/// every layer on (auth, rate limits, tracing, and since 2026-12-07 the audit log and
/// the metrics as `observed` turns them on): the HTTP rows without the rmcp client's own
/// work, which the rmcp rows count as 2Bot's.
async fn lean_http_calls(
    calls: usize,
    cost: &str,
    how: Lean,
    observed: &[(&str, &str)],
) -> Result<Timings> {
    let server = spawn_bench_http_costing(cost, observed).await?;
    let pid = server.child.id().context("server pid")?;
    let mut headers = vec![
        ("content-type", "application/json".to_owned()),
        ("accept", "application/json, text/event-stream".to_owned()),
        ("authorization", format!("Bearer {SECRET}")),
    ];
    let meta = if how == Lean::Stateless {
        headers.extend([
            ("mcp-protocol-version", "2026-07-28".to_owned()),
            ("mcp-method", "tools/call".to_owned()),
            ("mcp-name", "run_codex_prompt".to_owned()),
        ]);
        json!({
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {},
            "io.modelcontextprotocol/clientInfo": {"name": "bench", "version": "0"}
        })
    } else {
        headers.extend([
            (
                "mcp-session-id",
                raw_session(&server.url, Some(SECRET)).await?,
            ),
            ("mcp-protocol-version", "2025-06-18".to_owned()),
        ]);
        json!({})
    };
    let mut connection = load::Connection::open(&server.url, &headers).await?;
    let (mut samples, mut own) = (Vec::with_capacity(calls), Vec::with_capacity(calls));
    let cpu_before = cpu_us(pid).context("server cpu time")?;
    for id in 0..calls {
        let mut meta = meta.clone();
        if how == Lean::Progress {
            meta["progressToken"] = json!(id);
        }
        let body = json!({
            "jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {
                "name": "run_codex_prompt",
                "arguments": {"prompt": "scenario:fixed"},
                "_meta": meta,
            }
        });
        let t = Instant::now();
        let answer = connection.post(body.to_string()).await?;
        let latency = t.elapsed();
        let answer = std::str::from_utf8(&answer)?;
        let result = answer
            .lines()
            .filter_map(|line| line.strip_prefix("data:"))
            .filter_map(|data| serde_json::from_str::<serde_json::Value>(data.trim()).ok())
            .chain(serde_json::from_str::<serde_json::Value>(answer).ok())
            .find_map(|message| message.get("result").cloned())
            .with_context(|| format!("no result in {answer}"))?;
        let progress = answer.matches("notifications/progress").count();
        anyhow::ensure!(
            (progress > 0) == (how == Lean::Progress),
            "{progress} progress notifications: {answer}"
        );
        let result: rmcp::model::CallToolResult = serde_json::from_value(result)?;
        anyhow::ensure!(text(&result) == "fixed answer", "{}", text(&result));
        samples.push(latency);
        own.push(own_share(latency, &result));
    }
    let cpu = cpu_us(pid).context("server cpu time")? - cpu_before;
    Ok((samples, own, cpu as f64 / calls.max(1) as f64))
}

/// `/healthz` round trips (no MCP, no run, no auth) through the lean client, back to
/// back and each after 50 ms of quiet: what waking an idle server and client costs on
/// this machine, which a call's own time pays once (the client waits out the run). A
/// bare axum "hello" server pays the same here (BENCHMARKS.md, "Issue 22: own time over
/// HTTP, measured without the client's work").
async fn idle_wake(rounds: usize) -> Result<(Vec<Duration>, Vec<Duration>)> {
    let server = spawn_bench_http(&[]).await?;
    let mut connection = load::Connection::open(&format!("{}/healthz", server.base), &[]).await?;
    let (mut back_to_back, mut after_quiet) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let t = Instant::now();
        connection.get().await?;
        back_to_back.push(t.elapsed());
    }
    for _ in 0..rounds {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let t = Instant::now();
        connection.get().await?;
        after_quiet.push(t.elapsed());
    }
    Ok((back_to_back, after_quiet))
}

async fn cold_stdio(runs: usize) -> Result<Vec<Duration>> {
    let mut samples = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        let server = spawn_stdio(Options {
            env: bench_env("50"),
            ..Options::default()
        })
        .await?;
        samples.push(t.elapsed());
        server.client.cancel().await?;
    }
    Ok(samples)
}

async fn cold_http(runs: usize) -> Result<Vec<Duration>> {
    let mut samples = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        let server = spawn_bench_http(&[]).await?;
        let response = post(&server.url, &initialize_body())
            .bearer_auth(SECRET)
            .send()
            .await?;
        anyhow::ensure!(response.status() == 200);
        let _ = response.text().await?;
        samples.push(t.elapsed());
    }
    Ok(samples)
}

/// Idle RSS, then peak RSS while 32 calls each stream 50 MB of Codex output.
async fn memory() -> Result<(u64, u64, Duration)> {
    let server = spawn_bench_http(&[
        ("TWOBOT_MAX_CONCURRENT_RUNS", "32"),
        ("TWOBOT_MAX_QUEUED_RUNS", "32"),
    ])
    .await?;
    let pid = server.child.id().context("pid")?;
    let client = Arc::new(http_client(&server.url, Some(SECRET)).await?);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let idle = current_rss_kib(pid).context("rss")?;
    let t = Instant::now();
    let mut calls = Vec::new();
    for _ in 0..32 {
        let client = client.clone();
        calls.push(tokio::spawn(async move {
            call(
                &client,
                json!({"prompt": "scenario:flood", "timeout_sec": 600}),
            )
            .await
        }));
    }
    for c in calls {
        let r = c.await??;
        anyhow::ensure!(text(&r) == "flood done", "{}", text(&r));
    }
    let took = t.elapsed();
    let peak = peak_rss_kib(pid).context("peak rss")?;
    Ok((idle, peak, took))
}

/// `tools/list` requests per second through every layer, from `clients` connections.
async fn throughput(
    clients: usize,
    for_how_long: Duration,
    extra: &[(&str, &str)],
) -> Result<Throughput> {
    let mut env = vec![("TWOBOT_LOG_LEVEL", "info")];
    env.extend_from_slice(extra);
    let server = spawn_bench_http(&env).await?;
    let pid = server.child.id().context("server pid")?;
    throughput_at(&server.url, pid, SECRET, clients, for_how_long).await
}

/// The server's CPU time so far (user + system), from `/proc/PID/stat`, in µs: per
/// request, it is the figure a busy machine disturbs least (requests/s halves when the
/// load generator and a build share the two cores; CPU per request barely moves).
fn cpu_us(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start at `state` (field 3).
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // USER_HZ is 100 on every Linux this runs on.
    Some(ticks * 10_000)
}

/// Requests per second, and the server's CPU µs per request.
type Throughput = (f64, f64);

/// A 2026-07-28 `tools/list`: no session, everything the server needs in the request.
fn stateless_tools_list(id: &str) -> String {
    json!({
        "jsonrpc": "2.0",
        "id": id,
        "method": "tools/list",
        "params": {"_meta": {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {},
            "io.modelcontextprotocol/clientInfo": {"name": "bench", "version": "0"}
        }}
    })
    .to_string()
}

/// The headers of a 2026-07-28 stateless `tools/list` with a bearer `token`.
fn stateless_headers(token: &str) -> [(&'static str, String); 5] {
    [
        ("content-type", "application/json".to_owned()),
        ("accept", "application/json, text/event-stream".to_owned()),
        ("mcp-protocol-version", "2026-07-28".to_owned()),
        ("mcp-method", "tools/list".to_owned()),
        ("authorization", format!("Bearer {token}")),
    ]
}

/// `tools/list` requests per second as 2026-07-28 stateless requests (no session, so
/// any instance behind a balancer can answer each), from `clients` connections to `url`.
async fn stateless_rps(
    url: &str,
    token: &str,
    clients: usize,
    for_how_long: Duration,
) -> Result<f64> {
    let headers = stateless_headers(token);
    let body: fn(usize, u64) -> String = |worker, n| stateless_tools_list(&format!("{worker}-{n}"));
    Ok(load::run(url, &headers, body, clients, for_how_long)
        .await?
        .per_second)
}

/// [`throughput`] (then its stateless row) with a token of the built-in authorization
/// server (an ES256 JWT checked
/// once by the verifier and its verdict remembered, its grant confirmed live once and then
/// answered from memory while the state file's change counter stays put); and the time
/// of the whole OAuth flow (register, authorize, sign-in with Argon2id, consent, token).
async fn builtin_oauth(
    clients: usize,
    for_how_long: Duration,
    flows: usize,
) -> Result<(Throughput, Throughput, Row)> {
    let server = common::oauth_builtin::Builtin::start(&[
        ("TWOBOT_LOG_LEVEL", "info"),
        ("TWOBOT_RATE_LIMIT_PER_MINUTE", "10000000"),
        ("TWOBOT_RATE_LIMIT_BURST", "1000000"),
        ("TWOBOT_ADDRESS_RATE_PER_MINUTE", "10000000"),
        ("TWOBOT_ADDRESS_RATE_BURST", "1000000"),
        ("TWOBOT_MAX_CONNECTIONS_PER_ADDRESS", "100000"),
    ])
    .await?;
    let mut samples = Vec::with_capacity(flows);
    let mut access = String::new();
    for _ in 0..flows {
        let t = Instant::now();
        let (_, tokens) = server.tokens().await?;
        samples.push(t.elapsed());
        access = tokens.access;
    }
    let pid = server.server.child.id().context("server pid")?;
    let rps = throughput_at(&server.server.url, pid, &access, clients, for_how_long).await?;
    let stateless = stateless_at(&server.server.url, pid, &access, clients, for_how_long).await?;
    Ok((
        rps,
        stateless,
        row("register → sign-in → consent → token", samples),
    ))
}

async fn throughput_at(
    url: &str,
    pid: u32,
    token: &str,
    clients: usize,
    for_how_long: Duration,
) -> Result<Throughput> {
    let session = raw_session(url, Some(token)).await?;
    let headers = [
        ("content-type", "application/json".to_owned()),
        ("accept", "application/json, text/event-stream".to_owned()),
        ("mcp-session-id", session),
        // What a client sends once the session negotiated its version.
        ("mcp-protocol-version", "2025-11-25".to_owned()),
        ("authorization", format!("Bearer {token}")),
    ];
    // JSON-RPC ids must be unique among a session's requests in flight.
    let body: fn(usize, u64) -> String = |worker, n| {
        json!({"jsonrpc": "2.0", "id": format!("{worker}-{n}"), "method": "tools/list"}).to_string()
    };
    let cpu_before = cpu_us(pid).context("server cpu time")?;
    let done = load::run(url, &headers, body, clients, for_how_long).await?;
    let cpu = cpu_us(pid).context("server cpu time")? - cpu_before;
    Ok((done.per_second, cpu as f64 / done.requests.max(1.0)))
}

#[tokio::main]
async fn main() -> Result<()> {
    if floor::serve_if_asked().await? {
        return Ok(());
    }
    // `cargo bench` passes `--bench`; a filter argument is ignored: everything runs.
    let calls: usize = std::env::var("BENCH_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let root = tempfile::tempdir()?;
    let root = root.path().canonicalize()?;
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("2Bot gateway benchmark: {calls} calls per latency row, {cores} cores\n");
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let wanted = |section: &str| only.is_empty() || only.split(',').any(|s| s.trim() == section);

    let previous = Previous::load();
    let mut call_rows = Vec::new();
    // Issue 12's operator features: an audit record per run and every metric, on.
    let audit_dir = tempfile::tempdir()?;
    let audit_path = audit_dir.path().join("audit.jsonl");
    let audit_path = audit_path.to_str().context("utf-8 temp path")?;
    let observed: [(&str, &str); 2] = [
        ("TWOBOT_AUDIT_LOG", audit_path),
        ("TWOBOT_METRICS_ADDR", "127.0.0.1:0"),
    ];
    let mut own_rows = Vec::new();
    let mut cpu_rows = Vec::new();
    for cost in COSTS_MS.into_iter().filter(|_| wanted("calls")) {
        // Warm the page cache and the shell before measuring.
        let _ = direct(5, &root, cost).await?;
        let base = row(
            &format!("{cost} ms: codex spawned directly"),
            direct(calls, &root, cost).await?,
        );
        let (stdio, stdio_own, stdio_cpu) = stdio_calls(calls, cost).await?;
        let (http, http_own, http_cpu) = http_calls(calls, cost, &[]).await?;
        let (observed_http, observed_own, observed_cpu) =
            http_calls(calls, cost, &observed).await?;
        let mut lean = Vec::new();
        for how in Lean::ALL {
            lean.push((how, lean_http_calls(calls, cost, how, &observed).await?));
        }
        for (what, cpu) in [
            ("stdio", stdio_cpu),
            ("HTTP (auth, rate limit, tracing)", http_cpu),
            ("HTTP + audit log + metrics", observed_cpu),
        ]
        .into_iter()
        .chain(lean.iter().map(|(how, (_, _, cpu))| (how.what(), *cpu)))
        {
            cpu_rows.push((format!("{cost} ms: {what}"), vec![format!("{cpu:.0} µs")]));
        }
        let stdio = row(&format!("{cost} ms: through 2Bot, stdio"), stdio);
        let http = row(
            &format!("{cost} ms: through 2Bot, HTTP (auth, rate limit, tracing)"),
            http,
        );
        own_rows.push(row(&format!("{cost} ms: stdio"), stdio_own));
        own_rows.push(row(
            &format!("{cost} ms: HTTP (auth, rate limit, tracing)"),
            http_own,
        ));
        own_rows.push(row(
            &format!("{cost} ms: HTTP + audit log + metrics"),
            observed_own,
        ));
        let observed_http = row(
            &format!("{cost} ms: through 2Bot, HTTP + audit log + metrics"),
            observed_http,
        );
        let mut lean_rows = Vec::new();
        for (how, (samples, own, _)) in lean {
            own_rows.push(row(&format!("{cost} ms: {}", how.what()), own));
            lean_rows.push(row(
                &format!("{cost} ms: through 2Bot, {}", how.what()),
                samples,
            ));
        }
        for r in [&base, &stdio, &http, &observed_http]
            .into_iter()
            .chain(lean_rows.iter())
        {
            let diff = r.p50.as_secs_f64() - base.p50.as_secs_f64();
            call_rows.push((
                r.what.clone(),
                vec![
                    ms(r.p50),
                    ms(r.p99),
                    format!("{:.3}x", r.p50.as_secs_f64() / base.p50.as_secs_f64()),
                    format!("{:+.1} ms", diff * 1000.0),
                ],
            ));
        }
    }
    if wanted("calls") {
        table(
            &previous,
            "per call (fake Codex of fixed cost)",
            &["p50", "p99", "p50 vs direct", "p50 difference"],
            &call_rows,
        );
        table(
            &previous,
            "2Bot's own time per call: client latency minus the Codex run's duration_ms",
            &["p50", "p99"],
            &latency_rows(&own_rows),
        );
        let (back_to_back, after_quiet) = idle_wake(calls).await?;
        table(
            &previous,
            "an HTTP round trip without MCP (GET /healthz, the lean client)",
            &["p50", "p99"],
            &[
                row("back to back", back_to_back),
                row("after 50 ms of quiet", after_quiet),
            ]
            .iter()
            .map(|r| (r.what.clone(), vec![us(r.p50), us(r.p99)]))
            .collect::<Vec<_>>(),
        );
        table(
            &previous,
            "2Bot's server CPU per call (/proc: user + system, its children not included)",
            &["mean"],
            &cpu_rows,
        );
    }
    if wanted("cold") {
        cold_starts(&previous).await?;
    }
    if wanted("memory") {
        memory_rows(&previous).await?;
    }
    if wanted("throughput") {
        throughput_rows(&previous, &observed).await?;
    }
    if only.split(',').any(|s| s.trim() == "stateless") {
        // Only when asked for by name (the throughput section has this row too): one
        // server, so `scripts/profile stateless` samples the right process.
        let stateless = stateless_throughput(16, Duration::from_secs(10)).await?;
        table(
            &previous,
            THROUGHPUT,
            &["requests/s", "server CPU per request"],
            &[throughput_row(
                "stateless (2026-07-28), a static token",
                stateless,
            )],
        );
    }
    if only.split(',').any(|s| s.trim() == "instructions") {
        // Only when asked for by name: it needs valgrind, and counts rather than times.
        instruction_rows(&previous).await?;
    }
    if wanted("oauth") {
        oauth_rows(&previous).await?;
    }
    if wanted("instances") {
        instances::rows(&previous, calls).await?;
    }
    if wanted("seed") {
        seed_rows(&previous).await?;
    }
    Ok(())
}

/// The seed stack's stand-in (the official Python SDK's FastMCP server with the seed's
/// tool and a static token) measured like 2Bot, one after the other in this run.
async fn seed_rows(previous: &Previous) -> Result<()> {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = repo.join(".venv/bin/python");
    anyhow::ensure!(
        python.exists(),
        "the Python SDK's venv is missing: run `bash scripts/test` once (it makes .venv)"
    );
    let (listener, port) = loopback_listener()?;
    // Python binds the port itself: released just before, the same race as nginx's.
    drop(listener);
    let token = SECRET;
    let mut child = tokio::process::Command::new(&python)
        .arg(repo.join("benches/support/seed_standin.py"))
        .arg(port.to_string())
        .arg(token)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let url = format!("http://127.0.0.1:{port}/mcp");
    let deadline = Instant::now() + Duration::from_secs(30);
    while raw_session(&url, Some(token)).await.is_err() {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the stand-in did not serve in 30 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let pid = child.id().context("stand-in pid")?;
    let for_how_long = Duration::from_secs(10);
    let seed = throughput_at(&url, pid, token, 16, for_how_long).await?;
    let seed_stateless = stateless_at(&url, pid, token, 16, for_how_long).await?;
    child.kill().await?;
    let twobot = throughput(16, for_how_long, &[]).await?;
    let twobot_stateless = stateless_throughput(16, for_how_long).await?;
    let floor = floor_throughput(16, for_how_long).await?;
    table(
        previous,
        "the seed stack's stand-in beside 2Bot: HTTP tools/list, static token, 16 connections, 10 s",
        &["requests/s", "server CPU per request"],
        &[
            throughput_row(
                "seed stand-in (Python SDK 2.3 MCPServer, uvicorn), one session",
                seed,
            ),
            throughput_row("2Bot (every layer on), one session", twobot),
            throughput_row(
                "seed stand-in (Python SDK 2.3 MCPServer, uvicorn), stateless (2026-07-28)",
                seed_stateless,
            ),
            throughput_row(
                "2Bot (every layer on), stateless (2026-07-28)",
                twobot_stateless,
            ),
            throughput_row(
                "the floor: bare axum answering 2Bot's bytes, no layer, stateless",
                floor,
            ),
        ],
    );
    for (what, seed, twobot) in [
        ("one session", seed, twobot),
        ("stateless", seed_stateless, twobot_stateless),
    ] {
        println!(
            "2Bot / seed stand-in, {what}: {:.1}x requests/s, {:.1}x less server CPU per request",
            twobot.0 / seed.0.max(1e-9),
            seed.1 / twobot.1.max(1e-9)
        );
    }
    println!(
        "the floor / seed stand-in, stateless: {:.1}x less server CPU per request (the most a server on this stack shows here); 2Bot costs {:.2}x the floor",
        seed_stateless.1 / floor.1.max(1e-9),
        twobot_stateless.1 / floor.1.max(1e-9)
    );
    println!();
    Ok(())
}

/// [`floor::Floor`]'s stateless throughput, answering the bytes 2Bot answers.
async fn floor_throughput(clients: usize, for_how_long: Duration) -> Result<Throughput> {
    let floor = floor::Floor::start(&stateless_answer().await?).await?;
    stateless_at(&floor.url, floor.pid()?, SECRET, clients, for_how_long).await
}

/// 2Bot's answer to a stateless `tools/list` with the id `"1"`: what the floor sends.
async fn stateless_answer() -> Result<bytes::Bytes> {
    let server = spawn_bench_http(&[]).await?;
    let mut connection = load::Connection::open(&server.url, &stateless_headers(SECRET)).await?;
    let answer = connection.post(stateless_tools_list("1")).await?;
    anyhow::ensure!(
        answer.starts_with(br#"{"jsonrpc":"2.0","id":"1","result":{"#),
        "2Bot's stateless tools/list answer: {}",
        String::from_utf8_lossy(&answer)
    );
    Ok(answer)
}

const INSTRUCTIONS: &str =
    "HTTP tools/list, stateless (2026-07-28), a static token: instructions per request (callgrind)";

/// `BENCH_ONLY=instructions`: 2Bot's stateless `tools/list` with every layer on, and the
/// floor's, in instructions per request (`support/instructions.rs` says why and how).
async fn instruction_rows(previous: &Previous) -> Result<()> {
    let headers = stateless_headers(SECRET);
    let body = |n: usize| stateless_tools_list(&n.to_string());
    let root = tempfile::tempdir()?;
    let home = tempfile::tempdir()?;
    let mut env = http_env("50");
    env.extend([
        ("TWOBOT_TRANSPORT".into(), "http".into()),
        ("CODEX_BIN".into(), fake_codex().display().to_string()),
        (
            "CODEX_ALLOWED_ROOTS".into(),
            root.path().display().to_string(),
        ),
        ("HOME".into(), home.path().display().to_string()),
    ]);
    let two_bot = instructions::Server {
        program: std::path::Path::new(env!("CARGO_BIN_EXE_2bot-mcp")),
        env,
        port: &|port| ("TWOBOT_PORT".into(), port.to_string()),
    };
    let ours = instructions::per_request(&two_bot, &headers, &body).await?;
    let answer = home.path().join("answer.json");
    std::fs::write(&answer, stateless_answer().await?)?;
    let exe = std::env::current_exe()?;
    let floor = instructions::Server {
        program: &exe,
        env: Vec::new(),
        port: &|port| (floor::SERVE.into(), format!("{port} {}", answer.display())),
    };
    let bare = instructions::per_request(&floor, &headers, &body).await?;
    table(
        previous,
        INSTRUCTIONS,
        &["instructions"],
        &[
            (
                "2Bot (every layer on)".to_owned(),
                vec![format!("{ours:.0}")],
            ),
            (
                "the floor: bare axum answering 2Bot's bytes, no layer".to_owned(),
                vec![format!("{bare:.0}")],
            ),
        ],
    );
    println!(
        "2Bot / the floor: {:.2}x the instructions per request",
        ours / bare
    );
    Ok(())
}

fn latency_rows(rows: &[Row]) -> Vec<(String, Vec<String>)> {
    rows.iter()
        .map(|r| (r.what.clone(), vec![ms(r.p50), ms(r.p99)]))
        .collect()
}

async fn cold_starts(previous: &Previous) -> Result<()> {
    let cold_s = row("stdio", cold_stdio(20).await?);
    let cold_h = row("HTTP", cold_http(20).await?);
    table(
        previous,
        "cold start to a served initialize",
        &["p50", "p99"],
        &latency_rows(&[cold_s, cold_h]),
    );
    Ok(())
}

async fn memory_rows(previous: &Previous) -> Result<()> {
    let (idle, peak, took) = memory().await?;
    let mib = |kib: u64| format!("{:.1} MiB", kib as f64 / 1024.0);
    table(
        previous,
        "server memory",
        &["RSS"],
        &[
            ("idle (HTTP, after initialize)".to_owned(), vec![mib(idle)]),
            (
                "peak, 32 concurrent calls each streaming 50 MB".to_owned(),
                vec![format!("{} ({:.1} s)", mib(peak), took.as_secs_f64())],
            ),
        ],
    );
    Ok(())
}

const THROUGHPUT: &str = "HTTP tools/list, auth + rate limit + tracing, 16 connections, 10 s";

fn throughput_row(label: &str, (rps, cpu): Throughput) -> (String, Vec<String>) {
    (
        label.to_owned(),
        vec![format!("{rps:.0}"), format!("{cpu:.1} µs")],
    )
}

async fn throughput_rows(previous: &Previous, observed: &[(&str, &str)]) -> Result<()> {
    let rps = throughput(16, Duration::from_secs(10), &[]).await?;
    let observed_rps = throughput(16, Duration::from_secs(10), observed).await?;
    let stateless = stateless_throughput(16, Duration::from_secs(10)).await?;
    table(
        previous,
        THROUGHPUT,
        &["requests/s", "server CPU per request"],
        &[
            throughput_row("one session, a static token", rps),
            throughput_row(
                "one session, a static token, audit log + metrics on",
                observed_rps,
            ),
            throughput_row("stateless (2026-07-28), a static token", stateless),
        ],
    );
    Ok(())
}

/// 2Bot's stateless `tools/list`, static token, every layer on.
async fn stateless_throughput(clients: usize, for_how_long: Duration) -> Result<Throughput> {
    let server = spawn_bench_http(&[]).await?;
    let pid = server.child.id().context("server pid")?;
    stateless_at(&server.url, pid, SECRET, clients, for_how_long).await
}

/// [`stateless_rps`] with the server's CPU per request.
async fn stateless_at(
    url: &str,
    pid: u32,
    token: &str,
    clients: usize,
    for_how_long: Duration,
) -> Result<Throughput> {
    let before = cpu_us(pid).context("server cpu time")?;
    let rps = stateless_rps(url, token, clients, for_how_long).await?;
    let spent = cpu_us(pid).context("server cpu time")? - before;
    let cpu = spent as f64 / (rps * for_how_long.as_secs_f64()).max(1.0);
    Ok((rps, cpu))
}

async fn oauth_rows(previous: &Previous) -> Result<()> {
    let (oauth_rps, stateless, flow) = builtin_oauth(16, Duration::from_secs(10), 10).await?;
    table(
        previous,
        THROUGHPUT,
        &["requests/s", "server CPU per request"],
        &[
            throughput_row(
                "one session, a built-in OAuth token (ES256 JWT + grant check)",
                oauth_rps,
            ),
            throughput_row(
                "stateless (2026-07-28), a built-in OAuth token (ES256 JWT + grant check)",
                stateless,
            ),
        ],
    );
    table(
        previous,
        "built-in authorization server, whole flow over loopback (10 flows)",
        &["p50", "p99"],
        &latency_rows(&[flow]),
    );
    Ok(())
}
