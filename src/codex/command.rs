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

use std::ffi::OsString;

use crate::job::{ApprovalPolicy, RunSpec};

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
];

/// Every flag [`exec_argv`] may pass after `codex exec resume`.
pub const RESUME_FLAGS: &[&str] = &["--json", "-c", "-m", "--skip-git-repo-check", "--ephemeral"];

/// The approval policy a run gets when the caller names none: `codex exec` has nobody
/// to ask, and pinning it keeps a config or profile from choosing one that asks.
const DEFAULT_APPROVAL: ApprovalPolicy = ApprovalPolicy::Never;

/// Build the arguments (after the program name) for one run of `codex exec --json`.
pub fn exec_argv(spec: &RunSpec) -> Vec<OsString> {
    match &spec.resume {
        None => new_thread_argv(spec),
        Some(thread) => resume_argv(spec, thread),
    }
}

/// `codex exec resume` has no `-C` or `--add-dir`: the extra writable dirs go through
/// `-c`, and the runner starts Codex in the validated cwd. `--` keeps the thread id a
/// positional.
fn resume_argv(spec: &RunSpec, thread: &str) -> Vec<OsString> {
    let mut argv: Vec<OsString> = vec!["exec".into(), "-s".into(), spec.sandbox.as_str().into()];
    if let Some(profile) = &spec.profile {
        argv.push("-p".into());
        argv.push(profile.into());
    }
    argv.extend(["resume".into(), "--json".into()]);
    // Also as config: the thread's own saved settings are config too.
    argv.push("-c".into());
    argv.push(format!("sandbox_mode={}", toml_string(spec.sandbox.as_str())).into());
    if let Some(model) = &spec.model {
        argv.push("-m".into());
        argv.push(model.into());
    }
    if spec.skip_git_repo_check {
        argv.push("--skip-git-repo-check".into());
    }
    if spec.ephemeral {
        argv.push("--ephemeral".into());
    }
    pins(spec, &mut argv);
    argv.push("--".into());
    argv.push(thread.into());
    argv.push("-".into());
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

fn new_thread_argv(spec: &RunSpec) -> Vec<OsString> {
    let mut argv: Vec<OsString> = vec!["exec".into(), "--json".into()];
    argv.push("-s".into());
    argv.push(spec.sandbox.as_str().into());
    argv.push("-C".into());
    argv.push(spec.cwd.clone().into_os_string());
    for dir in &spec.add_dirs {
        argv.push("--add-dir".into());
        argv.push(dir.clone().into_os_string());
    }
    if let Some(model) = &spec.model {
        argv.push("-m".into());
        argv.push(model.into());
    }
    if let Some(profile) = &spec.profile {
        argv.push("-p".into());
        argv.push(profile.into());
    }
    if spec.skip_git_repo_check {
        argv.push("--skip-git-repo-check".into());
    }
    if spec.ephemeral {
        argv.push("--ephemeral".into());
    }
    pins(spec, &mut argv);
    // `-` (and nothing after it): the prompt comes from stdin.
    argv.push("-".into());
    argv
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::path::PathBuf;
    use std::time::Duration;

    use super::*;
    use crate::job::{ApprovalPolicy, SandboxMode};

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
        }
    }

    /// The doctor's flag lists cover every flag the argv builders can emit.
    #[test]
    fn every_flag_2bot_passes_is_in_the_list_the_doctor_checks() {
        let mut full = spec();
        full.add_dirs = vec![PathBuf::from("/srv/b")];
        full.model = Some("m".into());
        full.profile = Some("p".into());
        full.skip_git_repo_check = true;
        full.ephemeral = true;
        full.approval_policy = Some(ApprovalPolicy::Never);
        let flags = |argv: Vec<OsString>| -> Vec<String> {
            strings(argv)
                .into_iter()
                .filter(|a| a.starts_with('-') && a != "-" && a != "--")
                .collect()
        };
        for flag in flags(exec_argv(&full)) {
            assert!(EXEC_FLAGS.contains(&flag.as_str()), "{flag}");
        }
        full.resume = Some("0199a213-81c0-7800-8aa1-bbab2a035a53".into());
        full.sandbox = SandboxMode::WorkspaceWrite;
        let argv = strings(exec_argv(&full));
        let at = argv.iter().position(|a| a == "resume").unwrap();
        let (before, after) = argv.split_at(at);
        for flag in flags(before.iter().map(Into::into).collect()) {
            assert!(EXEC_FLAGS.contains(&flag.as_str()), "{flag}");
        }
        for flag in flags(after.iter().map(Into::into).collect()) {
            assert!(RESUME_FLAGS.contains(&flag.as_str()), "{flag}");
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
            strings(exec_argv(&spec())),
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
            strings(exec_argv(&s)),
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
        let argv = strings(exec_argv(&spec()));
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
            strings(exec_argv(&spec)),
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
            let argv = strings(exec_argv(&s));
            assert!(!argv.iter().any(|a| a.starts_with("profile=")), "{argv:?}");
        }
    }
}
