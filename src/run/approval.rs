//! The words of an approval: what Codex asks ([`ApprovalKind`]), the answer in the spec's
//! three words ([`Decision`]), how it came ([`Channel`]), and the record the result keeps
//! ([`ApprovalRecord`]). Plain data, shared by the runner, the transports and the result;
//! [`super::control`] moves them between those.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What Codex asks a person to approve.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ApprovalKind {
    /// Run a command.
    Command {
        /// The command line.
        command: String,
        /// Where it would run (the caller's path, not Codex's private name).
        cwd: String,
    },
    /// Change files.
    FileChange {
        /// The files, as the caller knows them.
        paths: Vec<String>,
        /// The change as a unified diff (text, never rendered as HTML).
        diff: String,
    },
    /// Widen what the sandbox lets commands do.
    Permissions {
        /// What would be granted, in words.
        summary: String,
        /// The paths write access is asked for, as the caller knows them (the policy
        /// reads them; `summary` shows them).
        #[serde(default, skip)]
        write: Vec<String>,
        /// Network access, or a grant 2Bot does not read (patterns, special paths):
        /// only a `danger-full-access` ceiling may approve it.
        #[serde(default, skip)]
        wider: bool,
    },
}

/// One request from Codex, as the runner hands it over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalRequest {
    /// What would happen on accept.
    pub kind: ApprovalKind,
    /// Codex's reason, when it gave one.
    pub reason: Option<String>,
}

/// A person's (or the fallback's) answer, in the spec's three words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Do it.
    Accept,
    /// Do not; the turn goes on.
    Decline,
    /// Do not, and stop the turn.
    Cancel,
}

impl Decision {
    /// The word as metrics and the audit log spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accept => "accept",
            Self::Decline => "decline",
            Self::Cancel => "cancel",
        }
    }
}

/// How an answer arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// An MCP `elicitation/create` the client answered (sessions that declared it).
    Elicitation,
    /// The 2026-07-28 round trip: `input_required`, then the client's retry.
    InputRequired,
    /// The run card's Approve / Deny buttons.
    Card,
    /// Nobody answered within `TWOBOT_APPROVAL_TIMEOUT_SEC`: declined.
    Timeout,
    /// The caller can be reached by no channel: declined at once.
    Unreachable,
    /// The run ended (timeout, cancel, shutdown) while the request waited: declined.
    RunEnded,
    /// Beyond what the policy lets this caller have: declined without asking anyone.
    Policy,
}

impl Channel {
    /// The word as metrics and the audit log spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Elicitation => "elicitation",
            Self::InputRequired => "input_required",
            Self::Card => "card",
            Self::Timeout => "timeout",
            Self::Unreachable => "unreachable",
            Self::RunEnded => "run_ended",
            Self::Policy => "policy",
        }
    }
}

/// A request waiting for its answer.
#[derive(Debug, Clone)]
pub struct Pending {
    /// Short id, unique within the run (`a1`, `a2`, …).
    pub id: String,
    /// What is asked.
    pub request: ApprovalRequest,
    /// When it was asked (Unix milliseconds).
    pub asked_at_ms: u64,
    /// An unguessable token that the run card must present with its answer. It is given
    /// to the card only (in a result's `_meta`, which hosts keep from the model), so the
    /// model cannot answer through the card's tool.
    pub token: String,
}

/// A request and how it was answered: one entry of the result's `approvals`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ApprovalRecord {
    /// The request's id within the run.
    pub id: String,
    /// What was asked.
    pub request: ApprovalKind,
    /// Codex's reason, when it gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The answer.
    pub decision: Decision,
    /// How the answer came.
    pub channel: Channel,
    /// Who answered (a principal), absent for the fallbacks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answered_by: Option<String>,
    /// Why, in one sentence (always set when declined without a person).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Seconds the request waited.
    pub waited_ms: u64,
}

/// An answer a transport gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The decision.
    pub decision: Decision,
    /// How it came.
    pub channel: Channel,
    /// Who gave it.
    pub by: Option<String>,
    /// What the result should say of it (a dismissed dialog), if anything.
    pub note: Option<String>,
}
