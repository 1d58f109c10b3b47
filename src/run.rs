//! Plain data that flows through the run stack: the tool's wire input
//! ([`RunRequest`], its [`ApprovalPolicy`] string in `approval_policy.rs`), the validated
//! [`RunSpec`] that policy hands to the runner,
//! who asked ([`Principal`], in `principal.rs`) and what came back ([`RunOutput`], in
//! `output.rs`).
//!
//! Nothing here does I/O, and `run` imports nothing from the rest of the crate: every
//! transport and every layer speaks these types, so they sit below all of them.

use std::path::PathBuf;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

mod approval;
mod approval_policy;
mod arrival;
pub mod control;
mod output;
mod principal;

pub use self::approval_policy::{ApprovalPolicy, GRANULAR_KNOBS, Granular};
pub use self::arrival::{CallTransport, RunPath};
pub use self::output::{CommandRun, FileChange, RunOutput, Summary, Truncated, Usage};
pub use self::principal::{Principal, QuotaKey};

/// Codex's sandbox for model-generated commands, ordered from least to most powerful.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    Serialize,
    Deserialize,
    JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum SandboxMode {
    /// Commands may read anything but write nothing.
    #[default]
    ReadOnly,
    /// Commands may write inside the working directory and the extra directories.
    WorkspaceWrite,
    /// No sandbox at all.
    DangerFullAccess,
}

impl SandboxMode {
    /// The spelling Codex and the tool schema use.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ReadOnly => "read-only",
            Self::WorkspaceWrite => "workspace-write",
            Self::DangerFullAccess => "danger-full-access",
        }
    }
}

impl std::fmt::Display for SandboxMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for SandboxMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "read-only" => Ok(Self::ReadOnly),
            "workspace-write" => Ok(Self::WorkspaceWrite),
            "danger-full-access" => Ok(Self::DangerFullAccess),
            other => Err(format!(
                "`{other}` is not a sandbox mode (read-only, workspace-write, danger-full-access)"
            )),
        }
    }
}

/// How hard the model reasons (`-c model_reasoning_effort="…"`): the levels Codex 0.169
/// documents for OpenAI models.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum ReasoningEffort {
    /// No reasoning.
    None,
    /// Minimal.
    Minimal,
    /// Low.
    Low,
    /// Medium.
    Medium,
    /// High.
    High,
    /// Extra high.
    Xhigh,
}

impl ReasoningEffort {
    /// The spelling Codex's config uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Minimal => "minimal",
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Xhigh => "xhigh",
        }
    }
}

/// The `review` parameter as sent: exactly one key set (the policy checks that).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewRequest {
    /// Review staged, unstaged and untracked changes.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub uncommitted: bool,
    /// Review the changes against this base branch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
    /// Review the changes of this commit (hex SHA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// Review as the prompt instructs.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub custom: bool,
}

/// What a review run looks at (`codex exec review`), checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Review {
    /// `--uncommitted`.
    Uncommitted,
    /// `--base <branch>` (a checked branch name).
    Base(String),
    /// `--commit <sha>` (checked hex).
    Commit(String),
    /// The prompt, read from stdin, as the review instructions.
    Custom,
}

/// The seed's default `timeout_sec`.
pub const DEFAULT_TIMEOUT_SEC: u64 = 1800;

fn default_true() -> bool {
    true
}

/// `prompt` defaults to empty only so a review target can go without it: the schema
/// advertises no default, as an empty prompt is refused everywhere else.
fn no_default(schema: &mut schemars::Schema) {
    schema.remove("default");
}

/// Input of the `run_codex_prompt` tool: the seed's twelve parameters with its defaults,
/// plus optional ones absent (or off) by default, so seed clients are unaffected.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "run_codex_prompt arguments")]
pub struct RunRequest {
    /// The task for Codex, in natural language, sent on stdin (never on a command line).
    /// Optional with a `review` target.
    #[serde(default)]
    #[schemars(transform = no_default)]
    pub prompt: String,
    /// Working directory for Codex. Must be an existing directory inside one of the server's
    /// allowed roots (symlinks resolved); relative paths resolve against the first allowed root.
    /// Defaults to the first allowed root.
    #[serde(default)]
    pub cwd: Option<String>,
    /// Model name for Codex (`-m`). Defaults to Codex's configured model.
    #[serde(default)]
    pub model: Option<String>,
    /// Codex configuration profile (`-p`). Defaults to none.
    #[serde(default)]
    pub profile: Option<String>,
    /// Sandbox for Codex's commands: `read-only`, `workspace-write` (writes in `cwd` and
    /// `add_dirs`) or `danger-full-access` (only if the operator allows); both need `allow_edits`.
    #[serde(default)]
    pub sandbox: SandboxMode,
    /// `never` (default), `on-request`, `granular` or `granular:KNOB,…`; asking needs
    /// the app-server backend (README, Approvals).
    #[serde(default)]
    pub approval_policy: Option<ApprovalPolicy>,
    /// Must be true for any sandbox that lets Codex write files.
    #[serde(default)]
    pub allow_edits: bool,
    /// Let Codex run outside a Git repository (`--skip-git-repo-check`).
    #[serde(default)]
    pub skip_git_repo_check: bool,
    /// Extra directories Codex may use (`--add-dir`), each inside an allowed root.
    #[serde(default)]
    pub add_dirs: Option<Vec<String>>,
    /// Seconds before Codex and everything it started are killed; partial output is still returned.
    /// Defaults to 1800 (or the server's maximum, when that is lower).
    #[serde(default)]
    #[schemars(with = "i64", extend("default" = DEFAULT_TIMEOUT_SEC))]
    pub timeout_sec: Option<i64>,
    /// Run without persisting the Codex session (`--ephemeral`).
    #[serde(default = "default_true")]
    pub ephemeral: bool,
    /// Include every Codex JSONL event in the result (`events`), size-capped.
    #[serde(default)]
    pub include_event_log: bool,
    /// Continue a thread (a result's `thread_id`) with `codex exec resume`. Only threads run
    /// with `ephemeral=false` resume, and only for the caller that started them.
    #[serde(default)]
    pub thread_id: Option<String>,
    /// With `thread_id`: fork that thread into a new one you own (`codex exec fork`)
    /// instead of continuing it.
    #[serde(default)]
    pub fork: bool,
    /// Reasoning effort (`-c model_reasoning_effort`). Defaults to Codex's setting.
    #[serde(default)]
    pub reasoning_effort: Option<ReasoningEffort>,
    /// Image files for the prompt (`--image`), inside the allowed roots (by default at
    /// most 8, 20 MiB each).
    #[serde(default)]
    pub images: Option<Vec<String>>,
    /// JSON Schema for the final message (`--output-schema`); JSON that parses is also
    /// returned as `output`.
    #[serde(default)]
    pub output_schema: Option<serde_json::Map<String, serde_json::Value>>,
    /// Review code (`codex exec review`, read-only); exactly one key. With a target no
    /// prompt is sent; with `custom` it says what to review.
    #[serde(default)]
    pub review: Option<ReviewRequest>,
}

