//! The README's example log filter (`TWOBOT_LOG_LEVEL`, the one in its settings table),
//! on the real binary: it keeps 2Bot's own lines — "listening", its warnings, "stopped" —
//! which the binary logs under the library's target, `twobot`. And a request's lines in
//! the plain-text log: its span in plain text, with no terminal escape codes.

use std::time::Duration;

use anyhow::{Context, Result};

use crate::common::file_when;
use crate::common::http::*;

/// The filter directives the README gives as its example for `TWOBOT_LOG_LEVEL`.
fn readme_example() -> Result<String> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))?;
    let row = readme
        .lines()
        .find(|l| l.starts_with("| `TWOBOT_LOG_LEVEL` |"))
        .context("the README's TWOBOT_LOG_LEVEL row")?;
    let (_, after) = row
        .split_once("filter directives such as `")
        .context("the row gives an example filter")?;
    Ok(after
        .split('`')
        .next()
        .context("the example is quoted")?
        .to_owned())
}

/// With the README's example filter the server's "listening" line, its start-up
/// warning and its "stopped" line all reach the log.
#[tokio::test]
async fn the_readmes_example_log_filter_keeps_2bots_own_lines() -> Result<()> {
    let filter = readme_example()?;
    assert!(
        filter.contains("twobot="),
        "the example names 2Bot: {filter}"
    );
    // No HOME and no state directory: the binary warns that thread owners stay in memory.
    let mut server = spawn_http(&[("TWOBOT_LOG_LEVEL", filter.as_str())]).await?;
    let pid = nix::unistd::Pid::from_raw(i32::try_from(server.child.id().context("pid")?)?);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM)?;
    let status = tokio::time::timeout(Duration::from_secs(30), server.child.wait()).await??;
    assert!(status.success(), "{status}");
    let log = std::fs::read_to_string(&server.log)?;
    for line in ["listening", "no TWOBOT_STATE_DIR and no HOME", "stopped"] {
        assert!(
            log.contains(line),
            "{line:?} is missing with TWOBOT_LOG_LEVEL={filter}:\n{log}"
        );
    }
    Ok(())
}

/// A line logged while a request is served carries that request's span in plain text:
/// the method, the path, the caller's `x-request-id` and the principal auth found, with
/// no terminal escape code anywhere (the log is a file or the journal, not a terminal).
#[tokio::test]
async fn a_requests_log_lines_carry_its_span_in_plain_text() -> Result<()> {
    let server = spawn_http(&[
        ("TWOBOT_ENABLE_NO_AUTH", "false"),
        ("TWOBOT_AUTH_TOKENS", "alice:tok-alice-0123456789"),
        ("TWOBOT_LOG_LEVEL", "info,tower_http=debug"),
    ])
    .await?;
    let response = post(&server.url, &initialize_body())
        .bearer_auth("tok-alice-0123456789")
        .header("x-request-id", "probe-7f3a")
        .send()
        .await?;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok()),
        Some("probe-7f3a")
    );
    let _ = response.text().await?;
    let finished =
        |l: &&str| l.contains("request_id=probe-7f3a") && l.contains("finished processing");
    let log = file_when(&server.log, |log| log.lines().any(|l| finished(&l))).await?;
    let line = log
        .lines()
        .find(finished)
        .context("the request's finished line")?;
    assert!(
        line.contains(r#"http{method=POST path=/mcp request_id=probe-7f3a principal="alice"}"#),
        "{line}"
    );
    assert!(!log.contains('\x1b'), "an escape code in the log:\n{log}");
    Ok(())
}
