//! What a server request becomes: a question for a person (an approval, its paths mapped
//! back to the caller's), or an immediate answer, and the reply a person's decision
//! turns into. Kept apart from [`super::fold`] because it answers the server rather than
//! feeding the exec fold; it reads only the file changes the fold remembered. Pure.

use serde_json::{Value, json};

use super::fold::Translate;
use super::protocol::{CommandApproval, FileChangeApproval, PermissionsApproval, UserInputRequest};
use crate::run::control::{ApprovalKind, ApprovalRequest, Decision};
use crate::runner::isolation::View;

/// What to do with a server request.
#[derive(Debug, Clone, PartialEq)]
pub enum Ask {
    /// Ask a person; reply with [`reply`] of the answer.
    Person(ApprovalRequest, Shape),
    /// Answer at once, and say so in the result.
    Now(Value, Option<String>),
    /// Refuse (a method this runner does not relay).
    Refuse(String),
}

/// The reply shape a request wants.
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    /// `{"decision": "accept" | "decline" | "cancel"}`.
    Decision,
    /// `{"permissions": …, "scope": "turn"}`: what was asked on accept, nothing otherwise.
    Permissions(Value),
}

/// The reply to a request of `shape` answered `decision` (never `acceptForSession`).
pub fn reply(shape: &Shape, decision: Decision) -> Value {
    match (shape, decision) {
        (Shape::Decision, d) => json!({"decision": d.as_str()}),
        (Shape::Permissions(asked), Decision::Accept) => {
            json!({"permissions": asked, "scope": "turn"})
        }
        (Shape::Permissions(_), _) => json!({"permissions": {}, "scope": "turn"}),
    }
}

/// What an `item/permissions/requestApproval` asks, as an approval: the paths to write
/// (the caller's names, which the policy checks), whether anything wider is asked
/// (network, or a form 2Bot does not read: patterns, special paths, unknown keys), and
/// all of it in words, e.g. `write /srv/app/out; network`. Codex 0.169 sends
/// `{"fileSystem": {"read", "write", "entries"}, "network": {"enabled"}}`.
pub fn permissions_kind(permissions: &Value, real: impl Fn(&str) -> String) -> ApprovalKind {
    let fs = &permissions["fileSystem"];
    let network = permissions["network"]["enabled"] == Value::Bool(true);
    // What 2Bot cannot read is shown as JSON and approved only where anything may be.
    let mut unread = !permissions.is_object()
        || unknown_keys(permissions, &["network", "fileSystem"])
        || unknown_keys(fs, &["read", "write", "entries", "globScanMaxDepth"]);
    let mut paths = |access: &str| -> Vec<String> {
        let listed = fs[access].as_array().into_iter().flatten();
        let entries = fs["entries"].as_array().into_iter().flatten();
        let mut found: Vec<String> = listed.filter_map(Value::as_str).map(&real).collect();
        for entry in entries.filter(|e| e["access"] == access) {
            match (
                entry["path"]["type"].as_str(),
                entry["path"]["path"].as_str(),
            ) {
                (Some("path"), Some(path)) => found.push(real(path)),
                _ => unread = true,
            }
        }
        found.sort();
        found.dedup();
        found
    };
    let (write, read) = (paths("write"), paths("read"));
    let mut parts = Vec::new();
    for (said, list) in [("write", &write), ("read", &read)] {
        if !list.is_empty() {
            parts.push(format!("{said} {}", list.join(", ")));
        }
    }
    if network {
        parts.push("network".to_owned());
    }
    if parts.is_empty() || unread {
        parts.push(permissions.to_string());
    }
    ApprovalKind::Permissions {
        summary: parts.join("; "),
        write,
        wider: network || unread,
    }
}

/// `value` holds a non-null key other than `known`.
fn unknown_keys(value: &Value, known: &[&str]) -> bool {
    value.as_object().is_some_and(|m| {
        m.iter()
            .any(|(k, v)| !v.is_null() && !known.contains(&k.as_str()))
    })
}

impl Translate {
    /// What a server request becomes; paths map back to the caller's through `view`.
    pub fn request(&self, method: &str, params: &Value, view: Option<&View>) -> Ask {
        let real = |p: &str| view.map_or_else(|| p.to_owned(), |v| v.to_real(p));
        let p = params.clone();
        match method {
            "item/commandExecution/requestApproval" => {
                let a: CommandApproval = serde_json::from_value(p).unwrap_or_default();
                Ask::Person(
                    ApprovalRequest {
                        kind: ApprovalKind::Command {
                            command: a.command.unwrap_or_default(),
                            cwd: a.cwd.as_deref().map(real).unwrap_or_default(),
                        },
                        reason: a.reason,
                    },
                    Shape::Decision,
                )
            }
            "item/fileChange/requestApproval" => {
                let a: FileChangeApproval = serde_json::from_value(p).unwrap_or_default();
                let files = self.files.get(&a.item_id).cloned().unwrap_or_default();
                let diff = files
                    .iter()
                    .map(|(path, diff)| format!("--- {}\n{diff}", real(path)))
                    .collect::<Vec<_>>()
                    .join("\n");
                let mut paths: Vec<String> = files.iter().map(|(p, _)| real(p)).collect();
                if let Some(root) = &a.grant_root {
                    paths.push(format!(
                        "{} (write access below it for the session)",
                        real(root)
                    ));
                }
                Ask::Person(
                    ApprovalRequest {
                        kind: ApprovalKind::FileChange { paths, diff },
                        reason: a.reason,
                    },
                    Shape::Decision,
                )
            }
            "item/permissions/requestApproval" => {
                let a: PermissionsApproval = serde_json::from_value(p).unwrap_or_default();
                Ask::Person(
                    ApprovalRequest {
                        kind: permissions_kind(&a.permissions, real),
                        reason: a.reason,
                    },
                    Shape::Permissions(a.permissions),
                )
            }
            "item/tool/requestUserInput" => {
                let q: UserInputRequest = serde_json::from_value(p).unwrap_or_default();
                let answers: serde_json::Map<String, Value> = q
                    .questions
                    .iter()
                    .map(|q| (q.id.clone(), json!({"answers": []})))
                    .collect();
                let asked: Vec<&str> = q.questions.iter().map(|q| q.question.as_str()).collect();
                Ask::Now(
                    json!({"answers": answers}),
                    Some(format!(
                        "Codex asked a question ({}); 2Bot relays approvals, not questions, so it was answered with no answer",
                        asked.join(" / ")
                    )),
                )
            }
            other => Ask::Refuse(format!(
                "2Bot does not answer `{other}` (it relays the v2 approval requests only)"
            )),
        }
    }
}

#[cfg(test)]
#[path = "ask_tests.rs"]
mod tests;
