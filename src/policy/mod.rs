//! The sandbox policy: every `run_codex_prompt` request is checked here and turned
//! into a [`RunSpec`] before anything is spawned.
//!
//! [`check`] is a pure decision apart from resolving paths (canonicalisation follows
//! symlinks, so a link inside a root that points outside is caught). A refusal names the
//! parameter, the value and the rule, so the client (often a model) can correct itself.
//! Admission ([`crate::runs`]) asks it first, before thread ownership and the run queue;
//! [`file`] reads the operator's TOML policy.

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
use paths::resolve_path;
pub use paths::within_roots;

mod names;
mod paths;

use crate::job::{DEFAULT_TIMEOUT_SEC, Principal, RunRequest, RunSpec, SandboxMode};

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

/// Why a request was refused: which parameter, what value, which rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{param} = {value}: {rule}")]
pub struct Refusal {
    /// The tool parameter at fault (`cwd`, `add_dirs[1]`, `sandbox`, …).
    pub param: String,
    /// The offending value, quoted (or a size, for the prompt).
    pub value: String,
    /// The rule it broke.
    pub rule: Rule,
}

/// The rules of [`check`]; the message is written for the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rule {
    /// The prompt is empty or blank.
    #[error("the prompt must not be empty")]
    EmptyPrompt,
    /// The prompt is over the byte cap.
    #[error("the prompt may be at most {max} bytes (TWOBOT_MAX_PROMPT_BYTES)")]
    PromptTooLarge {
        /// The cap.
        max: usize,
    },
    /// A path parameter was empty.
    #[error("the path must not be empty")]
    EmptyPath,
    /// A path parameter looked like a command-line flag.
    #[error("a path must not start with '-'")]
    FlagLike,
    /// A path parameter held a NUL byte.
    #[error("a path must not contain NUL bytes")]
    NulByte,
    /// The path does not exist.
    #[error("no such directory (allowed roots: {roots})")]
    Missing {
        /// The allowed roots.
        roots: String,
    },
    /// The path exists but is not a directory.
    #[error("not a directory (allowed roots: {roots})")]
    NotADirectory {
        /// The allowed roots.
        roots: String,
    },
    /// The path could not be resolved.
    #[error("cannot resolve the path: {0}")]
    Unresolvable(String),
    /// The path lies outside every allowed root once `..` and symlinks are resolved. Where
    /// it really points is not said: that would map the server's filesystem for the caller.
    #[error(
        "is outside the allowed roots ({roots}) once `..` and symlinks are resolved (CODEX_ALLOWED_ROOTS)"
    )]
    OutsideRoots {
        /// The allowed roots.
        roots: String,
    },
    /// A path spelled inside the roots that crossed a symlink and was refused: one
    /// wording whatever lies behind the link (outside, missing, the wrong type), so a
    /// link into `/etc` is no oracle for which files exist there.
    #[error(
        "is outside the allowed roots ({roots}), or not an existing {what} in them, once `..` and symlinks are resolved (CODEX_ALLOWED_ROOTS)"
    )]
    ThroughSymlink {
        /// The allowed roots.
        roots: String,
        /// "directory" or "regular file": what the parameter names.
        what: &'static str,
    },
    /// An image in `/proc`, `/sys` or `/dev`: never a picture, often a secret (another
    /// process's environment) or a stream that never ends.
    #[error(
        "is in {0} once symlinks are resolved; 2Bot never reads /proc, /sys or /dev as an image"
    )]
    SystemPath(&'static str),
    /// A model or profile name that could be mistaken for a flag or a path trick.
    #[error("must match ^[A-Za-z0-9][A-Za-z0-9._:/-]{{0,127}}$")]
    BadName,
    /// A profile name that could reach outside Codex's home.
    #[error(
        "must match ^[A-Za-z0-9][A-Za-z0-9._-]{{0,127}}$ without \"..\" (it names $CODEX_HOME/<profile>.config.toml)"
    )]
    BadProfileName,
    /// A model or profile the policy file does not list.
    #[error("not allowed by the server's policy (allowed: {0})")]
    NotListed(String),
    /// A writable sandbox without `allow_edits`.
    #[error("this sandbox lets Codex write files; set allow_edits=true to ask for it")]
    NeedsAllowEdits,
    /// `danger-full-access` while the operator has not enabled it.
    #[error("danger-full-access is disabled on this server (TWOBOT_ALLOW_DANGER_FULL_ACCESS)")]
    DangerDisabled,
    /// Above the sandbox this caller may use.
    #[error("above the sandbox this caller may use ({ceiling})")]
    AboveCeiling {
        /// The caller's ceiling.
        ceiling: SandboxMode,
    },
    /// A thread id that is neither a UUID nor a safe thread name.
    #[error("must be a UUID or a thread name matching ^[A-Za-z0-9][A-Za-z0-9._-]{{0,127}}$")]
    BadThreadId,
    /// A thread created with `ephemeral=true`: Codex did not save it.
    #[error(
        "this thread was started with ephemeral=true, so Codex did not save it and it cannot be resumed; start the first call with ephemeral=false"
    )]
    EphemeralThread,
    /// A thread this caller did not start through 2Bot.
    #[error(
        "2Bot has no record of this thread being started by this caller; only your own threads can be resumed"
    )]
    NotYourThread,
    /// The file does not exist.
    #[error("no such file (allowed roots: {roots})")]
    NoSuchFile {
        /// The allowed roots.
        roots: String,
    },
    /// A path that must name a regular file does not.
    #[error("not a regular file (allowed roots: {roots})")]
    NotAFile {
        /// The allowed roots.
        roots: String,
    },
    /// A feature the operator switched off.
    #[error("not allowed by the server's policy ([features] {feature} = false)")]
    FeatureDisabled {
        /// The `[features]` key.
        feature: &'static str,
    },
    /// More images than the policy allows.
    #[error("at most {max} images per call ([features] max_images)")]
    TooManyImages {
        /// The cap.
        max: usize,
    },
    /// An image over the size cap.
    #[error("the image is larger than {max} bytes ([features] max_image_bytes)")]
    ImageTooLarge {
        /// The cap.
        max: u64,
    },
    /// Codex 0.169 splits `--image` values at commas.
    #[error("Codex splits image paths at ','; rename the file")]
    CommaInPath,
    /// An output schema over the size cap.
    #[error("the output schema may be at most {max} bytes as JSON")]
    SchemaTooLarge {
        /// The cap.
        max: usize,
    },
    /// `fork` without a thread to fork.
    #[error("fork=true needs thread_id, the thread to fork")]
    ForkNeedsThread,
    /// A review object that is not exactly one target.
    #[error(
        "must be exactly one of {{\"uncommitted\":true}}, {{\"base\":BRANCH}}, {{\"commit\":SHA}}, {{\"custom\":true}}"
    )]
    ReviewTarget,
    /// A review combined with a parameter it cannot take.
    #[error("a review starts a new thread and takes no {0}")]
    ReviewWith(&'static str),
    /// A branch name that could be a flag or a path trick.
    #[error(
        "must be a branch name matching ^[A-Za-z0-9][A-Za-z0-9._/-]*$ without \"..\", \"//\" or a trailing \"/\", \".\" or \".lock\""
    )]
    BadBranch,
    /// Not a hex commit id.
    #[error("must be a commit SHA of 4 to 64 hex digits")]
    BadCommit,
    /// A review above the sandbox reviews may use.
    #[error("reviews run at most {ceiling} on this server ([features] review_sandbox)")]
    ReviewAboveSandbox {
        /// The review ceiling.
        ceiling: SandboxMode,
    },
    /// A timeout outside 1..=max.
    #[error("must be between 1 and {max} seconds (TWOBOT_MAX_TIMEOUT_SEC)")]
    TimeoutRange {
        /// The cap.
        max: u64,
    },
}

fn refuse(param: impl Into<String>, value: impl std::fmt::Display, rule: Rule) -> Refusal {
    Refusal {
        param: param.into(),
        value: value.to_string(),
        rule,
    }
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
pub fn check(policy: &Policy, principal: &Principal, req: &RunRequest) -> Result<RunSpec, Refusal> {
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
    let features = features::check(policy, req, &mut resume)?;

    let cwd = match &req.cwd {
        None => policy.default_cwd.clone(),
        Some(cwd) => resolve_path(policy, "cwd", cwd, true)?,
    };
    let add_dirs = req
        .add_dirs
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, dir)| resolve_path(policy, &format!("add_dirs[{i}]"), dir, true))
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

fn quoted(s: &str) -> String {
    format!("{s:?}")
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
