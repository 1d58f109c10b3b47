//! Unit tests of the event fold: what a run's events become, and how every list and text
//! stays bounded (apart from summary.rs so that file reads as the code).

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
