//! Typed `codex exec --json` events, after openai/codex `codex-rs/exec/src/exec_events.rs`.
//!
//! Every line Codex prints on stdout is one [`ThreadEvent`]. Parsing is tolerant:
//! unknown event or item types land in `Unknown`, missing fields take defaults,
//! so a newer Codex never makes a run fail here. Lines that are not JSON at all
//! are handled by the caller (they are kept, never fatal).

use serde::Deserialize;

/// One line of Codex's JSONL stream.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type")]
pub enum ThreadEvent {
    /// The first event: the thread (conversation) id, usable with `codex exec resume`.
    #[serde(rename = "thread.started")]
    ThreadStarted {
        /// The thread id.
        thread_id: String,
    },
    /// A turn began: the prompt was sent to the model.
    #[serde(rename = "turn.started")]
    TurnStarted {},
    /// The turn ended normally, with its token usage.
    #[serde(rename = "turn.completed")]
    TurnCompleted {
        /// Tokens used by the turn.
        #[serde(default)]
        usage: EventUsage,
    },
    /// The turn ended with an error.
    #[serde(rename = "turn.failed")]
    TurnFailed {
        /// What went wrong.
        error: ErrorMessage,
    },
    /// An item (message, command, change, …) began.
    #[serde(rename = "item.started")]
    ItemStarted {
        /// The item so far.
        item: ThreadItem,
    },
    /// An item changed (for example a todo list was ticked).
    #[serde(rename = "item.updated")]
    ItemUpdated {
        /// The item now.
        item: ThreadItem,
    },
    /// An item reached its final state.
    #[serde(rename = "item.completed")]
    ItemCompleted {
        /// The final item.
        item: ThreadItem,
    },
    /// A stream-level error (Codex may retry after it; the run is not over).
    #[serde(rename = "error")]
    Error {
        /// What went wrong.
        #[serde(default)]
        message: String,
    },
    /// An event type this version of 2Bot does not know.
    #[serde(other)]
    Unknown,
}

/// `{"message": "..."}`, as carried by `turn.failed`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct ErrorMessage {
    /// The message.
    #[serde(default)]
    pub message: String,
}

/// Token counts as Codex reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub struct EventUsage {
    /// Input tokens.
    #[serde(default)]
    pub input_tokens: u64,
    /// Cached input tokens.
    #[serde(default)]
    pub cached_input_tokens: u64,
    /// Output tokens.
    #[serde(default)]
    pub output_tokens: u64,
    /// Reasoning tokens.
    #[serde(default)]
    pub reasoning_output_tokens: u64,
}

/// An item of the thread: its id and what it is.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ThreadItem {
    /// Stable id across started/updated/completed.
    #[serde(default)]
    pub id: String,
    /// The item's type and payload.
    #[serde(flatten)]
    pub details: ItemDetails,
}

/// The payload of a [`ThreadItem`], tagged by `type`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ItemDetails {
    /// A message from the agent; the last one is the run's answer.
    AgentMessage {
        /// The text.
        #[serde(default)]
        text: String,
    },
    /// A reasoning summary.
    Reasoning {
        /// The text.
        #[serde(default)]
        text: String,
    },
    /// A command the agent ran.
    CommandExecution {
        /// The command line.
        #[serde(default)]
        command: String,
        /// Combined stdout and stderr so far.
        #[serde(default)]
        aggregated_output: String,
        /// Exit code once finished.
        #[serde(default)]
        exit_code: Option<i64>,
        /// `in_progress`, `completed`, `failed`, `declined`.
        #[serde(default)]
        status: String,
    },
    /// Files the agent changed.
    FileChange {
        /// One entry per file.
        #[serde(default)]
        changes: Vec<FileUpdate>,
        /// `completed` or `failed`.
        #[serde(default)]
        status: String,
    },
    /// A call to an MCP tool configured in Codex.
    McpToolCall {
        /// Server name.
        #[serde(default)]
        server: String,
        /// Tool name.
        #[serde(default)]
        tool: String,
        /// `in_progress`, `completed`, `failed`.
        #[serde(default)]
        status: String,
    },
    /// A web search.
    WebSearch {
        /// The query.
        #[serde(default)]
        query: String,
    },
    /// The agent's plan.
    TodoList {
        /// Plan steps.
        #[serde(default)]
        items: Vec<TodoItem>,
    },
    /// A non-fatal error reported as an item (a warning: the run goes on).
    Error {
        /// The message.
        #[serde(default)]
        message: String,
    },
    /// An item type this version of 2Bot does not know.
    #[serde(other)]
    Unknown,
}

