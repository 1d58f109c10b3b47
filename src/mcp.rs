//! `TwoBot`: the MCP server. It declares the one tool, turns MCP calls into
//! [`ToolCall`]s for the job stack, and turns results and errors back into MCP.
//!
//! This is the only place where [`ToolError`] and [`RunOutput`] become MCP results,
//! and it knows little of HTTP: a transport may put a [`Principal`] into the request's
//! extensions and an `x-request-id` header on it, and that is all it reads.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, CancelTaskParams, ContentBlock,
    CreateTaskResult, CustomRequest, CustomResult, DetailedTask, ErrorCode, GetTaskParams,
    GetTaskResult, Implementation, JsonObject, ListToolsResult, PaginatedRequestParams,
    ProgressNotificationParam, ProgressToken, ServerCapabilities, ServerConfig, Task, TaskPayload,
    TaskStatus, Tool, ToolAnnotations, UpdateTaskParams,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, Peer, RoleServer, ServerHandler};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use tracing::Instrument;

use crate::error::ToolError;
use crate::job::{CallContext, Principal, QuotaKey, RunOutput, RunRequest, ToolCall};
use crate::registry::{
    RegistryConfig, RegistryError, RunCaller, RunRegistry, RunSnapshot, RunStatus, RunView,
};
use crate::tool::ToolService;
use schemars::JsonSchema;
use serde::Deserialize;

/// The server's name, fixed by the product.
pub const SERVER_NAME: &str = "2Bot";
/// The one tool.
pub const TOOL_NAME: &str = "run_codex_prompt";
/// Follows a background run (only with `TWOBOT_ENABLE_BACKGROUND_RUNS=true`).
pub const GET_RUN: &str = "get_codex_run";
/// Cancels a background run (only with `TWOBOT_ENABLE_BACKGROUND_RUNS=true`).
pub const CANCEL_RUN: &str = "cancel_codex_run";
/// Longest `wait_sec` of `get_codex_run`: under the ~60 s after which clients give up.
pub const MAX_WAIT_SEC: i64 = 55;
/// Longest silence on the progress channel before a keep-alive is sent.
pub const KEEPALIVE: Duration = Duration::from_secs(15);
/// How often a task-capable client is asked to poll `tasks/get`.
pub const TASK_POLL_INTERVAL_MS: u64 = 2_000;

/// The MCP server handler; one per session, all sharing the same job stack.
#[derive(Clone)]
pub struct TwoBot {
    tools: ToolService,
    /// Who calls when the transport says nothing (stdio: the local user).
    default_principal: Principal,
    /// Cancelled at shutdown: every run in flight stops.
    shutdown: CancellationToken,
    tools_listed: Arc<Vec<Tool>>,
    registry: Arc<RunRegistry>,
}

