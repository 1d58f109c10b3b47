//! The reply budget: whatever Codex prints, a finished run's reply (the text a client
//! reads plus `structuredContent`) stays within [`REPLY_MAX`] bytes of JSON, so a model's
//! context or ChatGPT can take it.
//!
//! The summary already keeps memory flat while the run goes (`codex::summary`); [`fit`]
//! then measures the serialized result and, only when it is still too big, leaves out
//! what matters least first: older commands, then file changes beyond the first, other
//! lists, stderr, the remaining commands, the end of the diff, and last the end of the
//! final message. Every
//! cut is counted in `truncated`. The opt-in event log (`include_event_log`) is not part of
//! the budget: it has its own cap.

use crate::codex::summary::cap_head;
use crate::run::{RunOutput, Truncated};

/// Bytes of JSON a finished run's whole tool result may take (text and structured content).
pub const REPLY_MAX: usize = 256 * 1024;
/// What [`fit`] aims at: [`REPLY_MAX`] less room for the result's envelope, the text's
/// notes (sandbox warning, truncation sentence) and a background run's snapshot fields.
pub const REPLY_BUDGET: usize = REPLY_MAX - 24 * 1024;
/// Commands kept before older ones go (unless the rest alone is too big).
const KEEP_COMMANDS: usize = 10;
/// File changes kept before the rest are only counted.
const KEEP_FILE_CHANGES: usize = 100;
/// Entries kept of each other list.
const KEEP_ENTRIES: usize = 20;
/// Bytes of stderr kept.
const KEEP_STDERR: usize = 2 * 1024;

/// Shrink `out` until its reply fits `budget` bytes (see the module docs).
pub fn fit(out: &mut RunOutput, budget: usize) {
    let events = out.events.take();
    let mut excess = size(out).saturating_sub(budget);
    if excess > 0 {
        excess = drop_commands(out, KEEP_COMMANDS, excess);
    }
    if excess > 0 && out.summary.file_changes.len() > KEEP_FILE_CHANGES {
        let dropped = out.summary.file_changes.split_off(KEEP_FILE_CHANGES);
        out.summary.truncated.file_changes_dropped += dropped.len() as u64;
        excess = size(out).saturating_sub(budget);
    }
    if excess > 0 {
        let t = &mut out.summary.truncated;
        for list in [
            &mut out.summary.mcp_tool_calls,
            &mut out.summary.web_searches,
            &mut out.summary.warnings,
            &mut out.summary.errors,
        ] {
            // The latest entries say the most about how the run ended.
            if list.len() > KEEP_ENTRIES {
                let n = list.len() - KEEP_ENTRIES;
                list.drain(..n);
                t.entries_dropped += n as u64;
            }
        }
        excess = size(out).saturating_sub(budget);
    }
    if excess > 0 && out.stderr_tail.len() > KEEP_STDERR {
        let (tail, _) = crate::codex::summary::cap_tail(&out.stderr_tail, KEEP_STDERR);
        out.summary.truncated.stderr_bytes_cut += (out.stderr_tail.len() - tail.len()) as u64;
        out.stderr_tail = tail;
        excess = size(out).saturating_sub(budget);
    }
    if excess > 0 {
        excess = drop_commands(out, 0, excess);
    }
    // The diff repeats what `file_changes` lists: it goes before the answer does.
    while excess > 0 {
        let Some(diff) = out.summary.diff.as_mut() else {
            break;
        };
        if diff.is_empty() {
            break;
        }
        let encoded = json_len(diff.as_str()).max(diff.len());
        let cut = excess.saturating_mul(diff.len()) / encoded + 1;
        let kept = cap_head(diff, diff.len().saturating_sub(cut));
        out.summary.truncated.diff_bytes_cut += (diff.len() - kept.len()) as u64;
        *diff = kept;
        excess = size(out).saturating_sub(budget);
    }
    // Last, the answer itself: it appears twice (text and structured), so each byte cut
    // saves at least two.
    while excess > 0 {
        let Some(message) = out.summary.final_message.as_mut() else {
            break;
        };
        if message.is_empty() {
            break;
        }
        // Escapes make a byte of text up to six of JSON: cut in proportion.
        let encoded = json_len(message.as_str()).max(message.len());
        let cut = excess.saturating_mul(message.len()) / (2 * encoded) + 1;
        let keep = message.len().saturating_sub(cut);
        let kept = cap_head(message, keep);
        out.summary.truncated.final_message_bytes_cut += (message.len() - kept.len()) as u64;
        *message = kept;
        excess = size(out).saturating_sub(budget);
    }
    out.events = events;
}

