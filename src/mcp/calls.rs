//! The calls that wait on or steer a run already admitted: a direct call's wait (with
//! its approval relays: elicitation, or the 2026-07-28 `input_required` round trip), the
//! retry of such a round, and `steer_codex_run` / `answer_codex_approval`. Split from
//! [`super`] so the handler reads as the dispatch it is.

use rmcp::RoleServer;
use rmcp::model::{CallToolRequestParams, CallToolResponse, CallToolResult};
use rmcp::service::RequestContext;

use super::{TwoBot, approvals, caller, elicit, input_required, interactive, progress, results};
use crate::run::RunPath;
use crate::runs::RunHandle;

impl TwoBot {
    /// A direct call waits for its run, relaying progress and approval requests; the
    /// client's cancellation stops the run, and so does the end of its HTTP session
    /// ([`super::session_runs`]); a dropped connection does not (the run finishes on its
    /// own). Approvals go to a person by elicitation on a legacy
    /// session, or (2026-07-28) by answering this call with `input_required`; `asked`
    /// is what earlier rounds of that already asked.
    pub(super) async fn direct(
        &self,
        handle: RunHandle,
        ctx: &RequestContext<RoleServer>,
        asked: Option<Vec<String>>,
    ) -> CallToolResponse {
        let caller = self.caller(ctx, RunPath::Direct);
        let reach = approvals::reach(approvals::facts(ctx), RunPath::Direct);
        let relay = ctx
            .meta
            .get_progress_token()
            .map(|token| tokio::spawn(progress::relay(handle.clone(), ctx.peer.clone(), token)));
        let by = caller.principal.label().to_owned();
        let _tracked = caller::session(ctx).map(|id| self.session_runs.track(id, &handle));
        let elicitations = async {
            if reach.elicitation {
                elicit::relay(&handle, &ctx.peer, &by).await;
            }
            std::future::pending::<()>().await
        };
        let round_trip = async {
            if !reach.input_required {
                return std::future::pending().await;
            }
            let asked = asked.unwrap_or_default();
            input_required::next_round(&handle, self.runs.kept(), &caller, asked).await
        };
        let ended = tokio::select! {
            ended = handle.outcome() => ended,
            () = ctx.ct.cancelled() => {
                handle.cancel();
                handle.outcome().await
            }
            () = elicitations => handle.outcome().await,
            (new, mut asked) = round_trip => {
                if let Some(relay) = relay {
                    relay.abort();
                }
                asked.extend(new.iter().map(|p| p.id.clone()));
                let state = input_required::State { run_id: handle.id().to_owned(), asked };
                return input_required::result(&state, &new).into();
            }
        };
        if let Some(relay) = relay {
            let _ = relay.await;
        }
        results::ended(&ended).into()
    }

    /// The retry of a call answered with `input_required`: apply the answers, then wait
    /// on the same run. The state is only a handle, looked up for this caller.
    pub(super) async fn resume(
        &self,
        state: &str,
        responses: Option<rmcp::model::InputResponses>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResponse {
        let Some(state) = input_required::State::decode(state) else {
            return results::error_text(
                "invalid requestState: it is not one 2Bot issued; call the tool again without it"
                    .to_owned(),
            )
            .into();
        };
        let caller = self.caller(&ctx, RunPath::Direct);
        let handle = match self.runs.kept().get(&state.run_id, &caller.owner) {
            Ok(handle) => handle,
            Err(e) => return results::error_text(e.to_string()).into(),
        };
        if let Some(responses) = responses {
            input_required::apply(
                handle.control(),
                &responses,
                &state.asked,
                caller.principal.label(),
            );
        }
        self.direct(handle, &ctx, Some(state.asked)).await
    }

    /// `steer_codex_run` and `answer_codex_approval`: owner-checked like `get_codex_run`,
    /// and like it forwarded to the instance that holds the run.
    pub(super) async fn control(
        &self,
        name: &str,
        params: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let caller = self.caller(&ctx, RunPath::Background);
        if name == interactive::STEER_RUN {
            let params_arguments = params.arguments.clone().unwrap_or_default();
            let args: interactive::SteerArgs = match interactive::parse(name, params.arguments) {
                Ok(a) => a,
                Err(e) => return results::error_text(e),
            };
            let raw = params_arguments;
            // Every owner the caller answers to: an anonymous caller's task belongs to
            // its session, and the card on that session steers it.
            match self
                .find_owned(&ctx, &args.run_id, RunPath::Background)
                .await
            {
                Ok((super::follow::Found::Live(handle), _)) => {
                    super::forward::steer_live(&self.runs, &handle, args.message).await
                }
                Ok((super::follow::Found::Elsewhere(stored), owner)) => {
                    if let Err(e) =
                        interactive::steer_message(&args.message, self.runs.max_prompt_bytes())
                    {
                        return results::error_text(e);
                    }
                    let call = (crate::peer::Action::Steer, args.run_id.as_str(), owner, raw);
                    let wait = std::time::Duration::from_secs(10);
                    self.forward(&stored, call, wait).await
                }
                Ok((super::follow::Found::Stored(stored), _)) => results::error_text(format!(
                    "refused: run {} is not running (status {})",
                    args.run_id,
                    stored.state.as_str()
                )),
                Err(e) => results::error_text(e),
            }
        } else {
            let raw = params.arguments.clone().unwrap_or_default();
            let args: interactive::AnswerArgs = match interactive::parse(name, params.arguments) {
                Ok(a) => a,
                Err(e) => return results::error_text(e),
            };
            let by = caller.principal.label();
            // Behind a balancer the card's click lands on any instance: the approval
            // (and its token) waits where the run is, so it is answered there.
            match self
                .find_owned(&ctx, &args.run_id, RunPath::Background)
                .await
            {
                Ok((super::follow::Found::Live(handle), _)) => {
                    super::forward::answer_live(&handle, &args, by)
                }
                Ok((super::follow::Found::Elsewhere(stored), owner)) => {
                    let call = (
                        crate::peer::Action::Answer,
                        args.run_id.as_str(),
                        owner,
                        raw,
                    );
                    let wait = std::time::Duration::from_secs(10);
                    self.forward_by(&stored, call, Some(by.to_owned()), wait)
                        .await
                }
                Ok((super::follow::Found::Stored(stored), _)) => results::error_text(format!(
                    "refused: run {} is not running (status {})",
                    args.run_id,
                    stored.state.as_str()
                )),
                Err(e) => results::error_text(e),
            }
        }
    }
}
