//! The part of Codex 0.169's app-server protocol this runner speaks, and nothing more
//! (the full schema: `codex app-server generate-json-schema`; v2 types). One JSON object
//! a line, JSON-RPC 2.0 without the `"jsonrpc"` member, as Codex writes it.
//!
//! Parsing is tolerant the way the exec fold is: a message of an unknown method is
//! skipped, a missing field takes its default, so a newer Codex never fails a run here.
//! What Codex *asks* (server requests) is never skipped: [`Incoming::Request`] keeps the
//! id so that every request gets an answer.

use serde::Deserialize;

pub use super::outgoing::{
    ReviewStartParams, ReviewTarget, ThreadParams, TurnStartParams, UserInput,
};
use serde_json::Value;

/// What the app-server refused a request with: its JSON-RPC error's message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// One message from the server.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// The answer to one of our requests.
    Response {
        /// Our request id.
        id: Value,
        /// The result, or the server's error.
        result: Result<Value, Refused>,
    },
    /// The server asks us something (an approval, a question); must be answered.
    Request {
        /// The server's request id, echoed in the answer.
        id: Value,
        /// The method.
        method: String,
        /// Its params.
        params: Value,
    },
    /// Something happened.
    Notification {
        /// The method.
        method: String,
        /// Its params.
        params: Value,
    },
}

#[derive(Deserialize)]
struct Raw {
    #[serde(default)]
    id: Option<Value>,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    params: Option<Value>,
    #[serde(default)]
    result: Option<Value>,
    #[serde(default)]
    error: Option<RawError>,
}

#[derive(Deserialize)]
struct RawError {
    #[serde(default)]
    message: String,
}

impl Incoming {
    /// One line from the server; `None` when it is no JSON-RPC message.
    pub fn parse(line: &[u8]) -> Option<Self> {
        let raw: Raw = serde_json::from_slice(line).ok()?;
        let params = raw.params.unwrap_or(Value::Null);
        Some(match (raw.id, raw.method) {
            (Some(id), Some(method)) => Self::Request { id, method, params },
            (None, Some(method)) => Self::Notification { method, params },
            (Some(id), None) => Self::Response {
                id,
                result: match raw.error {
                    Some(e) => Err(Refused(e.message)),
                    None => Ok(raw.result.unwrap_or(Value::Null)),
                },
            },
            (None, None) => return None,
        })
    }
}

/// `thread/started`.
#[derive(Debug, Deserialize)]
pub struct ThreadStarted {
    /// The thread.
    pub thread: Thread,
}

/// A thread, as much as the runner needs of it.
#[derive(Debug, Default, Deserialize)]
pub struct Thread {
    /// Its id (for resume and fork).
    #[serde(default)]
    pub id: String,
}

/// The result of `thread/start|resume|fork`.
#[derive(Debug, Deserialize)]
pub struct ThreadResponse {
    /// The thread the run continues on.
    pub thread: Thread,
}

/// The result of `turn/start`, `review/start`, and `turn/started`'s params.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TurnResponse {
    /// The turn.
    pub turn: Turn,
    /// `review/start`: the thread the review runs on.
    #[serde(default)]
    pub review_thread_id: Option<String>,
}

/// A turn.
#[derive(Debug, Default, Deserialize)]
pub struct Turn {
    /// Its id (`turn/steer`'s `expectedTurnId`, `turn/interrupt`'s `turnId`).
    #[serde(default)]
    pub id: String,
    /// `completed`, `interrupted`, `failed` or `inProgress`.
    #[serde(default)]
    pub status: String,
    /// Why it failed.
    #[serde(default)]
    pub error: Option<TurnError>,
}

/// `turn/completed`.
#[derive(Debug, Deserialize)]
pub struct TurnCompleted {
    /// The turn as it ended.
    pub turn: Turn,
}

/// A turn's error, and `error`'s.
#[derive(Debug, Default, Deserialize)]
pub struct TurnError {
    /// What went wrong.
    #[serde(default)]
    pub message: String,
}

/// `error`: a stream error; the turn may go on (`willRetry`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorNotification {
    /// What went wrong.
    #[serde(default)]
    pub error: TurnError,
    /// Codex will retry.
    #[serde(default)]
    pub will_retry: bool,
}

/// `warning`.
#[derive(Debug, Deserialize)]
pub struct Warning {
    /// The warning.
    #[serde(default)]
    pub message: String,
}

/// `turn/diff/updated`: the turn's whole diff so far.
#[derive(Debug, Deserialize)]
pub struct DiffUpdated {
    /// A unified diff.
    #[serde(default)]
    pub diff: String,
}

/// `thread/tokenUsage/updated`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenUsageUpdated {
    /// The usage.
    pub token_usage: TokenUsage,
}

/// A thread's token usage.
#[derive(Debug, Deserialize)]
pub struct TokenUsage {
    /// The turn's total so far.
    pub total: Breakdown,
}

