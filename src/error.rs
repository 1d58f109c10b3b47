//! The job stack's error type. Everything that stops a call before Codex produced a
//! result is a [`ToolError`]; `mcp` turns it into a tool error the caller can read,
//! in one place. (A Codex run that fails is not an error here: it is a `RunOutput`
//! with `ok: false`, because its partial output matters.)

use crate::policy::Refusal;

/// Why a tool call produced no Codex run.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    /// The policy refused the request; nothing was spawned.
    #[error("refused by policy: {0}")]
    Refused(#[from] Refusal),
    /// Every run slot and every queue place is taken.
    #[error(
        "busy: {running} Codex runs are in progress and {queued} more are queued, the most this server allows \
         (TWOBOT_MAX_CONCURRENT_RUNS, TWOBOT_MAX_QUEUED_RUNS); try again later"
    )]
    Busy {
        /// Runs allowed at once.
        running: usize,
        /// Calls allowed to wait.
        queued: usize,
    },
    /// The call was cancelled while it waited for a run slot; nothing was spawned.
    #[error("cancelled while waiting for a free run slot; Codex was not started")]
    CancelledInQueue,
    /// A checked directory changed between the policy check and the spawn (swapped for
    /// a symlink, removed): the run would not happen where the policy allowed it.
    /// The message names the checked path and the roots only, never what a name points to now.
    #[error(
        "refused: {param} = {path:?} changed after it was checked: {reason} (allowed roots: {roots}); Codex was not started"
    )]
    PathChanged {
        /// `cwd` or `add_dirs[i]`.
        param: String,
        /// The canonical path the policy allowed (inside the roots).
        path: String,
        /// The allowed roots.
        roots: String,
        /// What changed, without naming any path.
        reason: String,
    },
    /// The Codex executable could not be started.
    #[error("cannot start Codex ({program}): {source}; check CODEX_BIN")]
    Spawn {
        /// What we tried to run.
        program: String,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
}
