//! The README's example log filter (`TWOBOT_LOG_LEVEL`, the one in its settings table),
//! on the real binary: it keeps 2Bot's own lines — "listening", its warnings, "stopped" —
//! which the binary logs under the library's target, `twobot`.

use std::time::Duration;

use anyhow::{Context, Result};

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
