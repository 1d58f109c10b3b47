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

use crate::error::ToolError;
use crate::run::{ApprovalPolicy, Review, RunSpec};

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

/// Why `codex exec` cannot run `spec` as asked, if it cannot. A granular approval policy:
/// `codex exec` 0.169 parses `-c approval_policy={granular={…}}` and then runs as if it
/// said `never` (measured: an escalated command gets "approval policy is Never; reject
/// command"), since exec has nobody to ask; so it is refused rather than silently ignored.
pub fn exec_unsupported(spec: &RunSpec) -> Option<ToolError> {
    let policy = spec.approval_policy.filter(|p| p.is_granular())?;
    Some(ToolError::Unsupported {
        param: format!("approval_policy = {:?}", policy.to_string()),
        reason: "`codex exec` has nobody to ask, so it runs a granular policy as `never`; approvals a person answers need TWOBOT_CODEX_BACKEND=app-server".to_owned(),
    })
}

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
    argv.push(format!("approval_policy={}", approval.toml()).into());
    argv.push("-c".into());
    argv.push("approvals_reviewer=\"user\"".into());
}

/// A TOML basic string (what `-c key=value` parses the value as).
pub(crate) fn toml_string(s: &str) -> String {
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
#[path = "command_tests.rs"]
mod tests;
