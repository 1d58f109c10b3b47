//! Table tests of the translation: app-server notifications give the exec fold's events,
//! and each server request becomes the right question or answer.

#![allow(clippy::unwrap_used, clippy::expect_used)]
use serde_json::json;

use super::*;
use crate::codex::SummaryBuilder;

fn fold(messages: &[(&str, Value)]) -> (Translate, crate::run::Summary) {
    let mut tr = Translate::default();
    let mut b = SummaryBuilder::new();
    for (method, params) in messages {
        for e in tr.notification(method, params) {
            b.apply(&e);
        }
    }
    (tr, b.finish())
}

#[test]
fn a_turn_folds_into_the_same_summary_as_exec() {
    let (tr, s) = fold(&[
        ("thread/started", json!({"thread": {"id": "th"}})),
        (
            "turn/started",
            json!({"threadId": "th", "turn": {"id": "tu", "status": "inProgress"}}),
        ),
        (
            "item/started",
            json!({"item": {"type": "commandExecution", "id": "c", "command": "ls", "status": "inProgress"}}),
        ),
        (
            "item/completed",
            json!({"item": {"type": "commandExecution", "id": "c", "command": "ls", "aggregatedOutput": "a\n", "exitCode": 0, "status": "completed"}}),
        ),
        (
            "item/completed",
            json!({"item": {"type": "commandExecution", "id": "d", "command": "rm x", "status": "declined"}}),
        ),
        (
            "item/completed",
            json!({"item": {"type": "fileChange", "id": "f", "status": "completed", "changes": [{"path": "/mnt/app/a", "kind": {"type": "add"}, "diff": "x"}]}}),
        ),
        ("item/agentMessage/delta", json!({"delta": "ignored"})),
        (
            "item/completed",
            json!({"item": {"type": "agentMessage", "id": "m1", "text": "first"}}),
        ),
        (
            "item/completed",
            json!({"item": {"type": "agentMessage", "id": "m2", "text": "done"}}),
        ),
        (
            "item/completed",
            json!({"item": {"type": "userMessage", "id": "u"}}),
        ),
        ("turn/diff/updated", json!({"diff": "diff --git a/a b/a\n"})),
        ("warning", json!({"message": "careful"})),
        (
            "thread/tokenUsage/updated",
            json!({"tokenUsage": {"total": {"inputTokens": 10, "cachedInputTokens": 2, "outputTokens": 3, "reasoningOutputTokens": 1, "totalTokens": 13}, "last": {}}}),
        ),
        (
            "turn/completed",
            json!({"threadId": "th", "turn": {"id": "tu", "status": "completed"}}),
        ),
    ]);
    assert_eq!(s.thread_id.as_deref(), Some("th"));
    assert_eq!(s.final_message.as_deref(), Some("done"));
    assert!(s.turn_completed);
    assert_eq!(
        (
            s.usage.input_tokens,
            s.usage.cached_input_tokens,
            s.usage.output_tokens,
            s.usage.reasoning_output_tokens
        ),
        (10, 2, 3, 1)
    );
    assert_eq!(s.commands.len(), 2);
    assert_eq!(
        (
            s.commands[0].exit_code,
            s.commands[0].status.as_str(),
            s.commands[0].output.as_str()
        ),
        (Some(0), "completed", "a\n")
    );
    assert_eq!(s.commands[1].status, "declined");
    assert_eq!(
        (
            s.file_changes[0].path.as_str(),
            s.file_changes[0].kind.as_str()
        ),
        ("/mnt/app/a", "add")
    );
    assert_eq!(s.warnings, ["careful"]);
    assert_eq!(s.unrecognized_lines, 0);
    assert_eq!(tr.diff.as_deref(), Some("diff --git a/a b/a\n"));
    assert_eq!(tr.ended.as_deref(), Some("completed"));
}

#[test]
fn only_a_completed_turn_counts_as_completed() {
    for (status, completed, failed) in [
        ("completed", true, false),
        ("interrupted", false, false),
        ("failed", false, true),
    ] {
        let (tr, s) = fold(&[(
            "turn/completed",
            json!({"turn": {"id": "t", "status": status, "error": {"message": "boom"}}}),
        )]);
        assert_eq!(s.turn_completed, completed, "{status}");
        assert_eq!(
            s.errors.iter().any(|e| e.contains("boom")),
            failed,
            "{status}"
        );
        assert_eq!(tr.ended.as_deref(), Some(status));
    }
}

#[test]
fn another_turn_s_completion_does_not_end_ours() {
    let mut tr = Translate::default();
    tr.turn(&json!({"turn": {"id": "ours"}}), true);
    tr.notification(
        "turn/completed",
        &json!({"turn": {"id": "a-subagent", "status": "completed"}}),
    );
    assert_eq!(tr.ended, None);
}

/// Measured on 0.169: a review's `turn/started` names another id than the `review/start`
/// reply, and `turn/completed` carries the reply's.
#[test]
fn a_review_ends_on_the_id_its_reply_named_not_turn_started_s() {
    let mut tr = Translate::default();
    assert_eq!(
        tr.turn(&json!({"turn": {"id": "R"}, "reviewThreadId": "T"}), true)
            .len(),
        1
    );
    assert!(
        tr.notification(
            "turn/started",
            &json!({"turn": {"id": "other", "rootTurnId": "R"}})
        )
        .is_empty()
    );
    assert_eq!(tr.turn_id.as_deref(), Some("R"));
    tr.notification(
        "turn/completed",
        &json!({"turn": {"id": "R", "status": "completed"}}),
    );
    assert_eq!(tr.ended.as_deref(), Some("completed"));
}
