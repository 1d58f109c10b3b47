//! The one place where Codex CLI flags are spelled.
//!
//! Checked against `codex exec --help` of `@openai/codex` 0.169.0: `exec` has no `-a`,
//! so the approval policy goes through `-c approval_policy="…"`; the prompt is `-`,
//! which makes Codex read it from stdin (and wait for EOF).
//!
//! The policy's sandbox must win over anything in `$CODEX_HOME` (`config.toml`, the
//! `-p NAME` profile `NAME.config.toml`): measured on 0.169, a config or profile that sets
//! `sandbox_mode`, `default_permissions`, `[sandbox_workspace_write] writable_roots` or
//! the approval keys is overridden by the command line (`-s`, `-c key=…`), and only by it.
//! So every run pins them all, new and resumed alike. `codex exec resume` rejects `-s`
//! and `-p` after `resume`, but takes them on `exec` before it (`exec -s … -p … resume`).
//! `fork` and `review` are spelled the same way (`exec -s … fork|review …`).
//!
//! Also measured on 0.169: `--image` takes several values and splits each at `,`, so an
//! image is passed as one `--image=PATH` (the policy refuses commas); `review` refuses a
//! prompt beside `--uncommitted`, `--base` or `--commit` ("cannot be used with
//! '[PROMPT]'") and ignores stdin then, so only a custom review reads the prompt (`-`);
//! `review` has no `--image`.

use std::ffi::OsString;
use std::path::Path;

use crate::job::{ApprovalPolicy, Review, RunSpec};

/// Every flag [`exec_argv`] may pass to `codex exec` (before `resume`, for a resumed
/// thread), as Codex's help spells it (`2bot-mcp doctor` checks that the installed Codex
/// has each one).
pub const EXEC_FLAGS: &[&str] = &[
    "--json",
    "-s",
    "-C",
    "--add-dir",
    "-m",
    "-p",
    "--skip-git-repo-check",
    "--ephemeral",
    "-c",
    "--image",
    "--output-schema",
];

/// Every flag [`exec_argv`] may pass after `codex exec resume` (and `codex exec fork`,
/// which takes the same ones).
pub const RESUME_FLAGS: &[&str] = &[
    "--json",
    "-c",
    "-m",
    "--skip-git-repo-check",
    "--ephemeral",
    "--image",
    "--output-schema",
];

/// Every flag [`exec_argv`] may pass after `codex exec review`.
pub const REVIEW_FLAGS: &[&str] = &[
    "--json",
    "-c",
    "-m",
    "--skip-git-repo-check",
    "--ephemeral",
    "--output-schema",
    "--uncommitted",
    "--base",
    "--commit",
];

/// The approval policy a run gets when the caller names none: `codex exec` has nobody
/// to ask, and pinning it keeps a config or profile from choosing one that asks.
const DEFAULT_APPROVAL: ApprovalPolicy = ApprovalPolicy::Never;

/// Build the arguments (after the program name) for one run of `codex exec --json`;
/// `output_schema` is the private file the runner wrote `spec.output_schema` to.
pub fn exec_argv(spec: &RunSpec, output_schema: Option<&Path>) -> Vec<OsString> {
    let mut argv = match (&spec.review, &spec.resume, &spec.fork) {
        (Some(review), _, _) => review_argv(spec, review, output_schema),
        (None, Some(thread), _) => thread_argv(spec, "resume", thread, output_schema),
        (None, None, Some(thread)) => thread_argv(spec, "fork", thread, output_schema),
        (None, None, None) => new_thread_argv(spec, output_schema),
    };
    // `-` (and nothing after it): the prompt comes from stdin. A review of a target
    // takes none (see the module docs).
    if matches!(spec.review, None | Some(Review::Custom)) {
        argv.push("-".into());
    }
    argv
}

/// `codex exec review`: the new thread's flags on `exec`, the review's after `review`,
/// then the target.
fn review_argv(spec: &RunSpec, review: &Review, output_schema: Option<&Path>) -> Vec<OsString> {
    let mut argv: Vec<OsString> = vec!["exec".into(), "-s".into(), spec.sandbox.as_str().into()];
    argv.push("-C".into());
    argv.push(spec.cwd.clone().into_os_string());
    for dir in &spec.add_dirs {
        argv.push("--add-dir".into());
        argv.push(dir.clone().into_os_string());
    }
    if let Some(profile) = &spec.profile {
        argv.push("-p".into());
        argv.push(profile.into());
    }
    argv.extend(["review".into(), "--json".into()]);
    argv.push("-c".into());
    argv.push(format!("sandbox_mode={}", toml_string(spec.sandbox.as_str())).into());
    model(spec, &mut argv);
    common(spec, &mut argv, output_schema);
    match review {
        Review::Uncommitted => argv.push("--uncommitted".into()),
        Review::Base(branch) => argv.extend(["--base".into(), branch.into()]),
        Review::Commit(sha) => argv.extend(["--commit".into(), sha.into()]),
        Review::Custom => {}
    }
    argv
}

