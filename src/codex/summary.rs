//! Folds Codex's event stream into the tool's result, one event at a time.
//!
//! [`SummaryBuilder::apply`] is pure and bounded: whatever Codex prints, the summary
//! keeps the [`MAX_COMMANDS`] most recent commands (each output as its first
//! [`OUTPUT_HEAD`] and last [`OUTPUT_TAIL`] bytes), at most [`MAX_LIST`] entries of every
//! other list and [`MAX_MESSAGE`] bytes of the final message, and counts what it left out
//! in [`Truncated`]. It also returns a one-line progress message for the client, so the
//! runner need not know event types. The reply's overall budget is the runner's
//! (`runner::bound`): this only keeps memory flat.

use std::collections::{HashMap, VecDeque};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::events::{ItemDetails, ThreadEvent, ThreadItem};
use crate::job::{CommandRun, FileChange, Usage};

/// Most recent commands kept; older ones are counted in [`Truncated::commands_dropped`].
pub const MAX_COMMANDS: usize = 100;
/// Most entries kept of file changes, MCP tool calls, web searches, errors and warnings.
pub const MAX_LIST: usize = 500;
/// Bytes kept of the start of each command's output (what it was doing)...
pub const OUTPUT_HEAD: usize = 1024;
/// ...and of its end (how it ended), which matters most.
pub const OUTPUT_TAIL: usize = 3 * 1024;
/// Bytes kept of a command line, an error or any other list entry.
pub const MAX_ENTRY: usize = 2 * 1024;
/// Bytes of the final message kept: generous, it is the answer, yet it appears twice in a
/// reply (text and `structuredContent`) that must stay within the reply budget.
pub const MAX_MESSAGE: usize = 96 * 1024;
/// Characters of a progress message.
const MAX_PROGRESS: usize = 200;

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

/// Incremental fold of [`ThreadEvent`]s into a [`Summary`].
#[derive(Debug, Default)]
pub struct SummaryBuilder {
    summary: Summary,
    /// The most recent commands, with their item ids; `summary.commands` is filled at the end.
    commands: VecDeque<(String, CommandRun, usize)>,
    /// Item id → sequence number of a kept command, so completion updates the started entry.
    command_index: HashMap<String, u64>,
    /// Sequence number of `commands[0]`.
    first_seq: u64,
    turn_failed: Option<String>,
    /// Codex's latest error (stream `error` event or `turn.failed`), kept even past the list cap.
    last_error: Option<String>,
    /// The latest event says Codex is retrying its model connection, and nothing since says
    /// it got through.
    reconnecting: bool,
}

