//! App-server messages as the exec fold knows them. [`Translate::notification`] turns each
//! notification into the `codex exec --json` events it corresponds to, so the one
//! `SummaryBuilder` builds the same `Summary` on both backends (same caps, same progress
//! lines); what exec has no event for (the diff, the turn's end state, the items an
//! approval request refers to) is kept here; what a server request becomes is
//! [`super::ask`]'s. Pure.

use std::collections::HashMap;

use serde_json::Value;

use super::protocol::{
    Breakdown, DiffUpdated, ErrorNotification, Item, ItemNotification, ThreadStarted,
    TokenUsageUpdated, TurnCompleted, TurnResponse, Warning,
};
use crate::codex::events::{
    ErrorMessage, EventUsage, FileUpdate, ItemDetails, ThreadEvent, ThreadItem,
};

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
    pub(super) files: HashMap<String, Vec<(String, String)>>,
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
}

#[cfg(test)]
#[path = "fold_tests.rs"]
mod tests;
