//! Unit tests of the protocol subset: message kinds, tolerant items, the schema's spellings.

#![allow(clippy::unwrap_used, clippy::expect_used)]
use super::*;
use serde_json::json;

#[test]
fn requests_notifications_and_responses_are_told_apart() {
    let cases: &[(&str, Option<Incoming>)] = &[
        (
            r#"{"id":3,"method":"item/commandExecution/requestApproval","params":{"itemId":"c"}}"#,
            Some(Incoming::Request {
                id: json!(3),
                method: "item/commandExecution/requestApproval".into(),
                params: json!({"itemId": "c"}),
            }),
        ),
        (
            r#"{"method":"turn/started","params":{}}"#,
            Some(Incoming::Notification {
                method: "turn/started".into(),
                params: json!({}),
            }),
        ),
        (
            r#"{"id":1,"result":{"ok":true}}"#,
            Some(Incoming::Response {
                id: json!(1),
                result: Ok(json!({"ok": true})),
            }),
        ),
        (
            r#"{"id":"x","error":{"code":-32600,"message":"no"}}"#,
            Some(Incoming::Response {
                id: json!("x"),
                result: Err(Refused("no".into())),
            }),
        ),
        (r#"{"nothing":1}"#, None),
        ("not json", None),
    ];
    for (line, want) in cases {
        assert_eq!(&Incoming::parse(line.as_bytes()), want, "{line}");
    }
}

#[test]
fn items_parse_with_defaults_and_unknown_kinds_are_other() {
    let item: Item = serde_json::from_value(
        json!({"type": "commandExecution", "id": "c1", "command": "ls", "status": "inProgress"}),
    )
    .unwrap();
    assert!(matches!(
        item,
        Item::CommandExecution {
            exit_code: None,
            aggregated_output: None,
            ..
        }
    ));
    let item: Item = serde_json::from_value(json!({"type": "userMessage", "id": "u"})).unwrap();
    assert_eq!(item, Item::Other);
}

#[test]
fn inputs_and_targets_serialize_as_the_schema_spells_them() {
    assert_eq!(
        serde_json::to_value(UserInput::LocalImage {
            path: "/t/i.png".into()
        })
        .unwrap(),
        json!({"type": "localImage", "path": "/t/i.png"})
    );
    assert_eq!(
        serde_json::to_value(ReviewTarget::BaseBranch {
            branch: "main".into()
        })
        .unwrap(),
        json!({"type": "baseBranch", "branch": "main"})
    );
    assert_eq!(
        serde_json::to_value(ReviewTarget::UncommittedChanges).unwrap(),
        json!({"type": "uncommittedChanges"})
    );
}
