//! Interactive runs with the REAL pinned Codex 0.169 on the app-server backend, offline
//! against the mock Responses API (issue 20): through the real binary and an rmcp client
//! over stdio that declares elicitation and answers as a person would. An accepted
//! escalated command runs with its output in the result, a declined one does not; an
//! accepted patch under read-only is written and its diff is in the result; a steer
//! reaches the model's next request; a cancel ends a delayed turn and leaves no process.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use rmcp::model::{CallToolRequestParams, CallToolResult, ElicitRequestParams, ElicitResult};
use rmcp::service::{RequestContext, RunningService};
use rmcp::transport::TokioChildProcess;
use rmcp::{ClientHandler, ErrorData, RoleClient, ServiceExt};
use serde_json::{Value, json};

use crate::common::mock_responses::{
    MockResponses, add_file_patch, apply_patch, delay, exec_command_escalated, message,
};
use crate::common::{codex_leftovers, real_codex, structured, text};

/// A client that declared form elicitation and answers every dialog with `reply`.
#[derive(Clone)]
struct Person {
    reply: Value,
    seen: Arc<Mutex<Vec<String>>>,
}

impl ClientHandler for Person {
    fn get_info(&self) -> rmcp::model::ClientConfig {
        let mut info = rmcp::model::ClientConfig::default();
        if let Ok(caps) = serde_json::from_value(json!({"elicitation": {"form": {}}})) {
            info.capabilities = caps;
        }
        info
    }

    async fn create_elicitation(
        &self,
        request: ElicitRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, ErrorData> {
        let shown = serde_json::to_value(&request).unwrap_or_default()["message"].to_string();
        self.seen.lock().unwrap().push(shown);
        serde_json::from_value(self.reply.clone())
            .map_err(|e| ErrorData::internal_error(e.to_string(), None))
    }
}

struct Server {
    client: RunningService<RoleClient, Person>,
    person: Person,
    root: PathBuf,
    record: PathBuf,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

/// `2bot-mcp` on app-server with the real Codex pointed at `mock`, and a person answering
/// `reply`; `danger` lets a command approval reach the person (src/policy/approvals.rs).
async fn start(mock: &MockResponses, reply: Value, danger: bool) -> Result<Server> {
    let codex = real_codex();
    assert!(
        codex.exists(),
        "{} is missing: run `npm ci`",
        codex.display()
    );
    let (home, tmp) = (tempfile::tempdir()?, tempfile::tempdir()?);
    mock.write_codex_home(home.path())?;
    let base = tmp.path().canonicalize()?;
    let (root, record) = (base.join("root"), base.join("record"));
    std::fs::create_dir_all(&root)?;
    std::fs::create_dir_all(&record)?;
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_2bot-mcp"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env(
            "HOME",
            std::env::var("HOME").unwrap_or_else(|_| "/tmp".into()),
        )
        .env("CODEX_BIN", &codex)
        .env("CODEX_HOME", home.path())
        .env("CODEX_ALLOWED_ROOTS", &root)
        .env("FAKE_CODEX_RECORD", &record)
        .env("TWOBOT_STATE_DIR", base.join("state"))
        .env("TWOBOT_CODEX_BACKEND", "app-server")
        .env("TWOBOT_ENABLE_BACKGROUND_RUNS", "true")
        .env("TWOBOT_ALLOW_DANGER_FULL_ACCESS", danger.to_string())
        .current_dir(&base);
    let (transport, _) = TokioChildProcess::builder(cmd)
        .stderr(std::fs::File::create(base.join("server.log"))?)
        .spawn()?;
    let person = Person {
        reply,
        seen: Arc::default(),
    };
    let client = person.clone().serve(transport).await?;
    Ok(Server {
        client,
        person,
        root,
        record,
        _dirs: (home, tmp),
    })
}

impl Server {
    async fn tool(&self, name: &'static str, args: Value) -> Result<CallToolResult> {
        let Value::Object(map) = args else {
            anyhow::bail!("arguments must be an object");
        };
        let params = CallToolRequestParams::new(name).with_arguments(map);
        Ok(self.client.call_tool(params).await?)
    }

    /// Start a background run and return its id.
    async fn background(&self, prompt: &str) -> Result<String> {
        let started = self
            .tool(
                "run_codex_prompt",
                json!({"prompt": prompt, "background": true, "skip_git_repo_check": true,
                       "timeout_sec": 120}),
            )
            .await?;
        Ok(structured(&started)["run_id"]
            .as_str()
            .with_context(|| text(&started))?
            .to_owned())
    }

