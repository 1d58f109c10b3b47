//! What the runner sends the app server: the params of its requests (the protocol's
//! v2 spelling), split from [`super::protocol`], which reads what the server sends.

use serde::Serialize;
use serde_json::Value;

/// What a thread request (`thread/start|resume|fork`) sends.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadParams {
    /// The thread to resume or fork.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thread_id: Option<String>,
    /// The working directory (Codex's name).
    pub cwd: String,
    /// `read-only`, `workspace-write`, `danger-full-access`.
    pub sandbox: String,
    /// `never`, `on-request`, `untrusted`, or `{"granular": {…}}` (which Codex 0.169 takes
    /// only after an `initialize` that declared `capabilities.experimentalApi`).
    pub approval_policy: Value,
    /// Always `user`: Codex's own reviewer model never approves anything.
    pub approvals_reviewer: String,
    /// The model.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Keep no rollout (not on resume, which has no such field).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ephemeral: Option<bool>,
    /// Resume and fork: leave the thread's past turns out of the reply (it could outgrow
    /// a line; and 0.169 refuses an ephemeral fork without it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exclude_turns: Option<bool>,
    /// Config overrides by dotted key, as `-c` takes them.
    pub config: serde_json::Map<String, Value>,
}

/// `turn/start`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TurnStartParams {
    /// The thread.
    pub thread_id: String,
    /// The prompt and the images.
    pub input: Vec<UserInput>,
    /// The reasoning effort.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub effort: Option<String>,
    /// The final message's JSON Schema.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_schema: Option<Value>,
}

/// One input of a turn.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum UserInput {
    /// Text.
    Text {
        /// The text.
        text: String,
    },
    /// An image file Codex reads.
    LocalImage {
        /// Its path (the run's private copy).
        path: String,
    },
}

/// `review/start`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReviewStartParams {
    /// The thread.
    pub thread_id: String,
    /// What to review.
    pub target: ReviewTarget,
}

/// What a review looks at.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ReviewTarget {
    /// The working tree.
    UncommittedChanges,
    /// Against a base branch.
    BaseBranch {
        /// The branch.
        branch: String,
    },
    /// One commit.
    Commit {
        /// Its sha.
        sha: String,
    },
    /// Free-form instructions.
    Custom {
        /// The instructions.
        instructions: String,
    },
}
