//! `get_codex_run` and `cancel_codex_run`, and where every follow-up finds its run: in
//! memory while this process holds it, else in the state store (a finished run after a
//! restart, or a run whose process died: `lost`). Owner-checked the same way on both
//! paths: anyone else is told the run does not exist.

use std::time::Duration;

use rmcp::RoleServer;
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::RequestContext;
use tokio_util::sync::CancellationToken;

use super::tools::{CANCEL_RUN, CancelRunArgs, GET_RUN, GetRunArgs, MAX_WAIT_SEC};
use super::{TwoBot, arguments, input_required, results};
use crate::audit::RunPath;
use crate::runs::{RunHandle, Stored};

/// A run a follow-up names, where it was found.
pub(super) enum Found {
    /// Held by this process: live answers.
    Live(RunHandle),
    /// Only in the store: what its row says.
    Stored(Box<Stored>),
}

impl TwoBot {
    /// The run `id` if the caller owns it: memory first, then the store.
    pub(super) async fn find(
        &self,
        ctx: &RequestContext<RoleServer>,
        id: &str,
        path: RunPath,
    ) -> Result<Found, String> {
        let principal = self.caller(ctx, path).principal;
        let owners = super::caller::owners(ctx, &principal, path);
        let mut missing = String::new();
        for owner in &owners {
            match self.runs.kept().get(id, owner) {
                Ok(handle) => return Ok(Found::Live(handle)),
                Err(e) => missing = e.to_string(),
            }
        }
        for owner in &owners {
            if let Some(stored) = self.runs.persist().stored(id, owner).await {
                return Ok(Found::Stored(Box::new(stored)));
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
        let args = params.arguments;
        if name == GET_RUN {
            let args: GetRunArgs = match arguments::parse(GET_RUN, args) {
                Ok(a) => a,
                Err(e) => return results::error_text(e),
            };
            let Some(wait) = u64::try_from(args.wait_sec)
                .ok()
                .filter(|w| *w <= MAX_WAIT_SEC.unsigned_abs())
            else {
                return results::error_text(format!(
                    "refused: wait_sec = {} must be between 0 and {MAX_WAIT_SEC}",
                    args.wait_sec
                ));
            };
            match self.find(&ctx, &args.run_id, RunPath::Background).await {
                Ok(Found::Live(handle)) => {
                    // A new approval request answers at once: a person is waited for.
                    let seen: Vec<String> = handle
                        .control()
                        .pending()
                        .into_iter()
                        .map(|p| p.id)
                        .collect();
                    // A queued run answers as it starts: the card shows "running" then,
                    // not at the end of its poll.
                    let queued = handle.snapshot().queued;
                    tokio::select! {
                        _ = handle.outcome_within(Duration::from_secs(wait), &ctx.ct) => {}
                        _ = input_required::new_pending(handle.control(), &seen) => {}
                        () = handle.started(), if queued => {}
                    }
                    results::snapshot_of(&handle)
                }
                // Nothing here changes it: no waiting.
                Ok(Found::Stored(stored)) => results::snapshot(&stored.snapshot),
                Err(e) => results::error_text(e),
            }
        } else {
            let args: CancelRunArgs = match arguments::parse(CANCEL_RUN, args) {
                Ok(a) => a,
                Err(e) => return results::error_text(e),
            };
            match self.find(&ctx, &args.run_id, RunPath::Background).await {
                Ok(Found::Live(handle)) => {
                    handle.cancel();
                    handle
                        .outcome_within(Duration::from_secs(10), &CancellationToken::new())
                        .await;
                    results::snapshot_of(&handle)
                }
                Ok(Found::Stored(stored)) => results::not_cancelled(&stored),
                Err(e) => results::error_text(e),
            }
        }
    }
}
