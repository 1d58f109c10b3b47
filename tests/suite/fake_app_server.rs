//! A self-check of the fake `codex app-server` (`tests/fixtures/fake-codex-app-server`),
//! driven over its stdio with no 2Bot in between: the app-server backend's suites are
//! only as good as this fake, so its wire behaviour, its approvals, steering and
//! interrupt, and the exec argv it translates each turn into are pinned here.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use crate::common::*;

const LIMIT: Duration = Duration::from_secs(20);

/// One fake app server on stdio, in a temp cwd, recording into a temp directory.
struct AppServer {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Lines<BufReader<ChildStdout>>,
    next_id: u64,
    cwd: PathBuf,
    record: PathBuf,
    _tmp: tempfile::TempDir,
}

impl AppServer {
    async fn start(args: &[&str]) -> Result<Self> {
        let tmp = tempfile::tempdir()?;
        let base = tmp.path().canonicalize()?;
        let (cwd, record) = (base.join("work"), base.join("record"));
        std::fs::create_dir_all(&cwd)?;
        std::fs::create_dir_all(&record)?;
        let mut child = Command::new(fake_codex())
            .args(args)
            .env("FAKE_CODEX_RECORD", &record)
            .current_dir(&cwd)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            // What the exec fake prints there (exit_nonzero) is not this check's concern.
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        let stdin = child.stdin.take();
        let lines = BufReader::new(child.stdout.take().context("stdout")?).lines();
        Ok(Self {
            child,
            stdin,
            lines,
            next_id: 1,
            cwd,
            record,
            _tmp: tmp,
        })
    }

    /// Started, initialized, with one thread started by `params`; returns the thread id.
    async fn with_thread(args: &[&str], params: Value) -> Result<(Self, String)> {
        let mut server = Self::start(args).await?;
        let init = server
            .request(
                "initialize",
                json!({"clientInfo": {"name": "t", "version": "1"}}),
            )
            .await?;
        anyhow::ensure!(init["result"]["userAgent"].is_string(), "{init}");
        server.send(json!({"method": "initialized"})).await?;
        let started = server.request("thread/start", params).await?;
        let thread = started["result"]["thread"]["id"]
            .as_str()
            .context("thread id")?;
        Ok((server, thread.to_owned()))
    }

    async fn send(&mut self, message: Value) -> Result<()> {
        let stdin = self.stdin.as_mut().context("stdin closed")?;
        stdin.write_all(format!("{message}\n").as_bytes()).await?;
        Ok(stdin.flush().await?)
    }

    /// The next message the server writes.
    async fn next(&mut self) -> Result<Value> {
        let line = tokio::time::timeout(LIMIT, self.lines.next_line())
            .await
            .context("no message in time")??
            .context("the server closed stdout")?;
        Ok(serde_json::from_str(&line)?)
    }

    /// Messages up to and including the first `wanted` one.
    async fn until(&mut self, wanted: impl Fn(&Value) -> bool) -> Result<Vec<Value>> {
        let mut seen = Vec::new();
        loop {
            let message = self.next().await?;
            let done = wanted(&message);
            seen.push(message);
            if done {
                return Ok(seen);
            }
        }
    }

    /// A request and its response (notifications before it are dropped).
    async fn request(&mut self, method: &str, params: Value) -> Result<Value> {
        let id = self.next_id;
        self.next_id += 1;
        self.send(json!({"id": id, "method": method, "params": params}))
            .await?;
        let seen = self
            .until(|m| m["id"] == id && m.get("method").is_none())
            .await?;
        Ok(seen.last().cloned().unwrap_or_default())
    }

    /// `turn/start` with one text input; returns the turn id.
    async fn turn(&mut self, thread: &str, text: &str) -> Result<String> {
        let r = self
            .request(
                "turn/start",
                json!({"threadId": thread, "input": [{"type": "text", "text": text}]}),
            )
            .await?;
        assert_eq!(r["result"]["turn"]["status"], "inProgress", "{r}");
        Ok(r["result"]["turn"]["id"]
            .as_str()
            .context("turn id")?
            .to_owned())
    }
}

