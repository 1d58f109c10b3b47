//! `TwoBot`: the MCP server handler. Protocol mapping only: it turns MCP requests into
//! calls on the run lifecycle ([`crate::runs`]) and answers through [`results`]; it
//! knows nothing of HTTP beyond what a transport attaches to a request ([`caller`]).
//!
//! - `start`: `run_codex_prompt` and `ask_codex`, from arguments to a started run;
//!   `calls`: waiting on it (a direct call), steering it, answering its approvals.
//! - [`tools`]: what `tools/list` shows (definitions and schemas).
//! - [`results`]: the one mapping from a refusal, an ended run or a snapshot to a result.
//! - `follow`: `get_codex_run`, `cancel_codex_run`, and where a follow-up finds its run
//!   (memory, else the state store).
//! - [`tasks`]: MCP tasks. [`progress`]: progress notifications for direct calls.
//! - [`caller`]: who is calling.
//! - [`apps`]: the MCP Apps run card (`resources/list`, `resources/read`).

pub mod approvals;
pub mod apps;
pub mod arguments;
pub mod caller;
mod calls;
pub mod elicit;
pub(crate) mod follow;
pub mod forward;
pub mod input_required;
pub mod interactive;
pub mod progress;
pub mod results;
pub mod schema;
pub mod session_runs;
mod start;
pub mod tasks;
pub mod tools;

use std::sync::Arc;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CancelTaskParams, CustomRequest, CustomResult,
    ErrorCode, GetTaskParams, GetTaskResult, Implementation, ListResourcesResult, ListToolsResult,
    PaginatedRequestParams, ReadResourceRequestParams, ReadResourceResponse, ServerCapabilities,
    ServerConfig, Tool, UpdateTaskParams,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler};
use tokio_util::sync::CancellationToken;

use self::follow::Found;
pub use self::progress::KEEPALIVE;
pub use self::tasks::TASK_POLL_INTERVAL_MS;
pub use self::tools::{CANCEL_RUN, GET_RUN, MAX_WAIT_SEC, TOOL_NAME};
use crate::run::Principal;
use crate::run::{CallTransport, RunPath};
use crate::runs::Runs;

/// The server's name, fixed by the product.
pub const SERVER_NAME: &str = "2Bot";

/// The MCP server handler; one per session, all sharing the same [`Runs`].
#[derive(Clone)]
pub struct TwoBot {
    runs: Runs,
    /// Who calls when the transport says nothing (stdio: the local user).
    default_principal: Principal,
    transport: CallTransport,
    /// Cancelled at shutdown: every run in flight stops.
    shutdown: CancellationToken,
    tools_listed: Arc<Vec<Tool>>,
    /// Direct calls' runs by HTTP session, stopped when the session ends.
    session_runs: session_runs::SessionRuns,
}

impl TwoBot {
    /// A handler over `runs` for callers on `transport`; `default_timeout_sec` is what
    /// the schema advertises for `timeout_sec`.
    pub fn new(
        runs: Runs,
        transport: CallTransport,
        default_principal: Principal,
        default_timeout_sec: u64,
        shutdown: CancellationToken,
    ) -> Self {
        let kept = runs.kept().config();
        let interactive = runs.runner_config().backend == crate::runner::Backend::AppServer;
        let followers = tools::followers(kept.background, kept.tasks, interactive);
        let ask = runs.interaction().ask_tool;
        Self {
            tools_listed: Arc::new(tools::listed(default_timeout_sec, followers, ask)),
            runs,
            default_principal,
            transport,
            shutdown,
            session_runs: session_runs::SessionRuns::default(),
        }
    }

    /// Record direct calls' runs in `runs`, whose session manager ends them with their
    /// session.
    #[must_use]
    pub fn with_session_runs(mut self, runs: session_runs::SessionRuns) -> Self {
        self.session_runs = runs;
        self
    }

    /// What `tools/list` answers: fixed for the life of the process.
    pub fn tools_list(&self) -> ListToolsResult {
        ListToolsResult::with_all_items((*self.tools_listed).clone())
    }

    fn caller(&self, ctx: &RequestContext<RoleServer>, path: RunPath) -> crate::runs::Caller {
        let mut caller = caller::of(ctx, &self.default_principal, self.transport, path);
        caller.approvals = approvals::reach(approvals::facts(ctx), path)
            .control(self.runs.interaction().approval_timeout);
        caller
    }
}

