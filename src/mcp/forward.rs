//! Follow-ups of a run another instance holds (the card's approval answers among them),
//! and resumes of a thread it holds, both ways: [`TwoBot::forward`] and
//! [`TwoBot::forward_run`] send one there (`crate::peer`) and relay the holder's answer;
//! [`answer`] is the holder's side, called by the internal route (`http::internal`) once
//! the signature checked out. The owner key travels in the signed body, so the owner
//! check happens where the run is, with the same code as for the holder's own callers
//! (and an approval's token is checked there too: only the holder knows it).

use std::time::Duration;

use rmcp::model::{CallToolResponse, CallToolResult, CreateTaskResult, DetailedTask, JsonObject};
use tokio_util::sync::CancellationToken;

use super::follow::{cancel_live, get_live, wait_of};
use super::tools::{GET_RUN, GetRunArgs};
use super::{TwoBot, arguments, interactive, results, tasks};
use crate::peer::{Action, Forwarded, ForwardedCaller};
use crate::run::control::ControlConfig;
use crate::run::{CallTransport, RunPath};
use crate::run::{Principal, QuotaKey, RunRequest};
use crate::runs::{Caller, RunHandle, RunRefusal, Runs, Stored};

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
        self.forward_by(stored, call, None, wait).await
    }

    /// [`Self::forward`], naming `by` who acts (an approval's answer records its
    /// answerer).
    pub(super) async fn forward_by(
        &self,
        stored: &Stored,
        call: Call<'_>,
        by: Option<String>,
        wait: Duration,
    ) -> CallToolResult {
        let (action, run_id, owner, arguments) = call;
        let sent = match self.runs.peers() {
            Some(peers) => {
                let call = Forwarded {
                    owner,
                    arguments,
                    caller: None,
                    by,
                };
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
                if action.changes_the_run() {
                    results::error_text(format!("refused: {e}"))
                } else {
                    // What the store knows; if the holder died, the run reads `lost` soon.
                    results::snapshot(&stored.snapshot)
                }
            }
        }
    }
    /// Run `call` (a resume of a thread `instance` holds) there, for `caller`; the
    /// holder's answer: a background run's first snapshot, or a direct call's result
    /// when the run ends (no progress is relayed on the way).
    pub(super) async fn forward_run(
        &self,
        instance: &str,
        caller: ForwardedCaller,
        call: (String, JsonObject),
        wait: Duration,
    ) -> CallToolResult {
        let Some(peers) = self.runs.peers() else {
            return results::error_text(format!("refused: thread held by instance {instance}"));
        };
        let (owner, arguments) = call;
        let thread = arguments
            .get("thread_id")
            .and_then(|t| t.as_str())
            .unwrap_or_default()
            .to_owned();
        let call = Forwarded {
            owner,
            arguments,
            caller: Some(caller),
            by: None,
        };
        match peers
            .forward(instance, Action::Run, &thread, &call, wait)
            .await
        {
            Ok(answer) => serde_json::from_value(answer).unwrap_or_else(|e| {
                results::error_text(format!(
                    "instance {instance} gave an unreadable answer: {e}"
                ))
            }),
            Err(e) => results::error_text(format!("refused: {e}")),
        }
    }
    /// A resume (or fork) of a thread whose Codex home is on another live instance, for
    /// a direct call, a background run or a task: forwarded there. `None`: it runs here.
    pub(super) async fn resume_elsewhere(
        &self,
        request: &RunRequest,
        arguments: JsonObject,
        tool: &str,
        caller: &Caller,
    ) -> Option<CallToolResponse> {
        let thread = request.thread_id.as_deref()?;
        // The local (stdio) user is local to its host: its rights do not travel.
        let local = caller.principal == Principal::Local;
        if local || self.runs.peers()?.secret().is_none() {
            return None;
        }
        let Err(RunRefusal::ThreadElsewhere { instance, .. }) = self.runs.resume_here(thread).await
        else {
            return None;
        };
        let (background, task) = (
            caller.path == RunPath::Background,
            caller.path == RunPath::Task,
        );
        let wait = if background || task {
            Duration::from_secs(10)
        } else {
            let timeout = request.timeout_sec.and_then(|t| u64::try_from(t).ok());
            Duration::from_secs(timeout.unwrap_or(7200).saturating_add(30))
        };
        tracing::info!(%thread, %instance, path = caller.path.as_str(), "a resume of a thread another instance holds: forwarded there");
        let who = ForwardedCaller {
            principal: caller.principal.clone(),
            quota: caller.quota.0.clone(),
            tool: tool.to_owned(),
            background,
            task,
        };
        let call = (caller.owner.clone(), arguments);
        let answer = self.forward_run(&instance, who, call, wait).await;
        if !task || answer.is_error == Some(true) {
            // A refusal never becomes a task.
            return Some(answer.into());
        }
        Some(self.task_held_elsewhere(&answer, &caller.owner).await)
    }

    /// `tasks/get` of a live task another instance holds: asked there, so the caller
    /// sees its progress and the approvals waiting for a person wherever the balancer
    /// sent the request; the row in the store when the holder cannot answer.
    pub(super) async fn task_elsewhere(&self, stored: &Stored, owner: String) -> DetailedTask {
        let run_id = stored.snapshot.run_id.clone();
        let mut args = JsonObject::new();
        args.insert("run_id".into(), run_id.clone().into());
        let answer = self
            .forward(
                stored,
                (Action::Task, &run_id, owner, args),
                Duration::from_secs(10),
            )
            .await;
        answer
            .structured_content
            .and_then(|v| serde_json::from_value::<DetailedTask>(v).ok())
            .unwrap_or_else(|| tasks::stored_task_of(self.runs.kept(), stored))
    }

    /// The task a forwarded task resume started on its holder (whose first snapshot is
    /// `answer`), as this instance's `tools/call` answers it. Its row is waited for (the
    /// holder writes it off the run's path), so the caller's first `tasks/get` or
    /// `tasks/cancel` here finds it and is forwarded to the holder.
    async fn task_held_elsewhere(&self, answer: &CallToolResult, owner: &str) -> CallToolResponse {
        let run_id = answer
            .structured_content
            .as_ref()
            .and_then(|s| s.get("run_id"))
            .and_then(|r| r.as_str())
            .unwrap_or_default()
            .to_owned();
        let deadline = tokio::time::Instant::now() + TASK_ROW_WAIT;
        loop {
            if let Some(stored) = self.runs.persist().stored(&run_id, owner).await {
                let task = tasks::stored_task_of(self.runs.kept(), &stored);
                return CallToolResponse::Task(CreateTaskResult::new(task.task));
            }
            if tokio::time::Instant::now() >= deadline {
                return results::error_text(format!(
                    "the instance holding this thread started task {run_id}, but its record did not reach the state store within {} s; follow it with tasks/get {run_id}",
                    TASK_ROW_WAIT.as_secs()
                ))
                .into();
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

/// How long a forwarded task's row may take to reach the store.
const TASK_ROW_WAIT: Duration = Duration::from_secs(5);

/// The first text of `result` (an error's message).
pub(super) fn text_of(result: &CallToolResult) -> String {
    result
        .content
        .iter()
        .find_map(|c| c.as_text().map(|t| t.text.clone()))
        .unwrap_or_default()
}

/// The holder's answer to a forwarded `call` on `run_id` (for [`Action::Run`], the
/// thread it resumes); a run started here stops when `stop` fires (shutdown).
pub async fn answer(
    runs: &Runs,
    action: Action,
    run_id: &str,
    call: Forwarded,
    stop: &CancellationToken,
) -> CallToolResult {
    if action == Action::Run {
        return run_here(runs, call, stop).await;
    }
    let handle = match runs.kept().get(run_id, &call.owner) {
        Ok(handle) => handle,
        // Not live here (it ended and was evicted, or this is a restarted instance): what
        // the store says. Never forwarded again, so two instances cannot loop.
        Err(missing) => {
            return match runs.persist().stored(run_id, &call.owner).await {
                Some(stored) => match action {
                    Action::Get => results::snapshot(&stored.snapshot),
                    Action::Task => task_result(&tasks::stored_task_of(runs.kept(), &stored)),
                    Action::Cancel => results::not_cancelled(&stored),
                    Action::Steer | Action::Answer | Action::Run => results::error_text(format!(
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
        Action::Task => task_result(&tasks::task_of(runs.kept(), &handle)),
        Action::Cancel | Action::Run => cancel_live(&handle).await,
        Action::Steer => {
            let args: interactive::SteerArgs =
                match interactive::parse(interactive::STEER_RUN, Some(call.arguments)) {
                    Ok(a) => a,
                    Err(e) => return results::error_text(e),
                };
            steer_live(runs, &handle, args.message).await
        }
        Action::Answer => {
            let args: interactive::AnswerArgs =
                match interactive::parse(interactive::ANSWER_APPROVAL, Some(call.arguments)) {
                    Ok(a) => a,
                    Err(e) => return results::error_text(e),
                };
            // The token is checked here, where the approval waits: only this instance
            // knows it. A call naming no answerer is recorded under the owner key.
            answer_live(&handle, &args, call.by.as_deref().unwrap_or(&call.owner))
        }
    }
}

/// A task as the holder shows it, carried in a result's structured content (what the
/// internal route answers with); [`TwoBot::task_elsewhere`] reads it back.
fn task_result(task: &DetailedTask) -> CallToolResult {
    match serde_json::to_value(task) {
        Ok(value) => CallToolResult::structured(value),
        Err(e) => results::error_text(format!("the task could not be written: {e}")),
    }
}

/// `answer_codex_approval` on a run held here, by `by` (a principal's label).
pub(super) fn answer_live(
    handle: &RunHandle,
    args: &interactive::AnswerArgs,
    by: &str,
) -> CallToolResult {
    match interactive::answer(handle.control(), args, by) {
        Ok(decision) => interactive::answered(&args.run_id, &args.approval_id, decision),
        Err(e) => results::error_text(e),
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

/// A resume forwarded here: admitted for the forwarded caller exactly as for a caller
/// of this instance (policy, thread owner, quotas), then run.
async fn run_here(runs: &Runs, call: Forwarded, stop: &CancellationToken) -> CallToolResult {
    let Some(who) = call.caller else {
        return results::error_text("a forwarded run names no caller".to_owned());
    };
    if who.principal == Principal::Local {
        return results::error_text(
            "refused: the local user of another host has no rights on this one".to_owned(),
        );
    }
    let parsed = if who.tool == interactive::ASK_TOOL {
        interactive::parse::<interactive::AskArgs>(&who.tool, Some(call.arguments))
            .map(RunRequest::from)
    } else {
        interactive::parse::<RunRequest>(&who.tool, Some(call.arguments))
    };
    let request = match parsed {
        Ok(r) => r,
        Err(e) => return results::error_text(e),
    };
    let path = if who.task {
        RunPath::Task
    } else if who.background {
        RunPath::Background
    } else {
        RunPath::Direct
    };
    let caller = Caller {
        // A task is kept under the key the caller's instance finds it by (an anonymous
        // caller's task belongs to its session there).
        owner: if who.task {
            call.owner
        } else {
            who.principal.owner_key()
        },
        principal: who.principal,
        quota: QuotaKey(who.quota),
        request_id: None,
        transport: CallTransport::Http,
        path,
        approvals: ControlConfig::default(),
    };
    let handle = match runs.admit(&request, caller).await {
        Ok(admitted) => admitted.start(stop),
        Err(refusal) => return results::refusal(&refusal),
    };
    match path {
        RunPath::Background | RunPath::Task => results::snapshot_of(&handle),
        RunPath::Direct => results::ended(&*handle.outcome().await),
    }
}