fn method(name: &'static str) -> impl Fn(&Value) -> bool {
    move |m| m["method"] == name
}

/// The `text` of every completed agentMessage among `seen`.
fn answers(seen: &[Value]) -> Vec<String> {
    seen.iter()
        .filter(|m| {
            m["method"] == "item/completed" && m["params"]["item"]["type"] == "agentMessage"
        })
        .filter_map(|m| m["params"]["item"]["text"].as_str().map(str::to_owned))
        .collect()
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

/// The pins every run gets with no writable roots, and who reviews approvals.
const PINS: &str = "-c sandbox_workspace_write.writable_roots=[]";
const USER: &str = "-c approvals_reviewer=\"user\"";

#[tokio::test]
async fn a_plain_turn_runs_the_exec_fake_and_ends_with_its_answer_and_a_completed_turn()
-> Result<()> {
    let (mut server, thread) = AppServer::with_thread(&["app-server"], json!({})).await?;
    assert!(thread.starts_with("fake-thread-"), "{thread}");
    let turn = server.turn(&thread, "scenario:ok please").await?;
    let seen = server.until(method("turn/completed")).await?;
    assert_eq!(answers(&seen), ["fake answer"]);
    let done = seen.last().context("turn/completed")?;
    assert_eq!(done["params"]["turn"]["id"], turn.as_str());
    assert_eq!(done["params"]["turn"]["status"], "completed", "{done}");
    let usage = seen
        .iter()
        .find(|m| m["method"] == "thread/tokenUsage/updated");
    assert_eq!(
        usage.context("token usage")?["params"]["tokenUsage"]["total"]["inputTokens"],
        120
    );
    let command = seen
        .iter()
        .find(|m| {
            m["method"] == "item/completed" && m["params"]["item"]["type"] == "commandExecution"
        })
        .context("a command item")?;
    assert_eq!(command["params"]["item"]["aggregatedOutput"], "a.txt\n");
    // The exec fake ran with what 2Bot's exec backend passes, the prompt on stdin only.
    let run = only_run(&server.record)?;
    let cwd = server.cwd.display().to_string();
    assert_eq!(
        run.argv.join(" "),
        format!("exec --json -s read-only -C {cwd} {PINS} -c approval_policy=\"never\" {USER} -")
    );
    assert_eq!(run.stdin, "scenario:ok please");
    assert_eq!(run.cwd, cwd);
    Ok(())
}

/// Every option of a thread and a turn reaches the exec fake as the flag 2Bot's exec
/// backend would pass (src/codex/command.rs), for a new thread, a resume and a review.
#[tokio::test]
async fn thread_and_turn_options_become_the_exec_backends_argv_for_new_resumed_and_review_runs()
-> Result<()> {
    let roots = r#"sandbox_workspace_write.writable_roots=["/srv/a","/srv/b"]"#;
    let args = [
        "-p",
        "fast",
        "app-server",
        "-c",
        roots,
        "-c",
        "skip_git_repo_check=true",
    ];
    let params = json!({"sandbox": "workspace-write", "model": "gpt-5", "ephemeral": true,
                        "approvalPolicy": "on-request"});
    let (mut server, thread) = AppServer::with_thread(&args, params).await?;
    let cwd = server.cwd.display().to_string();
    let input = json!([{"type": "text", "text": "scenario:ok"},
                       {"type": "localImage", "path": "/srv/a/x.png"}]);
    let turn = json!({"threadId": thread, "effort": "high", "outputSchema": {"type": "object"},
                      "input": input});
    server.request("turn/start", turn).await?;
    server.until(method("turn/completed")).await?;
    let run = only_run(&server.record)?;
    let at = run.argv.iter().position(|a| a == "--output-schema");
    let schema = run.argv[at.context("--output-schema")? + 1].clone();
    assert!(!Path::new(&schema).exists(), "{schema} outlived its turn");
    let dirs = "--add-dir /srv/a --add-dir /srv/b";
    let pins = format!("-c {roots} -c approval_policy=\"on-request\" {USER}");
    assert_eq!(
        run.argv.join(" "),
        format!(
            "exec --json -s workspace-write -C {cwd} {dirs} -m gpt-5 -p fast --skip-git-repo-check \
             --ephemeral --image=/srv/a/x.png --output-schema {schema} {pins} \
             -c model_reasoning_effort=\"high\" -"
        )
    );
    std::fs::remove_dir_all(&run.dir)?;

    let old = "fake-thread-1-2";
    let resumed = server
        .request(
            "thread/resume",
            json!({"threadId": old, "sandbox": "read-only"}),
        )
        .await?;
    assert_eq!(resumed["result"]["thread"]["id"], old, "{resumed}");
    server.turn(old, "scenario:ok").await?;
    server.until(method("turn/completed")).await?;
    let run = only_run(&server.record)?;
    assert_eq!(
        run.argv.join(" "),
        format!(
            "exec -s read-only -p fast resume --json -c sandbox_mode=\"read-only\" \
             --skip-git-repo-check -c {roots} -c approval_policy=\"never\" {USER} -- {old} -"
        )
    );
    std::fs::remove_dir_all(&run.dir)?;

    let target = json!({"type": "baseBranch", "branch": "main"});
    let review = server
        .request(
            "review/start",
            json!({"threadId": thread, "target": target}),
        )
        .await?;
    assert_eq!(
        review["result"]["reviewThreadId"],
        thread.as_str(),
        "{review}"
    );
    server.until(method("turn/completed")).await?;
    let run = only_run(&server.record)?;
    assert_eq!(
        run.argv.join(" "),
        format!(
            "exec -s workspace-write -C {cwd} {dirs} -p fast review --json \
             -c sandbox_mode=\"workspace-write\" -m gpt-5 --skip-git-repo-check --ephemeral \
             {pins} -c model_reasoning_effort=\"high\" --base main"
        )
    );
    Ok(())
}

/// An accepted command approval runs the command in the thread's cwd and reports its
/// output; a declined one never runs, nor a cancelled one, which also interrupts the
/// turn (as Codex's schema says); every request and reply is recorded.
#[tokio::test]
async fn an_accepted_command_approval_runs_the_command_and_a_declined_one_does_not() -> Result<()> {
    let (mut server, thread) = AppServer::with_thread(&["app-server"], json!({})).await?;
    let cases = [
        ("accepted.txt", "accept", "completed"),
        ("declined.txt", "decline", "completed"),
        ("cancelled.txt", "cancel", "interrupted"),
    ];
    for (file, decision, ending) in cases {
        let command = format!("echo ran > {file}; echo out");
        let turn = server
            .turn(&thread, &format!("scenario:approve_command {command}"))
            .await?;
        let seen = server
            .until(method("item/commandExecution/requestApproval"))
            .await?;
        assert!(
            seen.iter()
                .any(|m| m["method"] == "item/started"
                    && m["params"]["item"]["status"] == "inProgress"),
            "the pending item comes first"
        );
        let ask = seen.last().context("request")?;
        let p = &ask["params"];
        assert_eq!(
            (&p["threadId"], &p["turnId"], &p["command"]),
            (&json!(thread), &json!(turn), &json!(command))
        );
        assert_eq!(p["cwd"], server.cwd.display().to_string());
        server
            .send(json!({"id": ask["id"], "result": {"decision": decision}}))
            .await?;
        let seen = server.until(method("turn/completed")).await?;
        let item = seen
            .iter()
            .find(|m| {
                m["method"] == "item/completed" && m["params"]["item"]["type"] == "commandExecution"
            })
            .context("the command item")?;
        let status = &item["params"]["item"]["status"];
        assert_eq!(
            seen.last().context("done")?["params"]["turn"]["status"],
            ending
        );
        if decision == "accept" {
            assert_eq!(status, "completed");
            assert_eq!(item["params"]["item"]["aggregatedOutput"], "out\n");
            assert_eq!(answers(&seen), ["ran: out\n"]);
            assert!(server.cwd.join(file).exists(), "the accepted command ran");
        } else {
            assert_eq!(status, "declined");
            let said = answers(&seen);
            assert_eq!(
                said,
                strings(&["declined"][..usize::from(decision == "decline")])
            );
            assert!(
                !server.cwd.join(file).exists(),
                "the command ran after {decision}"
            );
        }
    }
    let run = only_run(&server.record)?;
    let approvals = std::fs::read_to_string(run.dir.join("approvals"))?;
    let replies: Vec<Value> = approvals
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    assert_eq!(replies.len(), 3, "{approvals}");
    assert_eq!(replies[1]["reply"]["result"]["decision"], "decline");
    Ok(())
}

/// An accepted patch writes the file and reports the turn's diff; a declined one writes
/// nothing.
#[tokio::test]
async fn an_accepted_patch_writes_the_file_and_reports_its_diff_and_a_declined_one_does_not()
-> Result<()> {
    let (mut server, thread) = AppServer::with_thread(&["app-server"], json!({})).await?;
    for (file, decision) in [("yes.txt", "accept"), ("no.txt", "decline")] {
        server
            .turn(
                &thread,
                &format!("scenario:approve_patch {file} hello patch"),
            )
            .await?;
        let ask = server
            .until(method("item/fileChange/requestApproval"))
            .await?;
        let id = ask.last().context("request")?["id"].clone();
        server
            .send(json!({"id": id, "result": {"decision": decision}}))
            .await?;
        let seen = server.until(method("turn/completed")).await?;
        let diff = seen.iter().find(|m| m["method"] == "turn/diff/updated");
        if decision == "accept" {
            assert_eq!(
                std::fs::read_to_string(server.cwd.join(file))?,
                "hello patch"
            );
            let diff = diff.context("a diff")?["params"]["diff"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            assert!(
                diff.contains("+++ b/yes.txt") && diff.contains("+hello patch"),
                "{diff}"
            );
        } else {
            assert!(!server.cwd.join(file).exists());
            assert!(diff.is_none(), "a declined patch has no diff");
            assert_eq!(answers(&seen), ["declined"]);
        }
    }
    Ok(())
}

/// A steer must name the active turn; the right one reaches the turn and is recorded.
#[tokio::test]
async fn a_steer_naming_the_active_turn_reaches_it_and_a_wrong_turn_id_is_refused() -> Result<()> {
    let (mut server, thread) = AppServer::with_thread(&["app-server"], json!({})).await?;
    let turn = server.turn(&thread, "scenario:steerable").await?;
    let input = json!([{"type": "text", "text": "focus on tests"}]);
    let wrong = server
        .request(
            "turn/steer",
            json!({"threadId": thread, "expectedTurnId": "nope", "input": input}),
        )
        .await?;
    assert_eq!(wrong["error"]["code"], -32600, "{wrong}");
    let steer = server
        .request(
            "turn/steer",
            json!({"threadId": thread, "expectedTurnId": turn, "input": input}),
        )
        .await?;
    assert_eq!(steer["result"]["turnId"], turn.as_str(), "{steer}");
    let seen = server.until(method("turn/completed")).await?;
    assert_eq!(answers(&seen), ["steered: focus on tests"]);
    let steers = std::fs::read_to_string(only_run(&server.record)?.dir.join("steers"))?;
    assert!(steers.contains("focus on tests"), "{steers}");
    Ok(())
}

/// `turn/interrupt` is answered, the turn ends `interrupted`, and the translated exec
/// run is gone within 2 s: its grandchild too, and a child that ignores SIGTERM.
#[tokio::test]
async fn an_interrupt_ends_the_turn_and_kills_its_processes_within_two_seconds() -> Result<()> {
    let (mut server, thread) = AppServer::with_thread(&["app-server"], json!({})).await?;
    for scenario in ["scenario:hang", "scenario:ignore_term"] {
        let turn = server.turn(&thread, scenario).await?;
        let dir = wait_for_run_dir(&server.record, LIMIT).await?;
        let codex = wait_for_run_pid(&dir.join("codex.pid"), LIMIT).await?;
        let grandchild = match scenario {
            "scenario:hang" => Some(read_run_pid(&dir.join("grandchild.pid"))?),
            _ => None,
        };
        let asked = std::time::Instant::now();
        let r = server
            .request(
                "turn/interrupt",
                json!({"threadId": thread, "turnId": turn}),
            )
            .await?;
        assert_eq!(r["result"], json!({}), "{r}");
        let seen = server.until(method("turn/completed")).await?;
        assert_eq!(
            seen.last().context("done")?["params"]["turn"]["status"],
            "interrupted"
        );
        assert!(
            gone_within(&codex, Duration::from_secs(2)).await,
            "{scenario}: {codex} lives"
        );
        if let Some(g) = grandchild {
            assert!(gone_within(&g, Duration::from_secs(2)).await, "{g} lives");
        }
        assert!(
            asked.elapsed() < Duration::from_secs(3),
            "{:?}",
            asked.elapsed()
        );
        std::fs::remove_dir_all(&dir)?;
    }
    Ok(())
}

/// A turn whose exec run exits without `turn.completed` fails with the exit code.
#[tokio::test]
async fn an_exec_run_that_exits_before_its_turn_completes_fails_the_turn_with_its_exit_code()
-> Result<()> {
    let (mut server, thread) = AppServer::with_thread(&["app-server"], json!({})).await?;
    server.turn(&thread, "scenario:exit_nonzero").await?;
    let seen = server.until(method("turn/completed")).await?;
    let turn = &seen.last().context("done")?["params"]["turn"];
    assert_eq!(turn["status"], "failed", "{turn}");
    let message = turn["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("exit code 3"), "{message}");
    Ok(())
}

/// Out-of-protocol requests get the errors Codex 0.169 sends (measured): before
/// `initialize`, twice `initialize`, an unknown sandbox or method, a thread it never
/// stored, a steer or interrupt with no turn running.
#[tokio::test]
async fn requests_out_of_protocol_get_the_errors_real_codex_sends() -> Result<()> {
    let mut server = AppServer::start(&["app-server"]).await?;
    let early = server.request("thread/start", json!({})).await?;
    assert_eq!(
        early["error"],
        json!({"code": -32600, "message": "Not initialized"})
    );
    server
        .request(
            "initialize",
            json!({"clientInfo": {"name": "t", "version": "1"}}),
        )
        .await?;
    let again = server.request("initialize", json!({})).await?;
    assert_eq!(again["error"]["message"], "Already initialized");
    let bogus = server
        .request("thread/start", json!({"sandbox": "bogus"}))
        .await?;
    assert_eq!(
        bogus["error"]["message"],
        "Invalid request: unknown variant `bogus`, expected one of `read-only`, `workspace-write`, `danger-full-access`"
    );
    let unknown = server.request("nope/nope", json!({})).await?;
    assert_eq!(unknown["error"]["code"], -32600, "{unknown}");
    let lost = server
        .request("thread/resume", json!({"threadId": "0199a213-81c0-7800"}))
        .await?;
    let message = lost["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("no rollout found for thread id"),
        "{lost}"
    );
    let started = server.request("thread/start", json!({})).await?;
    let thread = &started["result"]["thread"]["id"];
    for (method, verb) in [("turn/steer", "steer"), ("turn/interrupt", "interrupt")] {
        let params = json!({"threadId": thread, "turnId": "t", "expectedTurnId": "t", "input": []});
        let idle = server.request(method, params).await?;
        let wanted = format!("no active turn to {verb}");
        assert_eq!(idle["error"]["message"], wanted.as_str(), "{idle}");
    }
    assert!(
        early.get("jsonrpc").is_none(),
        "Codex omits the jsonrpc member"
    );
    Ok(())
}

/// Closing stdin ends the server (exit 0) and the run it was doing.
#[tokio::test]
async fn closing_stdin_ends_the_server_and_its_running_turn() -> Result<()> {
    let (mut server, thread) = AppServer::with_thread(&["app-server"], json!({})).await?;
    server.turn(&thread, "scenario:hang").await?;
    let dir = wait_for_run_dir(&server.record, LIMIT).await?;
    let codex = wait_for_run_pid(&dir.join("codex.pid"), LIMIT).await?;
    drop(server.stdin.take());
    let status = tokio::time::timeout(Duration::from_secs(2), server.child.wait()).await??;
    assert_eq!(status.code(), Some(0));
    assert!(
        gone_within(&codex, Duration::from_secs(2)).await,
        "{codex} lives"
    );
    Ok(())
}
