//! Why an admitted run produced no Codex output ([`ToolError`]). Refusals at admission
//! are [`crate::runs::RunRefusal`]; `mcp::results` turns both into what the caller reads,
//! in one place. (A Codex run that fails is not an error here: it is a `RunOutput`
//! with `ok: false`, because its partial output matters.)

/// Why a tool call produced no Codex run.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
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
    /// A checked image could not be handed to Codex: it changed since the check, or the
    /// user Codex runs as may not read it, or it is no image at all (`/proc`, a FIFO).
    /// Names the checked path only.
    #[error("refused: {param} = {path:?}: {reason}; Codex was not started")]
    Image {
        /// `images[i]`.
        param: String,
        /// The canonical path the policy allowed.
        path: String,
        /// Why, without naming any other path.
        reason: String,
    },
    /// The output schema could not be written for Codex.
    #[error("cannot write the output schema for Codex: {0}; Codex was not started")]
    OutputSchemaFile(String),
    /// The run asks for something the configured backend cannot do (a profile on the
    /// app-server backend, whose `codex app-server` refuses `--profile`).
    #[error("refused: {param}: {reason}; Codex was not started")]
    Unsupported {
        /// The parameter that cannot be honoured.
        param: String,
        /// Why, and what to do instead.
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
