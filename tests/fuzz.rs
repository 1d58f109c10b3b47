//! Property-based fuzzing (proptest) of the two places that read hostile input:
//! Codex's JSONL event stream and the policy's path and argument checks.
//!
//! CI runs the default 256 cases per property. Longer runs:
//! `PROPTEST_CASES=200000 cargo test --release --test fuzz` (see BENCHMARKS.md).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use proptest::prelude::*;
use serde_json::json;

use twobot::codex::command::exec_argv;
use twobot::codex::events::ThreadEvent;
use twobot::codex::summary::{MAX_MESSAGE, SummaryBuilder};
use twobot::policy::{Policy, check, is_profile_name, is_safe_name, is_thread_id, within_roots};
use twobot::run::{Principal, RunRequest};

/// Lines captured from the real `codex exec --json` 0.169.0, to mutate.
const REAL: &[&str] = &[
    r#"{"type":"thread.started","thread_id":"01a21112-510a-7a33-a02d-fc4119829e47"}"#,
    r#"{"type":"turn.started"}"#,
    r#"{"type":"item.started","item":{"id":"item_1","type":"command_execution","command":"/bin/bash -lc 'echo hi'","aggregated_output":"","exit_code":null,"status":"in_progress"}}"#,
    r#"{"type":"item.completed","item":{"id":"item_1","type":"command_execution","command":"/bin/bash -lc 'echo hi'","aggregated_output":"hi\n","exit_code":0,"status":"completed"}}"#,
    r#"{"type":"item.completed","item":{"id":"item_2","type":"file_change","changes":[{"path":"a.txt","kind":"add"}],"status":"completed"}}"#,
    r#"{"type":"item.completed","item":{"id":"item_3","type":"agent_message","text":"done"}}"#,
    r#"{"type":"turn.completed","usage":{"input_tokens":10,"cached_input_tokens":2,"output_tokens":3,"reasoning_output_tokens":1}}"#,
    r#"{"type":"turn.failed","error":{"message":"quota"}}"#,
    r#"{"type":"error","message":"stream error"}"#,
];

fn fold(lines: &[Vec<u8>]) -> (twobot::run::Summary, u64) {
    let mut builder = SummaryBuilder::new();
    let mut unparsed = 0;
    for line in lines {
        match ThreadEvent::parse(line) {
            Some(event) => {
                let _ = builder.apply(&event);
            }
            None => {
                unparsed += 1;
                builder.unrecognized();
            }
        }
    }
    (builder.finish(), unparsed)
}

/// One well-formed event of the kinds 2Bot folds, as Codex writes it.
#[derive(Debug, Clone)]
enum Event {
    Thread(String),
    Message(String),
    Command { id: u8, cmd: String, exit: i32 },
    Completed { input: u32, output: u32 },
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        "[a-f0-9-]{1,36}".prop_map(Event::Thread),
        any::<String>().prop_map(Event::Message),
        (0u8..8, any::<String>(), -1i32..256).prop_map(|(id, cmd, exit)| Event::Command {
            id,
            cmd,
            exit
        }),
        (any::<u32>(), any::<u32>()).prop_map(|(input, output)| Event::Completed { input, output }),
    ]
}

fn line(event: &Event) -> Vec<u8> {
    let value = match event {
        Event::Thread(id) => json!({"type": "thread.started", "thread_id": id}),
        Event::Message(text) => {
            json!({"type": "item.completed", "item": {"id": "m", "type": "agent_message", "text": text}})
        }
        Event::Command { id, cmd, exit } => json!({"type": "item.completed", "item": {
            "id": format!("cmd_{id}"), "type": "command_execution", "command": cmd,
            "aggregated_output": "", "exit_code": exit, "status": "completed"}}),
        Event::Completed { input, output } => json!({"type": "turn.completed", "usage": {
            "input_tokens": input, "cached_input_tokens": 0, "output_tokens": output,
            "reasoning_output_tokens": 0}}),
    };
    value.to_string().into_bytes()
}

