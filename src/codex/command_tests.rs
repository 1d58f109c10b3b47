//! Unit tests of Codex's argv: every option maps to its flag in a fixed order, the prompt
//! never appears, and every flag is one the doctor checks (apart from command.rs so that
//! file reads as the code).

#![allow(clippy::unwrap_used, clippy::expect_used)]
use std::path::PathBuf;
use std::time::Duration;

use super::*;
use crate::run::{ApprovalPolicy, ReasoningEffort, SandboxMode};

fn spec() -> RunSpec {
    RunSpec {
        prompt: "secret prompt".into(),
        cwd: PathBuf::from("/srv/app"),
        add_dirs: vec![],
        model: None,
        profile: None,
        sandbox: SandboxMode::ReadOnly,
        approval_policy: None,
        skip_git_repo_check: false,
        ephemeral: false,
        include_event_log: false,
        timeout: Duration::from_secs(5),
        resume: None,
        fork: None,
        reasoning_effort: None,
        images: vec![],
        output_schema: None,
        review: None,
        ceiling: SandboxMode::WorkspaceWrite,
    }
}

/// The doctor's flag lists cover every flag the argv builders can emit, for every
/// subcommand (`--image=PATH` counts as `--image`).
#[test]
fn every_flag_2bot_passes_is_in_the_list_the_doctor_checks() {
    let mut full = spec();
    full.add_dirs = vec![PathBuf::from("/srv/b")];
    full.model = Some("m".into());
    full.profile = Some("p".into());
    full.skip_git_repo_check = true;
    full.ephemeral = true;
    full.approval_policy = Some(ApprovalPolicy::Never);
    full.reasoning_effort = Some(ReasoningEffort::High);
    full.images = vec![PathBuf::from("/srv/app/a.png")];
    let schema = Some(Path::new("/tmp/s.json"));
    let flags = |argv: &[String]| -> Vec<String> {
        argv.iter()
            .filter(|a| a.starts_with('-') && *a != "-" && *a != "--")
            .map(|a| a.split('=').next().unwrap_or_default().to_owned())
            .collect()
    };
    let check = |spec: &RunSpec, sub: Option<&str>, after: &[&str]| {
        let argv = strings(exec_argv(spec, schema));
        let at = sub.map_or(argv.len(), |s| argv.iter().position(|a| a == s).unwrap());
        for flag in flags(&argv[..at]) {
            assert!(EXEC_FLAGS.contains(&flag.as_str()), "{flag} in {argv:?}");
        }
        for flag in flags(&argv[at..]) {
            assert!(after.contains(&flag.as_str()), "{flag} in {argv:?}");
        }
    };
    check(&full, None, &[]);
    full.resume = Some("0199a213-81c0-7800-8aa1-bbab2a035a53".into());
    full.sandbox = SandboxMode::WorkspaceWrite;
    check(&full, Some("resume"), RESUME_FLAGS);
    full.fork = full.resume.take();
    check(&full, Some("fork"), RESUME_FLAGS);
    full.fork = None;
    for review in [
        Review::Uncommitted,
        Review::Base("main".into()),
        Review::Commit("abc123".into()),
        Review::Custom,
    ] {
        full.review = Some(review);
        check(&full, Some("review"), REVIEW_FLAGS);
    }
}

fn strings(argv: Vec<OsString>) -> Vec<String> {
    argv.into_iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect()
}

#[test]
fn minimal_spec_reads_the_prompt_from_stdin() {
    assert_eq!(
        strings(exec_argv(&spec(), None)),
        [
            "exec",
            "--json",
            "-s",
            "read-only",
            "-C",
            "/srv/app",
            "-c",
            "sandbox_workspace_write.writable_roots=[]",
            "-c",
            "approval_policy=\"never\"",
            "-c",
            "approvals_reviewer=\"user\"",
            "-"
        ]
    );
}

#[test]
fn every_option_maps_to_its_flag_in_a_fixed_order() {
    let mut s = spec();
    s.add_dirs = vec!["/srv/a".into(), "/srv/b".into()];
    s.model = Some("gpt-5".into());
    s.profile = Some("fast".into());
    s.sandbox = SandboxMode::WorkspaceWrite;
    s.skip_git_repo_check = true;
    s.ephemeral = true;
    s.approval_policy = Some(ApprovalPolicy::OnRequest);
    assert_eq!(
        strings(exec_argv(&s, None)),
        [
            "exec",
            "--json",
            "-s",
            "workspace-write",
            "-C",
            "/srv/app",
            "--add-dir",
            "/srv/a",
            "--add-dir",
            "/srv/b",
            "-m",
            "gpt-5",
            "-p",
            "fast",
            "--skip-git-repo-check",
            "--ephemeral",
            "-c",
            "sandbox_workspace_write.writable_roots=[\"/srv/a\",\"/srv/b\"]",
            "-c",
            "approval_policy=\"on-request\"",
            "-c",
            "approvals_reviewer=\"user\"",
            "-"
        ]
    );
}

#[test]
fn the_prompt_never_appears_in_argv() {
    let argv = strings(exec_argv(&spec(), None));
    assert!(!argv.iter().any(|a| a.contains("secret prompt")));
}

