//! A real Prometheus scrapes 2Bot: the exposition passes `promtool check metrics`, and
//! after a few calls Prometheus's own HTTP API answers `twobot_runs_total`. The scrape
//! config is the shipped `deploy/prometheus/prometheus.yml` (target and interval
//! substituted). `scripts/test` installs Debian's `prometheus` package.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use crate::common::http::*;
use crate::common::programs::{APT_PROMETHEUS, require};
use crate::common::*;

/// The port Prometheus, started on port 0, says it listens on (its `msg="Listening on"`
/// line names the bound address): a port nothing else can have taken in between.
async fn listening_port(log: &Path) -> Result<u16> {
    let logged = |text: &str| -> Option<u16> {
        text.lines()
            .filter(|l| l.contains("msg=\"Listening on\""))
            .find_map(|l| l.rsplit_once("address=127.0.0.1:"))
            .and_then(|(_, rest)| rest.split_whitespace().next()?.parse().ok())
    };
    let text = file_when(log, |t| logged(t).is_some()).await?;
    logged(&text).context("no listening address")
}

struct KillOnDrop(tokio::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.start_kill();
    }
}

/// promtool accepts the exposition, and Prometheus scraping it with the shipped config
/// reports the runs 2Bot made.
#[tokio::test]
async fn a_real_prometheus_scrapes_the_runs_with_the_shipped_config() -> Result<()> {
    let prometheus = require(
        &["prometheus", "/usr/bin/prometheus"],
        "prometheus",
        APT_PROMETHEUS,
    )?;
    let promtool = require(
        &["promtool", "/usr/bin/promtool"],
        "promtool",
        APT_PROMETHEUS,
    )?;
    let server = spawn_http(&[("TWOBOT_METRICS_ADDR", "127.0.0.1:0")]).await?;
    let metrics = metrics_url(&server.log).await?;
    let client = http_client(&server.url, None).await?;
    for _ in 0..3 {
        let r = call(&client, json!({"prompt": "scenario:ok"})).await?;
        assert_eq!(r.is_error, Some(false), "{}", text(&r));
    }
    let refused = call(&client, json!({"prompt": "scenario:ok", "cwd": "/etc"})).await?;
    assert_eq!(refused.is_error, Some(true));

    // promtool: the exposition is well-formed and lint-clean.
    let exposition = reqwest::get(&metrics).await?.text().await?;
    let mut check = tokio::process::Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    check
        .stdin
        .take()
        .context("promtool stdin")?
        .write_all(exposition.as_bytes())
        .await?;
    let out = check.wait_with_output().await?;
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics: {}{}\n{exposition}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // The shipped scrape config, pointed at this server, scraping every second.
    let shipped = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/prometheus/prometheus.yml"),
    )?;
    let target = metrics
        .trim_start_matches("http://")
        .trim_end_matches("/metrics");
    assert!(shipped.contains("127.0.0.1:9464") && shipped.contains("scrape_interval: 15s"));
    let config = shipped
        .replace("127.0.0.1:9464", target)
        .replace("scrape_interval: 15s", "scrape_interval: 1s");
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("prometheus.yml"), config)?;
    let log = dir.path().join("prometheus.log");
    let _prometheus = KillOnDrop(
        tokio::process::Command::new(&prometheus)
            .arg(format!(
                "--config.file={}",
                dir.path().join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg("--web.listen-address=127.0.0.1:0")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .kill_on_drop(true)
            .spawn()
            .context("start prometheus")?,
    );
    let port = listening_port(&log).await?;

    let query = format!(
        "http://127.0.0.1:{port}/api/v1/query?query=sum(twobot_runs_total{{outcome=\"ok\",path=\"direct\"}})"
    );
    let mut last = Value::Null;
    for _ in 0..120 {
        if let Ok(resp) = reqwest::get(&query).await
            && let Ok(body) = resp.json::<Value>().await
        {
            let value = body["data"]["result"][0]["value"][1]
                .as_str()
                .and_then(|v| v.parse::<f64>().ok());
            if value == Some(3.0) {
                return Ok(());
            }
            last = body;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    anyhow::bail!(
        "Prometheus never reported 3 direct ok runs; last answer: {last}\nprometheus log:\n{}",
        std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default()
    )
}

/// The shipped Grafana dashboard queries only metric names 2Bot exposes.
#[test]
fn the_shipped_dashboard_graphs_only_metrics_the_server_exposes() -> Result<()> {
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/grafana/2bot-dashboard.json"),
    )?)?;
    let m = twobot::metrics::metrics();
    // The one family whose labels are open (status codes) appears with its first response.
    m.http_requests
        .get_or_create(&twobot::metrics::StatusLabels { status: 200 })
        .inc();
    let exposition = m.encode();
    let panels = dashboard["panels"].as_array().context("panels")?;
    assert!(
        panels.len() >= 8,
        "runs, latency, refusals, queue depth at least"
    );
    let mut names = Vec::new();
    for panel in panels {
        for target in panel["targets"].as_array().context("targets")? {
            let expr = target["expr"].as_str().context("expr")?;
            let mut rest = expr;
            while let Some(i) = rest.find("twobot_") {
                let name: String = rest[i..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                rest = &rest[i + name.len()..];
                names.push(name);
            }
        }
    }
    assert!(!names.is_empty());
    for name in names {
        assert!(
            exposition.contains(&format!("\n{name}{{"))
                || exposition.contains(&format!("\n{name} ")),
            "the dashboard queries {name}, which 2Bot does not expose"
        );
    }
    Ok(())
}
