//! Follow-ups of a run another instance holds, both ways: [`TwoBot::forward`] sends one
//! there (`crate::peer`) and relays the holder's answer; [`answer`] is the holder's side,
//! called by the internal route (`http::internal`) once the signature checked out. The
//! owner key travels in the signed body, so the owner check happens where the run is,
//! with the same code as for the holder's own callers.

use std::time::Duration;

use rmcp::model::{CallToolResult, JsonObject};
use tokio_util::sync::CancellationToken;

use super::follow::{cancel_live, get_live, wait_of};
use super::tools::{GET_RUN, GetRunArgs};
use super::{TwoBot, arguments, interactive, results};
use crate::peer::{Action, Forwarded};
use crate::runs::{RunHandle, Runs, Stored};

/// A call to forward: what, on which run, for whom, with the caller's arguments.
pub(super) type Call<'a> = (Action, &'a str, String, JsonObject);

impl TwoBot {
    /// Send `call` to the instance holding `stored`'s run; its answer, or (that
    /// instance unreachable) the row's for a `get`, a clear refusal for the others.
    pub(super) async fn forward(
        &self,
        stored: &Stored,
        call: Call<'_>,
        wait: Duration,
    ) -> CallToolResult {
        let (action, run_id, owner, arguments) = call;
        let sent = match self.runs.peers() {
            Some(peers) => {
                let call = Forwarded { owner, arguments };
                peers
                    .forward(&stored.instance, action, run_id, &call, wait)
                    .await
            }
            None => return results::snapshot(&stored.snapshot),
        };
        match sent {
            Ok(answer) => serde_json::from_value(answer).unwrap_or_else(|e| {
                results::error_text(format!(
                    "the instance holding run {run_id} gave an unreadable answer: {e}"
                ))
            }),
            Err(e) => {
                tracing::warn!(error = %e, %run_id, action = action.as_str(), "a forwarded follow-up failed");
                match action {
                    // What the store knows; if the holder died, the run reads `lost` soon.
                    Action::Get => results::snapshot(&stored.snapshot),
                    Action::Cancel | Action::Steer => results::error_text(format!("refused: {e}")),
                }
            }
        }
    }
}

/// The first text of `result` (an error's message).
pub(super) fn text_of(result: &CallToolResult) -> String {
    result
        .content
        .iter()
        .find_map(|c| c.as_text().map(|t| t.text.clone()))
        .unwrap_or_default()
}

/// The holder's answer to a forwarded `call` on `run_id`.
pub async fn answer(runs: &Runs, action: Action, run_id: &str, call: Forwarded) -> CallToolResult {
    let handle = match runs.kept().get(run_id, &call.owner) {
        Ok(handle) => handle,
        // Not live here (it ended and was evicted, or this is a restarted instance): what
        // the store says. Never forwarded again, so two instances cannot loop.
        Err(missing) => {
            return match runs.persist().stored(run_id, &call.owner).await {
                Some(stored) => match action {
                    Action::Get => results::snapshot(&stored.snapshot),
                    Action::Cancel => results::not_cancelled(&stored),
                    Action::Steer => results::error_text(format!(
                        "refused: run {run_id} is not running (status {})",
                        stored.state.as_str()
                    )),
                },
                None => results::error_text(missing.to_string()),
            };
        }
    };
    match action {
        Action::Get => {
            let args: GetRunArgs = match arguments::parse(GET_RUN, Some(call.arguments)) {
                Ok(a) => a,
                Err(e) => return results::error_text(e),
            };
            match wait_of(&args) {
                Ok(wait) => get_live(&handle, wait, &CancellationToken::new()).await,
                Err(e) => results::error_text(e),
            }
        }
        Action::Cancel => cancel_live(&handle).await,
        Action::Steer => {
            let args: interactive::SteerArgs =
                match interactive::parse(interactive::STEER_RUN, Some(call.arguments)) {
                    Ok(a) => a,
                    Err(e) => return results::error_text(e),
                };
            steer_live(runs, &handle, args.message).await
        }
    }
}

/// `steer_codex_run` on a run held here.
pub(super) async fn steer_live(runs: &Runs, handle: &RunHandle, message: String) -> CallToolResult {
    if let Err(e) = interactive::steer_message(&message, runs.max_prompt_bytes()) {
        return results::error_text(e);
    }
    match handle.control().steer(message).await {
        Ok(()) => results::snapshot_of(handle),
        Err(e) => results::error_text(format!("refused: {e}")),
    }
}
