//! The README's commands and client snippets, run as printed.
//!
//! A fenced block after `<!-- ci: run -->` is run line by line (`\` continues a line) through
//! `bash -c`; after `<!-- ci: codex-config -->` it is a Codex `config.toml` that the real
//! Codex must read; after `<!-- ci: mcp-json -->` it is a client's `mcpServers` JSON that the
//! MCP Inspector must start. Nothing in a command is rewritten: the test only builds the
//! world the README assumes — `2bot-mcp` and `codex` on `PATH`, a `HOME` whose `src` is the allowed root,
//! and a `~/.codex/config.toml` pointing the real Codex (which `npx` puts first on `PATH`)
//! at the offline mock Responses API. Every marked command must have an expectation here,
//! so a new one cannot slip in unchecked.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::common::mock_responses::{MockResponses, message};
use crate::common::programs::{NPM_CI, require};

/// README commands that cannot run offline, and why; printed so a reader sees what is not covered.
const SKIPPED: &[(&str, &str)] = &[
    (
        "cargo install --path .",
        "builds and installs into ~/.cargo/bin",
    ),
    (
        "npm install -g @openai/codex@0.169.0",
        "needs the npm registry",
    ),
    ("codex login", "needs an OpenAI account"),
    ("claude mcp add", "Claude Code is not a test dependency"),
    (
        "MCP_TOOL_TIMEOUT=1800000 claude",
        "Claude Code needs an Anthropic account",
    ),
    (
        "curl -s https://mcp.example.com",
        "needs a public deployment",
    ),
];

/// Each marked block in the README: its marker and its lines.
fn marked_blocks(readme: &str) -> Vec<(String, String)> {
    let mut blocks = Vec::new();
    let mut lines = readme.lines();
    while let Some(line) = lines.next() {
        let Some(kind) = line
            .trim()
            .strip_prefix("<!-- ci: ")
            .and_then(|r| r.strip_suffix(" -->"))
        else {
            continue;
        };
        let fence = lines.next().unwrap_or_default();
        assert!(
            fence.starts_with("```"),
            "a ci marker must precede a fence: {fence}"
        );
        let body: Vec<&str> = lines
            .by_ref()
            .take_while(|l| !l.starts_with("```"))
            .collect();
        blocks.push((kind.to_owned(), body.join("\n")));
    }
    blocks
}

/// A shell block's commands (a `\`-continued command kept as printed), comments and blanks dropped.
fn commands(block: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in block.lines() {
        if line.ends_with('\\') {
            current.push_str(line);
            current.push('\n');
            continue;
        }
        current.push_str(line);
        let command = std::mem::take(&mut current);
        let code = command
            .split(" #")
            .next()
            .unwrap_or_default()
            .trim()
            .to_owned();
        if !code.is_empty() && !code.starts_with('#') {
            out.push(command.trim().to_owned());
        }
    }
    out
}

/// The world the README assumes, in temp directories.
struct World {
    _dir: tempfile::TempDir,
    home: PathBuf,
    path: String,
}

impl World {
    fn new(mock: &MockResponses) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let home = dir.path().canonicalize()?.join("home");
        std::fs::create_dir_all(home.join("src"))?;
        mock.write_codex_home(&home.join(".codex"))?;
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin)?;
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_2bot-mcp"), bin.join("2bot-mcp"))?;
        // The Install section's `npm install -g @openai/codex@0.169.0`, from `npm ci`.
        std::os::unix::fs::symlink(crate::common::real_codex(), bin.join("codex"))?;
        let path = format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        Ok(Self {
            _dir: dir,
            home,
            path,
        })
    }

    /// `command` through `bash -c` in the repository, as a user in this world runs it.
    /// Success, stdout, and stdout followed by stderr.
    async fn run(&self, command: &str, extra: &[(&str, &Path)]) -> Result<(bool, String, String)> {
        let mut cmd = tokio::process::Command::new("bash");
        cmd.arg("-c")
            .arg(command)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env_clear()
            .env("PATH", &self.path)
            .env("HOME", &self.home)
            .env("npm_config_update_notifier", "false")
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let out = tokio::time::timeout(Duration::from_secs(240), cmd.output())
            .await
            .with_context(|| format!("{command} did not finish in 240 s"))??;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let text = format!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
        Ok((out.status.success(), stdout, text))
    }
}

