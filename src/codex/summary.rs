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

use super::events::{ItemDetails, ThreadEvent, ThreadItem};
// The summary's shape is plain output data, kept in `run` (a leaf) so that `run` needs
// nothing from `codex`.
use crate::run::{CommandRun, FileChange, Summary, Truncated, Usage};

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
#[path = "summary_tests.rs"]
mod tests;
