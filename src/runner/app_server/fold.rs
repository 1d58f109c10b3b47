//! App-server messages as the exec fold knows them. [`Translate::notification`] turns each
//! notification into the `codex exec --json` events it corresponds to, so the one
//! `SummaryBuilder` builds the same `Summary` on both backends (same caps, same progress
//! lines); what exec has no event for (the diff, the turn's end state, the items an
//! approval request refers to) is kept here. [`Translate::request`] decides what a server
//! request becomes: a question for a person, or an immediate answer. Pure.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::protocol::{
    Breakdown, CommandApproval, DiffUpdated, ErrorNotification, FileChangeApproval, Item,
    ItemNotification, PermissionsApproval, ThreadStarted, TokenUsageUpdated, TurnCompleted,
    TurnResponse, UserInputRequest, Warning,
};
use crate::codex::events::{
    ErrorMessage, EventUsage, FileUpdate, ItemDetails, ThreadEvent, ThreadItem,
};
use crate::job::control::{ApprovalKind, ApprovalRequest, Decision};
use crate::runner::isolation::View;

/// What the translation has seen so far.
#[derive(Debug, Default)]
pub struct Translate {
    /// The thread.
    pub thread_id: Option<String>,
    /// The running (or last) turn.
    pub turn_id: Option<String>,
    /// The turn's end state (`completed`, `interrupted`, `failed`) once it ended.
    pub ended: Option<String>,
    /// The latest diff.
    pub diff: Option<String>,
    usage: Breakdown,
    /// `turn_id` came from the turn request's response.
    turn_known: bool,
    /// `fileChange` items by id, for the approval request that names one.
    files: HashMap<String, Vec<(String, String)>>,
}

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

fn status(s: &str) -> String {
    match s {
        "inProgress" => "in_progress".to_owned(),
        other => other.to_owned(),
    }
}

impl Translate {
    /// The thread the run is on (from the thread request's response).
    pub fn thread(&mut self, id: &str) -> Vec<ThreadEvent> {
        if self.thread_id.as_deref() == Some(id) {
            return Vec::new();
        }
        self.thread_id = Some(id.to_owned());
        vec![ThreadEvent::ThreadStarted {
            thread_id: id.to_owned(),
        }]
    }

    /// The turn the run started: `turn/start`'s (or `review/start`'s) response, which
    /// names the id `turn/completed` will carry, or `turn/started`, which may come first
    /// but for a review names another id (measured on 0.169), so it never overrides.
    pub fn turn(&mut self, params: &Value, response: bool) -> Vec<ThreadEvent> {
        let Ok(r) = serde_json::from_value::<TurnResponse>(params.clone()) else {
            return Vec::new();
        };
        if r.turn.id.is_empty() || (self.turn_known && !response) {
            return Vec::new();
        }
        let first = self.turn_id.is_none();
        self.turn_known |= response;
        self.turn_id = Some(r.turn.id);
        if first {
            vec![ThreadEvent::TurnStarted {}]
        } else {
            Vec::new()
        }
    }

    /// One notification, as exec events.
    pub fn notification(&mut self, method: &str, params: &Value) -> Vec<ThreadEvent> {
        let p = params.clone();
        match method {
            "thread/started" => serde_json::from_value::<ThreadStarted>(p)
                .map(|t| self.thread(&t.thread.id))
                .unwrap_or_default(),
            "turn/started" => self.turn(params, false),
            "item/started" | "item/completed" => {
                let Ok(n) = serde_json::from_value::<ItemNotification>(p) else {
                    return Vec::new();
                };
                let Some(item) = self.item(n.item) else {
                    return Vec::new();
                };
                vec![if method == "item/started" {
                    ThreadEvent::ItemStarted { item }
                } else {
                    ThreadEvent::ItemCompleted { item }
                }]
            }
            "turn/diff/updated" => {
                if let Ok(d) = serde_json::from_value::<DiffUpdated>(p) {
                    self.diff = Some(d.diff);
                }
                Vec::new()
            }
            "thread/tokenUsage/updated" => {
                if let Ok(u) = serde_json::from_value::<TokenUsageUpdated>(p) {
                    self.usage = u.token_usage.total;
                }
                Vec::new()
            }
            "error" => serde_json::from_value::<ErrorNotification>(p)
                .map(|e| {
                    vec![ThreadEvent::Error {
                        message: e.error.message,
                    }]
                })
                .unwrap_or_default(),
            "warning" => serde_json::from_value::<Warning>(p)
                .map(|w| {
                    vec![ThreadEvent::ItemCompleted {
                        item: ThreadItem {
                            id: String::new(),
                            details: ItemDetails::Error { message: w.message },
                        },
                    }]
                })
                .unwrap_or_default(),
            "turn/completed" => {
                let Ok(c) = serde_json::from_value::<TurnCompleted>(p) else {
                    return Vec::new();
                };
                if self.turn_known
                    && let Some(ours) = &self.turn_id
                    && !c.turn.id.is_empty()
                    && *ours != c.turn.id
                {
                    return Vec::new();
                }
                self.ended = Some(c.turn.status.clone());
                match c.turn.status.as_str() {
                    "completed" => vec![ThreadEvent::TurnCompleted {
                        usage: EventUsage {
                            input_tokens: self.usage.input_tokens,
                            cached_input_tokens: self.usage.cached_input_tokens,
                            output_tokens: self.usage.output_tokens,
                            reasoning_output_tokens: self.usage.reasoning_output_tokens,
                        },
                    }],
                    "failed" => vec![ThreadEvent::TurnFailed {
                        error: ErrorMessage {
                            message: c
                                .turn
                                .error
                                .map(|e| e.message)
                                .unwrap_or_else(|| "the turn failed".to_owned()),
                        },
                    }],
                    _ => Vec::new(),
                }
            }
            _ => Vec::new(),
        }
    }

    fn item(&mut self, item: Item) -> Option<ThreadItem> {
        let (id, details) = match item {
            Item::AgentMessage { id, text } => (id, ItemDetails::AgentMessage { text }),
            Item::CommandExecution {
                id,
                command,
                aggregated_output,
                exit_code,
                status: s,
                ..
            } => (
                id,
                ItemDetails::CommandExecution {
                    command,
                    aggregated_output: aggregated_output.unwrap_or_default(),
                    exit_code,
                    status: status(&s),
                },
            ),
            Item::FileChange {
                id,
                changes,
                status: s,
            } => {
                self.files.insert(
                    id.clone(),
                    changes
                        .iter()
                        .map(|c| (c.path.clone(), c.diff.clone()))
                        .collect(),
                );
                (
                    id,
                    ItemDetails::FileChange {
                        changes: changes
                            .into_iter()
                            .map(|c| FileUpdate {
                                path: c.path,
                                kind: c.kind.kind,
                            })
                            .collect(),
                        status: status(&s),
                    },
                )
            }
            Item::Reasoning { id, summary } => (
                id,
                ItemDetails::Reasoning {
                    text: summary.join("\n"),
                },
            ),
            Item::McpToolCall {
                id,
                server,
                tool,
                status: s,
            } => (
                id,
                ItemDetails::McpToolCall {
                    server,
                    tool,
                    status: status(&s),
                },
            ),
            Item::WebSearch { id, query } => (id, ItemDetails::WebSearch { query }),
            Item::Other => return None,
        };
        Some(ThreadItem { id, details })
    }

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
#[path = "fold_tests.rs"]
mod tests;
