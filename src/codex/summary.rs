//! Folds Codex's event stream into the tool's result, one event at a time.
//!
//! [`SummaryBuilder::apply`] is pure and bounded: whatever Codex prints, the summary
//! keeps at most [`MAX_LIST`] entries per list, [`MAX_COMMAND_OUTPUT`] bytes of each
//! command's output and [`MAX_MESSAGE`] bytes of the final message. It also returns a
//! one-line progress message for the client, so the runner need not know event types.

use std::collections::HashMap;

use super::events::{ItemDetails, ThreadEvent, ThreadItem};
// The summary's shape is plain output data, kept in `job` (a leaf) so that `job` needs
// nothing from `codex`; re-exported here, where it is built.
pub use crate::job::Summary;
use crate::job::{CommandRun, FileChange, Usage};

/// Most entries kept in any one list of the summary.
pub const MAX_LIST: usize = 500;
/// Bytes of each command's output kept (its tail).
pub const MAX_COMMAND_OUTPUT: usize = 8 * 1024;
/// Bytes of the final message kept.
pub const MAX_MESSAGE: usize = 1024 * 1024;
/// Characters of a progress message.
const MAX_PROGRESS: usize = 200;

/// Incremental fold of [`ThreadEvent`]s into a [`Summary`].
#[derive(Debug, Default)]
pub struct SummaryBuilder {
    summary: Summary,
    /// Item id → index in `summary.commands`, so completion updates the started entry.
    command_index: HashMap<String, usize>,
    turn_failed: Option<String>,
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
                self.turn_failed = Some(error.message.clone());
                push_capped(&mut s.errors, format!("turn failed: {}", error.message));
                Some(short(&format!("turn failed: {}", error.message)))
            }
            ThreadEvent::Error { message } => {
                push_capped(&mut s.errors, message.clone());
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
                s.final_message = Some(cap_head(text, MAX_MESSAGE));
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
                let (output, output_truncated) = cap_tail(aggregated_output, MAX_COMMAND_OUTPUT);
                let run = CommandRun {
                    command: cap_head(command, MAX_COMMAND_OUTPUT),
                    exit_code: *exit_code,
                    status: status.clone(),
                    output,
                    output_truncated,
                };
                match self.command_index.get(&item.id) {
                    Some(&i) => s.commands[i] = run,
                    None if s.commands.len() < MAX_LIST => {
                        self.command_index.insert(item.id.clone(), s.commands.len());
                        s.commands.push(run);
                    }
                    None => {}
                }
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
                            path: change.path.clone(),
                            kind: change.kind.clone(),
                        });
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
                    push_capped(&mut s.mcp_tool_calls, line.clone());
                }
                Some(short(&format!("mcp tool: {line}")))
            }
            ItemDetails::WebSearch { query } => {
                if completed {
                    push_capped(&mut s.web_searches, query.clone());
                }
                Some(short(&format!("web search: {query}")))
            }
            ItemDetails::TodoList { items } => {
                let done = items.iter().filter(|i| i.completed).count();
                Some(format!("plan: {done}/{} steps done", items.len()))
            }
            ItemDetails::Error { message } => {
                if completed {
                    push_capped(&mut s.warnings, message.clone());
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
        self.summary
    }
}

fn push_capped(list: &mut Vec<String>, value: String) {
    if list.len() < MAX_LIST {
        list.push(cap_head(&value, MAX_COMMAND_OUTPUT));
    }
}

/// The first `max` bytes of `s`, cut on a char boundary.
fn cap_head(s: &str, max: usize) -> String {
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
    fn command_output_keeps_only_its_tail() {
        let big = "x".repeat(MAX_COMMAND_OUTPUT * 3) + "END";
        let line = serde_json::json!({"type":"item.completed","item":{"id":"c","type":"command_execution","command":"yes","aggregated_output":big,"exit_code":0,"status":"completed"}}).to_string();
        let (s, _) = fold(&[&line]);
        assert!(s.commands[0].output_truncated);
        assert!(s.commands[0].output.ends_with("END"));
        assert!(s.commands[0].output.len() <= MAX_COMMAND_OUTPUT);
    }

    #[test]
    fn lists_stop_growing_at_the_cap() {
        let lines: Vec<String> = (0..MAX_LIST + 50)
            .map(|i| format!(r#"{{"type":"item.completed","item":{{"id":"c{i}","type":"command_execution","command":"c","exit_code":0,"status":"completed"}}}}"#))
            .collect();
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        let (s, _) = fold(&refs);
        assert_eq!(s.commands.len(), MAX_LIST);
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
