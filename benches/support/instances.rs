//! `BENCH_ONLY=instances`: what the shared store and a balancer cost (issue 21). Three
//! set-ups, each measured the same way with 2026-07-28 stateless requests (no session, so
//! any instance may answer each):
//!
//! - one instance on PostgreSQL, called directly;
//! - the same instance behind nginx (what the balancer alone adds);
//! - three instances on one PostgreSQL behind round-robin nginx.
//!
//! For each: `tools/list` requests/s from 16 keep-alive connections for 10 s, and the
//! latency of `run_codex_prompt` with the 50 ms fake Codex, one call at a time. On a
//! 2-core machine three instances share the same two cores as the one, nginx and the
//! load generator, so the figures show the cost of the design, not a scale-out gain.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use serde_json::{Value, json};

use super::common::cluster::{Balancer, Cluster, StaticTokens};
use super::previous::{Previous, table};
use super::{Row, ms, row, stateless_rps};

const PEOPLE: StaticTokens = StaticTokens(&["bench"]);
const TOKEN: &str = "tok-bench";

/// Limits out of the way: the bench measures the stack, not its refusals.
const UNLIMITED: &[(&str, &str)] = &[
    ("TWOBOT_LOG_LEVEL", "info"),
    ("FAKE_CODEX_COST_MS", "50"),
    ("FAKE_CODEX_RECORD", ""),
    ("TWOBOT_RATE_LIMIT_PER_MINUTE", "10000000"),
    ("TWOBOT_RATE_LIMIT_BURST", "1000000"),
    ("TWOBOT_ADDRESS_RATE_PER_MINUTE", "10000000"),
    ("TWOBOT_ADDRESS_RATE_BURST", "1000000"),
    ("TWOBOT_MAX_CONNECTIONS_PER_ADDRESS", "100000"),
];

/// One stateless `run_codex_prompt` of the fixed-cost fake; its JSON-RPC result (the
/// answer may come as JSON or as one SSE event).
async fn stateless_call(http: &reqwest::Client, url: &str, id: usize) -> Result<Value> {
    let body = json!({
        "jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": {
            "name": "run_codex_prompt",
            "arguments": {"prompt": "scenario:fixed"},
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientCapabilities": {},
                "io.modelcontextprotocol/clientInfo": {"name": "bench", "version": "0"}
            }
        }
    });
    let response = http
        .post(url)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", "run_codex_prompt")
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await?;
    ensure!(
        response.status() == 200,
        "tools/call: {}",
        response.status()
    );
    let text = response.text().await?;
    let message = text
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(str::trim)
        .chain(std::iter::once(text.trim()))
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|m| m.get("id").is_some())
        .with_context(|| format!("no JSON-RPC answer in {text}"))?;
    let result = message
        .get("result")
        .with_context(|| format!("{message}"))?;
    ensure!(
        result["isError"] != true && result["structuredContent"]["final_message"] == "fixed answer",
        "{result}"
    );
    Ok(result.clone())
}

/// `calls` stateless calls to `url`, one at a time (after 5 to warm up): their latencies.
async fn latencies(url: &str, calls: usize) -> Result<Vec<Duration>> {
    let http = reqwest::Client::new();
    for id in 0..5 {
        stateless_call(&http, url, id).await?;
    }
    let mut samples = Vec::with_capacity(calls);
    for id in 0..calls {
        let t = Instant::now();
        stateless_call(&http, url, 100 + id).await?;
        samples.push(t.elapsed());
    }
    Ok(samples)
}

/// Both figures for one set-up: (label, requests/s) and its latency row.
async fn measure(label: &str, url: &str, calls: usize) -> Result<((String, f64), Row)> {
    let rps = stateless_rps(url, TOKEN, 16, Duration::from_secs(10)).await?;
    let latency = row(label, latencies(url, calls).await?);
    Ok(((label.to_owned(), rps), latency))
}

pub async fn rows(previous: &Previous, calls: usize) -> Result<()> {
    let mut figures = Vec::new();
    {
        let one = Cluster::start(1, &PEOPLE, UNLIMITED).await?;
        let member = one.members.first().context("one member")?;
        figures.push(measure("one instance on PostgreSQL, direct", &member.mcp(), calls).await?);
        let balancer = Balancer::start(&[member.port]).await?;
        figures.push(
            measure(
                "one instance on PostgreSQL, behind nginx",
                &balancer.mcp(),
                calls,
            )
            .await?,
        );
    }
    let three = Cluster::start(3, &PEOPLE, UNLIMITED).await?;
    let ports: Vec<u16> = three.members.iter().map(|m| m.port).collect();
    let balancer = Balancer::start(&ports).await?;
    figures.push(
        measure(
            "three instances on one PostgreSQL, behind round-robin nginx",
            &balancer.mcp(),
            calls,
        )
        .await?,
    );

    table(
        previous,
        "several instances: stateless tools/list, static token, 16 connections, 10 s",
        &["requests/s"],
        &figures
            .iter()
            .map(|((label, rps), _)| (label.clone(), vec![format!("{rps:.0}")]))
            .collect::<Vec<_>>(),
    );
    table(
        previous,
        "several instances: stateless run_codex_prompt, 50 ms fake Codex, one at a time",
        &["p50", "p99"],
        &figures
            .iter()
            .map(|(_, r)| (r.what.clone(), vec![ms(r.p50), ms(r.p99)]))
            .collect::<Vec<_>>(),
    );
    Ok(())
}