impl TwoBot {
    /// A handler over `tools`; `default_timeout_sec` is what the schema advertises for `timeout_sec`.
    pub fn new(
        tools: ToolService,
        default_principal: Principal,
        default_timeout_sec: u64,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            tools,
            default_principal,
            shutdown,
            tools_listed: Arc::new(vec![portable(tool_definition(default_timeout_sec))]),
            registry: Arc::new(RunRegistry::new(RegistryConfig::default())),
        }
    }

    /// Serve background runs from `registry` (listing their tools when it allows them).
    pub fn with_registry(mut self, registry: Arc<RunRegistry>, default_timeout_sec: u64) -> Self {
        if registry.config().background {
            self.tools_listed = Arc::new(
                [
                    background_tool_definition(default_timeout_sec),
                    get_run_definition(),
                    cancel_run_definition(),
                ]
                .map(portable)
                .to_vec(),
            );
        }
        self.registry = registry;
        self
    }

    fn who(&self, ctx: &RequestContext<RoleServer>) -> (Principal, Option<String>) {
        let parts = ctx.extensions.get::<http::request::Parts>();
        let principal = parts
            .and_then(|p| p.extensions.get::<Principal>())
            .cloned()
            .unwrap_or_else(|| self.default_principal.clone());
        let request_id = parts
            .and_then(|p| p.headers.get("x-request-id"))
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        (principal, request_id)
    }

    /// Whose share of the server a call uses: what the transport says (no-auth HTTP
    /// keys each client address apart), else the principal itself.
    fn quota_key(&self, ctx: &RequestContext<RoleServer>, principal: &Principal) -> QuotaKey {
        ctx.extensions
            .get::<http::request::Parts>()
            .and_then(|p| p.extensions.get::<QuotaKey>())
            .cloned()
            .unwrap_or_else(|| QuotaKey::of(principal))
    }

    /// Who owns a task this request starts or asks about. A task is the caller's; in
    /// no-auth mode every HTTP caller is the same anonymous principal, so there a task
    /// also belongs to the MCP session that started it.
    fn task_owner(&self, ctx: &RequestContext<RoleServer>) -> String {
        let (principal, _) = self.who(ctx);
        let session = ctx
            .extensions
            .get::<http::request::Parts>()
            .and_then(|p| p.headers.get("mcp-session-id"))
            .and_then(|v| v.to_str().ok());
        match (&principal, session) {
            (Principal::Anonymous, Some(session)) => format!("anonymous@{session}"),
            _ => principal.owner_key(),
        }
    }

    /// A task as `tasks/get` shows it.
    fn task_of(&self, view: &RunView) -> DetailedTask {
        let snapshot = &view.snapshot;
        let mut task = Task::new(
            snapshot.run_id.clone(),
            TaskStatus::Working,
            view.created_at.clone(),
            view.updated_at.clone(),
        )
        .with_ttl_ms(u64::try_from(self.registry.config().ttl.as_millis()).unwrap_or(u64::MAX))
        .with_poll_interval_ms(TASK_POLL_INTERVAL_MS);
        let payload = match (&snapshot.status, &snapshot.result, &snapshot.error) {
            (RunStatus::Working, _, _) => {
                task = task.with_status_message(
                    snapshot
                        .progress
                        .last()
                        .cloned()
                        .unwrap_or_else(|| "Codex is starting".to_owned()),
                );
                TaskPayload::Working
            }
            (RunStatus::Cancelled, _, _) => {
                task = task.with_status_message("cancelled: Codex and its children were killed");
                TaskPayload::Cancelled
            }
            // A finished call, failed or not, is a completed task whose result says so
            // (`isError`), exactly as the direct call would have answered.
            (_, Some(output), _) => {
                task = task.with_status_message(if output.ok {
                    "completed"
                } else {
                    "finished with an error"
                });
                TaskPayload::Completed {
                    result: as_object(&output_result(output.clone())),
                }
            }
            (_, None, error) => TaskPayload::Completed {
                result: as_object(&error_text(
                    error
                        .clone()
                        .unwrap_or_else(|| "The run ended without a result.".to_owned()),
                )),
            },
        };
        DetailedTask::new(task, payload)
    }

    /// Start `request` as an MCP task: answered at once with the task, or with the
    /// refusal a direct call would have got.
    async fn start_task(
        &self,
        request: RunRequest,
        ctx: &RequestContext<RoleServer>,
    ) -> CallToolResponse {
        let (principal, request_id) = self.who(ctx);
        let quota_key = self.quota_key(ctx, &principal);
        let owner = self.task_owner(ctx);
        let started = self
            .registry
            .start(
                self.tools.clone(),
                request,
                RunCaller {
                    principal,
                    quota_key,
                    owner: owner.clone(),
                    request_id,
                },
                &self.shutdown,
            )
            .await;
        match started {
            Ok(Ok(snapshot)) => match self.registry.view(&snapshot.run_id, &owner) {
                Ok(view) => CallToolResponse::Task(CreateTaskResult::new(self.task_of(&view).task)),
                Err(e) => error_text(e.to_string()).into(),
            },
            Ok(Err(reason)) => error_text(reason).into(),
            Err(e) => error_text(e.to_string()).into(),
        }
    }

    async fn follow(
        &self,
        name: &str,
        params: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let args = serde_json::Value::Object(params.arguments.unwrap_or_default());
        let (principal, _) = self.who(&ctx);
        let owner = principal.owner_key();
        let result = if name == GET_RUN {
            let args: GetRunArgs = match serde_json::from_value(args) {
                Ok(a) => a,
                Err(e) => return error_text(format!("invalid arguments for {GET_RUN}: {e}")),
            };
            let Some(wait) = u64::try_from(args.wait_sec)
                .ok()
                .filter(|w| *w <= MAX_WAIT_SEC as u64)
            else {
                return error_text(format!(
                    "refused: wait_sec = {} must be between 0 and {MAX_WAIT_SEC}",
                    args.wait_sec
                ));
            };
            self.registry
                .wait(&args.run_id, &owner, Duration::from_secs(wait), &ctx.ct)
                .await
        } else {
            let args: CancelRunArgs = match serde_json::from_value(args) {
                Ok(a) => a,
                Err(e) => return error_text(format!("invalid arguments for {CANCEL_RUN}: {e}")),
            };
            self.registry.cancel(&args.run_id, &owner).await
        };
        match result {
            Ok(snapshot) => snapshot_result(&snapshot),
            Err(e) => error_text(e.to_string()),
        }
    }

    async fn run(
        &self,
        params: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResponse {
        let mut args = params.arguments.unwrap_or_default();
        let background = match args.remove("background") {
            None | Some(serde_json::Value::Bool(false)) => false,
            Some(serde_json::Value::Bool(true)) => true,
            Some(other) => {
                return error_text(format!(
                    "invalid arguments for {TOOL_NAME}: background must be a boolean, not {other}"
                ))
                .into();
            }
        };
        let request: RunRequest = match serde_json::from_value(serde_json::Value::Object(args)) {
            Ok(r) => r,
            Err(e) => return error_text(format!("invalid arguments for {TOOL_NAME}: {e}")).into(),
        };
        // SEP-2663: a call whose request declares the tasks extension (per-request client
        // capabilities in `_meta`) runs as a task, so the client neither holds a request
        // open for minutes nor loses the run with it. Declaring tasks at `initialize` is
        // not enough: clients do that (MCP Inspector 2.x) and still call plainly.
        if !background
            && self.registry.config().tasks
            && ctx
                .meta
                .client_capabilities()
                .is_some_and(|caps| caps.supports_tasks())
        {
            return self.start_task(request, &ctx).await;
        }
        let parts = ctx.extensions.get::<http::request::Parts>();
        // The request id is set (or kept from the caller) by the HTTP stack.
        let (principal, request_id) = self.who(&ctx);
        let quota_key = self.quota_key(&ctx, &principal);

        if background {
            if !self.registry.config().background {
                return error_text(RegistryError::Disabled.to_string()).into();
            }
            let owner = principal.owner_key();
            return match self
                .registry
                .start(
                    self.tools.clone(),
                    request,
                    RunCaller {
                        principal,
                        quota_key,
                        owner,
                        request_id,
                    },
                    &self.shutdown,
                )
                .await
            {
                Ok(Ok(snapshot)) => snapshot_result(&snapshot),
                Ok(Err(reason)) => error_text(reason),
                Err(e) => error_text(e.to_string()),
            }
            .into();
        }

        // One token for "stop this run": the client's cancellation or the server's shutdown.
        let cancel = self.shutdown.child_token();
        let _stop_watch = {
            let (client, run) = (ctx.ct.clone(), cancel.clone());
            let watcher = tokio::spawn(async move {
                tokio::select! {
                    () = client.cancelled() => run.cancel(),
                    () = run.cancelled() => {}
                }
            });
            AbortOnDrop(watcher)
        };
        let progress = ctx
            .meta
            .get_progress_token()
            .map(|token| forward_progress(ctx.peer.clone(), token));

        let call = ToolCall {
            request,
            ctx: CallContext {
                principal,
                quota_key,
                request_id,
                cancel: cancel.clone(),
                progress: progress.as_ref().map(|(tx, _)| tx.clone()),
            },
        };
        // rmcp serves the call on a session task, outside the HTTP request's span: this
        // span (parent of `codex_run`) picks the caller's trace up again.
        let span = tracing::info_span!(
            "tools/call",
            tool = TOOL_NAME,
            request_id = call.ctx.request_id.as_deref().unwrap_or(""),
            principal = %call.ctx.principal.label(),
        );
        if let Some(parts) = parts {
            crate::telemetry::continue_trace(&span, &parts.headers);
        }
        let result = self.tools.clone().oneshot(call).instrument(span).await;
        if let Some((tx, forwarder)) = progress {
            drop(tx);
            let _ = forwarder.await;
        }
        cancel.cancel();
        match result {
            Ok(output) => output_result(output),
            Err(e) => tool_error_result(&e),
        }
        .into()
    }
}

