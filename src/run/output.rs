//! What a run gives back: [`RunOutput`], the tool's structured result, and the parts of it
//! Codex's event stream fills in ([`Summary`], [`CommandRun`], [`FileChange`], [`Usage`],
//! and [`Truncated`]: what was cut to keep the reply small).
//!
//! These are wire types (their JSON Schema is the tool's `outputSchema`, pinned in
//! `mcp::tools`), so they live together, and here rather than in `codex`: `codex` builds a
//! [`Summary`] from events and its argv from a `RunSpec`, so it imports `run`; if `run`
//! imported `codex` back for the summary's shape, the two would form a cycle.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::approval::ApprovalRecord;

/// One command Codex ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CommandRun {
    /// The command line Codex executed.
    pub command: String,
    /// Its exit code; absent until it finished.
    // Absent, never null: every schema field has one type (Gemini-style clients).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    /// `in_progress`, `completed`, `failed` or `declined`.
    pub status: String,
    /// The tail of its combined output (capped).
    pub output: String,
    /// True when `output` was cut to the cap.
    pub output_truncated: bool,
}

/// One file Codex changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FileChange {
    /// Path as Codex reported it.
    pub path: String,
    /// `add`, `delete` or `update`.
    pub kind: String,
}

/// Token usage reported by Codex's `turn.completed`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Usage {
    /// Input tokens.
    pub input_tokens: u64,
    /// Of which served from cache.
    pub cached_input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Of which spent reasoning.
    pub reasoning_output_tokens: u64,
}

/// What Codex's events said about the run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Summary {
    /// The thread id (`thread.started`), for `codex exec resume`.
    // Absent, never null: every schema field has one type (Gemini-style clients).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread_id: Option<String>,
    /// The last agent message: Codex's answer (absent when there was none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_message: Option<String>,
    /// Codex reported `turn.completed`.
    pub turn_completed: bool,
    /// Token usage from `turn.completed`.
    pub usage: Usage,
    /// Commands Codex ran, in order.
    pub commands: Vec<CommandRun>,
    /// Files Codex changed, in order.
    pub file_changes: Vec<FileChange>,
    /// MCP tool calls Codex made, as `server/tool (status)`.
    pub mcp_tool_calls: Vec<String>,
    /// Web searches Codex made.
    pub web_searches: Vec<String>,
    /// Fatal errors: `turn.failed` and stream `error` events.
    pub errors: Vec<String>,
    /// Non-fatal `error` items Codex reported while going on.
    pub warnings: Vec<String>,
    /// Lines that were not Codex events (not JSON, or of an unknown type).
    pub unrecognized_lines: u64,
    /// The turn's unified diff (app-server backend).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
    /// Approval requests and their answers (app-server backend).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    // Declared as objects: the full shape would double the pinned tools/list.
    #[schemars(with = "Vec<serde_json::Map<String, serde_json::Value>>")]
    pub approvals: Vec<ApprovalRecord>,
    /// What was cut to keep the reply small (absent if nothing was).
    #[serde(default, skip_serializing_if = "Truncated::is_empty")]
    pub truncated: Truncated,
}

/// What a reply left out, and how much, so a model knows what it is not seeing. Each
/// command's output keeps its head and tail around a `[2Bot: N bytes cut here]` line;
/// `include_event_log` returns the whole stream. (Field docs are short: they are in the
/// pinned tools/list, which stays under 10 KB.)
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Truncated {
    /// Older commands left out.
    pub commands_dropped: u64,
    /// Bytes cut from the middle of listed commands' outputs.
    pub output_bytes_cut: u64,
    /// File changes not listed.
    pub file_changes_dropped: u64,
    /// Entries left out of the other lists.
    pub entries_dropped: u64,
    /// Bytes cut from the end of final_message.
    pub final_message_bytes_cut: u64,
    /// Bytes cut from the front of stderr_tail.
    pub stderr_bytes_cut: u64,
    /// Bytes cut from diff.
    #[serde(default)]
    pub diff_bytes_cut: u64,
}

impl Truncated {
    /// Nothing was left out.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// One sentence for the reply's text, or `None` when nothing was left out.
    pub fn describe(&self) -> Option<String> {
        if self.is_empty() {
            return None;
        }
        let parts: Vec<String> = [
            (
                self.final_message_bytes_cut,
                "bytes cut from the end of the final message",
            ),
            (self.commands_dropped, "older commands left out"),
            (
                self.output_bytes_cut,
                "bytes of command output cut (each keeps its head and tail)",
            ),
            (self.file_changes_dropped, "file changes not listed"),
            (
                self.entries_dropped,
                "tool calls, searches, errors or warnings left out",
            ),
            (self.stderr_bytes_cut, "bytes of stderr cut"),
            (self.diff_bytes_cut, "bytes cut from the end of the diff"),
        ]
        .into_iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}"))
        .collect();
        Some(format!(
            "This reply was shortened to stay small: {}. Pass include_event_log for Codex's whole event stream.",
            parts.join(", ")
        ))
    }
}

/// The structured result of one `run_codex_prompt` call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RunOutput {
    /// True only when Codex exited 0 after `turn.completed`, without timeout or cancellation.
    pub ok: bool,
    /// Codex's exit code; absent when it was killed by a signal or never started.
    // Absent, never null: every schema field has one type (Gemini-style clients).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// The run hit `timeout_sec` and its process tree was killed.
    pub timed_out: bool,
    /// The client cancelled the call (or the server shut down) and the process tree was killed.
    pub cancelled: bool,
    /// Why the run is not ok, in one sentence; absent when ok.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// How long Codex ran, in milliseconds.
    pub duration_ms: u64,
    /// The argv Codex was started with (the prompt is never on it).
    pub argv: Vec<String>,
    /// The last lines Codex wrote to stderr (capped, Rust backtraces removed).
    pub stderr_tail: String,
    /// Operations Codex's sandbox refused (not 0: a command did not do what it asked,
    /// even when `ok` is true).
    pub sandbox_refused: u64,
    /// What Codex's event stream said.
    #[serde(flatten)]
    pub summary: Summary,
    /// Every JSONL event (each a JSON object), only when `include_event_log` was set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    // Declared as objects: a bare `true` item schema is refused by strict clients.
    #[schemars(with = "Option<Vec<serde_json::Map<String, serde_json::Value>>>")]
    pub events: Option<Vec<serde_json::Value>>,
    /// True when `events` was cut to the cap.
    pub event_log_truncated: bool,
    /// With `output_schema`: the final message parsed as JSON (absent when it did not
    /// parse; `warnings` says so).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<serde_json::Map<String, serde_json::Value>>,
}
