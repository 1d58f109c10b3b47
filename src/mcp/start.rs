//! `run_codex_prompt` and `ask_codex`, from a call's arguments to a started run: parse
//! them, pick the path (direct, task, background), let another instance answer a resume
//! of a thread it holds, admit and start. Apart from [`super`] so the handler reads as
//! the dispatch it is; what happens once the run is started is `calls.rs`.

use rmcp::RoleServer;
use rmcp::model::{CallToolRequestParams, CallToolResponse};
use rmcp::service::RequestContext;
use tracing::Instrument;

use super::{TOOL_NAME, TwoBot, interactive, results, tasks};
use crate::run::RunPath;
use crate::run::RunRequest;

impl TwoBot {
    /// `run_codex_prompt` and `ask_codex`: parse, pick the path (direct, task,
    /// background), admit, run. A retry that carries a `requestState` goes on waiting
    /// for the run it names instead ([`input_required`]).
    pub(super) async fn run(
        &self,
        params: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResponse {
        if let Some(state) = params.request_state {
            return self.resume(&state, params.input_responses, ctx).await;
        }
        let tool = params.name.to_string();
        let mut args = params.arguments.unwrap_or_default();
        let background = match args.remove("background") {
            None | Some(serde_json::Value::Bool(false)) => false,
            Some(serde_json::Value::Bool(true)) if tool == TOOL_NAME => true,
            Some(other) => {
                return results::error_text(format!(
                    "invalid arguments for {tool}: background must be true or false, not {other}"
                ))
                .into();
            }
        };
        let forwardable = args.clone();
        let parsed = if tool == interactive::ASK_TOOL {
            interactive::parse::<interactive::AskArgs>(&tool, Some(args)).map(RunRequest::from)
        } else {
            interactive::parse::<RunRequest>(&tool, Some(args))
        };
        let request = match parsed {
            Ok(r) => r,
            Err(e) => {
                crate::metrics::metrics().refused(crate::metrics::RefusalReason::invalid_arguments);
                return results::error_text(e).into();
            }
        };
        // SEP-2663: a call whose request declares the tasks extension (per-request client
        // capabilities in `_meta`) runs as a task, so the client neither holds a request
        // open for minutes nor loses the run with it. Declaring tasks at `initialize` is
        // not enough: clients do that (MCP Inspector 2.x) and still call plainly.
        let path = if background {
            RunPath::Background
        } else if self.runs.kept().config().tasks
            && ctx
                .meta
                .client_capabilities()
                .is_some_and(|caps| caps.supports_tasks())
        {
            RunPath::Task
        } else {
            RunPath::Direct
        };
        let caller = self.caller(&ctx, path);
        if let Some(answer) = self
            .resume_elsewhere(&request, forwardable, &tool, &caller)
            .await
        {
            return answer;
        }
        // rmcp serves the call on a session task, outside the HTTP request's span: this
        // span (parent of the run's) picks the caller's trace up again.
        let span = tracing::info_span!(
            "tools/call",
            tool = tool.as_str(),
            path = path.as_str(),
            request_id = caller.request_id.as_deref().unwrap_or(""),
            principal = %caller.principal.label(),
        );
        if let Some(parts) = ctx.extensions.get::<http::request::Parts>() {
            crate::telemetry::continue_trace(&span, &parts.headers);
        }
        async {
            let handle = match self.runs.admit(&request, caller).await {
                Ok(admitted) => admitted.start(&self.shutdown),
                // A refusal never becomes a task or a background run.
                Err(refusal) => return results::refusal(&refusal).into(),
            };
            match path {
                RunPath::Task => tasks::created(self.runs.kept(), &handle),
                RunPath::Background => results::snapshot_of(&handle).into(),
                RunPath::Direct => self.direct(handle, &ctx, None).await,
            }
        }
        .instrument(span)
        .await
    }
}
