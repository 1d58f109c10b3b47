//! The sandbox policy: every `run_codex_prompt` request is checked here and turned
//! into a [`RunSpec`] before anything is spawned.
//!
//! [`check`] is a pure decision apart from resolving paths (canonicalisation follows
//! symlinks, so a link inside a root that points outside is caught). A refusal names the
//! parameter, the value and the rule, so the client (often a model) can correct itself.
//! Admission ([`crate::runs`]) asks it first, before thread ownership and the run queue;
//! [`file`](mod@file) reads the operator's TOML policy; `refusal` says why a request was refused.

pub mod approvals;
pub mod features;
pub mod file;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

pub use features::Features;
pub use file::{EnvPolicy, PolicyFile};
use names::checked_name;
pub use names::{is_profile_name, is_safe_name, is_thread_id};
use paths::{Look, resolve_path};
pub use paths::{RESOLVE_CACHED, kernel_walks_cached, within_roots};
pub use refusal::{Refusal, Rule};
use refusal::{quoted, refuse};

mod names;
mod paths;
mod refusal;

use crate::run::{DEFAULT_TIMEOUT_SEC, Principal, RunRequest, RunSpec, SandboxMode};

/// The effective policy, after the policy file and the environment were merged.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// Canonical allowed roots; empty means any directory (the seed's behaviour).
    pub allowed_roots: Vec<PathBuf>,
    /// Where Codex runs when the request names no `cwd`, and what relative paths resolve against.
    pub default_cwd: PathBuf,
    /// The most powerful sandbox anyone may ask for.
    pub sandbox_ceiling: SandboxMode,
    /// Whether `danger-full-access` may be granted at all.
    pub allow_danger_full_access: bool,
    /// When set, the only models a request may name.
    pub allowed_models: Option<Vec<String>>,
    /// When set, the only profiles a request may name.
    pub allowed_profiles: Option<Vec<String>>,
    /// Upper bound of `timeout_sec`.
    pub max_timeout_sec: u64,
    /// Upper bound of the prompt's size in bytes.
    pub max_prompt_bytes: usize,
    /// For authenticated callers: the sandbox each scope grants (the highest match wins).
    /// Empty means scopes do not narrow the ceiling.
    pub scope_sandbox: BTreeMap<String, SandboxMode>,
    /// Which of Codex's own features calls may use (`[features]`).
    pub features: Features,
}

impl Policy {
    /// A permissive-but-safe policy: no roots, read-only default, workspace-write ceiling.
    pub fn new(default_cwd: PathBuf) -> Self {
        Self {
            allowed_roots: Vec::new(),
            default_cwd,
            sandbox_ceiling: SandboxMode::WorkspaceWrite,
            allow_danger_full_access: false,
            allowed_models: None,
            allowed_profiles: None,
            max_timeout_sec: 7200,
            max_prompt_bytes: 1024 * 1024,
            scope_sandbox: BTreeMap::new(),
            features: Features::default(),
        }
    }

    /// `timeout_sec` when the call names none: the seed's 1800 s, or the maximum when lower.
    pub fn default_timeout_sec(&self) -> u64 {
        DEFAULT_TIMEOUT_SEC.min(self.max_timeout_sec)
    }

    /// The most powerful sandbox `principal` may ask for.
    pub fn ceiling_for(&self, principal: &Principal) -> SandboxMode {
        let mut ceiling = self.sandbox_ceiling;
        if !self.allow_danger_full_access {
            ceiling = ceiling.min(SandboxMode::WorkspaceWrite);
        }
        match principal {
            Principal::Authenticated { scopes, .. } if !self.scope_sandbox.is_empty() => {
                let granted = scopes
                    .iter()
                    .filter_map(|s| self.scope_sandbox.get(s))
                    .max()
                    .copied()
                    .unwrap_or(SandboxMode::ReadOnly);
                ceiling.min(granted)
            }
            _ => ceiling,
        }
    }
}

/// Check `req` for `principal` against `policy`; on success, the exact run to start.
/// Resolving its paths may wait on a file system for as long as it likes.
pub fn check(policy: &Policy, principal: &Principal, req: &RunRequest) -> Result<RunSpec, Refusal> {
    check_looking(policy, principal, req, Look::Waiting)
}