/// Drop the numeric `format`s schemars writes (`uint64`, `int64`, `double`…): JSON
/// Schema defines none of them, and validating clients (the MCP Inspector's ajv)
/// warn about each one. The range they imply stays as `minimum`.
fn portable(mut tool: Tool) -> Tool {
    fn strip(value: &mut serde_json::Value) {
        match value {
            serde_json::Value::Object(map) => {
                let numeric = map.get("format").and_then(|f| f.as_str()).is_some_and(|f| {
                    matches!(
                        f,
                        "int"
                            | "int8"
                            | "int16"
                            | "int32"
                            | "int64"
                            | "uint"
                            | "uint8"
                            | "uint16"
                            | "uint32"
                            | "uint64"
                            | "float"
                            | "double"
                    )
                });
                if numeric {
                    map.remove("format");
                }
                map.values_mut().for_each(strip);
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    fn clean(schema: &Arc<JsonObject>) -> Arc<JsonObject> {
        let mut value = serde_json::Value::Object((**schema).clone());
        strip(&mut value);
        match value {
            serde_json::Value::Object(map) => Arc::new(map),
            _ => schema.clone(),
        }
    }
    tool.input_schema = clean(&tool.input_schema);
    tool.output_schema = tool.output_schema.as_ref().map(clean);
    tool
}

fn as_object(result: &CallToolResult) -> JsonObject {
    match serde_json::to_value(result) {
        Ok(serde_json::Value::Object(map)) => map,
        _ => JsonObject::new(),
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Relay runner progress to the client as `notifications/progress`, with a keep-alive
/// whenever Codex is quiet for [`KEEPALIVE`], so clients that reset their timeout on
/// progress do not cut long runs.
fn forward_progress(
    peer: Peer<RoleServer>,
    token: ProgressToken,
) -> (
    tokio::sync::mpsc::Sender<String>,
    tokio::task::JoinHandle<()>,
) {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<String>(64);
    let task = tokio::spawn(async move {
        let started = Instant::now();
        let mut step = 0u32;
        loop {
            let message = match tokio::time::timeout(KEEPALIVE, rx.recv()).await {
                Ok(Some(message)) => message,
                Ok(None) => break,
                Err(_) => format!("codex still running ({} s)", started.elapsed().as_secs()),
            };
            step += 1;
            let note = ProgressNotificationParam::new(token.clone(), f64::from(step))
                .with_message(message);
            if peer.notify_progress(note).await.is_err() {
                // The client is gone; keep draining so the runner never blocks.
                while rx.recv().await.is_some() {}
                break;
            }
        }
    });
    (tx, task)
}

/// The result a client sees for a finished run: the answer (or the error) as text,
/// everything as `structuredContent`, and `isError` unless Codex fully succeeded.
fn output_result(output: RunOutput) -> CallToolResult {
    let text = match (&output.error, &output.summary.final_message) {
        (None, Some(message)) => message.clone(),
        (None, None) => "Codex finished without a message.".to_owned(),
        (Some(error), _) => error.clone(),
    };
    let ok = output.ok;
    let mut result = CallToolResult::success(vec![ContentBlock::text(text)]);
    match serde_json::to_value(&output) {
        Ok(value) => result.structured_content = Some(value),
        Err(e) => tracing::warn!(error = %e, "run output did not serialize"),
    }
    result.is_error = Some(!ok);
    result
}

/// The one mapping from [`ToolError`] to what the caller reads.
fn tool_error_result(error: &ToolError) -> CallToolResult {
    match error {
        ToolError::Spawn { .. } => tracing::error!(%error, "codex could not be started"),
        _ => tracing::debug!(%error, "tool call refused"),
    }
    error_text(error.to_string())
}

fn snapshot_result(snapshot: &RunSnapshot) -> CallToolResult {
    let text = match (&snapshot.status, &snapshot.result, &snapshot.error) {
        (RunStatus::Working, _, _) => format!(
            "Run {} is working ({} s so far{}). Call {GET_RUN} with this run_id to follow it.",
            snapshot.run_id,
            snapshot.elapsed_ms / 1000,
            snapshot
                .progress
                .last()
                .map(|p| format!("; latest: {p}"))
                .unwrap_or_default()
        ),
        (_, Some(out), _) => match (&out.error, &out.summary.final_message) {
            (None, Some(message)) => message.clone(),
            (None, None) => "Codex finished without a message.".to_owned(),
            (Some(error), _) => error.clone(),
        },
        (_, None, Some(error)) => error.clone(),
        (_, None, None) => "The run ended without a result.".to_owned(),
    };
    let failed = matches!(snapshot.status, RunStatus::Failed | RunStatus::Cancelled);
    let mut result = CallToolResult::success(vec![ContentBlock::text(text)]);
    match serde_json::to_value(snapshot) {
        Ok(value) => result.structured_content = Some(value),
        Err(e) => tracing::warn!(error = %e, "run snapshot did not serialize"),
    }
    result.is_error = Some(failed);
    result
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct GetRunArgs {
    /// The `run_id` returned by `run_codex_prompt` with `background=true`.
    run_id: String,
    /// Seconds to wait for the run to finish before answering with its progress (0 to 55).
    #[serde(default = "default_wait")]
    #[schemars(extend("default" = 45, "minimum" = 0, "maximum" = MAX_WAIT_SEC))]
    wait_sec: i64,
}

fn default_wait() -> i64 {
    45
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct CancelRunArgs {
    /// The `run_id` to cancel.
    run_id: String,
}

/// `run_codex_prompt` when background runs are on: a `background` flag, and a result
/// that is either the run's output or, for a background start, its snapshot.
pub fn background_tool_definition(default_timeout_sec: u64) -> Tool {
    let mut tool = tool_definition(default_timeout_sec);
    let mut input = (*tool.input_schema).clone();
    if let Some(props) = input.get_mut("properties").and_then(|p| p.as_object_mut()) {
        props.insert(
            "background".into(),
            serde_json::json!({
                "type": "boolean",
                "default": false,
                "description": "Return at once with a run_id instead of waiting; follow the run with get_codex_run                                 and stop it with cancel_codex_run. Use it for work that may take more than a minute."
            }),
        );
    }
    tool.input_schema = Arc::new(input);
    let direct = rmcp::handler::server::common::schema_for_output::<RunOutput>();
    let started = rmcp::handler::server::common::schema_for_output::<RunSnapshot>();
    tool.output_schema = Some(Arc::new(any_of(&[&direct, &started])));
    tool
}

/// `{"type": "object", "anyOf": [...]}` with every branch's `$defs` hoisted to the root,
/// where their `#/$defs/...` references point.
fn any_of(schemas: &[&rmcp::model::JsonObject]) -> rmcp::model::JsonObject {
    let mut defs = serde_json::Map::new();
    let mut branches = Vec::new();
    for schema in schemas {
        let mut branch = (*schema).clone();
        branch.remove("$schema");
        if let Some(serde_json::Value::Object(d)) = branch.remove("$defs") {
            defs.extend(d);
        }
        branches.push(serde_json::Value::Object(branch));
    }
    let mut root = serde_json::Map::new();
    root.insert("type".into(), "object".into());
    root.insert("anyOf".into(), branches.into());
    if !defs.is_empty() {
        root.insert("$defs".into(), defs.into());
    }
    root
}

fn get_run_definition() -> Tool {
    Tool::new_with_raw(
        GET_RUN,
        Some(
            "Follow a background Codex run: waits up to wait_sec (default 45, at most 55) for it to finish, then returns its status, the latest progress and, once finished, the full result of run_codex_prompt."
                .into(),
        ),
        rmcp::handler::server::common::schema_for_type::<GetRunArgs>(),
    )
    .with_raw_output_schema(rmcp::handler::server::common::schema_for_output::<RunSnapshot>())
    .with_title("Follow a Codex run")
    .with_annotations(
        ToolAnnotations::with_title("Follow a Codex run")
            .read_only(true)
            .destructive(false)
            .idempotent(true)
            .open_world(false),
    )
}

fn cancel_run_definition() -> Tool {
    Tool::new_with_raw(
        CANCEL_RUN,
        Some("Cancel a background Codex run: Codex and everything it started are killed; the partial result is kept.".into()),
        rmcp::handler::server::common::schema_for_type::<CancelRunArgs>(),
    )
    .with_raw_output_schema(rmcp::handler::server::common::schema_for_output::<RunSnapshot>())
    .with_title("Cancel a Codex run")
    .with_annotations(
        ToolAnnotations::with_title("Cancel a Codex run")
            .read_only(false)
            .destructive(true)
            .idempotent(true)
            .open_world(false),
    )
}

fn error_text(text: String) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(text)])
}

/// The `run_codex_prompt` tool as listed by `tools/list`, advertising the server's
/// effective `timeout_sec` default (the seed's 1800 unless the operator's maximum is lower).
pub fn tool_definition(default_timeout_sec: u64) -> Tool {
    let mut input = (*rmcp::handler::server::common::schema_for_type::<RunRequest>()).clone();
    if let Some(timeout) = input
        .get_mut("properties")
        .and_then(|p| p.get_mut("timeout_sec"))
        .and_then(|t| t.as_object_mut())
    {
        timeout.insert("default".into(), default_timeout_sec.into());
    }
    let input = Arc::new(input);
    let output = rmcp::handler::server::common::schema_for_output::<RunOutput>();
    Tool::new_with_raw(TOOL_NAME, Some(DESCRIPTION.into()), input)
        .with_raw_output_schema(output)
        .with_title("Run Codex")
        .with_annotations(
            ToolAnnotations::with_title("Run Codex")
                .read_only(false)
                .destructive(true)
                .idempotent(false)
                .open_world(true),
        )
}

const DESCRIPTION: &str = "Run the local OpenAI Codex CLI (`codex exec --json`) on a prompt and return its final \
message, thread id, token usage, the commands it ran and the files it changed. Codex works in `cwd` (inside the \
server's allowed roots) under a sandbox: `read-only` by default; `workspace-write` needs `allow_edits=true`; \
`danger-full-access` only where the operator enabled it. The run is killed after `timeout_sec` seconds (partial \
output is still returned). Runs can take minutes; progress is reported while Codex works. The result's `ok` is true \
only when Codex completed its turn; otherwise `error` says why.";

impl ServerHandler for TwoBot {
    fn get_info(&self) -> ServerConfig {
        let capabilities = if self.registry.config().tasks {
            ServerCapabilities::builder()
                .enable_tools()
                .enable_tasks()
                .build()
        } else {
            ServerCapabilities::builder().enable_tools().build()
        };
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
        Ok(ListToolsResult::with_all_items(
            (*self.tools_listed).clone(),
        ))
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
        if name == TOOL_NAME {
            Ok(self.run(request, context).await)
        } else {
            Ok(self.follow(&name, request, context).await.into())
        }
    }

    async fn get_task(
        &self,
        request: GetTaskParams,
        context: RequestContext<RoleServer>,
    ) -> Result<GetTaskResult, ErrorData> {
        let owner = self.task_owner(&context);
        let view = self
            .registry
            .view(&request.task_id, &owner)
            .map_err(|e| ErrorData::invalid_params(e.to_string(), None))?;
        Ok(GetTaskResult::new(self.task_of(&view)))
    }

    /// `tasks/result` of MCP 2025-11-25, for clients of that generation: waits until the
    /// task ends, then returns the direct call's result. (SEP-2663, which rmcp 3.11
    /// speaks, folds the result into `tasks/get`.)
    async fn on_custom_request(
        &self,
        request: CustomRequest,
        context: RequestContext<RoleServer>,
    ) -> Result<CustomResult, ErrorData> {
        if request.method != "tasks/result" || !self.registry.config().tasks {
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
            .map(str::to_owned)
        else {
            return Err(ErrorData::invalid_params(
                "tasks/result needs params.taskId (a string)",
                None,
            ));
        };
        let owner = self.task_owner(&context);
        // A run ends by TWOBOT_MAX_TIMEOUT_SEC (at most 7 days); the client may cancel sooner.
        self.registry
            .wait(
                &task_id,
                &owner,
                Duration::from_secs(7 * 24 * 3600 + 60),
                &context.ct,
            )
            .await
            .map_err(|e| ErrorData::invalid_params(e.to_string(), None))?;
        let view = self
            .registry
            .view(&task_id, &owner)
            .map_err(|e| ErrorData::invalid_params(e.to_string(), None))?;
        match self.task_of(&view).payload {
            TaskPayload::Completed { result } => {
                Ok(CustomResult::new(serde_json::Value::Object(result)))
            }
            TaskPayload::Cancelled => Err(ErrorData::invalid_request(
                format!("task {task_id} was cancelled; Codex and its children were killed"),
                None,
            )),
            _ => Err(ErrorData::invalid_request(
                format!("task {task_id} has not finished"),
                None,
            )),
        }
    }

    /// 2Bot never asks for input mid-task; responses are acknowledged and ignored, as
    /// SEP-2663 says of keys the server did not ask for.
    async fn update_task(
        &self,
        request: UpdateTaskParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        let owner = self.task_owner(&context);
        self.registry
            .view(&request.task_id, &owner)
            .map(drop)
            .map_err(|e| ErrorData::invalid_params(e.to_string(), None))
    }

    async fn cancel_task(
        &self,
        request: CancelTaskParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        let owner = self.task_owner(&context);
        self.registry
            .request_cancel(&request.task_id, &owner)
            .map_err(|e| ErrorData::invalid_params(e.to_string(), None))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    /// Listed schemas carry no numeric `format` (JSON Schema has none; ajv warns).
    #[test]
    fn listed_schemas_have_no_non_standard_numeric_formats() {
        let raw = tool_definition(1800);
        assert!(
            serde_json::to_string(&raw.output_schema)
                .unwrap()
                .contains("uint64"),
            "schemars writes them, so the cleanup below is tested"
        );
        let tool = portable(raw);
        let text = serde_json::to_string(&(tool.input_schema, tool.output_schema)).unwrap();
        assert!(!text.contains("\"format\""), "{text}");
        assert!(text.contains("\"minimum\":0"), "{text}");
    }

    /// Executable documentation: the exact input schema clients see.
    #[test]
    fn the_input_schema_lists_the_seed_parameters_with_types_enums_and_defaults() {
        let tool = tool_definition(1800);
        let schema = serde_json::Value::Object((*tool.input_schema).clone());
        let props = schema["properties"].as_object().unwrap();
        let mut names: Vec<&str> = props.keys().map(String::as_str).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "add_dirs",
                "allow_edits",
                "approval_policy",
                "cwd",
                "ephemeral",
                "include_event_log",
                "model",
                "profile",
                "prompt",
                "sandbox",
                "skip_git_repo_check",
                "thread_id",
                "timeout_sec"
            ]
        );
        // The one addition to the seed's parameters is optional.
        assert!(
            props["thread_id"]
                .get("default")
                .is_none_or(|d| d.is_null())
        );
        assert_eq!(schema["required"], serde_json::json!(["prompt"]));
        assert_eq!(schema["additionalProperties"], serde_json::json!(false));
        assert_eq!(props["timeout_sec"]["default"], 1800);
        assert_eq!(props["ephemeral"]["default"], true);
        assert_eq!(props["allow_edits"]["default"], false);
        assert_eq!(props["include_event_log"]["default"], false);
        assert_eq!(props["skip_git_repo_check"]["default"], false);
        assert_eq!(props["timeout_sec"]["type"], "integer");
        let text = schema.to_string();
        for value in [
            "read-only",
            "workspace-write",
            "danger-full-access",
            "untrusted",
            "on-request",
            "never",
        ] {
            assert!(text.contains(value), "{value} missing from {text}");
        }
    }

    #[test]
    fn the_output_schema_declares_the_result_fields() {
        let tool = tool_definition(1800);
        let schema = serde_json::Value::Object((*tool.output_schema.unwrap()).clone());
        let props = schema["properties"].as_object().unwrap();
        for field in [
            "ok",
            "exit_code",
            "timed_out",
            "cancelled",
            "thread_id",
            "final_message",
            "usage",
            "commands",
            "file_changes",
            "errors",
            "stderr_tail",
            "duration_ms",
            "argv",
            "events",
            "event_log_truncated",
        ] {
            assert!(props.contains_key(field), "{field} missing");
        }
    }

    #[test]
    fn background_runs_add_a_flag_two_honest_tools_and_a_two_branch_output_schema() {
        let tool = background_tool_definition(1800);
        let input = serde_json::Value::Object((*tool.input_schema).clone());
        assert_eq!(input["properties"]["background"]["default"], false);
        let output = serde_json::Value::Object((*tool.output_schema.unwrap()).clone());
        assert_eq!(output["type"], "object");
        let branches = output["anyOf"].as_array().unwrap();
        assert_eq!(branches.len(), 2);
        assert!(branches[0]["properties"].get("final_message").is_some());
        assert!(branches[1]["properties"].get("run_id").is_some());
        // Every reference resolves at the root.
        let text = output.to_string();
        for name in text.split("#/$defs/").skip(1) {
            let name = name.split('"').next().unwrap();
            assert!(output["$defs"].get(name).is_some(), "$defs/{name} missing");
        }
        let get = get_run_definition();
        let a = get.annotations.unwrap();
        assert_eq!(a.read_only_hint, Some(true));
        assert_eq!(a.destructive_hint, Some(false));
        let schema = serde_json::Value::Object((*get.input_schema).clone());
        assert_eq!(schema["properties"]["wait_sec"]["default"], 45);
        assert_eq!(schema["properties"]["wait_sec"]["maximum"], 55);
        let cancel = cancel_run_definition().annotations.unwrap();
        assert_eq!(cancel.read_only_hint, Some(false));
    }

    #[test]
    fn annotations_are_honest_about_a_tool_that_runs_code() {
        let a = tool_definition(1800).annotations.unwrap();
        assert_eq!(a.read_only_hint, Some(false));
        assert_eq!(a.destructive_hint, Some(true));
        assert_eq!(a.idempotent_hint, Some(false));
        assert_eq!(a.open_world_hint, Some(true));
        assert_eq!(a.title.as_deref(), Some("Run Codex"));
    }
}
