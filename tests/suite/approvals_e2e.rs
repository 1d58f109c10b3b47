//! Approvals end to end (issue 20): the real `2bot-mcp` on the app-server backend, the
//! fake Codex asking for a command or a file change, and the official Python SDK as the
//! person answering. Each test checks what the person and the caller see AND what
//! happened on disk, so a misparsed reply (the `codex mcp-server` bug: every approval
//! silently denied) or a hang cannot pass.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::{Value, json};

use crate::common::http::*;
use crate::common::*;

/// The environment every server here runs with: the app-server backend, and a
/// danger-full-access ceiling so the policy lets a command approval reach a person.
const ENV: &[(&str, &str)] = &[
    ("TWOBOT_CODEX_BACKEND", "app-server"),
    ("TWOBOT_ALLOW_DANGER_FULL_ACCESS", "true"),
];

fn python() -> Result<PathBuf> {
    crate::common::programs::python_sdk()
}

/// Run the approving client against `target` and return its report.
async fn person(
    python: &Path,
    target: &str,
    env: &[(&str, String)],
    mode: &str,
    answer: &str,
    prompt: &str,
    args: Value,
) -> Result<Value> {
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/python_approval_client.py");
    let mut cmd = tokio::process::Command::new(python);
    cmd.arg(&script)
        .args([target, mode, answer, prompt, &args.to_string()])
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .context("the client hung")??;
    let stdout = String::from_utf8_lossy(&out.stdout);
    anyhow::ensure!(
        out.status.success(),
        "{mode}/{answer}: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(serde_json::from_str(stdout.trim())?)
}

fn root_of(server: &HttpServer) -> Result<PathBuf> {
    Ok(server.record.parent().context("record dir")?.join("root"))
}

fn command_args() -> Value {
    json!({"sandbox": "workspace-write", "allow_edits": true, "approval_policy": "on-request"})
}

/// Run `scenario:approve_command touch MARKER && echo ran-it` over HTTP with `mode` and
/// `answer`; returns the report, the marker and the server.
async fn command_over_http(
    python: &Path,
    mode: &str,
    answer: &str,
    extra: &[(&str, &str)],
) -> Result<(Value, PathBuf, HttpServer)> {
    let env: Vec<_> = ENV.iter().chain(extra).copied().collect();
    let server = spawn_http(&env).await?;
    let marker = root_of(&server)?.join("approved-marker");
    let prompt = format!(
        "scenario:approve_command touch {} && echo ran-it",
        marker.display()
    );
    let report = person(
        python,
        &server.url,
        &[],
        mode,
        answer,
        &prompt,
        command_args(),
    )
    .await?;
    Ok((report, marker, server))
}

fn assert_accepted(report: &Value, marker: &Path, channel: &str) {
    let s = &report["structuredContent"];
    assert!(
        marker.exists(),
        "the accepted command did not run: {report}"
    );
    assert_eq!(s["approvals"][0]["decision"], "accept", "{report}");
    assert_eq!(s["approvals"][0]["channel"], channel, "{report}");
    assert_eq!(s["commands"][0]["status"], "completed", "{report}");
    let output = s["commands"][0]["output"].as_str().unwrap_or_default();
    assert!(output.contains("ran-it"), "the command's output: {report}");
}

/// Accept in a legacy session over Streamable HTTP: the person is shown the command,
/// the command runs, and the result lists it with its output.
#[tokio::test]
async fn a_legacy_python_session_that_accepts_over_http_sees_the_command_and_it_runs() -> Result<()>
{
    let python = python()?;
    let (report, marker, _server) = command_over_http(&python, "legacy", "accept", &[]).await?;
    assert_eq!(report["protocol"], "2025-11-25", "{report}");
    assert_accepted(&report, &marker, "elicitation");
    let shown = report["shown"][0].as_str().unwrap_or_default();
    assert!(
        shown.contains("touch") && shown.contains(&marker.display().to_string()),
        "the person did not see the command: {report}"
    );
    Ok(())
}

/// The same over stdio: the SDK spawns the real binary itself.
#[tokio::test]
async fn a_legacy_python_session_that_accepts_over_stdio_sees_the_command_and_it_runs() -> Result<()>
{
    let python = python()?;
    let tmp = tempfile::tempdir()?;
    let base = tmp.path().canonicalize()?;
    let (root, record) = (base.join("root"), base.join("record"));
    std::fs::create_dir_all(&root)?;
    std::fs::create_dir_all(&record)?;
    let mut env: Vec<(&str, String)> = ENV.iter().map(|(k, v)| (*k, v.to_string())).collect();
    env.extend([
        ("CODEX_BIN", fake_codex().display().to_string()),
        ("CODEX_ALLOWED_ROOTS", root.display().to_string()),
        ("FAKE_CODEX_RECORD", record.display().to_string()),
        ("TWOBOT_STATE_DIR", base.join("state").display().to_string()),
    ]);
    let marker = root.join("approved-marker");
    let prompt = format!(
        "scenario:approve_command touch {} && echo ran-it",
        marker.display()
    );
    let target = format!("stdio:{}", env!("CARGO_BIN_EXE_2bot-mcp"));
    let report = person(
        &python,
        &target,
        &env,
        "legacy",
        "accept",
        &prompt,
        command_args(),
    )
    .await?;
    assert_accepted(&report, &marker, "elicitation");
    assert!(
        report["shown"][0]
            .as_str()
            .unwrap_or_default()
            .contains("touch"),
        "{report}"
    );
    Ok(())
}

/// Decline, dismiss (cancel) and an unticked box: the command never runs, the turn
/// still completes, and the result says it was declined and by whom.
#[tokio::test]
async fn a_legacy_python_session_that_declines_or_dismisses_keeps_the_command_from_running()
-> Result<()> {
    let python = python()?;
    for answer in ["decline", "cancel", "uncheck"] {
        let (report, marker, _server) = command_over_http(&python, "legacy", answer, &[]).await?;
        let s = &report["structuredContent"];
        assert!(!marker.exists(), "{answer}: the command ran: {report}");
        assert_eq!(
            report["shown"].as_array().map(Vec::len),
            Some(1),
            "{report}"
        );
        assert_eq!(
            s["approvals"][0]["decision"], "decline",
            "{answer}: {report}"
        );
        assert_eq!(s["approvals"][0]["channel"], "elicitation", "{report}");
        assert_eq!(s["commands"][0]["status"], "declined", "{report}");
        assert_eq!(s["ok"], true, "the turn completes: {report}");
        let said = report["text"].to_string();
        assert!(said.contains("declined"), "{answer}: not said: {report}");
        if answer == "cancel" {
            let note = s["approvals"][0]["note"].as_str().unwrap_or_default();
            assert!(note.contains("dismissed"), "why is not said: {report}");
        }
    }
    Ok(())
}

/// The 2026-07-28 default: the call comes back `input_required`, the SDK retries with
/// the answer, the command runs, and the retry started no second run.
#[tokio::test]
async fn a_stateless_python_client_accepts_through_input_required_and_only_one_run_starts()
-> Result<()> {
    let python = python()?;
    let (report, marker, server) = command_over_http(&python, "modern", "accept", &[]).await?;
    assert_eq!(report["protocol"], "2026-07-28", "{report}");
    assert_accepted(&report, &marker, "input_required");
    assert_eq!(
        report["shown"].as_array().map(Vec::len),
        Some(1),
        "{report}"
    );
    only_run(&server.record)?;
    Ok(())
}

/// A background run whose client cannot answer: the approval waits for the card, is
/// declined by `timeout` after TWOBOT_APPROVAL_TIMEOUT_SEC, and the run ends; no hang.
#[tokio::test]
async fn a_background_run_nobody_answers_is_declined_by_the_timeout_and_ends() -> Result<()> {
    let python = python()?;
    let started = Instant::now();
    let env: Vec<_> = ENV
        .iter()
        .copied()
        .chain([
            ("TWOBOT_ENABLE_BACKGROUND_RUNS", "true"),
            ("TWOBOT_APPROVAL_TIMEOUT_SEC", "2"),
        ])
        .collect();
    let server = spawn_http(&env).await?;
    let marker = root_of(&server)?.join("approved-marker");
    let mut args = command_args();
    args["background"] = json!(true);
    let report = person(
        &python,
        &server.url,
        &[],
        "none",
        "accept",
        &format!("scenario:approve_command touch {}", marker.display()),
        args,
    )
    .await?;
    let s = &report["structuredContent"];
    assert!(started.elapsed() < Duration::from_secs(30), "{report}");
    assert!(
        report["seconds"].as_f64().unwrap_or_default() >= 1.9,
        "declined before the timeout: {report}"
    );
    assert_eq!(report["shown"], json!([]), "{report}");
    assert!(!marker.exists(), "{report}");
    assert_eq!(s["status"], "completed", "{report}");
    assert_eq!(
        s["result"]["approvals"][0]["decision"], "decline",
        "{report}"
    );
    assert_eq!(
        s["result"]["approvals"][0]["channel"], "timeout",
        "{report}"
    );
    Ok(())
}

/// A direct call from a client with no way to ask anyone: declined at once.
#[tokio::test]
async fn a_direct_call_from_a_client_without_elicitation_is_declined_at_once() -> Result<()> {
    let python = python()?;
    let started = Instant::now();
    let (report, marker, _server) = command_over_http(&python, "none", "accept", &[]).await?;
    let s = &report["structuredContent"];
    assert!(started.elapsed() < Duration::from_secs(30), "{report}");
    assert!(!marker.exists(), "{report}");
    assert_eq!(s["approvals"][0]["decision"], "decline", "{report}");
    assert_eq!(s["approvals"][0]["channel"], "unreachable", "{report}");
    Ok(())
}

/// A file change accepted through elicitation is written and its diff is in the
/// result; declined, nothing is written and there is no diff.
#[tokio::test]
async fn a_patch_accepted_through_elicitation_is_written_and_its_diff_returned() -> Result<()> {
    let python = python()?;
    for answer in ["accept", "decline"] {
        let server = spawn_http(&ENV[..1]).await?;
        let file = root_of(&server)?.join("notes.txt");
        let prompt = format!("scenario:approve_patch {} hello patch", file.display());
        let report = person(
            &python,
            &server.url,
            &[],
            "legacy",
            answer,
            &prompt,
            command_args(),
        )
        .await?;
        let s = &report["structuredContent"];
        assert_eq!(s["approvals"][0]["channel"], "elicitation", "{report}");
        let diff = s["diff"].as_str().unwrap_or_default();
        if answer == "accept" {
            assert_eq!(s["approvals"][0]["decision"], "accept", "{report}");
            let written = std::fs::read_to_string(&file).unwrap_or_default();
            assert!(written.contains("hello patch"), "{report}");
            assert!(diff.contains("+hello patch"), "{report}");
        } else {
            assert_eq!(s["approvals"][0]["decision"], "decline", "{report}");
            assert!(!file.exists(), "{report}");
            assert!(diff.is_empty(), "{report}");
        }
    }
    Ok(())
}

/// An accepted approval leaves one audit line (what was asked, how it was answered) and
/// counts in `/metrics` under its decision and channel.
#[tokio::test]
async fn an_accepted_approval_is_one_audit_line_and_one_metric_count() -> Result<()> {
    let python = python()?;
    let dir = tempfile::tempdir()?;
    let audit = dir.path().join("audit.jsonl");
    let audit_var = audit.to_str().context("utf-8 path")?.to_owned();
    let extra = [
        ("TWOBOT_AUDIT_LOG", audit_var.as_str()),
        ("TWOBOT_METRICS_ADDR", "127.0.0.1:0"),
    ];
    let (report, marker, server) = command_over_http(&python, "legacy", "accept", &extra).await?;
    assert_accepted(&report, &marker, "elicitation");
    let run_id = report["structuredContent"]["run_id"].clone();
    let log = file_when(&audit, |text| text.contains(r#""kind":"approval""#)).await?;
    let lines: Vec<Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["kind"] == "approval")
        .collect();
    assert_eq!(lines.len(), 1, "{log}");
    let line = &lines[0];
    assert_eq!(line["decision"], "accept", "{line}");
    assert_eq!(line["channel"], "elicitation", "{line}");
    assert_eq!(line["approval_id"], "a1", "{line}");
    assert!(line["run_id"].is_string(), "{line}");
    if run_id.is_string() {
        assert_eq!(line["run_id"], run_id, "{line}");
    }
    assert!(line["request"].to_string().contains("touch"), "{line}");
    let metrics = reqwest::get(&metrics_url(&server.log).await?)
        .await?
        .text()
        .await?;
    let series = "twobot_approvals_total{decision=\"accept\",channel=\"elicitation\"} 1";
    assert!(metrics.contains(series), "{series} missing");
    let none = "twobot_approvals_total{decision=\"decline\",channel=\"elicitation\"} 0";
    assert!(metrics.contains(none), "{none} missing");
    Ok(())
}
