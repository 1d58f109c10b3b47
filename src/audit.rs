//! The audit log: one JSON line per Codex run and per refusal, for the operator.
//!
//! Logs (`tracing`) are for debugging and may be sampled, filtered or shipped
//! elsewhere; the audit log is the record an operator keeps of who ran what where.
//! So it is a plain file the operator names (`TWOBOT_AUDIT_LOG`), created `0600`,
//! appended to and flushed per record (a crash loses at most the line being written),
//! and reopened on `SIGHUP` so logrotate can move it away. It never holds a prompt
//! unless `TWOBOT_AUDIT_PROMPTS=true`: by default a prompt is its SHA-256 and length,
//! enough to match a record against a prompt one already has, not to read it.
//!
//! Writing never fails a run: a write error is logged loudly (and counted) and the
//! run goes on.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::Serialize;
use sha2::{Digest, Sha256};

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

/// Which way into a run the caller took.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum RunPath {
    /// A plain `tools/call` that waits for the result.
    Direct,
    /// An MCP task (SEP-2663).
    Task,
    /// `background=true`, followed with `get_codex_run`.
    Background,
}

impl RunPath {
    /// The label value, as in the JSON record.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Direct => "direct",
            Self::Task => "task",
            Self::Background => "background",
        }
    }
}

/// The transport a call came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    /// The local client on stdin/stdout.
    Stdio,
    /// MCP Streamable HTTP.
    Http,
}

impl Transport {
    /// The label value, as in the JSON record.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stdio => "stdio",
            Self::Http => "http",
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
    pub transport: Transport,
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

/// Where audit records go: the operator's file, reopened on demand.
#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    file: Mutex<File>,
    keep_prompts: bool,
}

/// The audit file could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("cannot open the audit log {path:?} (TWOBOT_AUDIT_LOG): {source}")]
pub struct OpenError {
    /// The file asked for.
    pub path: PathBuf,
    /// Why.
    #[source]
    pub source: std::io::Error,
}

fn open_append(path: &Path) -> Result<File, OpenError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        // Created private: records name principals, directories and models.
        .mode(0o600)
        .open(path)
        .map_err(|source| OpenError {
            path: path.to_owned(),
            source,
        })
}

impl AuditLog {
    /// Open (or create, `0600`) `path` for appending.
    pub fn open(path: &Path, keep_prompts: bool) -> Result<Self, OpenError> {
        Ok(Self {
            path: path.to_owned(),
            file: Mutex::new(open_append(path)?),
            keep_prompts,
        })
    }

    /// Whether records carry the prompt's text.
    pub fn keeps_prompts(&self) -> bool {
        self.keep_prompts
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reopen the file by name (after logrotate moved it). On failure the old file is
    /// kept, so records still land somewhere.
    pub fn reopen(&self) {
        match open_append(&self.path) {
            Ok(file) => {
                if let Ok(mut current) = self.file.lock() {
                    *current = file;
                }
                tracing::info!(path = %self.path.display(), "audit log reopened");
            }
            Err(e) => {
                tracing::error!(error = %e, "audit log not reopened; still writing to the old file")
            }
        }
    }

    /// Append `record` (an [`AuditRecord`] or an [`OAuthRecord`]) as one line and flush.
    /// Never fails the caller: a failure is logged.
    pub fn write(&self, record: &impl Serialize) -> bool {
        let mut line = match serde_json::to_vec(record) {
            Ok(line) => line,
            Err(e) => {
                tracing::error!(error = %e, "audit record did not serialize");
                return false;
            }
        };
        line.push(b'\n');
        let written = match self.file.lock() {
            // One write call per record: O_APPEND keeps lines whole even if another
            // process appends to the same file.
            Ok(mut file) => file.write_all(&line).and_then(|()| file.flush()),
            Err(_) => Err(std::io::Error::other("audit log lock poisoned")),
        };
        match written {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(
                    error = %e,
                    path = %self.path.display(),
                    "AUDIT RECORD LOST: the audit log could not be written"
                );
                false
            }
        }
    }
}

/// RFC 3339 UTC now, as the audit record's `time`.
pub fn now_rfc3339() -> String {
    rmcp::task_manager::current_timestamp()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn record(outcome: Outcome) -> AuditRecord {
        AuditRecord {
            time: now_rfc3339(),
            request_id: Some("r-1".into()),
            principal: "token:alice".into(),
            transport: Transport::Http,
            path: RunPath::Direct,
            cwd: Some("/srv/work".into()),
            sandbox: Some("read-only".into()),
            model: None,
            thread_id: None,
            outcome,
            reason: None,
            exit_code: Some(0),
            duration_ms: 12,
            input_tokens: 1,
            cached_input_tokens: 0,
            output_tokens: 2,
            commands: 3,
            files_changed: 0,
            prompt: PromptDigest::of("hello", false),
        }
    }

    #[test]
    fn a_prompt_is_kept_as_its_digest_and_length_only_by_default() {
        let p = PromptDigest::of("hello", false);
        assert_eq!(
            p.sha256,
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert_eq!(p.len, 5);
        let json = serde_json::to_string(&p).unwrap();
        assert!(!json.contains("hello"), "{json}");
        assert_eq!(
            PromptDigest::of("hello", true).text.as_deref(),
            Some("hello")
        );
    }

    #[test]
    fn records_are_appended_one_line_each_to_a_private_file_and_survive_a_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let log = AuditLog::open(&path, false).unwrap();
        assert!(log.write(&record(Outcome::Ok)));
        assert!(log.write(&record(Outcome::Busy)));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);

        // logrotate: move the file away, then SIGHUP → reopen by name.
        let rotated = dir.path().join("audit.jsonl.1");
        std::fs::rename(&path, &rotated).unwrap();
        assert!(log.write(&record(Outcome::Failed)));
        log.reopen();
        assert!(log.write(&record(Outcome::Refused)));

        let old = std::fs::read_to_string(&rotated).unwrap();
        let new = std::fs::read_to_string(&path).unwrap();
        assert_eq!(old.lines().count(), 3);
        assert_eq!(new.lines().count(), 1);
        let line: serde_json::Value = serde_json::from_str(new.trim()).unwrap();
        assert_eq!(line["outcome"], "refused");
        assert_eq!(line["transport"], "http");
        assert_eq!(line["path"], "direct");
        assert_eq!(line["prompt"]["len"], 5);
    }

    #[test]
    fn an_unopenable_path_is_a_clear_error() {
        let e = AuditLog::open(Path::new("/nonexistent-dir/audit.jsonl"), false).unwrap_err();
        assert!(e.to_string().contains("TWOBOT_AUDIT_LOG"), "{e}");
    }
}