/// Token counts.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Breakdown {
    /// Input tokens.
    #[serde(default)]
    pub input_tokens: u64,
    /// Of which cached.
    #[serde(default)]
    pub cached_input_tokens: u64,
    /// Output tokens.
    #[serde(default)]
    pub output_tokens: u64,
    /// Of which reasoning.
    #[serde(default)]
    pub reasoning_output_tokens: u64,
}

/// `item/started` and `item/completed`.
#[derive(Debug, Deserialize)]
pub struct ItemNotification {
    /// The item.
    pub item: Item,
}

/// A thread item, the kinds the result reports; others are [`Item::Other`].
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Item {
    /// A message from the agent.
    #[serde(rename_all = "camelCase")]
    AgentMessage {
        /// Item id.
        #[serde(default)]
        id: String,
        /// The text.
        #[serde(default)]
        text: String,
    },
    /// A command.
    #[serde(rename_all = "camelCase")]
    CommandExecution {
        /// Item id.
        #[serde(default)]
        id: String,
        /// The command line.
        #[serde(default)]
        command: String,
        /// Where it runs (Codex's name).
        #[serde(default)]
        cwd: Option<String>,
        /// Its output so far.
        #[serde(default)]
        aggregated_output: Option<String>,
        /// Its exit code.
        #[serde(default)]
        exit_code: Option<i64>,
        /// `inProgress`, `completed`, `failed`, `declined`.
        #[serde(default)]
        status: String,
    },
    /// File changes.
    #[serde(rename_all = "camelCase")]
    FileChange {
        /// Item id.
        #[serde(default)]
        id: String,
        /// One per file.
        #[serde(default)]
        changes: Vec<FileUpdateChange>,
        /// `inProgress`, `completed`, `failed`, `declined`.
        #[serde(default)]
        status: String,
    },
    /// A reasoning summary.
    Reasoning {
        /// Item id.
        #[serde(default)]
        id: String,
        /// Its parts.
        #[serde(default)]
        summary: Vec<String>,
    },
    /// An MCP tool call.
    #[serde(rename_all = "camelCase")]
    McpToolCall {
        /// Item id.
        #[serde(default)]
        id: String,
        /// The MCP server.
        #[serde(default)]
        server: String,
        /// The tool.
        #[serde(default)]
        tool: String,
        /// Its status.
        #[serde(default)]
        status: String,
    },
    /// A web search.
    WebSearch {
        /// Item id.
        #[serde(default)]
        id: String,
        /// The query.
        #[serde(default)]
        query: String,
    },
    /// Any other item (user messages, plans, …).
    #[serde(other)]
    Other,
}

/// One file of a `fileChange` item.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct FileUpdateChange {
    /// The path (Codex's name).
    #[serde(default)]
    pub path: String,
    /// `add`, `delete`, `update`.
    #[serde(default)]
    pub kind: ChangeKind,
    /// The change (a diff, or an added file's content).
    #[serde(default)]
    pub diff: String,
}

/// `{"type": "add"}`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct ChangeKind {
    /// `add`, `delete`, `update`.
    #[serde(default, rename = "type")]
    pub kind: String,
}

/// `item/commandExecution/requestApproval`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommandApproval {
    /// The command's item.
    #[serde(default)]
    pub item_id: String,
    /// The command line.
    #[serde(default)]
    pub command: Option<String>,
    /// Where it would run (Codex's name).
    #[serde(default)]
    pub cwd: Option<String>,
    /// Codex's reason.
    #[serde(default)]
    pub reason: Option<String>,
}

/// `item/fileChange/requestApproval`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileChangeApproval {
    /// The `fileChange` item (started before the request).
    #[serde(default)]
    pub item_id: String,
    /// Codex's reason.
    #[serde(default)]
    pub reason: Option<String>,
    /// A root Codex wants to write below for the rest of the session.
    #[serde(default)]
    pub grant_root: Option<String>,
}

/// `item/permissions/requestApproval`.
#[derive(Debug, Default, Deserialize)]
pub struct PermissionsApproval {
    /// Codex's reason.
    #[serde(default)]
    pub reason: Option<String>,
    /// What it wants (shown as JSON; granted as asked on accept).
    #[serde(default)]
    pub permissions: Value,
}

/// `item/tool/requestUserInput`.
#[derive(Debug, Default, Deserialize)]
pub struct UserInputRequest {
    /// The questions.
    #[serde(default)]
    pub questions: Vec<Question>,
}

/// One question of [`UserInputRequest`].
#[derive(Debug, Default, Deserialize)]
pub struct Question {
    /// Its id, the key of the answer.
    #[serde(default)]
    pub id: String,
    /// What it asks.
    #[serde(default)]
    pub question: String,
}

#[cfg(test)]
#[path = "protocol_tests.rs"]
mod tests;
