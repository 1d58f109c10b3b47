//! Tests of the card's answer (token, pending, decision), the steering checks and
//! `ask_codex`'s read-only arguments.

#![allow(clippy::unwrap_used, clippy::expect_used)]
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::run::control::{ApprovalKind, ApprovalRequest, ControlConfig};

async fn asking() -> (
    Arc<RunControl>,
    tokio::task::JoinHandle<crate::run::control::ApprovalRecord>,
) {
    let control = Arc::new(RunControl::new(ControlConfig {
        approval_timeout: Duration::from_secs(30),
        reachable: true,
    }));
    let asker = {
        let control = control.clone();
        tokio::spawn(async move {
            control
                .ask(ApprovalRequest {
                    kind: ApprovalKind::Command {
                        command: "touch ran".into(),
                        cwd: "/r".into(),
                    },
                    reason: None,
                })
                .await
        })
    };
    let mut changed = control.changed();
    while control.pending().is_empty() {
        changed.changed().await.unwrap();
    }
    (control, asker)
}

fn args(id: &str, token: &str, decision: CardDecision) -> AnswerArgs {
    AnswerArgs {
        run_id: "r".into(),
        approval_id: id.into(),
        token: token.into(),
        decision,
    }
}

/// The model has no token: a wrong, empty or other approval's token never answers.
#[tokio::test]
async fn the_card_answers_only_with_the_approvals_own_token() {
    let (control, asker) = asking().await;
    let token = control.pending()[0].token.clone();
    assert_eq!(token.len(), 32);
    for bad in ["", "x", &token[..31], &format!("{token}0")] {
        let err = answer(&control, &args("a1", bad, CardDecision::Approve), "eve").unwrap_err();
        assert!(
            matches!(err, AnswerError::WrongToken(ref id) if id == "a1"),
            "{err}"
        );
        assert!(err.to_string().contains("token does not match"), "{err}");
    }
    let err = answer(&control, &args("a9", &token, CardDecision::Approve), "eve").unwrap_err();
    assert!(err.to_string().contains("not pending"), "{err}");
    assert_eq!(control.pending().len(), 1, "nothing was answered");
    let decision = answer(&control, &args("a1", &token, CardDecision::Deny), "alice").unwrap();
    assert_eq!(decision, Decision::Decline);
    let record = asker.await.unwrap();
    assert_eq!(record.decision, Decision::Decline);
    assert_eq!(record.channel, Channel::Card);
    assert_eq!(record.answered_by.as_deref(), Some("alice"));
    // Answered once: the same token now finds nothing to answer.
    let again = answer(
        &control,
        &args("a1", &token, CardDecision::Approve),
        "alice",
    );
    assert!(again.unwrap_err().to_string().contains("not pending"));
}

#[test]
fn a_steering_message_must_say_something_and_fit_the_prompt_limit() {
    assert!(steer_message("also run the tests", 100).is_ok());
    assert_eq!(steer_message("  \n", 100), Err(SteerRefusal::Empty));
    let err = steer_message(&"x".repeat(101), 100).unwrap_err();
    assert_eq!(err, SteerRefusal::TooLong { len: 101, max: 100 });
    let said = err.to_string();
    assert!(
        said.contains("101 bytes") && said.contains("100 bytes"),
        "{said}"
    );
}

/// `ask_codex` takes no parameter that could widen what Codex may do.
#[test]
fn ask_codex_is_read_only_by_construction() {
    for widen in [
        serde_json::json!({"prompt": "p", "sandbox": "workspace-write"}),
        serde_json::json!({"prompt": "p", "allow_edits": true}),
        serde_json::json!({"prompt": "p", "approval_policy": "on-request"}),
        serde_json::json!({"prompt": "p", "background": true}),
        serde_json::json!({"prompt": "p", "profile": "x"}),
    ] {
        let serde_json::Value::Object(map) = widen.clone() else {
            unreachable!()
        };
        let err = parse::<AskArgs>(ASK_TOOL, Some(map)).unwrap_err();
        assert_eq!(err.tool, ASK_TOOL);
        assert!(err.explained.contains("unknown field"), "{widen}: {err}");
    }
    let serde_json::Value::Object(map) =
        serde_json::json!({"prompt": "why?", "cwd": "sub", "thread_id": "t"})
    else {
        unreachable!()
    };
    let request = RunRequest::from(parse::<AskArgs>(ASK_TOOL, Some(map)).unwrap());
    assert_eq!(request.sandbox, SandboxMode::ReadOnly);
    assert_eq!(request.approval_policy, Some(ApprovalPolicy::Never));
    assert!(!request.allow_edits);
    assert_eq!(request.cwd.as_deref(), Some("sub"));
    assert_eq!(request.thread_id.as_deref(), Some("t"));
}

#[test]
fn the_tools_say_what_they_are() {
    let ask = ask_definition(1800);
    let a = ask.annotations.clone().unwrap();
    assert_eq!(a.read_only_hint, Some(true));
    assert_eq!(a.destructive_hint, Some(false));
    assert_eq!(a.open_world_hint, Some(false));
    let props = serde_json::Value::Object((*ask.input_schema).clone());
    let mut names: Vec<&str> = props["properties"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "add_dirs",
            "cwd",
            "images",
            "model",
            "prompt",
            "reasoning_effort",
            "thread_id",
            "timeout_sec"
        ]
    );
    assert_eq!(props["properties"]["timeout_sec"]["default"], 1800);
    let answer = serde_json::to_value(answer_definition()).unwrap();
    assert_eq!(
        answer["_meta"]["ui"]["visibility"],
        serde_json::json!(["app"])
    );
    let steer = steer_definition().annotations.unwrap();
    assert_eq!(steer.read_only_hint, Some(false));
}
