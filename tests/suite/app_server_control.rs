//! The app-server runner's live line (`RunControl`) without the MCP layer: a person's
//! accept really runs the command, and a steer reaches the running turn. Driven through
//! the library's runner with the fake Codex's app server (the MCP side relays the same
//! `RunControl` from elicitation and the run card).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use twobot::run::control::{Answer, Channel, ControlConfig, Decision, RunControl};
use twobot::run::{CallContext, Job, Principal, RunSpec, SandboxMode};
use twobot::runner::{Backend, RunnerConfig};

use crate::common::fake_codex;

fn job(root: &std::path::Path, prompt: String, control: Arc<RunControl>) -> Job {
    let mut ctx = CallContext::new(Principal::Local);
    ctx.control = control;
    Job {
        spec: RunSpec {
            prompt,
            cwd: root.to_path_buf(),
            add_dirs: vec![],
            model: None,
            profile: None,
            sandbox: SandboxMode::WorkspaceWrite,
            approval_policy: Some(twobot::run::ApprovalPolicy::OnRequest),
            skip_git_repo_check: true,
            ephemeral: false,
            include_event_log: false,
            timeout: Duration::from_secs(60),
            resume: None,
            fork: None,
            reasoning_effort: None,
            images: vec![],
            output_schema: None,
            review: None,
            ceiling: twobot::run::SandboxMode::DangerFullAccess,
        },
        ctx,
    }
}

fn config(root: &std::path::Path) -> Arc<RunnerConfig> {
    let mut c = RunnerConfig::new(fake_codex());
    c.backend = Backend::AppServer;
    c.roots = vec![PathBuf::from(root)];
    Arc::new(c)
}

fn reachable() -> Arc<RunControl> {
    Arc::new(RunControl::new(ControlConfig {
        approval_timeout: Duration::from_secs(30),
        reachable: true,
    }))
}

/// A person's accept (any channel) runs the command, with its output in the result.
#[tokio::test]
async fn an_accepted_approval_really_runs_the_command() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let root = tmp.path().canonicalize()?;
    let marker = root.join("approved");
    let control = reachable();
    let answerer = {
        let control = control.clone();
        tokio::spawn(async move {
            let mut changed = control.changed();
            loop {
                if let Some(p) = control.pending().first() {
                    let answer = Answer {
                        decision: Decision::Accept,
                        channel: Channel::Card,
                        by: Some("tester".into()),
                        note: None,
                    };
                    let _ = control.answer(&p.id, answer);
                    return;
                }
                if changed.changed().await.is_err() {
                    return;
                }
            }
        })
    };
    let prompt = format!(
        "scenario:approve_command touch {} && echo done-it",
        marker.display()
    );
    let out = twobot::runner::run(&config(&root), job(&root, prompt, control)).await?;
    answerer.abort();
    assert!(marker.exists(), "the accepted command did not run: {out:?}");
    assert!(out.ok, "{out:?}");
    assert_eq!(out.summary.approvals.len(), 1);
    assert_eq!(out.summary.approvals[0].decision, Decision::Accept);
    assert_eq!(out.summary.commands[0].status, "completed");
    assert!(
        out.summary.commands[0].output.contains("done-it"),
        "{out:?}"
    );
    Ok(())
}

/// Nobody answers within the approval timeout: declined, the run goes on, never hangs.
#[tokio::test]
async fn an_unanswered_approval_is_declined_after_the_timeout_and_the_run_goes_on() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let root = tmp.path().canonicalize()?;
    let marker = root.join("never");
    let control = Arc::new(RunControl::new(ControlConfig {
        approval_timeout: Duration::from_secs(1),
        reachable: true,
    }));
    let prompt = format!("scenario:approve_command touch {}", marker.display());
    let out = twobot::runner::run(&config(&root), job(&root, prompt, control)).await?;
    assert!(!marker.exists());
    assert_eq!(
        out.summary.approvals[0].channel,
        Channel::Timeout,
        "{out:?}"
    );
    assert_eq!(out.summary.approvals[0].decision, Decision::Decline);
    assert!(out.summary.turn_completed, "{out:?}");
    Ok(())
}

/// A steer goes to the running turn and Codex takes it.
#[tokio::test]
async fn a_steer_reaches_the_running_turn() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let root = tmp.path().canonicalize()?;
    let control = reachable();
    let steerer = {
        let control = control.clone();
        tokio::spawn(async move {
            for _ in 0..100 {
                match control.steer("go left".into()).await {
                    Ok(()) => return Ok(()),
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
            Err(())
        })
    };
    let out = twobot::runner::run(
        &config(&root),
        job(&root, "scenario:steerable".into(), control),
    )
    .await?;
    assert_eq!(steerer.await?, Ok(()));
    assert_eq!(
        out.summary.final_message.as_deref(),
        Some("steered: go left"),
        "{out:?}"
    );
    Ok(())
}