impl SummaryBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Account for one line that was not a known event.
    pub fn unrecognized(&mut self) {
        self.summary.unrecognized_lines += 1;
    }

    /// Fold one event in; returns a short progress message worth showing the client.
    pub fn apply(&mut self, event: &ThreadEvent) -> Option<String> {
        self.reconnecting = match event {
            ThreadEvent::Error { message } => is_unreachable(message),
            // Codex's own reconnect messages come as stream errors; anything else from the
            // model (an item, the end of the turn) means it got through.
            _ => false,
        };
        let s = &mut self.summary;
        match event {
            ThreadEvent::ThreadStarted { thread_id } => {
                s.thread_id = Some(thread_id.clone());
                Some(format!("thread started: {thread_id}"))
            }
            ThreadEvent::TurnStarted {} => Some("turn started".to_owned()),
            ThreadEvent::TurnCompleted { usage } => {
                s.turn_completed = true;
                s.usage = Usage {
                    input_tokens: usage.input_tokens,
                    cached_input_tokens: usage.cached_input_tokens,
                    output_tokens: usage.output_tokens,
                    reasoning_output_tokens: usage.reasoning_output_tokens,
                };
                Some(format!(
                    "turn completed ({} input, {} output tokens)",
                    usage.input_tokens, usage.output_tokens
                ))
            }
            ThreadEvent::TurnFailed { error } => {
                self.turn_failed = Some(cap_head(&error.message, MAX_ENTRY));
                self.last_error = self.turn_failed.clone();
                push_capped(
                    &mut s.errors,
                    &mut s.truncated,
                    format!("turn failed: {}", error.message),
                );
                Some(short(&format!("turn failed: {}", error.message)))
            }
            ThreadEvent::Error { message } => {
                self.last_error = Some(cap_head(message, MAX_ENTRY));
                push_capped(&mut s.errors, &mut s.truncated, message.clone());
                Some(short(&format!("error: {message}")))
            }
            ThreadEvent::ItemStarted { item } => self.item(item, false),
            ThreadEvent::ItemUpdated { item } => self.item(item, false),
            ThreadEvent::ItemCompleted { item } => self.item(item, true),
            ThreadEvent::Unknown => {
                s.unrecognized_lines += 1;
                None
            }
        }
    }

    fn item(&mut self, item: &ThreadItem, completed: bool) -> Option<String> {
        let s = &mut self.summary;
        match &item.details {
            ItemDetails::AgentMessage { text } => {
                if !completed {
                    return None;
                }
                let kept = cap_head(text, MAX_MESSAGE);
                s.truncated.final_message_bytes_cut = (text.len() - kept.len()) as u64;
                s.final_message = Some(kept);
                Some(short(&format!("message: {text}")))
            }
            ItemDetails::Reasoning { text } => {
                completed.then(|| short(&format!("reasoning: {text}")))
            }
            ItemDetails::CommandExecution {
                command,
                aggregated_output,
                exit_code,
                status,
            } => {
                let (output, cut) = head_and_tail(aggregated_output, OUTPUT_HEAD, OUTPUT_TAIL);
                let run = CommandRun {
                    command: cap_head(command, MAX_ENTRY),
                    exit_code: *exit_code,
                    status: status.clone(),
                    output,
                    output_truncated: cut > 0,
                };
                self.keep_command(&item.id, run, cut);
                let state = match exit_code {
                    Some(code) => format!("exit {code}"),
                    None if status == "in_progress" || status.is_empty() => "running".to_owned(),
                    None => status.clone(),
                };
                Some(short(&format!("command: {command} ({state})")))
            }
            ItemDetails::FileChange { changes, status } => {
                if !completed {
                    return None;
                }
                for change in changes {
                    if s.file_changes.len() < MAX_LIST {
                        s.file_changes.push(FileChange {
                            path: cap_head(&change.path, MAX_ENTRY),
                            kind: cap_head(&change.kind, MAX_ENTRY),
                        });
                    } else {
                        s.truncated.file_changes_dropped += 1;
                    }
                }
                let files: Vec<String> = changes
                    .iter()
                    .map(|c| format!("{} {}", c.kind, c.path))
                    .collect();
                Some(short(&format!(
                    "file change ({status}): {}",
                    files.join(", ")
                )))
            }
            ItemDetails::McpToolCall {
                server,
                tool,
                status,
            } => {
                let line = format!("{server}/{tool} ({status})");
                if completed {
                    push_capped(&mut s.mcp_tool_calls, &mut s.truncated, line.clone());
                }
                Some(short(&format!("mcp tool: {line}")))
            }
            ItemDetails::WebSearch { query } => {
                if completed {
                    push_capped(&mut s.web_searches, &mut s.truncated, query.clone());
                }
                Some(short(&format!("web search: {query}")))
            }
            ItemDetails::TodoList { items } => {
                let done = items.iter().filter(|i| i.completed).count();
                Some(format!("plan: {done}/{} steps done", items.len()))
            }
            ItemDetails::Error { message } => {
                if completed {
                    push_capped(&mut s.warnings, &mut s.truncated, message.clone());
                }
                Some(short(&format!("warning: {message}")))
            }
            ItemDetails::Unknown => {
                if completed {
                    s.unrecognized_lines += 1;
                }
                None
            }
        }
    }

    /// Record a command: a later state of a kept one replaces it; a new one goes last and,
    /// past [`MAX_COMMANDS`], pushes out the oldest.
    fn keep_command(&mut self, id: &str, run: CommandRun, cut: usize) {
        if let Some(&seq) = self.command_index.get(id) {
            let Some(i) = seq
                .checked_sub(self.first_seq)
                .and_then(|i| usize::try_from(i).ok())
            else {
                return;
            };
            if let Some(slot) = self.commands.get_mut(i) {
                slot.1 = run;
                slot.2 = cut;
            }
        } else {
            let seq = self.first_seq + self.commands.len() as u64;
            self.command_index.insert(id.to_owned(), seq);
            self.commands.push_back((id.to_owned(), run, cut));
            if self.commands.len() > MAX_COMMANDS
                && let Some((old, _, _)) = self.commands.pop_front()
            {
                self.command_index.remove(&old);
                self.first_seq += 1;
                self.summary.truncated.commands_dropped += 1;
            }
        }
    }

    /// Whether Codex is retrying its model connection right now (its latest event was a
    /// reconnect or stream error and nothing has come through since).
    pub fn reconnecting(&self) -> bool {
        self.reconnecting
    }

    /// Codex's latest error, for timeout and failure texts.
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    /// The message of `turn.failed`, if Codex sent one.
    pub fn turn_failed(&self) -> Option<&str> {
        self.turn_failed.as_deref()
    }

    /// Whether `turn.completed` was seen.
    pub fn turn_completed(&self) -> bool {
        self.summary.turn_completed
    }

    /// The summary so far.
    pub fn finish(self) -> Summary {
        let mut summary = self.summary;
        for (_, run, cut) in self.commands {
            summary.truncated.output_bytes_cut += cut as u64;
            summary.commands.push(run);
        }
        summary
    }
}

