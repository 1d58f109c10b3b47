//! Table tests of [`plan`]: each run option lands where Codex's app-server reads it, the
//! pins are always there, and what app-server cannot do is refused with the reason.

#![allow(clippy::unwrap_used, clippy::expect_used)]
use std::path::PathBuf;
use std::time::Duration;

use serde_json::json;

use super::*;
use crate::run::{ReasoningEffort, SandboxMode};

fn spec() -> RunSpec {
    RunSpec {
        prompt: "do it".into(),
        cwd: PathBuf::from("/mnt/app"),
        add_dirs: vec![],
        model: None,
        profile: None,
        sandbox: SandboxMode::ReadOnly,
        approval_policy: None,
        skip_git_repo_check: false,
        ephemeral: false,
        include_event_log: false,
        timeout: Duration::from_secs(5),
        resume: None,
        fork: None,
        reasoning_effort: None,
        images: vec![],
        output_schema: None,
        review: None,
        ceiling: SandboxMode::WorkspaceWrite,
    }
}

fn args(plan: &Plan) -> Vec<String> {
    plan.args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect()
}

#[test]
fn a_plain_run_pins_sandbox_roots_approval_and_the_user_as_reviewer() {
    let plan = plan(&spec()).unwrap();
    assert_eq!(
        args(&plan),
        [
            "app-server",
            "--listen",
            "stdio://",
            "-c",
            "sandbox_mode=\"read-only\"",
            "-c",
            "sandbox_workspace_write.writable_roots=[]",
            "-c",
            "approval_policy=\"never\"",
            "-c",
            "approvals_reviewer=\"user\"",
        ]
    );
    assert_eq!(plan.thread_method, "thread/start");
    assert_eq!(
        json!(plan.thread),
        json!({"cwd": "/mnt/app", "sandbox": "read-only", "approvalPolicy": "never",
               "approvalsReviewer": "user", "ephemeral": false,
               "config": {"sandbox_mode": "read-only", "sandbox_workspace_write.writable_roots": []}})
    );
    assert_eq!(
        plan.turn.request("t1"),
        (
            "turn/start",
            json!({"threadId": "t1", "input": [{"type": "text", "text": "do it"}]})
        )
    );
}