    /// Long-poll `get_codex_run` until the run is no longer working.
    async fn finished(&self, run_id: &str) -> Result<Value> {
        for _ in 0..12 {
            let got = self
                .tool("get_codex_run", json!({"run_id": run_id, "wait_sec": 10}))
                .await?;
            let s = structured(&got);
            if s["status"] != "working" {
                return Ok(s);
            }
        }
        anyhow::bail!("run {run_id} still working after 120 s")
    }
}

fn accept() -> Value {
    json!({"action": "accept", "content": {"approve": true}})
}

/// Ask for an escalated command that writes ran.txt, answered `reply`.
async fn escalated(reply: Value) -> Result<(Value, bool, Vec<String>)> {
    let mock = MockResponses::start(vec![
        vec![exec_command_escalated(
            "echo approved > ran.txt; echo twobot-approved",
            "May I write ran.txt?",
        )],
        vec![message("done")],
    ])
    .await?;
    let server = start(&mock, reply, true).await?;
    let result = server
        .tool(
            "run_codex_prompt",
            json!({"prompt": "write ran.txt", "sandbox": "workspace-write",
                   "approval_policy": "on-request", "allow_edits": true,
                   "skip_git_repo_check": true, "timeout_sec": 120}),
        )
        .await?;
    let ran = server.root.join("ran.txt").exists();
    let seen = server.person.seen.lock().unwrap().clone();
    server.client.cancel().await?;
    Ok((structured(&result), ran, seen))
}

/// A person's accept in the elicitation dialog runs the real Codex's escalated command,
/// and its output is in the result; the dialog showed the command and Codex's reason.
#[tokio::test]
async fn an_accepted_elicitation_runs_the_real_codex_command_and_returns_its_output() -> Result<()>
{
    let (s, ran, seen) = escalated(accept()).await?;
    assert!(ran, "the accepted command did not run: {s:#}");
    assert_eq!(s["approvals"][0]["decision"], "accept", "{s:#}");
    assert_eq!(s["approvals"][0]["channel"], "elicitation", "{s:#}");
    let output = s["commands"][0]["output"].as_str().unwrap_or_default();
    assert!(output.contains("twobot-approved"), "{s:#}");
    assert!(
        seen.len() == 1 && seen[0].contains("echo approved") && seen[0].contains("ran.txt?"),
        "{seen:?}"
    );
    Ok(())
}

/// A person's decline keeps the command from running, and the result says so.
#[tokio::test]
async fn a_declined_elicitation_keeps_the_real_codex_command_from_running() -> Result<()> {
    let (s, ran, seen) = escalated(json!({"action": "decline"})).await?;
    assert!(!ran, "the declined command ran: {s:#}");
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(s["approvals"][0]["decision"], "decline", "{s:#}");
    assert_eq!(s["approvals"][0]["channel"], "elicitation", "{s:#}");
    Ok(())
}

/// Under a read-only run (ceiling workspace-write) Codex asks before writing inside cwd;
/// accepted, the file is written and the result's `diff` shows it.
#[tokio::test]
async fn an_accepted_patch_under_read_only_is_written_and_its_diff_is_in_the_result() -> Result<()>
{
    let mock = MockResponses::start(vec![
        vec![apply_patch(&add_file_patch(
            "hello.txt",
            &["hello patched"],
        ))],
        vec![message("patched")],
    ])
    .await?;
    let server = start(&mock, accept(), false).await?;
    let result = server
        .tool(
            "run_codex_prompt",
            json!({"prompt": "write hello", "sandbox": "read-only",
                   "approval_policy": "on-request", "skip_git_repo_check": true,
                   "timeout_sec": 120}),
        )
        .await?;
    let s = structured(&result);
    let written = std::fs::read_to_string(server.root.join("hello.txt")).unwrap_or_default();
    assert_eq!(written, "hello patched\n", "{s:#}");
    assert_eq!(s["approvals"][0]["decision"], "accept", "{s:#}");
    assert_eq!(s["approvals"][0]["request"]["type"], "file_change", "{s:#}");
    let diff = s["diff"].as_str().unwrap_or_default();
    assert!(
        diff.contains("hello.txt") && diff.contains("+hello patched"),
        "{s:#}"
    );
    server.client.cancel().await?;
    Ok(())
}

/// `steer_codex_run` on a background run whose model answer is held back reaches the
/// model's next request.
#[tokio::test]
async fn a_steer_reaches_the_real_codex_models_next_request() -> Result<()> {
    let mock = MockResponses::start(vec![
        vec![delay(3_000), message("first answer")],
        vec![message("steered answer")],
    ])
    .await?;
    let server = start(&mock, accept(), false).await?;
    let run_id = server.background("start work").await?;
    mock.wait_for_requests(1, Duration::from_secs(60)).await?;
    let steered = server
        .tool(
            "steer_codex_run",
            json!({"run_id": run_id, "message": "also mention bananas"}),
        )
        .await?;
    assert_ne!(steered.is_error, Some(true), "{}", text(&steered));
    let done = server.finished(&run_id).await?;
    assert_eq!(done["status"], "completed", "{done:#}");
    let requests = mock.wait_for_requests(2, Duration::from_secs(10)).await?;
    assert!(
        requests[1]["input"]
            .to_string()
            .contains("also mention bananas"),
        "{:#}",
        requests[1]["input"]
    );
    server.client.cancel().await?;
    Ok(())
}

/// `cancel_codex_run` during a turn the model holds back ends the run at once and
/// leaves no Codex process behind.
#[tokio::test]
async fn cancelling_a_real_codex_turn_ends_it_and_leaves_no_process() -> Result<()> {
    let mock = MockResponses::start(vec![vec![delay(90_000), message("too late")]]).await?;
    let server = start(&mock, accept(), false).await?;
    let run_id = server.background("start work").await?;
    mock.wait_for_requests(1, Duration::from_secs(60)).await?;
    assert!(
        !codex_leftovers(&server.record).is_empty(),
        "the check must see the running Codex"
    );
    let asked = std::time::Instant::now();
    let cancelled = server
        .tool("cancel_codex_run", json!({"run_id": run_id}))
        .await?;
    assert_eq!(
        structured(&cancelled)["status"],
        "cancelled",
        "{}",
        text(&cancelled)
    );
    let done = server.finished(&run_id).await?;
    assert_eq!(done["status"], "cancelled", "{done:#}");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !codex_leftovers(&server.record).is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let left = codex_leftovers(&server.record);
    assert!(
        left.is_empty(),
        "Codex processes outlived the cancel: {left:?}"
    );
    assert!(
        asked.elapsed() < Duration::from_secs(30),
        "{:?}",
        asked.elapsed()
    );
    server.client.cancel().await?;
    Ok(())
}
