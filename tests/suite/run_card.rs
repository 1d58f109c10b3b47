//! The MCP Apps run card (issue 15), the way a user meets it: headless Chromium shows
//! the view 2Bot serves inside a test host page whose host side of the bridge is the
//! official `@modelcontextprotocol/ext-apps` AppBridge, wired to the real binary over
//! HTTP with the fake Codex (`tests/run_card/host.mjs` drives it and checks the DOM).
//! And a client without MCP Apps sees exactly what it saw before.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use rmcp::model::{ReadResourceRequestParams, ResourceContents};
use serde_json::Value;

use crate::common::http::spawn_http;
use crate::common::programs::{APT_CHROMIUM, APT_NODE, NPM_CI, require};
use crate::common::*;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// Progress appears live, completion renders, Cancel (by keyboard) stops the run and
/// every process it started, a hostile final message stays inert; the screenshot of
/// the finished card is what README shows (`TWOBOT_BLESS=1` writes docs/run-card.png).
#[tokio::test]
async fn a_browser_host_shows_the_card_live_cancels_from_it_and_keeps_hostile_output_inert()
-> Result<()> {
    let chromium = require(&["chromium", "/usr/bin/chromium"], "chromium", APT_CHROMIUM)?;
    let node = require(&["node"], "node", APT_NODE)?;
    require(
        &[&repo("node_modules/playwright-core").display().to_string()],
        "playwright-core",
        NPM_CI,
    )?;
    let server = spawn_http(&[
        ("TWOBOT_ENABLE_BACKGROUND_RUNS", "true"),
        ("FAKE_CODEX_STEPS", "6"),
    ])
    .await?;
    let shot_dir = tempfile::tempdir()?;
    let shot = shot_dir.path().join("run-card.png");
    let mut cmd = tokio::process::Command::new(node);
    cmd.arg(repo("tests/run_card/host.mjs"))
        .current_dir(repo(""))
        .env("TWOBOT_URL", &server.url)
        .env("CHROMIUM", &chromium)
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
    assert!(passed >= 15, "only {passed} checks ran:\n{stdout}");

    // Cancel in the card stopped Codex and the command it had started.
    let hang = recorded(&server.record)?
        .into_iter()
        .find(|r| r.stdin.starts_with("scenario:hang"))
        .context("the hang run was recorded")?;
    for file in ["codex.pid", "grandchild.pid"] {
        let pid = wait_for_run_pid(&hang.dir.join(file), Duration::from_secs(10)).await?;
        assert!(
            gone_within(&pid, Duration::from_secs(20)).await,
            "{file} {pid:?} outlived the cancel"
        );
    }

    let png = std::fs::read(&shot)?;
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{} bytes",
        png.len()
    );
    if std::env::var_os("TWOBOT_BLESS").is_some() {
        std::fs::write(repo("docs/run-card.png"), &png)?;
    }
    Ok(())
}

/// A plain client (no MCP Apps) gets today's result: the answer as text and the
/// structured output, nothing about the card; the card is only one more resource.
#[tokio::test]
async fn a_client_without_mcp_apps_gets_the_plain_result_and_the_card_only_as_a_resource()
-> Result<()> {
    let server = spawn_stdio(Options::default()).await?;
    let result = call(&server.client, serde_json::json!({ "prompt": "hello" })).await?;
    assert_eq!(text(&result), "fake answer");
    assert_eq!(result.content.len(), 1);
    assert_eq!(structured(&result)["final_message"], "fake answer");
    assert!(result.meta.is_none(), "{:?}", result.meta);

    let info = server.client.peer_info().context("server info")?;
    let caps = serde_json::to_value(&info.capabilities)?;
    assert!(
        caps["extensions"]["io.modelcontextprotocol/ui"].is_object(),
        "{caps}"
    );
    let listed = server.client.list_all_resources().await?;
    assert_eq!(listed.len(), 1);
    // Content-hashed, so a changed card is never served from a host's cache; the tool
    // links the same URI, and it reads back.
    let uri = listed[0].uri.clone();
    assert!(
        uri.starts_with("ui://2bot/run-card-")
            && uri.len() == "ui://2bot/run-card-.html".len() + 12,
        "{uri}"
    );
    let tools = serde_json::to_value(server.client.list_all_tools().await?)?;
    assert_eq!(tools[0]["_meta"]["ui"]["resourceUri"], uri.as_str());
    assert_eq!(tools[0]["_meta"]["openai/outputTemplate"], uri.as_str());
    let read = server
        .client
        .read_resource(ReadResourceRequestParams::new(uri.clone()))
        .await?;
    // The first, unhashed URI still reads (hosts that cached the old link).
    let old = server
        .client
        .read_resource(ReadResourceRequestParams::new("ui://2bot/run-card.html"))
        .await?;
    assert_eq!(
        serde_json::to_value(&old.contents[0])?["text"],
        serde_json::to_value(&read.contents[0])?["text"]
    );
    let ResourceContents::TextResourceContents {
        mime_type, text, ..
    } = &read.contents[0]
    else {
        anyhow::bail!("the card is text");
    };
    assert_eq!(mime_type.as_deref(), Some("text/html;profile=mcp-app"));
    assert!(text.len() <= 150 * 1024 && text.contains("ui/initialize"));
    let unknown = server
        .client
        .read_resource(ReadResourceRequestParams::new("ui://2bot/secrets.html"))
        .await
        .expect_err("only the card is served");
    assert!(
        unknown
            .to_string()
            .contains("unknown resource: ui://2bot/secrets.html"),
        "{unknown}"
    );
    server.client.cancel().await?;
    Ok(())
}