/// What a `ci: run` command must print; every such command needs an entry.
fn expectation(command: &str) -> Option<&'static str> {
    [
        ("npx --yes @modelcontextprotocol/inspector@2.12.0 --cli 2bot-mcp --method tools/list", "\"run_codex_prompt\""),
        ("npx --yes @modelcontextprotocol/inspector@2.12.0 --cli -e CODEX_ALLOWED_ROOTS=$HOME/src 2bot-mcp", "hello from the mock model"),
        ("2bot-mcp doctor", "[ok  ] codex:"),
        ("2bot-mcp --print-config", "CODEX_ALLOWED_ROOTS"),
    ]
    .into_iter()
    .find(|(prefix, _)| command.starts_with(prefix))
    .map(|(_, want)| want)
}

#[tokio::test]
async fn every_marked_readme_command_and_snippet_works_as_printed() -> Result<()> {
    require(
        &[&Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("node_modules/.bin/codex")
            .display()
            .to_string()],
        "the real Codex and the MCP Inspector",
        NPM_CI,
    )?;
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))?;
    let blocks = marked_blocks(&readme);
    let mock = MockResponses::start(vec![vec![message("hello from the mock model")]]).await?;
    let world = World::new(&mock)?;
    for (command, why) in SKIPPED {
        eprintln!("not covered offline: {command}: {why}");
    }
    let mut ran = Vec::new();
    for (kind, body) in &blocks {
        match kind.as_str() {
            "run" => {
                for command in commands(body) {
                    let want = expectation(&command)
                        .with_context(|| format!("no expectation for README command {command}"))?;
                    let (ok, _, text) = world.run(&command, &[]).await?;
                    assert!(ok, "README command failed: {command}\n{text}");
                    assert!(
                        text.contains(want),
                        "{command} must print {want:?}:\n{text}"
                    );
                    ran.push(command);
                }
            }
            "codex-config" => {
                let codex_home = tempfile::tempdir()?;
                std::fs::write(codex_home.path().join("config.toml"), body)?;
                let (ok, stdout, text) = world
                    .run(
                        "codex mcp get 2bot --json",
                        &[("CODEX_HOME", codex_home.path())],
                    )
                    .await?;
                assert!(ok, "Codex refuses the README's config.toml:\n{text}");
                let got: Value = serde_json::from_str(&stdout)
                    .with_context(|| format!("codex mcp get --json: {text}"))?;
                assert_eq!(got["tool_timeout_sec"], 1800.0, "{got:#}");
                assert_eq!(got["transport"]["command"], "2bot-mcp", "{got:#}");
                ran.push("codex mcp get 2bot (README config.toml)".to_owned());
            }
            "mcp-json" => {
                let root = world.home.join("src");
                let snippet = body.replace("/home/me/src", &root.display().to_string());
                let file = world.home.join("mcp.json");
                std::fs::write(&file, snippet)?;
                let (ok, _, text) = world
                    .run(
                        "node_modules/.bin/mcp-inspector --cli --config \"$SNIPPET\" --server 2bot --method tools/list",
                        &[("SNIPPET", &file)],
                    )
                    .await?;
                assert!(
                    ok,
                    "the Inspector cannot start the README's JSON config:\n{text}"
                );
                for tool in ["run_codex_prompt", "get_codex_run", "cancel_codex_run"] {
                    assert!(
                        text.contains(&format!("\"{tool}\"")),
                        "{tool} listed:\n{text}"
                    );
                }
                ran.push("mcp-inspector --config (README mcpServers JSON)".to_owned());
            }
            other => bail!("unknown README ci marker {other:?}"),
        }
    }
    eprintln!("ran as printed: {ran:#?}");
    assert!(
        ran.len() >= 6,
        "the README's marked commands were found: {ran:?}"
    );
    Ok(())
}
