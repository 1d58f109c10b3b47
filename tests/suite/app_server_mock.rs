//! The mock Responses API's approval, patch and delay builders really drive the pinned
//! Codex 0.169 `codex app-server` (JSON-RPC over stdio) the way `docs/app-server-protocol.md`
//! says: an escalated command and a patch under read-only ask a person, the reply decides,
//! and a steer reaches the model's next request. A raw line driver, no 2Bot code involved,
//! so a change in Codex shows up here before it confuses the app-server runner's tests.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use crate::common::mock_responses::{
    MockResponses, add_file_patch, apply_patch, delay, exec_command_escalated, message,
};
use crate::common::real_codex;

/// One `codex app-server` child and every message it sent so far.
struct AppServer {
    _child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
    next_id: u64,
    seen: Vec<Value>,
}

impl AppServer {
    /// Start it against `mock`, initialize, and start an ephemeral thread in `cwd`.
    async fn start(mock: &MockResponses, home: &Path, cwd: &Path) -> Result<(Self, String)> {
        mock.write_codex_home(home)?;
        let mut child = Command::new(real_codex())
            .arg("app-server")
            .env("CODEX_HOME", home)
            .current_dir(cwd)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("spawn codex app-server (run `npm ci`)")?;
        let stdin = child.stdin.take().context("stdin")?;
        let stdout = child.stdout.take().context("stdout")?;
        let mut server = Self {
            _child: child,
            stdin,
            lines: BufReader::new(stdout).lines(),
            next_id: 1,
            seen: Vec::new(),
        };
        server
            .request(
                "initialize",
                json!({"clientInfo": {"name": "twobot-test", "version": "0"}}),
            )
            .await?;
        server.send(json!({"method": "initialized"})).await?;
        let started = server
            .request(
                "thread/start",
                json!({"cwd": cwd, "sandbox": "read-only", "approvalPolicy": "on-request",
                       "approvalsReviewer": "user", "ephemeral": true}),
            )
            .await?;
        let thread = started["thread"]["id"]
            .as_str()
            .context("thread id")?
            .to_owned();
        Ok((server, thread))
    }

    async fn send(&mut self, message: Value) -> Result<()> {
        self.stdin
            .write_all(format!("{message}\n").as_bytes())
            .await?;
        Ok(self.stdin.flush().await?)
    }

    /// Send a request and return its `result` (an `error` reply is an `Err`).
    async fn request(&mut self, method: &str, params: Value) -> Result<Value> {
        let id = self.next_id;
        self.next_id += 1;
        self.send(json!({"id": id, "method": method, "params": params}))
            .await?;
        let reply = self
            .until(|m| m["id"] == id && m.get("method").is_none())
            .await?;
        anyhow::ensure!(reply.get("error").is_none(), "{method} failed: {reply}");
        Ok(reply["result"].clone())
    }

    /// The next message matching `wanted` (all messages are kept in `seen`).
    async fn until(&mut self, wanted: impl Fn(&Value) -> bool) -> Result<Value> {
        loop {
            let line = tokio::time::timeout(Duration::from_secs(60), self.lines.next_line())
                .await
                .context("no message from codex app-server within 60 s")??
                .context("codex app-server closed its stdout")?;
            let message: Value = serde_json::from_str(&line)?;
            self.seen.push(message.clone());
            if wanted(&message) {
                return Ok(message);
            }
        }
    }

    async fn turn(&mut self, thread: &str, text: &str) -> Result<String> {
        let turn = self
            .request(
                "turn/start",
                json!({"threadId": thread, "input": [{"type": "text", "text": text}]}),
            )
            .await?;
        Ok(turn["turn"]["id"].as_str().context("turn id")?.to_owned())
    }

    /// Answer the next server request named `method` with `decision`; return its params.
    async fn answer(&mut self, method: &str, decision: &str) -> Result<Value> {
        let request = self
            .until(|m| m["method"] == method && m.get("id").is_some())
            .await?;
        self.send(json!({"id": request["id"], "result": {"decision": decision}}))
            .await?;
        Ok(request["params"].clone())
    }

    async fn completed(&mut self) -> Result<Value> {
        let done = self.until(|m| m["method"] == "turn/completed").await?;
        Ok(done["params"]["turn"].clone())
    }

    /// The last `item/completed` item of `kind`.
    fn item(&self, kind: &str) -> Option<&Value> {
        self.seen
            .iter()
            .rev()
            .filter(|m| m["method"] == "item/completed")
            .map(|m| &m["params"]["item"])
            .find(|i| i["type"] == kind)
    }
}

/// Accepting the escalated command's approval runs it, even under read-only: the file
/// lands and its output comes back as a completed `commandExecution`.
#[tokio::test]
async fn an_accepted_escalated_command_runs_and_reports_its_output() -> Result<()> {
    let mock = MockResponses::start(vec![
        vec![exec_command_escalated(
            "echo approved > ran.txt; echo twobot-approved",
            "May I write ran.txt?",
        )],
        vec![message("ran it")],
    ])
    .await?;
    let (home, cwd) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let (mut server, thread) = AppServer::start(&mock, home.path(), cwd.path()).await?;
    server.turn(&thread, "run it").await?;
    let asked = server
        .answer("item/commandExecution/requestApproval", "accept")
        .await?;
    assert_eq!(asked["reason"], "May I write ran.txt?", "{asked}");
    assert!(
        asked["command"]
            .as_str()
            .is_some_and(|c| c.contains("echo approved"))
    );
    let turn = server.completed().await?;
    assert_eq!(turn["status"], "completed", "{turn}");
    assert!(
        cwd.path().join("ran.txt").exists(),
        "the accepted command did not run"
    );
    let command = server
        .item("commandExecution")
        .context("no commandExecution")?;
    assert_eq!(command["status"], "completed", "{command}");
    assert_eq!(command["aggregatedOutput"], "twobot-approved\n");
    assert_eq!(
        server.item("agentMessage").context("no message")?["text"],
        "ran it"
    );
    Ok(())
}

