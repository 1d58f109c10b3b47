//! Approval policies and Codex's other server requests with the REAL pinned Codex 0.169
//! on the app-server backend, offline against the mock Responses API, through the real
//! binary and the official Python MCP SDK as the person (tests/clients/
//! python_approval_client.py, over stdio, legacy session with form elicitation).
//!
//! `granular` reaches Codex (its command approval is the person's to accept, and a knob
//! left off makes Codex decline without asking); an unknown knob is refused before Codex
//! starts; `request_permissions` and `request_user_input` (Codex features the operator may
//! turn on) are relayed or declined with the reason in the result, and never hang.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::{Value, json};

use crate::common::mock_responses::{
    MockResponses, exec_command, exec_command_escalated, message, request_permissions,
    request_user_input,
};
use crate::common::real_codex;

/// What one session showed the person and returned, and where the run worked.
struct Session {
    report: Value,
    root: PathBuf,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

impl Session {
    fn result(&self) -> &Value {
        &self.report["structuredContent"]
    }

    fn shown(&self) -> Vec<String> {
        self.report["shown"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Run one `run_codex_prompt` with `args` through the Python SDK against `2bot-mcp` on
/// app-server with the real Codex pointed at `mock` (`features`: lines for Codex's
/// config.toml); the person answers every dialog `answer`. `danger` lets command and
/// permission approvals reach a person at all (src/policy/approvals.rs).
async fn session(
    mock: &MockResponses,
    features: &str,
    danger: bool,
    answer: &str,
    args: Value,
) -> Result<Session> {
    session_on("app-server", mock, features, danger, answer, args).await
}

/// [`session`] on the backend `backend` (`exec` or `app-server`).
async fn session_on(
    backend: &str,
    mock: &MockResponses,
    features: &str,
    danger: bool,
    answer: &str,
    args: Value,
) -> Result<Session> {
    let codex = real_codex();
    assert!(
        codex.exists(),
        "{} is missing: run `npm ci`",
        codex.display()
    );
    let python = crate::common::programs::python_sdk()?;
    let (home, tmp) = (tempfile::tempdir()?, tempfile::tempdir()?);
    mock.write_codex_home_with(home.path(), features)?;
    let base = tmp.path().canonicalize()?;
    let root = base.join("root");
    std::fs::create_dir_all(root.join("sub"))?;
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/python_approval_client.py");
    let target = format!("stdio:{}", env!("CARGO_BIN_EXE_2bot-mcp"));
    let mut cmd = tokio::process::Command::new(python);
    cmd.arg(&script)
        .args([&target, "legacy", answer, "go", &args.to_string()])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env(
            "HOME",
            std::env::var("HOME").unwrap_or_else(|_| "/tmp".into()),
        )
        .env("CODEX_BIN", &codex)
        .env("CODEX_HOME", home.path())
        .env("CODEX_ALLOWED_ROOTS", &root)
        .env("TWOBOT_STATE_DIR", base.join("state"))
        .env("TWOBOT_CODEX_BACKEND", backend)
        .env("TWOBOT_ALLOW_DANGER_FULL_ACCESS", danger.to_string())
        .current_dir(&base)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .context("the session hung")??;
    let stdout = String::from_utf8_lossy(&out.stdout);
    anyhow::ensure!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(Session {
        report: serde_json::from_str(stdout.trim()).with_context(|| stdout.to_string())?,
        root,
        _dirs: (home, tmp),
    })
}

fn write_args(policy: &str) -> Value {
    json!({"sandbox": "workspace-write", "allow_edits": true, "approval_policy": policy,
           "skip_git_repo_check": true, "timeout_sec": 120})
}

fn escalated_script() -> Vec<Vec<Value>> {
    vec![
        vec![exec_command_escalated(
            "echo approved > ran.txt; echo twobot-approved",
            "May I write ran.txt?",
        )],
        vec![message("done")],
    ]
}

/// `approval_policy: "granular"` reaches Codex with the experimental API declared: its
/// escalated command becomes a dialog in the Python SDK, and the person's accept runs it.
#[tokio::test]
async fn a_granular_runs_command_approval_reaches_the_python_sdk_and_its_accept_runs_it()
-> Result<()> {
    let mock = MockResponses::start(escalated_script()).await?;
    let s = session(&mock, "", true, "accept", write_args("granular")).await?;
    let r = s.result();
    assert!(
        s.root.join("ran.txt").exists(),
        "the accepted command did not run: {r:#}"
    );
    assert_eq!(r["approvals"][0]["decision"], "accept", "{r:#}");
    assert_eq!(r["approvals"][0]["channel"], "elicitation", "{r:#}");
    let output = r["commands"][0]["output"].as_str().unwrap_or_default();
    assert!(output.contains("twobot-approved"), "{r:#}");
    let shown = s.shown();
    assert!(
        shown.len() == 1 && shown[0].contains("echo approved") && shown[0].contains("ran.txt?"),
        "{shown:?}"
    );
    Ok(())
}

/// `granular:rules` leaves `sandbox_approval` off: Codex declines the escalation itself,
/// nobody is asked, nothing runs, and the model is told why (the knob reached Codex).
#[tokio::test]
async fn a_granular_knob_left_off_makes_codex_decline_without_asking_anyone() -> Result<()> {
    let mock = MockResponses::start(escalated_script()).await?;
    let s = session(&mock, "", true, "accept", write_args("granular:rules")).await?;
    assert!(!s.root.join("ran.txt").exists(), "{:#}", s.result());
    assert!(s.shown().is_empty(), "{:?}", s.shown());
    assert_eq!(s.result()["ok"], true, "{:#}", s.result());
    let requests = mock.requests();
    let told = requests
        .get(1)
        .map(|r| r["input"].to_string())
        .unwrap_or_default();
    assert!(
        told.contains("sandbox_approval: false") && told.contains("reject command"),
        "{told}"
    );
    Ok(())
}

/// The ceiling holds under granular as under on-request: below danger-full-access an
/// escalated command (which Codex would run unsandboxed) is declined by policy, nobody is
/// asked, and nothing runs.
#[tokio::test]
async fn a_granular_command_approval_beyond_the_ceiling_is_declined_by_policy() -> Result<()> {
    let mock = MockResponses::start(escalated_script()).await?;
    let s = session(&mock, "", false, "accept", write_args("granular")).await?;
    let r = s.result();
    assert!(!s.root.join("ran.txt").exists(), "{r:#}");
    assert!(s.shown().is_empty(), "{:?}", s.shown());
    assert_eq!(r["approvals"][0]["decision"], "decline", "{r:#}");
    assert_eq!(r["approvals"][0]["channel"], "policy", "{r:#}");
    Ok(())
}

/// `codex exec` would run a granular policy as `never`: on the exec backend the call is
/// a tool error naming the backend that can ask, and Codex is never started.
#[tokio::test]
async fn granular_on_the_exec_backend_is_refused_naming_the_app_server_backend() -> Result<()> {
    let mock = MockResponses::start(escalated_script()).await?;
    let s = session_on("exec", &mock, "", true, "accept", write_args("granular")).await?;
    assert_eq!(s.report["isError"], true, "{:#}", s.report);
    let said = s.report["text"].to_string();
    assert!(
        said.contains("TWOBOT_CODEX_BACKEND=app-server") && said.contains("approval_policy"),
        "{said}"
    );
    assert!(mock.requests().is_empty(), "Codex ran");
    assert!(!s.root.join("ran.txt").exists());
    Ok(())
}

/// An unknown knob is a tool error that names it and lists the knobs; Codex never starts.
#[tokio::test]
async fn an_unknown_granular_knob_is_a_clear_error_and_starts_nothing() -> Result<()> {
    let mock = MockResponses::start(escalated_script()).await?;
    let s = session(
        &mock,
        "",
        true,
        "accept",
        write_args("granular:sandbox_approval,bogus"),
    )
    .await?;
    assert_eq!(s.report["isError"], true, "{:#}", s.report);
    let said = s.report["text"].to_string();
    assert!(
        said.contains("`bogus` is not a granular approval knob")
            && said.contains("request_permissions"),
        "{said}"
    );
    assert!(mock.requests().is_empty(), "Codex asked the model anyway");
    Ok(())
}

/// The model asks for `permissions`, then writes into `sub` with a sandboxed command.
fn permissions_script(permissions: Value) -> Vec<Vec<Value>> {
    let mut write = exec_command("echo granted > sub/granted.txt; echo wrote");
    write["arguments"] =
        json!({"cmd": "echo granted > sub/granted.txt; echo wrote", "login": false})
            .to_string()
            .into();
    vec![
        vec![request_permissions(
            permissions,
            "write the report into sub",
        )],
        vec![write],
        vec![message("after the permission request")],
    ]
}

const PERMISSIONS: &str = "features.request_permissions_tool = true\n";

/// Network access goes beyond a workspace-write ceiling, so a request for it (with a
/// write in the run's directory) is declined by policy: nobody is asked, the turn goes on
/// at once, the sandbox still refuses the write, and the result says what and why.
#[tokio::test]
async fn a_permission_request_beyond_the_ceiling_is_declined_with_the_reason_and_never_hangs()
-> Result<()> {
    let asked = json!({"file_system": {"write": ["sub"]}, "network": {"enabled": true}});
    let mock = MockResponses::start(permissions_script(asked)).await?;
    let args =
        json!({"approval_policy": "on-request", "skip_git_repo_check": true, "timeout_sec": 120});
    let s = session(&mock, PERMISSIONS, false, "accept", args).await?;
    let r = s.result();
    assert!(s.shown().is_empty(), "{:?}", s.shown());
    assert!(!s.root.join("sub/granted.txt").exists(), "{r:#}");
    assert_eq!(r["ok"], true, "{r:#}");
    assert_eq!(r["final_message"], "after the permission request", "{r:#}");
    let a = &r["approvals"][0];
    assert_eq!(a["request"]["type"], "permissions", "{r:#}");
    assert_eq!(a["decision"], "decline", "{r:#}");
    assert_eq!(a["channel"], "policy", "{r:#}");
    assert!(
        a["note"]
            .as_str()
            .unwrap_or_default()
            .contains("declined by policy"),
        "{r:#}"
    );
    assert!(
        a["request"]["summary"]
            .as_str()
            .unwrap_or_default()
            .contains("network"),
        "{r:#}"
    );
    assert!(
        s.report["seconds"].as_f64().unwrap_or(99.0) < 60.0,
        "{:#}",
        s.report
    );
    Ok(())
}

/// Write access inside the run's directory is within a workspace-write ceiling, so under
/// `granular` (whose default set asks for permission requests) the request is put to the
/// person, who sees the path; accepted, Codex grants exactly that, and the next command,
/// still sandboxed read-only, writes there.
#[tokio::test]
async fn a_permission_request_is_relayed_to_the_person_and_their_accept_grants_it() -> Result<()> {
    let asked = json!({"file_system": {"write": ["sub"]}});
    let mock = MockResponses::start(permissions_script(asked)).await?;
    let args =
        json!({"approval_policy": "granular", "skip_git_repo_check": true, "timeout_sec": 120});
    let s = session(&mock, PERMISSIONS, false, "accept", args).await?;
    let r = s.result();
    let shown = s.shown();
    assert!(
        shown.len() == 1
            && shown[0].contains("more permissions")
            && shown[0].contains(&s.root.join("sub").display().to_string())
            && shown[0].contains("write the report into sub"),
        "{shown:?}"
    );
    assert_eq!(r["approvals"][0]["decision"], "accept", "{r:#}");
    assert_eq!(r["approvals"][0]["channel"], "elicitation", "{r:#}");
    let written = std::fs::read_to_string(s.root.join("sub/granted.txt")).unwrap_or_default();
    assert_eq!(written, "granted\n", "{r:#}");
    Ok(())
}

/// Codex's question to the user (`request_user_input`) is not an approval: 2Bot answers
/// it at once with no answer, nobody is asked, the turn goes on, and the result names the
/// question and why it had no answer.
#[tokio::test]
async fn a_codex_question_is_answered_empty_at_once_and_the_result_says_so() -> Result<()> {
    let mock = MockResponses::start(vec![
        vec![request_user_input("go_on", "Shall I go on with the plan?")],
        vec![message("went on without an answer")],
    ])
    .await?;
    let args =
        json!({"approval_policy": "on-request", "skip_git_repo_check": true, "timeout_sec": 120});
    let features = "features.default_mode_request_user_input = true\n";
    let s = session(&mock, features, true, "accept", args).await?;
    let r = s.result();
    assert!(s.shown().is_empty(), "{:?}", s.shown());
    assert_eq!(r["ok"], true, "{r:#}");
    assert_eq!(r["final_message"], "went on without an answer", "{r:#}");
    let said = r["warnings"].to_string();
    assert!(
        said.contains("Shall I go on with the plan?")
            && said.contains("relays approvals, not questions"),
        "{r:#}"
    );
    let requests = mock.requests();
    let answered = requests
        .get(1)
        .map(|r| r["input"].to_string())
        .unwrap_or_default();
    assert!(
        answered.contains("call_mock_question") && answered.contains("answers"),
        "{answered}"
    );
    assert!(
        s.report["seconds"].as_f64().unwrap_or(99.0) < 60.0,
        "{:#}",
        s.report
    );
    Ok(())
}
