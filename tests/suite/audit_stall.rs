//! The audit log never holds up the server: its file is written by a thread of its own,
//! so a log whose disk (or, here, whose FIFO's reader) stops taking writes delays only
//! that thread, and every record still lands, in order, by the time the server exits.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::{Value, json};

use crate::common::http::*;
use crate::common::*;

/// A FIFO whose reader reads nothing stands for a stalled disk: once the pipe is full
/// (64 KiB), every write to it blocks. Refused calls (one audit record each) fill it
/// several times over; the server must still answer at once, and the records must all
/// arrive once the reader reads again and the server stops.
#[tokio::test]
async fn a_stalled_audit_log_never_holds_up_calls_and_loses_nothing_at_exit() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let fifo = dir.path().join("audit.fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600))?;
    // Held open (so the server's open does not wait for a reader), read later.
    let reader = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(&fifo)?;
    let mut server = spawn_http(&[
        ("TWOBOT_AUDIT_LOG", fifo.to_str().context("utf-8 path")?),
        ("TWOBOT_ADDRESS_RATE_BURST", "100000"),
        ("TWOBOT_RATE_LIMIT_BURST", "100000"),
        ("TWOBOT_LOG_LEVEL", "warn"),
    ])
    .await?;
    let client = http_client(&server.url, None).await?;
    let long = "n".repeat(200);
    let calls = 400;
    let started = Instant::now();
    for i in 0..calls {
        // Outside the allowed roots: refused by policy, one audit record of ~1 KB each.
        let refused = tokio::time::timeout(
            Duration::from_secs(10),
            call(
                &client,
                json!({"prompt": "p", "cwd": format!("/nope/{i}/{long}"), "model": long}),
            ),
        )
        .await
        .with_context(|| format!("call {i} waited for the stalled audit log"))??;
        assert_eq!(refused.is_error, Some(true), "{}", text(&refused));
    }
    let health = tokio::time::timeout(
        Duration::from_secs(5),
        reqwest::get(format!("{}/healthz", server.base)),
    )
    .await
    .context("/healthz waited for the stalled audit log")??;
    assert_eq!(health.status(), 200);
    let took = started.elapsed();

    // The reader reads again; SIGTERM; the server writes what it queued, then exits 0.
    let drain = std::thread::spawn(move || -> std::io::Result<String> {
        let mut reader = reader;
        nix::fcntl::fcntl(
            &reader,
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::empty()),
        )?;
        let mut all = String::new();
        reader.read_to_string(&mut all)?;
        Ok(all)
    });
    client.cancel().await?;
    let pid = nix::unistd::Pid::from_raw(server.child.id().context("pid")? as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM)?;
    let status = tokio::time::timeout(Duration::from_secs(30), server.child.wait()).await??;
    assert!(status.success(), "{status}");
    let all = drain
        .join()
        .map_err(|_| anyhow::anyhow!("the reader panicked"))??;
    let records: Vec<Value> = all
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .context("every audit line is whole JSON")?;
    let refused: Vec<&Value> = records
        .iter()
        .filter(|r| r["outcome"] == "refused")
        .collect();
    assert_eq!(
        refused.len(),
        calls,
        "{} records in {took:?}",
        records.len()
    );
    for (i, record) in refused.iter().enumerate() {
        let cwd = record["cwd"].as_str().unwrap_or_default();
        assert!(cwd.starts_with(&format!("/nope/{i}/")), "in order: {cwd}");
    }
    assert!(
        all.len() > 4 * 64 * 1024,
        "the records filled the pipe several times over: {} bytes",
        all.len()
    );
    Ok(())
}