/// Drop the oldest commands, keeping at least `keep`, until `excess` bytes are saved;
/// returns what is still over.
fn drop_commands(out: &mut RunOutput, keep: usize, excess: usize) -> usize {
    let commands = &out.summary.commands;
    let mut saved = 0;
    let mut n = 0;
    while saved < excess && commands.len() - n > keep {
        saved += json_len(&commands[n]) + 1;
        n += 1;
    }
    if n == 0 {
        return excess;
    }
    let t: &mut Truncated = &mut out.summary.truncated;
    for c in out.summary.commands.drain(..n) {
        t.commands_dropped += 1;
        t.output_bytes_cut = t.output_bytes_cut.saturating_sub(cut_of(&c.output));
    }
    excess.saturating_sub(saved)
}

/// The bytes a command's output marker says were cut (0 when it has none).
fn cut_of(output: &str) -> u64 {
    output
        .split_once("\n[2Bot: ")
        .and_then(|(_, rest)| rest.split_once(' '))
        .and_then(|(n, _)| n.parse().ok())
        .unwrap_or(0)
}

/// The reply's size: the structured output plus the text, which repeats the answer (or
/// the error).
fn size(out: &RunOutput) -> usize {
    let text = out.error.as_ref().or(out.summary.final_message.as_ref());
    json_len(out) + text.map_or(0, json_len)
}

fn json_len<T: serde::Serialize + ?Sized>(value: &T) -> usize {
    // A value that does not serialize is not sent either.
    serde_json::to_vec(value).map_or(0, |v| v.len())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::run::CommandRun;

    fn run(commands: usize, output: usize, message: usize) -> RunOutput {
        let mut out: RunOutput = serde_json::from_value(serde_json::json!({
            "ok": true, "timed_out": false, "cancelled": false, "duration_ms": 1,
            "argv": [], "stderr_tail": "", "sandbox_refused": 0, "turn_completed": true,
            "usage": {"input_tokens": 0, "cached_input_tokens": 0, "output_tokens": 0, "reasoning_output_tokens": 0},
            "commands": [], "file_changes": [], "mcp_tool_calls": [], "web_searches": [],
            "errors": [], "warnings": [], "unrecognized_lines": 0, "event_log_truncated": false
        }))
        .expect("a minimal output");
        out.summary.final_message = Some("a".repeat(message));
        out.summary.commands = (0..commands)
            .map(|i| CommandRun {
                command: format!("c{i}"),
                exit_code: Some(0),
                status: "completed".into(),
                output: "o".repeat(output),
                output_truncated: false,
            })
            .collect();
        out
    }

    #[test]
    fn a_small_reply_is_left_alone() {
        let mut out = run(3, 100, 100);
        let before = out.clone();
        fit(&mut out, REPLY_BUDGET);
        assert_eq!(out, before);
    }

    #[test]
    fn older_commands_go_first_and_are_counted() {
        let mut out = run(100, 4000, 1000);
        fit(&mut out, REPLY_BUDGET);
        assert!(size(&out) <= REPLY_BUDGET);
        let kept = out.summary.commands.len();
        assert!((KEEP_COMMANDS..100).contains(&kept), "{kept}");
        assert_eq!(
            out.summary.commands.last().map(|c| c.command.as_str()),
            Some("c99")
        );
        assert_eq!(out.summary.truncated.commands_dropped, (100 - kept) as u64);
        assert_eq!(
            out.summary.final_message.as_deref().map(str::len),
            Some(1000)
        );
    }

    #[test]
    fn a_message_of_escapes_is_cut_to_fit_and_counted() {
        let mut out = run(20, 4000, 0);
        // Control characters take six bytes each in JSON.
        out.summary.final_message = Some("\u{1}".repeat(96 * 1024));
        fit(&mut out, REPLY_BUDGET);
        assert!(size(&out) <= REPLY_BUDGET);
        assert!(out.summary.commands.is_empty());
        let cut = out.summary.truncated.final_message_bytes_cut;
        assert!(cut > 0 && cut < 96 * 1024, "{cut}");
    }

    #[test]
    fn the_event_log_is_not_part_of_the_budget() {
        let mut out = run(1, 10, 10);
        out.events = Some(vec![serde_json::json!({"big": "e".repeat(REPLY_MAX)})]);
        fit(&mut out, REPLY_BUDGET);
        assert!(out.summary.truncated.is_empty());
        assert!(out.events.is_some());
    }

    #[test]
    fn a_huge_diff_is_cut_before_the_answer_and_counted() {
        let mut out = run(0, 0, 1000);
        out.summary.diff = Some("+ line \"quoted\"\n".repeat(40_000));
        fit(&mut out, REPLY_BUDGET);
        assert!(size(&out) <= REPLY_BUDGET);
        assert!(out.summary.truncated.diff_bytes_cut > 0);
        assert_eq!(out.summary.truncated.final_message_bytes_cut, 0);
        assert!(!out.summary.diff.as_deref().unwrap_or_default().is_empty());
    }

    #[test]
    fn the_cut_of_a_dropped_command_is_no_longer_counted() {
        assert_eq!(cut_of("head\n[2Bot: 1234 bytes cut here]\ntail"), 1234);
        assert_eq!(cut_of("plain"), 0);
    }
}
