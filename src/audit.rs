//! The audit log: one JSON line per Codex run and per refusal, for the operator.
//!
//! Logs (`tracing`) are for debugging and may be sampled, filtered or shipped
//! elsewhere; the audit log is the record an operator keeps of who ran what where.
//! So it is a plain file the operator names (`TWOBOT_AUDIT_LOG`), created `0600`,
//! appended to with one write per record by a thread of its own ([`writer`]: a stalled
//! disk holds up no call; a crash loses only the records still queued, a stop none),
//! and reopened on `SIGHUP` so logrotate can move it away.
//!
//! Callers must not be able to choose its size ([`file`]): every string in a line is
//! cut to [`CUT_AT`] bytes, saying so ([`cut`]); refusals of callers without a valid
//! credential are counted per address and written once per interval
//! ([`unauthenticated`]); and the file is rotated at `TWOBOT_AUDIT_MAX_BYTES`, keeping
//! `TWOBOT_AUDIT_KEEP` old files. It never holds a prompt
//! unless `TWOBOT_AUDIT_PROMPTS=true`: by default a prompt is its SHA-256 and length,
//! enough to match a record against a prompt one already has, not to read it.
//!
//! Writing never fails a run: a write error is logged loudly (and counted) and the
//! run goes on.

mod cut;
mod file;
mod unauthenticated;
mod writer;

pub use self::cut::{CUT_AT, cut_strings};
pub use self::file::{AuditLimits, AuditLog, DRAIN_ON_DROP};
pub use self::unauthenticated::{MAX_ADDRESSES, MAX_DETAILED, UnauthenticatedRecord};
pub use self::writer::OpenError;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::run::{CallTransport, RunPath};

/// How a run ended, or why it never started. The label set is closed (metrics use it too).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Codex completed its turn.
    Ok,
    /// Codex ran and failed (exit status, failed turn, could not start).
    Failed,
    /// The run hit `timeout_sec`.
    TimedOut,
    /// The caller (or shutdown) stopped it.
    Cancelled,
    /// Policy, ownership or authorization said no; nothing was spawned.
    Refused,
    /// No run slot, queue place or quota left; nothing was spawned.
    Busy,
}

impl Outcome {
    /// The label value, as in the JSON record.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Failed => "failed",
            Self::TimedOut => "timed_out",
            Self::Cancelled => "cancelled",
            Self::Refused => "refused",
            Self::Busy => "busy",
        }
    }
}

/// A prompt as the audit log keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PromptDigest {
    /// Hex SHA-256 of the prompt's UTF-8 bytes.
    pub sha256: String,
    /// Its length in bytes.
    pub len: usize,
    /// The prompt itself, only with `TWOBOT_AUDIT_PROMPTS=true`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

impl PromptDigest {
    /// Digest `prompt`; keep its text only when `keep_text`.
    pub fn of(prompt: &str, keep_text: bool) -> Self {
        let digest = Sha256::digest(prompt.as_bytes());
        let sha256 = digest.iter().fold(String::with_capacity(64), |mut s, b| {
            use std::fmt::Write as _;
            let _ = write!(s, "{b:02x}");
            s
        });
        Self {
            sha256,
            len: prompt.len(),
            text: keep_text.then(|| prompt.to_owned()),
        }
    }
}

/// One line of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditRecord {
    /// RFC 3339 UTC time the run ended or was refused.
    pub time: String,
    /// The HTTP request id (`x-request-id`), if any.
    pub request_id: Option<String>,
    /// Who asked (the principal's ownership key: `local`, `token:NAME`, `jwt:ISS|SUB`…).
    pub principal: String,
    /// `stdio` or `http`.
    pub transport: CallTransport,
    /// `direct`, `task` or `background`.
    pub path: RunPath,
    /// The working directory Codex ran in (as checked), or the caller's input when refused.
    pub cwd: Option<String>,
    /// The sandbox Codex ran with, or the one asked for when refused.
    pub sandbox: Option<String>,
    /// The model asked for.
    pub model: Option<String>,
    /// Codex's thread id (new or resumed).
    pub thread_id: Option<String>,
    /// How it ended.
    pub outcome: Outcome,
    /// Why it failed or was refused; `None` for a clean run.
    pub reason: Option<String>,
    /// Codex's exit status, when it ran and exited.
    pub exit_code: Option<i32>,
    /// Wall time from admission to the end, in milliseconds.
    pub duration_ms: u64,
    /// Input tokens Codex reported.
    pub input_tokens: u64,
    /// Of those, cached.
    pub cached_input_tokens: u64,
    /// Output tokens Codex reported.
    pub output_tokens: u64,
    /// Commands Codex ran.
    pub commands: usize,
    /// Files Codex changed.
    pub files_changed: usize,
    /// The prompt: digest and length (and text only when the operator asked for it).
    pub prompt: PromptDigest,
}

/// One line of the audit log about the built-in authorization server (`"kind": "oauth"`;
/// run records have no `kind`): who signed in or failed to, which client was granted
/// which scopes, replays, revocations. Never a password, code or token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OAuthRecord {
    /// RFC 3339 UTC time.
    pub time: String,
    /// Always `oauth`.
    pub kind: &'static str,
    /// What happened (the `event` label of `twobot_oauth_events_total`).
    pub event: &'static str,
    /// The client concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The caller's address (sign-ins, registrations).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// The grant concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grant_id: Option<String>,
    /// The scopes granted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

/// One line per answered approval request of a Codex run (`"kind": "approval"`): who
/// answered what, how, and how it was decided. Strings are cut like every other line's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApprovalAuditRecord {
    /// RFC 3339 UTC time of the decision.
    pub time: String,
    /// Always `approval`.
    pub kind: &'static str,
    /// The HTTP request id of the call that started the run, if any.
    pub request_id: Option<String>,
    /// Whose run it is (the principal's ownership key).
    pub principal: String,
    /// The run.
    pub run_id: String,
    /// The request's id within the run (`a1`, `a2`, …).
    pub approval_id: String,
    /// What was asked: the request as the result shows it (command and cwd, files and
    /// diff, or the permissions).
    pub request: crate::run::control::ApprovalKind,
    /// `accept`, `decline` or `cancel`.
    pub decision: &'static str,
    /// `elicitation`, `input_required`, `card`, `timeout`, `unreachable` or `run_ended`.
    pub channel: &'static str,
    /// Who answered (a principal's label), absent for the fallbacks.
    pub answered_by: Option<String>,
    /// Why, when declined without a person (or a dismissed dialog).
    pub note: Option<String>,
    /// Milliseconds the request waited.
    pub waited_ms: u64,
}

/// RFC 3339 UTC now, as the audit record's `time`.
pub fn now_rfc3339() -> String {
    rmcp::task_manager::current_timestamp()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prompt_is_kept_as_its_digest_and_length_only_by_default() {
        let p = PromptDigest::of("hello", false);
        assert_eq!(
            p.sha256,
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert_eq!(p.len, 5);
        let json = serde_json::to_string(&p).unwrap_or_default();
        assert!(!json.contains("hello"), "{json}");
        assert_eq!(
            PromptDigest::of("hello", true).text.as_deref(),
            Some("hello")
        );
    }
}