impl ServerHandler for TwoBot {
    fn get_info(&self) -> ServerConfig {
        let mut capabilities = if self.runs.kept().config().tasks {
            ServerCapabilities::builder()
                .enable_tools()
                .enable_resources()
                .enable_tasks()
                .build()
        } else {
            ServerCapabilities::builder()
                .enable_tools()
                .enable_resources()
                .build()
        };
        capabilities
            .extensions
            .get_or_insert_with(Default::default)
            .insert(apps::EXTENSION_ID.to_owned(), Default::default());
        ServerConfig::new(capabilities)
            .with_server_info(
                Implementation::new(SERVER_NAME, env!("CARGO_PKG_VERSION"))
                    .with_title("2Bot")
                    .with_description("Runs the local OpenAI Codex CLI through one controlled tool"),
            )
            .with_instructions(
                "2Bot runs the local Codex CLI. Call run_codex_prompt with a prompt; keep the default read-only \
                 sandbox unless the task must change files (then set sandbox=workspace-write and allow_edits=true).",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(self.tools_list())
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        Ok(ListResourcesResult::with_all_items(apps::resources()))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        apps::read(&request.uri)
            .map(Into::into)
            .map_err(|e| ErrorData::resource_not_found(e.to_string(), None))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.tools_listed.iter().find(|t| t.name == name).cloned()
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let name = request.name.to_string();
        if self.get_tool(&name).is_none() {
            return Err(ErrorData::invalid_params(
                format!("unknown tool: {name}"),
                None,
            ));
        }
        if name == TOOL_NAME || name == interactive::ASK_TOOL {
            Ok(self.run(request, context).await)
        } else if name == interactive::STEER_RUN || name == interactive::ANSWER_APPROVAL {
            Ok(self.control(&name, request, context).await.into())
        } else {
            Ok(self.follow(&name, request, context).await.into())
        }
    }

    async fn get_task(
        &self,
        request: GetTaskParams,
        context: RequestContext<RoleServer>,
    ) -> Result<GetTaskResult, ErrorData> {
        let (found, owner) = self
            .find_owned(&context, &request.task_id, RunPath::Task)
            .await
            .map_err(|e| ErrorData::invalid_params(e.to_string(), None))?;
        Ok(GetTaskResult::new(match found {
            Found::Live(handle) => tasks::task_of(self.runs.kept(), &handle),
            Found::Elsewhere(stored) => self.task_elsewhere(&stored, owner).await,
            Found::Stored(stored) => tasks::stored_task_of(self.runs.kept(), &stored),
        }))
    }

    /// `tasks/result` of MCP 2025-11-25, for clients of that generation: waits until the
    /// task ends, then returns the direct call's result. (SEP-2663, which rmcp 3.11
    /// speaks, folds the result into `tasks/get`.)
    async fn on_custom_request(
        &self,
        request: CustomRequest,
        context: RequestContext<RoleServer>,
    ) -> Result<CustomResult, ErrorData> {
        if request.method != "tasks/result" || !self.runs.kept().config().tasks {
            return Err(ErrorData::new(
                ErrorCode::METHOD_NOT_FOUND,
                format!("method not found: {}", request.method),
                None,
            ));
        }
        let Some(task_id) = request
            .params
            .as_ref()
            .and_then(|p| p.get("taskId"))
            .and_then(|t| t.as_str())
        else {
            return Err(ErrorData::invalid_params(
                "tasks/result needs params.taskId (a string)",
                None,
            ));
        };
        let task = match self.find(&context, task_id, RunPath::Task).await {
            Ok(Found::Live(handle)) => {
                handle.outcome_within(tasks::RESULT_WAIT, &context.ct).await;
                tasks::task_of(self.runs.kept(), &handle)
            }
            Ok(Found::Stored(stored) | Found::Elsewhere(stored)) => {
                tasks::stored_task_of(self.runs.kept(), &stored)
            }
            Err(e) => return Err(ErrorData::invalid_params(e.to_string(), None)),
        };
        tasks::result_of(task).map(CustomResult::new)
    }

    /// 2Bot never asks for input mid-task; responses are acknowledged and ignored, as
    /// SEP-2663 says of keys the server did not ask for.
    async fn update_task(
        &self,
        request: UpdateTaskParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.find(&context, &request.task_id, RunPath::Task)
            .await
            .map(drop)
            .map_err(|e| ErrorData::invalid_params(e.to_string(), None))
    }

    async fn cancel_task(
        &self,
        request: CancelTaskParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        match self
            .find_owned(&context, &request.task_id, RunPath::Task)
            .await
        {
            Ok((Found::Live(handle), _)) => {
                handle.cancel();
                Ok(())
            }
            Ok((Found::Elsewhere(stored), owner)) => {
                let mut args = serde_json::Map::new();
                args.insert("run_id".into(), request.task_id.clone().into());
                let call = (
                    crate::peer::Action::Cancel,
                    request.task_id.as_str(),
                    owner,
                    args,
                );
                let answer = self
                    .forward(&stored, call, std::time::Duration::from_secs(10))
                    .await;
                // The holder answers with the run's snapshot (a cancelled run's result
                // is an error result, yet the cancel worked), or refuses with text only.
                match answer.structured_content {
                    Some(_) => Ok(()),
                    None => Err(ErrorData::invalid_params(forward::text_of(&answer), None)),
                }
            }
            Ok((Found::Stored(stored), _)) => Err(ErrorData::invalid_params(
                if stored.state.is_final() {
                    format!(
                        "task {} is already over: nothing to cancel",
                        request.task_id
                    )
                } else {
                    format!(
                        "task {} runs in another 2Bot process on this state store; cancel it there",
                        request.task_id
                    )
                },
                None,
            )),
            Err(e) => Err(ErrorData::invalid_params(e.to_string(), None)),
        }
    }
}