proptest! {
    /// Any bytes at all: no panic, every line counted once, the message capped.
    #[test]
    fn arbitrary_lines_never_panic_the_event_fold(lines in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..40)) {
        let (summary, unparsed) = fold(&lines);
        prop_assert_eq!(summary.unrecognized_lines, unparsed);
        prop_assert!(summary.final_message.map_or(0, |m| m.len()) <= MAX_MESSAGE);
    }

    /// Real Codex lines with bytes flipped, cut or spliced: no panic.
    #[test]
    fn mutated_real_codex_lines_never_panic_the_event_fold(
        picks in prop::collection::vec((0..REAL.len(), any::<usize>(), any::<u8>(), any::<bool>()), 1..30)
    ) {
        let lines: Vec<Vec<u8>> = picks
            .iter()
            .map(|(i, at, byte, cut)| {
                let mut l = REAL[*i].as_bytes().to_vec();
                let at = at % l.len();
                if *cut { l.truncate(at) } else { l[at] = *byte }
                l
            })
            .collect();
        let _ = fold(&lines);
    }

    /// Well-formed streams fold to exactly what they said.
    #[test]
    fn well_formed_event_streams_fold_to_what_they_said(events in prop::collection::vec(event(), 0..40)) {
        let lines: Vec<Vec<u8>> = events.iter().map(line).collect();
        let (summary, unparsed) = fold(&lines);
        prop_assert_eq!(unparsed, 0);
        let last_thread = events.iter().rev().find_map(|e| match e { Event::Thread(t) => Some(t.clone()), _ => None });
        prop_assert_eq!(summary.thread_id, last_thread);
        let last_message = events.iter().rev().find_map(|e| match e { Event::Message(m) => Some(m.clone()), _ => None });
        match last_message {
            Some(m) if m.len() <= MAX_MESSAGE => prop_assert_eq!(summary.final_message, Some(m)),
            Some(_) => prop_assert!(summary.final_message.is_some()),
            None => prop_assert!(summary.final_message.is_none()),
        }
        let completed = events.iter().rev().find_map(|e| match e { Event::Completed { input, output } => Some((*input, *output)), _ => None });
        prop_assert_eq!(summary.turn_completed, completed.is_some());
        if let Some((input, output)) = completed {
            prop_assert_eq!(summary.usage.input_tokens, u64::from(input));
            prop_assert_eq!(summary.usage.output_tokens, u64::from(output));
        }
        let ids: std::collections::BTreeSet<u8> = events.iter().filter_map(|e| match e { Event::Command { id, .. } => Some(*id), _ => None }).collect();
        prop_assert_eq!(summary.commands.len(), ids.len());
    }

    /// A name the policy accepts can never be read as a flag, a path or two arguments.
    #[test]
    fn accepted_names_can_never_be_flags_or_paths(s in any::<String>()) {
        if is_safe_name(&s) {
            prop_assert!(!s.starts_with('-') && !s.chars().any(char::is_whitespace) && s.len() <= 128);
        }
        if is_thread_id(&s) {
            prop_assert!(!s.starts_with('-') && !s.contains('/') && !s.contains("..") && !s.chars().any(char::is_whitespace));
        }
    }

    /// A review's base branch or commit the policy accepts reaches Codex as one value that
    /// is neither a flag nor a path trick.
    #[test]
    fn accepted_review_targets_can_never_be_flags_or_path_tricks(s in prop_oneof![any::<String>(), "[-a-z./@{}]{0,12}"]) {
        if twobot::policy::features::is_branch_name(&s) {
            prop_assert!(!s.starts_with('-') && !s.contains("..") && !s.contains(['@', '{']) && !s.ends_with('/'), "{s:?}");
            prop_assert!(!s.chars().any(|c| c.is_whitespace() || c == ','));
        }
        if twobot::policy::features::is_commit_sha(&s) {
            prop_assert!(s.chars().all(|c| c.is_ascii_hexdigit()));
        }
    }

    /// Whatever `model`/`profile` a caller sends, an accepted one reaches Codex as exactly
    /// one argument, right after its flag.
    #[test]
    fn accepted_model_and_profile_values_stay_single_arguments(
        model in prop_oneof![any::<String>(), "[A-Za-z0-9][A-Za-z0-9._:/-]{0,20}", "-{1,2}[a-z-]{1,20}", "[a-z]{1,5}[ =\n][a-z-]{1,5}"],
        profile in prop_oneof!["[ -~]{0,20}", "[a-z][a-z0-9_-]{0,10}"],
    ) {
        let (policy, _) = tree();
        let req: RunRequest = serde_json::from_value(json!({"prompt": "p", "model": model, "profile": profile})).unwrap();
        let accepted = check(&policy, &Principal::Local, &req);
        prop_assert_eq!(accepted.is_ok(), is_safe_name(&model) && is_profile_name(&profile));
        if let Ok(spec) = accepted {
            let argv: Vec<String> = exec_argv(&spec, None).iter().map(|a| a.to_string_lossy().into_owned()).collect();
            let m = argv.iter().position(|a| a == "-m").unwrap();
            prop_assert_eq!(&argv[m + 1], &model);
            let p = argv.iter().position(|a| a == "-p").unwrap();
            prop_assert_eq!(&argv[p + 1], &profile);
            prop_assert_eq!(argv.last().map(String::as_str), Some("-"));
        }
    }

    /// Whatever path a caller sends as `cwd` or `add_dirs`, an accepted one is a
    /// canonical directory inside the root, however it was spelled.
    #[test]
    fn accepted_paths_are_canonical_directories_inside_the_roots(
        parts in prop::collection::vec(prop::sample::select(vec!["a", "b", "..", ".", "out", "up", "loop", "../root-x", "", "missing", "/", "//", "a/../..", "\u{0}"]), 0..7),
        absolute in any::<bool>(),
    ) {
        let (policy, root) = tree();
        let joined = parts.join("/");
        let path = if absolute { format!("{}/{joined}", root.display()) } else { joined };
        let req: RunRequest = serde_json::from_value(json!({"prompt": "p", "cwd": path, "add_dirs": [path]})).unwrap();
        if let Ok(spec) = check(&policy, &Principal::Local, &req) {
            for dir in std::iter::once(&spec.cwd).chain(spec.add_dirs.iter()) {
                prop_assert!(dir.is_dir());
                prop_assert_eq!(&std::fs::canonicalize(dir).unwrap(), dir);
                prop_assert!(within_roots(&policy.allowed_roots, dir), "{} escaped {}", dir.display(), root.display());
            }
        }
    }
}

/// A root with subdirectories, an escape to `/`, one to the parent, a symlink loop,
/// and a sibling whose name extends the root's; built once.
fn tree() -> (Policy, PathBuf) {
    static TREE: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, root) = TREE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().canonicalize().unwrap();
        let root = base.join("root");
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::create_dir_all(base.join("root-x")).unwrap();
        symlink("/", root.join("out")).unwrap();
        symlink("..", root.join("up")).unwrap();
        symlink(root.join("loop"), root.join("loop")).unwrap_or(());
        (dir, root)
    });
    let mut policy = Policy::new(root.clone());
    policy.allowed_roots = vec![root.clone()];
    (policy, root.clone())
}

#[test]
fn the_fuzz_tree_has_its_traps() {
    let (_, root) = tree();
    assert!(Path::new(&root.join("out")).is_symlink());
    assert!(Path::new(&root.join("up")).is_symlink());
}
