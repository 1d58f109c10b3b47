//! `get_codex_run` and `cancel_codex_run`, and where every follow-up finds its run: in
//! memory while this process holds it; on the instance that holds it when another one
//! does (forwarded, [`super::forward`]); else in the state store (a finished run, after
//! a restart or from another instance, or a run whose process died: `lost`).
//! Owner-checked the same way on every path: anyone else is told the run does not exist.

use std::time::Duration;

use rmcp::RoleServer;
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::RequestContext;
use tokio_util::sync::CancellationToken;

use super::tools::{CANCEL_RUN, CancelRunArgs, GET_RUN, GetRunArgs, MAX_WAIT_SEC};
use super::{TwoBot, arguments, input_required, results};
use crate::peer::Action;
use crate::run::RunPath;
use crate::runs::{KeptError, RunHandle, Runs, Stored};

/// A run a follow-up names, where it was found.
pub(super) enum Found {
    /// Held by this process: live answers.
    Live(RunHandle),
    /// Only in the store: what its row says.
    Stored(Box<Stored>),
    /// Queued or running on another instance (which live answers come from); its row.
    Elsewhere(Box<Stored>),
}

/// The run `id` of `owner` as this process sees it: memory, then the store.
pub(super) async fn find(runs: &Runs, id: &str, owner: &str) -> Result<Found, KeptError> {
    match runs.kept().get(id, owner) {
        Ok(handle) => Ok(Found::Live(handle)),
        Err(missing) => match runs.persist().stored(id, owner).await {
            Some(stored)
                if !stored.state.is_final()
                    && runs.peers().is_some_and(|p| p.me() != stored.instance) =>
            {
                Ok(Found::Elsewhere(Box::new(stored)))
            }
            Some(stored) => Ok(Found::Stored(Box::new(stored))),
            None => Err(missing),
        },
    }
}

/// `get_codex_run` on a run held here: wait up to `wait` for its end, a new approval
/// request, or (queued) its start; then its snapshot.
pub(super) async fn get_live(
    handle: &RunHandle,
    wait: Duration,
    ct: &CancellationToken,
) -> CallToolResult {
    // A new approval request answers at once: a person is waited for.
    let seen: Vec<String> = handle
        .control()
        .pending()
        .into_iter()
        .map(|p| p.id)
        .collect();
    // A queued run answers as it starts: the card shows "running" then, not at the end
    // of its poll.
    let queued = handle.snapshot().queued;
    tokio::select! {
        _ = handle.outcome_within(wait, ct) => {}
        _ = input_required::new_pending(handle.control(), &seen) => {}
        () = handle.started(), if queued => {}
    }
    results::snapshot_of(handle)
}

/// `cancel_codex_run` on a run held here: cancel, wait briefly for its processes to go.
pub(super) async fn cancel_live(handle: &RunHandle) -> CallToolResult {
    handle.cancel();
    handle
        .outcome_within(Duration::from_secs(10), &CancellationToken::new())
        .await;
    results::snapshot_of(handle)
}

/// A `wait_sec` out of range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("refused: wait_sec = {0} must be between 0 and {MAX_WAIT_SEC}")]
pub(super) struct WaitOutOfRange(i64);

/// A `get_codex_run`'s `wait_sec`, if in range.
pub(super) fn wait_of(args: &GetRunArgs) -> Result<Duration, WaitOutOfRange> {
    u64::try_from(args.wait_sec)
        .ok()
        .filter(|w| *w <= MAX_WAIT_SEC.unsigned_abs())
        .map(Duration::from_secs)
        .ok_or(WaitOutOfRange(args.wait_sec))
}

impl TwoBot {
    /// The run `id` if the caller owns it: memory first, then the store.
    pub(super) async fn find(
        &self,
        ctx: &RequestContext<RoleServer>,
        id: &str,
        path: RunPath,
    ) -> Result<Found, KeptError> {
        self.find_owned(ctx, id, path).await.map(|(found, _)| found)
    }

    /// [`Self::find`], with the owner key the run is kept under (what a forwarded
    /// follow-up carries to the instance holding it).
    pub(super) async fn find_owned(
        &self,
        ctx: &RequestContext<RoleServer>,
        id: &str,
        path: RunPath,
    ) -> Result<(Found, String), KeptError> {
        let principal = self.caller(ctx, path).principal;
        let owners = super::caller::owners(ctx, &principal, path);
        let mut missing = KeptError::NotFound(id.to_owned());
        // A run has one owner; the caller may answer to several keys (an anonymous
        // caller's task belongs to its session).
        for owner in owners {
            match find(&self.runs, id, &owner).await {
                Ok(found) => return Ok((found, owner)),
                Err(e) => missing = e,
            }
        }
        Err(missing)
    }

    /// `get_codex_run` and `cancel_codex_run`.
    pub(super) async fn follow(
        &self,
        name: &str,
        params: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let raw = params.arguments.clone().unwrap_or_default();
        if name == GET_RUN {
            let args: GetRunArgs = match arguments::parse(GET_RUN, params.arguments) {
                Ok(a) => a,
                Err(e) => return results::error_text(e),
            };
            let wait = match wait_of(&args) {
                Ok(w) => w,
                Err(e) => return results::error_text(e),
            };
            match self
                .find_owned(&ctx, &args.run_id, RunPath::Background)
                .await
            {
                Ok((Found::Live(handle), _)) => get_live(&handle, wait, &ctx.ct).await,
                Ok((Found::Elsewhere(stored), owner)) => {
                    let call = (Action::Get, args.run_id.as_str(), owner, raw);
                    self.forward(&stored, call, wait).await
                }
                // Nothing here changes it: no waiting.
                Ok((Found::Stored(stored), _)) => results::snapshot(&stored.snapshot),
                Err(e) => results::error_text(e),
            }
        } else {
            let args: CancelRunArgs = match arguments::parse(CANCEL_RUN, params.arguments) {
                Ok(a) => a,
                Err(e) => return results::error_text(e),
            };
            match self
                .find_owned(&ctx, &args.run_id, RunPath::Background)
                .await
            {
                Ok((Found::Live(handle), _)) => cancel_live(&handle).await,
                Ok((Found::Elsewhere(stored), owner)) => {
                    let call = (Action::Cancel, args.run_id.as_str(), owner, raw);
                    self.forward(&stored, call, Duration::from_secs(10)).await
                }
                Ok((Found::Stored(stored), _)) => results::not_cancelled(&stored),
                Err(e) => results::error_text(e),
            }
        }
    }
}