/// Whether a stream error says Codex cannot get through to its model: its reconnect loop
/// ("Reconnecting... 2/5", "waiting for network") or a broken connection.
pub fn is_unreachable(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    [
        "reconnecting",
        "waiting for network",
        "stream disconnected",
        "error sending request",
        "connection failed",
        "connection refused",
        "connection reset",
        "dns error",
    ]
    .iter()
    .any(|needle| m.contains(needle))
}

fn push_capped(list: &mut Vec<String>, truncated: &mut Truncated, value: String) {
    if list.len() < MAX_LIST {
        list.push(cap_head(&value, MAX_ENTRY));
    } else {
        truncated.entries_dropped += 1;
    }
}

/// The first `head` and last `tail` bytes of `s` around a marker saying how much was cut
/// (on char boundaries), and the number of bytes cut.
pub fn head_and_tail(s: &str, head: usize, tail: usize) -> (String, usize) {
    if s.len() <= head + tail {
        return (s.to_owned(), 0);
    }
    let first = cap_head(s, head);
    let (last, _) = cap_tail(s, tail);
    let cut = s.len() - first.len() - last.len();
    (
        format!("{first}\n[2Bot: {cut} bytes cut here]\n{last}"),
        cut,
    )
}

/// The first `max` bytes of `s`, cut on a char boundary.
pub fn cap_head(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

/// The last `max` bytes of `s`, cut on a char boundary, and whether anything was cut.
pub fn cap_tail(s: &str, max: usize) -> (String, bool) {
    if s.len() <= max {
        return (s.to_owned(), false);
    }
    let mut start = s.len() - max;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    (s[start..].to_owned(), true)
}

/// One line, at most [`MAX_PROGRESS`] characters.
fn short(s: &str) -> String {
    let one_line = s.replace(['\n', '\r'], " ");
    match one_line.char_indices().nth(MAX_PROGRESS) {
        Some((i, _)) => format!("{}…", &one_line[..i]),
        None => one_line,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn fold(lines: &[&str]) -> (Summary, Vec<String>) {
        let mut b = SummaryBuilder::new();
        let mut progress = Vec::new();
        for line in lines {
            match ThreadEvent::parse(line.as_bytes()) {
                Some(e) => progress.extend(b.apply(&e)),
                None => b.unrecognized(),
            }
        }
        (b.finish(), progress)
    }

    #[test]
    fn a_successful_run_yields_thread_id_answer_usage_and_commands() {
        let (s, progress) = fold(&[
            r#"{"type":"thread.started","thread_id":"t-1"}"#,
            r#"{"type":"turn.started"}"#,
            r#"{"type":"item.started","item":{"id":"c","type":"command_execution","command":"ls","aggregated_output":"","exit_code":null,"status":"in_progress"}}"#,
            r#"{"type":"item.completed","item":{"id":"c","type":"command_execution","command":"ls","aggregated_output":"a\n","exit_code":0,"status":"completed"}}"#,
            r#"{"type":"item.completed","item":{"id":"m","type":"agent_message","text":"first"}}"#,
            r#"{"type":"item.completed","item":{"id":"n","type":"agent_message","text":"done"}}"#,
            r#"{"type":"turn.completed","usage":{"input_tokens":5,"cached_input_tokens":1,"output_tokens":2,"reasoning_output_tokens":1}}"#,
        ]);
        assert_eq!(s.thread_id.as_deref(), Some("t-1"));
        assert_eq!(s.final_message.as_deref(), Some("done"));
        assert!(s.turn_completed);
        assert_eq!(s.usage.input_tokens, 5);
        assert_eq!(s.usage.reasoning_output_tokens, 1);
        assert_eq!(s.commands.len(), 1, "started and completed are one command");
        assert_eq!(s.commands[0].exit_code, Some(0));
        assert_eq!(s.commands[0].status, "completed");
        assert!(progress.contains(&"command: ls (running)".to_owned()));
        assert!(progress.contains(&"command: ls (exit 0)".to_owned()));
    }

    #[test]
    fn error_items_are_warnings_and_error_events_are_errors() {
        let (s, _) = fold(&[
            r#"{"type":"item.completed","item":{"id":"e","type":"error","message":"metadata missing"}}"#,
            r#"{"type":"error","message":"stream broke"}"#,
            r#"{"type":"turn.failed","error":{"message":"quota"}}"#,
        ]);
        assert_eq!(s.warnings, ["metadata missing"]);
        assert_eq!(s.errors, ["stream broke", "turn failed: quota"]);
        assert!(!s.turn_completed);
    }

    #[test]
    fn unknown_and_garbage_lines_are_counted_not_fatal() {
        let (s, _) = fold(&[
            "not json",
            r#"{"type":"future.thing"}"#,
            r#"{"type":"turn.started"}"#,
        ]);
        assert_eq!(s.unrecognized_lines, 2);
    }

    #[test]
    fn file_changes_are_listed_once_completed() {
        let (s, p) = fold(&[
            r#"{"type":"item.completed","item":{"id":"f","type":"file_change","changes":[{"path":"a.txt","kind":"add"},{"path":"b.txt","kind":"delete"}],"status":"completed"}}"#,
        ]);
        assert_eq!(s.file_changes.len(), 2);
        assert_eq!(s.file_changes[1].kind, "delete");
        assert_eq!(p, ["file change (completed): add a.txt, delete b.txt"]);
    }

    #[test]
    fn command_output_keeps_its_head_and_tail_and_counts_the_cut() {
        let big = "BEGIN".to_owned() + &"x".repeat(OUTPUT_TAIL * 3) + "END";
        let line = serde_json::json!({"type":"item.completed","item":{"id":"c","type":"command_execution","command":"yes","aggregated_output":big,"exit_code":0,"status":"completed"}}).to_string();
        let (s, _) = fold(&[&line]);
        let out = &s.commands[0].output;
        assert!(s.commands[0].output_truncated);
        assert!(out.starts_with("BEGIN") && out.ends_with("END"), "{out}");
        assert!(out.len() <= OUTPUT_HEAD + OUTPUT_TAIL + 64);
        let cut = big.len() - OUTPUT_HEAD - OUTPUT_TAIL;
        assert!(out.contains(&format!("[2Bot: {cut} bytes cut here]")));
        assert_eq!(s.truncated.output_bytes_cut, cut as u64);
    }

    #[test]
    fn the_most_recent_commands_are_kept_and_the_older_ones_counted() {
        let mut lines = Vec::new();
        for i in 0..MAX_COMMANDS + 50 {
            lines.push(format!(r#"{{"type":"item.started","item":{{"id":"c{i}","type":"command_execution","command":"c{i}","status":"in_progress"}}}}"#));
            lines.push(format!(r#"{{"type":"item.completed","item":{{"id":"c{i}","type":"command_execution","command":"c{i}","exit_code":0,"status":"completed"}}}}"#));
        }
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        let (s, _) = fold(&refs);
        assert_eq!(s.commands.len(), MAX_COMMANDS);
        assert_eq!(s.commands[0].command, "c50");
        assert_eq!(
            s.commands[MAX_COMMANDS - 1].command,
            format!("c{}", MAX_COMMANDS + 49)
        );
        assert!(s.commands.iter().all(|c| c.status == "completed"));
        assert_eq!(s.truncated.commands_dropped, 50);
    }

    #[test]
    fn file_changes_past_the_cap_are_counted() {
        let changes: Vec<_> = (0..MAX_LIST + 7)
            .map(|i| serde_json::json!({"path": format!("f{i}"), "kind": "add"}))
            .collect();
        let line = serde_json::json!({"type":"item.completed","item":{"id":"f","type":"file_change","changes":changes,"status":"completed"}}).to_string();
        let (s, _) = fold(&[&line]);
        assert_eq!(s.file_changes.len(), MAX_LIST);
        assert_eq!(s.truncated.file_changes_dropped, 7);
    }

    #[test]
    fn reconnect_errors_mark_the_run_as_reconnecting_until_the_model_answers() {
        let mut b = SummaryBuilder::new();
        let ev = |l: &str| ThreadEvent::parse(l.as_bytes()).unwrap_or(ThreadEvent::Unknown);
        b.apply(&ev(r#"{"type":"turn.started"}"#));
        assert!(!b.reconnecting());
        b.apply(&ev(r#"{"type":"error","message":"Reconnecting... waiting for network (Connection failed: error sending request)"}"#));
        assert!(b.reconnecting());
        assert_eq!(
            b.last_error(),
            Some("Reconnecting... waiting for network (Connection failed: error sending request)")
        );
        b.apply(&ev(
            r#"{"type":"item.completed","item":{"id":"m","type":"agent_message","text":"hi"}}"#,
        ));
        assert!(!b.reconnecting());
        b.apply(&ev(r#"{"type":"error","message":"model quota exceeded"}"#));
        assert!(!b.reconnecting(), "not every error is a reconnect");
    }

    #[test]
    fn unreachable_messages_are_told_apart_from_other_errors() {
        for m in [
            "Reconnecting... 2/5",
            "Reconnecting... waiting for network (Connection failed: error sending request)",
            "stream disconnected before completion: error sending request for url (http://127.0.0.1:9/v1/responses)",
        ] {
            assert!(is_unreachable(m), "{m}");
        }
        for m in [
            "model quota exceeded",
            "unexpected status 401 Unauthorized",
            "",
        ] {
            assert!(!is_unreachable(m), "{m}");
        }
    }

    #[test]
    fn a_huge_final_message_is_capped_and_the_cut_counted() {
        let text = "m".repeat(MAX_MESSAGE + 10);
        let line = serde_json::json!({"type":"item.completed","item":{"id":"m","type":"agent_message","text":text}}).to_string();
        let (s, _) = fold(&[&line]);
        assert_eq!(s.final_message.as_deref().map(str::len), Some(MAX_MESSAGE));
        assert_eq!(s.truncated.final_message_bytes_cut, 10);
        assert!(
            s.truncated
                .describe()
                .unwrap_or_default()
                .contains("10 bytes cut from the end of the final message")
        );
    }

    #[test]
    fn tails_and_heads_never_split_a_character() {
        let s = "é".repeat(10);
        let (tail, cut) = cap_tail(&s, 5);
        assert!(cut);
        assert_eq!(tail, "éé");
        assert_eq!(cap_head(&s, 5), "éé");
    }

    #[test]
    fn progress_messages_are_one_short_line() {
        let long = format!("message: {}\nsecond line", "a".repeat(500));
        let p = short(&long);
        assert!(!p.contains('\n'));
        assert!(p.chars().count() <= MAX_PROGRESS + 1);
    }
}