#[test]
fn a_resume_pins_the_sandbox_and_profile_before_resume_and_the_thread_after_a_separator() {
    let mut spec = spec();
    spec.resume = Some("0199a213-81c0-7800-8aa1-bbab2a035a53".into());
    spec.sandbox = SandboxMode::WorkspaceWrite;
    spec.add_dirs = vec![PathBuf::from("/srv/a \"b\"")];
    spec.profile = Some("fast".into());
    spec.approval_policy = Some(ApprovalPolicy::Never);
    assert_eq!(
        strings(exec_argv(&spec, None)),
        [
            "exec",
            "-s",
            "workspace-write",
            "-p",
            "fast",
            "resume",
            "--json",
            "-c",
            "sandbox_mode=\"workspace-write\"",
            "-c",
            "sandbox_workspace_write.writable_roots=[\"/srv/a \\\"b\\\"\"]",
            "-c",
            "approval_policy=\"never\"",
            "-c",
            "approvals_reviewer=\"user\"",
            "--",
            "0199a213-81c0-7800-8aa1-bbab2a035a53",
            "-"
        ]
    );
}

/// No `-c profile=…`: Codex 0.169 refuses it ("legacy `profile = …` config is no
/// longer supported; use --profile").
#[test]
fn no_run_passes_the_profile_as_config() {
    let mut s = spec();
    s.profile = Some("fast".into());
    for resume in [None, Some("t".to_owned())] {
        s.resume = resume;
        let argv = strings(exec_argv(&s, None));
        assert!(!argv.iter().any(|a| a.starts_with("profile=")), "{argv:?}");
    }
}

#[test]
fn features_map_to_their_flags_after_the_pins_and_before_the_prompt() {
    let mut s = spec();
    s.reasoning_effort = Some(ReasoningEffort::Xhigh);
    s.images = vec!["/srv/app/a b.png".into(), "/srv/app/c.jpg".into()];
    assert_eq!(
        strings(exec_argv(
            &s,
            Some(Path::new("/tmp/2bot-output-schema-x.json"))
        )),
        [
            "exec",
            "--json",
            "-s",
            "read-only",
            "-C",
            "/srv/app",
            "--image=/srv/app/a b.png",
            "--image=/srv/app/c.jpg",
            "--output-schema",
            "/tmp/2bot-output-schema-x.json",
            "-c",
            "sandbox_workspace_write.writable_roots=[]",
            "-c",
            "approval_policy=\"never\"",
            "-c",
            "approvals_reviewer=\"user\"",
            "-c",
            "model_reasoning_effort=\"xhigh\"",
            "-"
        ]
    );
}

#[test]
fn a_fork_is_spelled_like_a_resume_with_fork() {
    let mut s = spec();
    s.fork = Some("0199a213-81c0-7800-8aa1-bbab2a035a53".into());
    s.images = vec!["/srv/app/a.png".into()];
    assert_eq!(
        strings(exec_argv(&s, None)),
        [
            "exec",
            "-s",
            "read-only",
            "fork",
            "--json",
            "-c",
            "sandbox_mode=\"read-only\"",
            "--image=/srv/app/a.png",
            "-c",
            "sandbox_workspace_write.writable_roots=[]",
            "-c",
            "approval_policy=\"never\"",
            "-c",
            "approvals_reviewer=\"user\"",
            "--",
            "0199a213-81c0-7800-8aa1-bbab2a035a53",
            "-"
        ]
    );
}

/// Each review target after the review's flags; only a custom review reads the
/// prompt (`-`), and no review passes images (`review` has no `--image`).
#[test]
fn each_review_target_maps_to_its_flag_and_only_a_custom_review_reads_stdin() {
    let cases: [(Review, &[&str]); 4] = [
        (Review::Uncommitted, &["--uncommitted"]),
        (
            Review::Base("release/1.2".into()),
            &["--base", "release/1.2"],
        ),
        (Review::Commit("0a1b2c3d".into()), &["--commit", "0a1b2c3d"]),
        (Review::Custom, &["-"]),
    ];
    for (review, tail) in cases {
        let mut s = spec();
        s.review = Some(review);
        s.model = Some("gpt-5".into());
        s.images = vec!["/srv/app/a.png".into()];
        let argv = strings(exec_argv(&s, None));
        let mut expected: Vec<&str> = vec![
            "exec",
            "-s",
            "read-only",
            "-C",
            "/srv/app",
            "review",
            "--json",
            "-c",
            "sandbox_mode=\"read-only\"",
            "-m",
            "gpt-5",
            "-c",
            "sandbox_workspace_write.writable_roots=[]",
            "-c",
            "approval_policy=\"never\"",
            "-c",
            "approvals_reviewer=\"user\"",
        ];
        expected.extend(tail);
        assert_eq!(argv, expected);
    }
}

/// `codex exec` would run a granular policy as `never`: refused with the way out; every
/// other policy runs as before.
#[test]
fn exec_refuses_a_granular_policy_and_names_the_app_server_backend() {
    let table: Vec<(Option<ApprovalPolicy>, bool)> = vec![
        (None, false),
        (Some(ApprovalPolicy::Never), false),
        (Some(ApprovalPolicy::OnRequest), false),
        (Some("granular".parse().unwrap()), true),
        (Some("granular:rules".parse().unwrap()), true),
    ];
    for (policy, refused) in table {
        let mut s = spec();
        s.approval_policy = policy;
        let got = exec_unsupported(&s).map(|e| e.to_string());
        assert_eq!(got.is_some(), refused, "{policy:?}: {got:?}");
        if let Some(e) = got {
            assert!(
                e.contains("TWOBOT_CODEX_BACKEND=app-server") && e.contains("approval_policy"),
                "{e}"
            );
        }
    }
}
