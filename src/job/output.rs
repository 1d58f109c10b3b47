//! What a run gives back: [`RunOutput`], the tool's structured result, and the parts of it
//! Codex's event stream fills in ([`Summary`], [`CommandRun`], [`FileChange`], [`Usage`]).
//!
//! These are wire types (their JSON Schema is the tool's `outputSchema`, pinned in
//! `mcp::tools`), so they live together, and here rather than in `codex`: `codex` builds a
//! [`Summary`] from events and its argv from a `RunSpec`, so it imports `job`; if `job`
//! imported `codex` back for the summary's shape, the two would form a cycle.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One command Codex ran, as the client sees it.
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
    /// How many operations Codex's sandbox refused in this run (its `recorded sandbox
    /// violation` lines on stderr). Not 0 means a command did not do what it asked, even
    /// when `commands` is empty and `ok` is true; a warning in `warnings` says so too.
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
}