impl RunRequest {
    /// A request with the seed's defaults and the given prompt.
    pub fn new(prompt: impl Into<String>) -> Self {
        Self {
            prompt: prompt.into(),
            cwd: None,
            model: None,
            profile: None,
            sandbox: SandboxMode::ReadOnly,
            approval_policy: None,
            allow_edits: false,
            skip_git_repo_check: false,
            add_dirs: None,
            timeout_sec: None,
            ephemeral: true,
            include_event_log: false,
            thread_id: None,
            fork: false,
            reasoning_effort: None,
            images: None,
            output_schema: None,
            review: None,
        }
    }
}

/// A request that passed policy: every path canonical and inside a root, every value checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSpec {
    /// The prompt, written to Codex's stdin.
    pub prompt: String,
    /// Canonical working directory.
    pub cwd: PathBuf,
    /// Canonical extra directories.
    pub add_dirs: Vec<PathBuf>,
    /// Checked model name.
    pub model: Option<String>,
    /// Checked profile name.
    pub profile: Option<String>,
    /// Effective sandbox (never above the principal's ceiling).
    pub sandbox: SandboxMode,
    /// Approval policy passed through `-c`.
    pub approval_policy: Option<ApprovalPolicy>,
    /// Pass `--skip-git-repo-check`.
    pub skip_git_repo_check: bool,
    /// Pass `--ephemeral`.
    pub ephemeral: bool,
    /// Keep the raw event log in the output.
    pub include_event_log: bool,
    /// Deadline for the whole process tree.
    pub timeout: Duration,
    /// The thread to continue (`codex exec resume`), validated.
    pub resume: Option<String>,
    /// The thread to fork into a new one (`codex exec fork`), validated; never with `resume`.
    pub fork: Option<String>,
    /// Reasoning effort, when the call set one.
    pub reasoning_effort: Option<ReasoningEffort>,
    /// Canonical image files (regular, size-checked) for `--image`.
    pub images: Vec<PathBuf>,
    /// The output schema as JSON text, written to a private temp file for `--output-schema`.
    pub output_schema: Option<String>,
    /// A review run (`codex exec review`) instead of a task.
    pub review: Option<Review>,
    /// The most this caller may have (the policy's ceiling for the principal): an
    /// approval whose accept would go beyond it is declined without asking.
    pub ceiling: SandboxMode,
}

/// Where a call came from and how to talk back to it; travels with the request through every layer.
#[derive(Debug, Clone)]
pub struct CallContext {
    /// Who asked.
    pub principal: Principal,
    /// Whose share of the server this call uses (see [`QuotaKey`]).
    pub quota_key: QuotaKey,
    /// The HTTP request id, passed to Codex as `TWOBOT_REQUEST_ID`.
    pub request_id: Option<String>,
    /// Fires when the client cancels the call or the server shuts down.
    pub cancel: tokio_util::sync::CancellationToken,
    /// One-line progress messages for the client; lossy, so a slow client never stalls Codex.
    pub progress: Option<tokio::sync::mpsc::Sender<String>>,
    /// Approvals and steering for this run (used by the app-server backend).
    pub control: std::sync::Arc<control::RunControl>,
}

impl CallContext {
    /// A context for `principal` with nothing attached.
    pub fn new(principal: Principal) -> Self {
        Self {
            quota_key: QuotaKey::of(&principal),
            principal,
            request_id: None,
            cancel: tokio_util::sync::CancellationToken::new(),
            progress: None,
            control: std::sync::Arc::default(),
        }
    }
}

/// A tool call as it enters the run stack: the raw request and its context.
#[derive(Debug, Clone)]
pub struct ToolCall {
    /// The tool's arguments.
    pub request: RunRequest,
    /// Who and how.
    pub ctx: CallContext,
}

/// A tool call after policy: what the runner executes.
#[derive(Debug, Clone)]
pub struct Job {
    /// The validated run.
    pub spec: RunSpec,
    /// Who and how.
    pub ctx: CallContext,
}