#[test]
fn every_option_lands_where_app_server_reads_it() {
    type Case = (fn(&mut RunSpec), &'static str, serde_json::Value);
    let cases: &[Case] = &[
        (
            |s| s.sandbox = SandboxMode::WorkspaceWrite,
            "/thread/sandbox",
            json!("workspace-write"),
        ),
        (
            |s| s.approval_policy = Some(ApprovalPolicy::OnRequest),
            "/thread/approvalPolicy",
            json!("on-request"),
        ),
        (
            |s| s.model = Some("gpt-x".into()),
            "/thread/model",
            json!("gpt-x"),
        ),
        (|s| s.ephemeral = true, "/thread/ephemeral", json!(true)),
        (
            |s| s.add_dirs = vec!["/mnt/b".into()],
            "/thread/config/sandbox_workspace_write.writable_roots",
            json!(["/mnt/b"]),
        ),
        (
            |s| s.reasoning_effort = Some(ReasoningEffort::High),
            "/turn/effort",
            json!("high"),
        ),
        (
            |s| s.reasoning_effort = Some(ReasoningEffort::High),
            "/thread/config/model_reasoning_effort",
            json!("high"),
        ),
        (
            |s| s.output_schema = Some(r#"{"type":"object"}"#.into()),
            "/turn/outputSchema",
            json!({"type": "object"}),
        ),
        (
            |s| s.images = vec!["/tmp/x/image-0.png".into()],
            "/turn/input/1",
            json!({"type": "localImage", "path": "/tmp/x/image-0.png"}),
        ),
        (
            |s| s.resume = Some("th-1".into()),
            "/thread/threadId",
            json!("th-1"),
        ),
        (
            |s| s.fork = Some("th-2".into()),
            "/thread/threadId",
            json!("th-2"),
        ),
        (
            |s| s.review = Some(Review::Base("main".into())),
            "/turn/target",
            json!({"type": "baseBranch", "branch": "main"}),
        ),
        (
            |s| s.review = Some(Review::Commit("abc1".into())),
            "/turn/target",
            json!({"type": "commit", "sha": "abc1"}),
        ),
        (
            |s| s.review = Some(Review::Uncommitted),
            "/turn/target",
            json!({"type": "uncommittedChanges"}),
        ),
        (
            |s| s.review = Some(Review::Custom),
            "/turn/target",
            json!({"type": "custom", "instructions": "do it"}),
        ),
    ];
    for (set, pointer, want) in cases {
        let mut s = spec();
        set(&mut s);
        let plan = plan(&s).unwrap();
        let both = json!({"thread": plan.thread, "turn": plan.turn.request("t").1});
        assert_eq!(both.pointer(pointer), Some(want), "{pointer} in {both}");
    }
}

#[test]
fn resume_fork_and_review_pick_their_methods() {
    let method = |set: fn(&mut RunSpec)| {
        let mut s = spec();
        set(&mut s);
        let plan = plan(&s).unwrap();
        (
            plan.thread_method,
            plan.turn.request("t").0,
            plan.thread.ephemeral,
        )
    };
    assert_eq!(
        method(|s| s.resume = Some("a".into())),
        ("thread/resume", "turn/start", None)
    );
    assert_eq!(
        method(|s| s.fork = Some("a".into())),
        ("thread/fork", "turn/start", Some(false))
    );
    assert_eq!(
        method(|s| s.review = Some(Review::Uncommitted)),
        ("thread/start", "review/start", Some(false))
    );
}

#[test]
fn the_command_line_repeats_the_pins_for_a_write_run_with_roots() {
    let mut s = spec();
    s.sandbox = SandboxMode::WorkspaceWrite;
    s.approval_policy = Some(ApprovalPolicy::OnRequest);
    s.add_dirs = vec!["/mnt/b".into(), "/mnt/c\"q".into()];
    s.reasoning_effort = Some(ReasoningEffort::Low);
    let a = args(&plan(&s).unwrap());
    for want in [
        "sandbox_mode=\"workspace-write\"",
        "sandbox_workspace_write.writable_roots=[\"/mnt/b\",\"/mnt/c\\\"q\"]",
        "approval_policy=\"on-request\"",
        "approvals_reviewer=\"user\"",
        "model_reasoning_effort=\"low\"",
    ] {
        assert!(a.iter().any(|x| x == want), "{want} in {a:?}");
    }
}

#[test]
fn a_profile_is_refused_with_the_reason_and_the_way_out() {
    let mut s = spec();
    s.profile = Some("fast".into());
    let e = plan(&s).unwrap_err().to_string();
    assert!(
        e.contains("profile") && e.contains("TWOBOT_CODEX_BACKEND=exec"),
        "{e}"
    );
}

#[test]
fn skip_git_repo_check_is_not_passed_as_config_codex_would_warn_it_is_ignored() {
    let mut s = spec();
    s.skip_git_repo_check = true;
    assert_eq!(plan(&s).unwrap().thread, plan(&spec()).unwrap().thread);
}

#[test]
fn the_prompt_never_appears_on_the_command_line() {
    let mut s = spec();
    s.prompt = "secret prompt".into();
    assert!(
        !args(&plan(&s).unwrap())
            .iter()
            .any(|a| a.contains("secret"))
    );
}

#[test]
fn a_granular_policy_declares_the_experimental_api_and_says_every_knob_in_toml_and_json() {
    let mut s = spec();
    s.approval_policy = Some("granular:sandbox_approval,rules".parse().unwrap());
    let p = plan(&s).unwrap();
    assert_eq!(
        p.initialize["capabilities"],
        json!({"experimentalApi": true})
    );
    assert!(
        args(&p).iter().any(|a| a
            == "approval_policy={granular={sandbox_approval=true,rules=true,request_permissions=false,mcp_elicitations=false,skill_approval=false}}"),
        "{:?}",
        args(&p)
    );
    assert_eq!(
        json!(p.thread)["approvalPolicy"],
        json!({"granular": {"sandbox_approval": true, "rules": true, "request_permissions": false,
                            "mcp_elicitations": false, "skill_approval": false}})
    );
    // Any other policy keeps to the stable API.
    for other in [
        None,
        Some(ApprovalPolicy::OnRequest),
        Some(ApprovalPolicy::Never),
    ] {
        let mut s = spec();
        s.approval_policy = other;
        let p = plan(&s).unwrap();
        assert!(p.initialize.get("capabilities").is_none(), "{other:?}");
        assert_eq!(p.initialize["clientInfo"]["name"], "2bot");
    }
}