/// [`check`] without waiting on any file system: the run it would admit, when every path
/// the request names resolves from the kernel's lookup caches. `None` for the rest (a
/// path not in the caches, an image to measure, any refusal): [`check`] decides those,
/// on a thread that may wait. So a caller on a runtime thread asks this first and moves
/// to the blocking pool only when it must; a `Some` is what [`check`] would answer.
pub fn check_cached(policy: &Policy, principal: &Principal, req: &RunRequest) -> Option<RunSpec> {
    check_looking(policy, principal, req, Look::CachedOnly).ok()
}

fn check_looking(
    policy: &Policy,
    principal: &Principal,
    req: &RunRequest,
    look: Look,
) -> Result<RunSpec, Refusal> {
    // A review with a target (uncommitted, base, commit) sends no prompt, so it needs
    // none; whether the target itself is valid is the review check's to say.
    let review_target = req.review.as_ref().is_some_and(|r| !r.custom);
    if req.prompt.trim().is_empty() && !review_target {
        return Err(refuse("prompt", "\"\"", Rule::EmptyPrompt));
    }
    if req.prompt.len() > policy.max_prompt_bytes {
        return Err(refuse(
            "prompt",
            format!("<{} bytes>", req.prompt.len()),
            Rule::PromptTooLarge {
                max: policy.max_prompt_bytes,
            },
        ));
    }
    let timeout = match req.timeout_sec {
        None => policy.default_timeout_sec(),
        Some(t) => u64::try_from(t)
            .ok()
            .filter(|t| (1..=policy.max_timeout_sec).contains(t))
            .ok_or_else(|| {
                refuse(
                    "timeout_sec",
                    t,
                    Rule::TimeoutRange {
                        max: policy.max_timeout_sec,
                    },
                )
            })?,
    };
    let model = checked_name(
        "model",
        req.model.as_deref(),
        policy.allowed_models.as_deref(),
    )?;
    let profile = checked_name(
        "profile",
        req.profile.as_deref(),
        policy.allowed_profiles.as_deref(),
    )?;
    check_sandbox(policy, principal, req)?;

    let mut resume = match &req.thread_id {
        None => None,
        Some(id) if is_thread_id(id) => Some(id.clone()),
        Some(id) => return Err(refuse("thread_id", quoted(id), Rule::BadThreadId)),
    };
    let features = features::check(policy, req, &mut resume, look)?;

    let cwd = match &req.cwd {
        None => policy.default_cwd.clone(),
        Some(cwd) => resolve_path(policy, "cwd", cwd, true, look)?,
    };
    let add_dirs = req
        .add_dirs
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, dir)| resolve_path(policy, &format!("add_dirs[{i}]"), dir, true, look))
        .collect::<Result<Vec<_>, _>>()?;

    Ok(RunSpec {
        prompt: req.prompt.clone(),
        cwd,
        add_dirs,
        model,
        profile,
        sandbox: req.sandbox,
        approval_policy: req.approval_policy,
        skip_git_repo_check: req.skip_git_repo_check,
        ephemeral: req.ephemeral,
        include_event_log: req.include_event_log,
        timeout: Duration::from_secs(timeout),
        resume,
        fork: features.fork,
        reasoning_effort: features.reasoning_effort,
        images: features.images,
        output_schema: features.output_schema,
        review: features.review,
        ceiling: policy.ceiling_for(principal),
    })
}

fn check_sandbox(policy: &Policy, principal: &Principal, req: &RunRequest) -> Result<(), Refusal> {
    let sandbox = req.sandbox;
    if sandbox == SandboxMode::DangerFullAccess && !policy.allow_danger_full_access {
        return Err(refuse(
            "sandbox",
            quoted(sandbox.as_str()),
            Rule::DangerDisabled,
        ));
    }
    if sandbox != SandboxMode::ReadOnly && !req.allow_edits {
        return Err(refuse(
            "sandbox",
            quoted(sandbox.as_str()),
            Rule::NeedsAllowEdits,
        ));
    }
    let ceiling = policy.ceiling_for(principal);
    if sandbox > ceiling {
        return Err(refuse(
            "sandbox",
            quoted(sandbox.as_str()),
            Rule::AboveCeiling { ceiling },
        ));
    }
    Ok(())
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
