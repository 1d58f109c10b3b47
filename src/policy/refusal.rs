//! Why [`super::check`] refuses: a [`Refusal`] names the parameter, the value and the
//! [`Rule`] it broke, each rule's message written for the caller (often a model) so it
//! can correct itself. Apart from the decision so every check (paths, names, features)
//! speaks the same words.

use crate::run::SandboxMode;

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

/// The rules of [`check`](super::check); the message is written for the caller.
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

pub(super) fn refuse(
    param: impl Into<String>,
    value: impl std::fmt::Display,
    rule: Rule,
) -> Refusal {
    Refusal {
        param: param.into(),
        value: value.to_string(),
        rule,
    }
}

pub(super) fn quoted(s: &str) -> String {
    format!("{s:?}")
}
