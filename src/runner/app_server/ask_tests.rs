//! Table tests of the server requests: each becomes the right question or answer, and a
//! person's decision the reply the protocol's words say.

#![allow(clippy::unwrap_used, clippy::expect_used)]
use serde_json::json;

use super::*;

#[test]
fn requests_become_questions_or_immediate_answers() {
    let view = View::plan(std::path::Path::new("/srv/app"), &[]);
    let mut tr = Translate::default();
    tr.notification("item/started", &json!({"item": {"type": "fileChange", "id": "p", "status": "inProgress", "changes": [{"path": "/mnt/app/new.txt", "kind": {"type": "add"}, "diff": "hello\n"}]}}));
    let cmd = tr.request(
        "item/commandExecution/requestApproval",
        &json!({"itemId": "c", "command": "touch x", "cwd": "/mnt/app", "reason": "why"}),
        Some(&view),
    );
    assert_eq!(
        cmd,
        Ask::Person(
            ApprovalRequest {
                kind: ApprovalKind::Command {
                    command: "touch x".into(),
                    cwd: "/srv/app".into()
                },
                reason: Some("why".into())
            },
            Shape::Decision
        )
    );
    let Ask::Person(
        ApprovalRequest {
            kind: ApprovalKind::FileChange { paths, diff },
            ..
        },
        Shape::Decision,
    ) = tr.request(
        "item/fileChange/requestApproval",
        &json!({"itemId": "p"}),
        Some(&view),
    )
    else {
        panic!("a file change question")
    };
    assert_eq!(paths, ["/srv/app/new.txt"]);
    assert!(
        diff.contains("hello") && diff.contains("/srv/app/new.txt"),
        "{diff}"
    );
    let Ask::Now(answer, Some(warning)) = tr.request(
        "item/tool/requestUserInput",
        &json!({"questions": [{"id": "q1", "question": "Which?"}]}),
        None,
    ) else {
        panic!("answered at once")
    };
    assert_eq!(answer, json!({"answers": {"q1": {"answers": []}}}));
    assert!(warning.contains("Which?"));
    for legacy in [
        "execCommandApproval",
        "applyPatchApproval",
        "mcpServer/elicitation/request",
        "anything",
    ] {
        assert!(
            matches!(tr.request(legacy, &json!({}), None), Ask::Refuse(_)),
            "{legacy}"
        );
    }
}

#[test]
fn replies_use_the_spec_words_and_never_accept_for_the_session() {
    assert_eq!(
        reply(&Shape::Decision, Decision::Accept),
        json!({"decision": "accept"})
    );
    assert_eq!(
        reply(&Shape::Decision, Decision::Decline),
        json!({"decision": "decline"})
    );
    assert_eq!(
        reply(&Shape::Decision, Decision::Cancel),
        json!({"decision": "cancel"})
    );
    let asked = json!({"network": {"enabled": true}});
    assert_eq!(
        reply(&Shape::Permissions(asked.clone()), Decision::Accept),
        json!({"permissions": asked, "scope": "turn"})
    );
    assert_eq!(
        reply(&Shape::Permissions(asked), Decision::Decline),
        json!({"permissions": {}, "scope": "turn"})
    );
}

/// A permission request becomes what it grants: paths to write (the caller's), and
/// anything wider (network, patterns, unknown keys), in words.
#[test]
fn a_permission_request_is_read_as_the_paths_it_writes_and_anything_wider() {
    let real = |p: &str| p.replace("/mnt/app", "/srv/app");
    let table = [
        (
            json!({"network": null, "fileSystem": {"read": null, "write": ["/mnt/app/out"],
                   "entries": [{"path": {"type": "path", "path": "/mnt/app/out"}, "access": "write"}]}}),
            "write /srv/app/out",
            vec!["/srv/app/out"],
            false,
        ),
        (
            json!({"network": {"enabled": true}, "fileSystem": {"read": ["/a", "/b"], "write": null}}),
            "read /a, /b; network",
            vec![],
            true,
        ),
        (
            json!({"fileSystem": {"entries": [{"path": {"type": "glob_pattern", "pattern": "/**"}, "access": "write"}]}}),
            "{\"fileSystem\":{\"entries\":[{\"access\":\"write\",\"path\":{\"pattern\":\"/**\",\"type\":\"glob_pattern\"}}]}}",
            vec![],
            true,
        ),
        (
            json!({"fileSystem": {"write": ["/mnt/app/x"]}, "macos": {"x": 1}}),
            "write /srv/app/x; {\"fileSystem\":{\"write\":[\"/mnt/app/x\"]},\"macos\":{\"x\":1}}",
            vec!["/srv/app/x"],
            true,
        ),
        (
            json!({"network": {"enabled": false}}),
            "{\"network\":{\"enabled\":false}}",
            vec![],
            false,
        ),
        (json!(null), "null", vec![], true),
    ];
    for (asked, shown, writes, wide) in table {
        assert_eq!(
            permissions_kind(&asked, real),
            ApprovalKind::Permissions {
                summary: shown.to_owned(),
                write: writes.into_iter().map(str::to_owned).collect(),
                wider: wide,
            },
            "{asked}"
        );
    }
}