/// One file in a `file_change` item.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct FileUpdate {
    /// The path.
    #[serde(default)]
    pub path: String,
    /// `add`, `delete`, `update`.
    #[serde(default)]
    pub kind: String,
}

/// One step of a `todo_list` item.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct TodoItem {
    /// The step.
    #[serde(default)]
    pub text: String,
    /// Done yet.
    #[serde(default)]
    pub completed: bool,
}

impl ThreadEvent {
    /// Parse one line; `None` when the line is not a JSON object with a `type`.
    pub fn parse(line: &[u8]) -> Option<Self> {
        serde_json::from_slice(line).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines captured from the real `codex exec --json` 0.169.0 run offline.
    const REAL: &[&str] = &[
        r#"{"type":"thread.started","thread_id":"01a21112-510a-7a33-a02d-fc4119829e47"}"#,
        r#"{"type":"item.completed","item":{"id":"item_0","type":"error","message":"Model metadata for `mock-model` not found."}}"#,
        r#"{"type":"turn.started"}"#,
        r#"{"type":"item.started","item":{"id":"item_1","type":"command_execution","command":"/bin/bash -lc 'echo hi'","aggregated_output":"","exit_code":null,"status":"in_progress"}}"#,
        r#"{"type":"item.completed","item":{"id":"item_1","type":"command_execution","command":"/bin/bash -lc 'echo hi'","aggregated_output":"hi\n","exit_code":0,"status":"completed"}}"#,
        r#"{"type":"item.completed","item":{"id":"item_2","type":"agent_message","text":"hello from mock"}}"#,
        r#"{"type":"turn.completed","usage":{"input_tokens":22,"cached_input_tokens":6,"cache_write_input_tokens":0,"output_tokens":14,"reasoning_output_tokens":4}}"#,
        r#"{"type":"error","message":"Reconnecting... waiting for network"}"#,
    ];

    #[test]
    fn every_line_of_a_real_codex_run_parses_into_a_known_event() {
        for line in REAL {
            let event = ThreadEvent::parse(line.as_bytes());
            assert!(
                matches!(event, Some(ref e) if *e != ThreadEvent::Unknown),
                "{line} -> {event:?}"
            );
        }
    }

    #[test]
    fn turn_completed_reads_all_four_token_counts() {
        let Some(ThreadEvent::TurnCompleted { usage }) = ThreadEvent::parse(REAL[6].as_bytes())
        else {
            panic!("not turn.completed");
        };
        assert_eq!(
            usage,
            EventUsage {
                input_tokens: 22,
                cached_input_tokens: 6,
                output_tokens: 14,
                reasoning_output_tokens: 4
            }
        );
    }

    #[test]
    fn an_unknown_event_type_is_kept_as_unknown() {
        assert_eq!(
            ThreadEvent::parse(br#"{"type":"thread.renamed","name":"x"}"#),
            Some(ThreadEvent::Unknown)
        );
    }

    #[test]
    fn an_unknown_item_type_is_kept_as_unknown() {
        let event =
            ThreadEvent::parse(br#"{"type":"item.completed","item":{"id":"i","type":"hologram"}}"#);
        assert!(matches!(
            event,
            Some(ThreadEvent::ItemCompleted {
                item: ThreadItem {
                    details: ItemDetails::Unknown,
                    ..
                }
            })
        ));
    }

    #[test]
    fn non_json_and_typeless_lines_do_not_parse() {
        assert_eq!(ThreadEvent::parse(b"Reading prompt from stdin..."), None);
        assert_eq!(ThreadEvent::parse(br#"{"no":"type"}"#), None);
        assert_eq!(ThreadEvent::parse(&[0xff, 0xfe, b'{']), None);
    }

    #[test]
    fn file_change_and_todo_list_items_parse() {
        let fc = ThreadEvent::parse(br#"{"type":"item.completed","item":{"id":"a","type":"file_change","changes":[{"path":"src/x.rs","kind":"update"}],"status":"completed"}}"#);
        assert!(
            matches!(fc, Some(ThreadEvent::ItemCompleted { item: ThreadItem { details: ItemDetails::FileChange { ref changes, .. }, .. } }) if changes.len() == 1)
        );
        let todo = ThreadEvent::parse(br#"{"type":"item.updated","item":{"id":"b","type":"todo_list","items":[{"text":"a","completed":true},{"text":"b","completed":false}]}}"#);
        assert!(
            matches!(todo, Some(ThreadEvent::ItemUpdated { item: ThreadItem { details: ItemDetails::TodoList { ref items }, .. } }) if items.len() == 2)
        );
    }
}
