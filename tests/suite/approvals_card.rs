//! Approvals in the MCP Apps run card (issue 20), the way a person meets them: headless
//! Chromium shows the card of a background app-server run inside a test host page
//! (`tests/run_card/approve.mjs`, the official MCP client and ext-apps AppBridge, wired
//! to the real binary over HTTP with the fake Codex); the pending request shows its
//! command and cwd, and the person's click decides whether the command runs.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::Value;

use crate::common::http::spawn_http;
use crate::common::programs::{APT_CHROMIUM, APT_NODE, NPM_CI, require};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// What the card showed and the run's final snapshot.
struct Clicked {
    marker_exists: bool,
    last: Value,
    screenshot: Option<Vec<u8>>,
}

/// Start a background run asking to `touch` a marker, click `button` in the card.
/// Fails naming the install command when Chromium, node or playwright-core is missing.
async fn click_in_card(button: &str) -> Result<Clicked> {
    let chromium = require(&["chromium", "/usr/bin/chromium"], "chromium", APT_CHROMIUM)?;
    let node = require(&["node"], "node", APT_NODE)?;
    require(
        &[&repo("node_modules/playwright-core").display().to_string()],
        "playwright-core",
        NPM_CI,
    )?;
    let server = spawn_http(&[
        ("TWOBOT_ENABLE_BACKGROUND_RUNS", "true"),
        ("TWOBOT_CODEX_BACKEND", "app-server"),
        // Codex runs an approved command unsandboxed: only this ceiling lets a person
        // be asked at all (src/policy/approvals.rs).
        ("TWOBOT_ALLOW_DANGER_FULL_ACCESS", "true"),
    ])
    .await?;
    let root = server.record.parent().context("base")?.join("root");
    let marker = root.join("approved-by-card");
    let command = format!("touch {}", marker.display());
    let shots = tempfile::tempdir()?;
    let shot = shots.path().join("approval-pending.png");
    let mut cmd = tokio::process::Command::new(node);
    cmd.arg(repo("tests/run_card/approve.mjs"))
        .current_dir(repo(""))
        .env("TWOBOT_URL", &server.url)
        .env("CHROMIUM", &chromium)
        .env("PROMPT", format!("scenario:approve_command {command}"))
        .env("COMMAND", &command)
        .env("CWD", &root)
        .env("CLICK", button)
        .env("SCREENSHOT", &shot)
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(300), cmd.output())
        .await
        .context("the browser test host did not finish in 300 s")??;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the browser checks failed:\n{stdout}\n{}\nserver log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(&server.log).unwrap_or_default()
    );
    let lines: Vec<Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let passed = lines.iter().filter(|l| l["ok"] == true).count();
    assert!(passed >= 4, "only {passed} checks ran:\n{stdout}");
    let last = lines
        .iter()
        .find_map(|l| l.get("final").cloned())
        .context("the final snapshot")?;
    Ok(Clicked {
        marker_exists: marker.exists(),
        last,
        screenshot: std::fs::read(&shot).ok(),
    })
}

/// Approve in the card runs the command; the result records a card accept. The card
/// while the request is pending is the README's screenshot (`TWOBOT_SCREENSHOT_DIR`
/// set: written there as approval-pending.png).
#[tokio::test]
async fn the_card_shows_a_pending_command_with_its_cwd_and_its_approve_click_runs_it() -> Result<()>
{
    let clicked = click_in_card("Approve").await?;
    let result = &clicked.last["result"];
    assert!(
        clicked.marker_exists,
        "the approved command did not run: {result}"
    );
    assert_eq!(clicked.last["status"], "completed", "{}", clicked.last);
    assert_eq!(result["approvals"][0]["decision"], "accept", "{result}");
    assert_eq!(result["approvals"][0]["channel"], "card", "{result}");
    let png = clicked.screenshot.context("the screenshot")?;
    assert!(png.starts_with(b"\x89PNG"), "{} bytes", png.len());
    if let Some(dir) = std::env::var_os("TWOBOT_SCREENSHOT_DIR") {
        std::fs::write(Path::new(&dir).join("approval-pending.png"), &png)?;
    }
    Ok(())
}

/// Deny in the card declines: the command never runs and the result says who declined.
#[tokio::test]
async fn a_deny_click_in_the_card_keeps_the_command_from_running() -> Result<()> {
    let clicked = click_in_card("Deny").await?;
    let result = &clicked.last["result"];
    assert!(!clicked.marker_exists, "the denied command ran: {result}");
    assert_eq!(result["approvals"][0]["decision"], "decline", "{result}");
    assert_eq!(result["approvals"][0]["channel"], "card", "{result}");
    assert_eq!(result["commands"][0]["status"], "declined", "{result}");
    Ok(())
}