/// A declined patch writes nothing, its `fileChange` ends `declined`, and the model's next
/// request says the user rejected it.
#[tokio::test]
async fn a_declined_patch_writes_nothing_and_the_model_is_told() -> Result<()> {
    let mock = MockResponses::start(vec![
        vec![apply_patch(&add_file_patch("hello.txt", &["hello"]))],
        vec![message("ok, not writing")],
    ])
    .await?;
    let (home, cwd) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let (mut server, thread) = AppServer::start(&mock, home.path(), cwd.path()).await?;
    server.turn(&thread, "write hello").await?;
    server
        .answer("item/fileChange/requestApproval", "decline")
        .await?;
    let turn = server.completed().await?;
    assert_eq!(turn["status"], "completed", "{turn}");
    assert!(
        !cwd.path().join("hello.txt").exists(),
        "a declined patch was written"
    );
    let change = server.item("fileChange").context("no fileChange")?;
    assert_eq!(change["status"], "declined", "{change}");
    let last = mock.requests().last().context("no request")?["input"].to_string();
    assert!(last.contains("patch rejected by user"), "{last}");
    Ok(())
}

/// A `turn/steer` sent while the model is still answering reaches its next request.
#[tokio::test]
async fn a_steer_message_reaches_the_models_next_request() -> Result<()> {
    let mock = MockResponses::start(vec![
        vec![delay(2_000), message("first answer")],
        vec![message("steered answer")],
    ])
    .await?;
    let (home, cwd) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let (mut server, thread) = AppServer::start(&mock, home.path(), cwd.path()).await?;
    let turn = server.turn(&thread, "start work").await?;
    mock.wait_for_requests(1, Duration::from_secs(30)).await?;
    server
        .request(
            "turn/steer",
            json!({"threadId": thread, "expectedTurnId": turn,
                   "input": [{"type": "text", "text": "also mention bananas"}]}),
        )
        .await?;
    let done = server.completed().await?;
    assert_eq!(done["status"], "completed", "{done}");
    let requests = mock.wait_for_requests(2, Duration::from_secs(5)).await?;
    assert!(
        requests[1]["input"]
            .to_string()
            .contains("also mention bananas"),
        "{:#}",
        requests[1]["input"]
    );
    Ok(())
}

/// An accepted patch is written and its unified diff arrives as `turn/diff/updated`.
#[tokio::test]
async fn an_accepted_patch_is_written_and_its_diff_is_reported() -> Result<()> {
    let mock = MockResponses::start(vec![
        vec![apply_patch(&add_file_patch(
            "hello.txt",
            &["hello patched"],
        ))],
        vec![message("patched")],
    ])
    .await?;
    let (home, cwd) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let (mut server, thread) = AppServer::start(&mock, home.path(), cwd.path()).await?;
    server.turn(&thread, "write hello").await?;
    let asked = server
        .answer("item/fileChange/requestApproval", "accept")
        .await?;
    let change = server.item("fileChange").cloned();
    let started = server
        .seen
        .iter()
        .find(|m| m["method"] == "item/started" && m["params"]["item"]["type"] == "fileChange")
        .context("no fileChange item before the request")?;
    assert_eq!(started["params"]["item"]["id"], asked["itemId"], "{asked}");
    assert!(
        change.is_none(),
        "the change completed before it was approved"
    );
    let turn = server.completed().await?;
    assert_eq!(turn["status"], "completed", "{turn}");
    let written = std::fs::read_to_string(cwd.path().join("hello.txt"))?;
    assert_eq!(written, "hello patched\n");
    let diff = server
        .seen
        .iter()
        .rev()
        .find(|m| m["method"] == "turn/diff/updated")
        .context("no turn/diff/updated")?;
    let diff = diff["params"]["diff"].as_str().unwrap_or_default();
    // Paths are relative to the nearest ancestor holding a `.git` (Codex's sandbox leaves an
    // empty one in /tmp), else to cwd: so only the file name is certain.
    assert!(
        diff.lines()
            .any(|l| l.starts_with("+++ b/") && l.ends_with("hello.txt"))
            && diff.contains("\n+hello patched\n"),
        "{diff}"
    );
    Ok(())
}

/// `turn/interrupt` while the model is held back by [`delay`] ends the turn `interrupted`
/// at once, and the same app-server then runs the next turn.
#[tokio::test]
async fn an_interrupted_turn_ends_at_once_and_the_server_stays_usable() -> Result<()> {
    let mock = MockResponses::start(vec![
        vec![delay(60_000), message("too late")],
        vec![message("second turn ok")],
    ])
    .await?;
    let (home, cwd) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let (mut server, thread) = AppServer::start(&mock, home.path(), cwd.path()).await?;
    let turn = server.turn(&thread, "go").await?;
    mock.wait_for_requests(1, Duration::from_secs(30)).await?;
    let asked = std::time::Instant::now();
    server
        .request(
            "turn/interrupt",
            json!({"threadId": thread, "turnId": turn}),
        )
        .await?;
    let done = server.completed().await?;
    assert_eq!(done["status"], "interrupted", "{done}");
    assert!(
        asked.elapsed() < Duration::from_secs(10),
        "{:?}",
        asked.elapsed()
    );
    server.turn(&thread, "again").await?;
    let again = server.completed().await?;
    assert_eq!(again["status"], "completed", "{again}");
    assert_eq!(
        server.item("agentMessage").context("no message")?["text"],
        "second turn ok"
    );
    Ok(())
}