fn model(spec: &RunSpec, argv: &mut Vec<OsString>) {
    if let Some(model) = &spec.model {
        argv.push("-m".into());
        argv.push(model.into());
    }
}

/// What every run passes after its subcommand (and after `-m`): flags, images, output
/// schema, the pins and the reasoning effort.
fn common(spec: &RunSpec, argv: &mut Vec<OsString>, output_schema: Option<&Path>) {
    if spec.skip_git_repo_check {
        argv.push("--skip-git-repo-check".into());
    }
    if spec.ephemeral {
        argv.push("--ephemeral".into());
    }
    if spec.review.is_none() {
        for image in &spec.images {
            let mut arg = OsString::from("--image=");
            arg.push(image);
            argv.push(arg);
        }
    }
    if let Some(file) = output_schema {
        argv.push("--output-schema".into());
        argv.push(file.into());
    }
    pins(spec, argv);
    if let Some(effort) = spec.reasoning_effort {
        argv.push("-c".into());
        argv.push(format!("model_reasoning_effort={}", toml_string(effort.as_str())).into());
    }
}

/// `codex exec resume` and `codex exec fork` have no `-C` or `--add-dir`: the extra
/// writable dirs go through `-c`, and the runner starts Codex in the validated cwd.
/// `--` keeps the thread id a positional.
fn thread_argv(
    spec: &RunSpec,
    subcommand: &str,
    thread: &str,
    output_schema: Option<&Path>,
) -> Vec<OsString> {
    let mut argv: Vec<OsString> = vec!["exec".into(), "-s".into(), spec.sandbox.as_str().into()];
    if let Some(profile) = &spec.profile {
        argv.push("-p".into());
        argv.push(profile.into());
    }
    argv.extend([subcommand.into(), "--json".into()]);
    // Also as config: the thread's own saved settings are config too.
    argv.push("-c".into());
    argv.push(format!("sandbox_mode={}", toml_string(spec.sandbox.as_str())).into());
    model(spec, &mut argv);
    common(spec, &mut argv, output_schema);
    argv.push("--".into());
    argv.push(thread.into());
    argv
}

/// The settings a profile or config could use to raise the sandbox, set from the policy's
/// decision: the writable roots (exactly the checked `add_dirs`, which `--add-dir` adds to
/// on a new thread), the approval policy and who reviews approvals.
fn pins(spec: &RunSpec, argv: &mut Vec<OsString>) {
    let roots: Vec<String> = spec
        .add_dirs
        .iter()
        .map(|d| toml_string(&d.to_string_lossy()))
        .collect();
    argv.push("-c".into());
    argv.push(
        format!(
            "sandbox_workspace_write.writable_roots=[{}]",
            roots.join(",")
        )
        .into(),
    );
    let approval = spec.approval_policy.unwrap_or(DEFAULT_APPROVAL);
    argv.push("-c".into());
    argv.push(format!("approval_policy={}", toml_string(approval.as_str())).into());
    argv.push("-c".into());
    argv.push("approvals_reviewer=\"user\"".into());
}

/// A TOML basic string (what `-c key=value` parses the value as).
fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn new_thread_argv(spec: &RunSpec, output_schema: Option<&Path>) -> Vec<OsString> {
    let mut argv: Vec<OsString> = vec!["exec".into(), "--json".into()];
    argv.push("-s".into());
    argv.push(spec.sandbox.as_str().into());
    argv.push("-C".into());
    argv.push(spec.cwd.clone().into_os_string());
    for dir in &spec.add_dirs {
        argv.push("--add-dir".into());
        argv.push(dir.clone().into_os_string());
    }
    model(spec, &mut argv);
    if let Some(profile) = &spec.profile {
        argv.push("-p".into());
        argv.push(profile.into());
    }
    common(spec, &mut argv, output_schema);
    argv
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::path::PathBuf;
    use std::time::Duration;

    use super::*;
    use crate::job::{ApprovalPolicy, ReasoningEffort, SandboxMode};

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
}
