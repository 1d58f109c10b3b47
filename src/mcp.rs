//! `TwoBot`: the MCP server. It declares the one tool, turns MCP calls into
//! [`ToolCall`]s for the job stack, and turns results and errors back into MCP.
//!
//! This is the only place where [`ToolError`] and [`RunOutput`] become MCP results,
//! and it knows little of HTTP: a transport may put a [`Principal`] into the request's
//! extensions and an `x-request-id` header on it, and that is all it reads.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ListToolsResult, PaginatedRequestParams, ProgressNotificationParam, ProgressToken,
    ServerCapabilities, ServerConfig, Tool, ToolAnnotations,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, Peer, RoleServer, ServerHandler};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use tracing::Instrument;

use crate::error::ToolError;
use crate::job::{CallContext, Principal, RunOutput, RunRequest, ToolCall};
use crate::tool::ToolService;

/// The server's name, fixed by the product.
pub const SERVER_NAME: &str = "2Bot";
/// The one tool.
pub const TOOL_NAME: &str = "run_codex_prompt";
/// Longest silence on the progress channel before a keep-alive is sent.
pub const KEEPALIVE: Duration = Duration::from_secs(15);

/// The MCP server handler; one per session, all sharing the same job stack.
#[derive(Clone)]
pub struct TwoBot {
    tools: ToolService,
    /// Who calls when the transport says nothing (stdio: the local user).
    default_principal: Principal,
    /// Cancelled at shutdown: every run in flight stops.
    shutdown: CancellationToken,
    tool: Arc<Tool>,
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
            tool: Arc::new(tool_definition(default_timeout_sec)),
        }
    }

    async fn run(
        &self,
        params: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let args = serde_json::Value::Object(params.arguments.unwrap_or_default());
        let request: RunRequest = match serde_json::from_value(args) {
            Ok(r) => r,
            Err(e) => return error_text(format!("invalid arguments for {TOOL_NAME}: {e}")),
        };

        let parts = ctx.extensions.get::<http::request::Parts>();
        let principal = parts
            .and_then(|p| p.extensions.get::<Principal>())
            .cloned()
            .unwrap_or_else(|| self.default_principal.clone());
        // Set (or kept from the caller) by the HTTP stack's request-id layer.
        let request_id = parts
            .and_then(|p| p.headers.get("x-request-id"))
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);

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
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
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
        Ok(ListToolsResult::with_all_items(vec![(*self.tool).clone()]))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        (name == TOOL_NAME).then(|| (*self.tool).clone())
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        if request.name != TOOL_NAME {
            return Err(ErrorData::invalid_params(
                format!("unknown tool: {}", request.name),
                None,
            ));
        }
        Ok(self.run(request, context).await.into())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

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
                "timeout_sec"
            ]
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
    fn annotations_are_honest_about_a_tool_that_runs_code() {
        let a = tool_definition(1800).annotations.unwrap();
        assert_eq!(a.read_only_hint, Some(false));
        assert_eq!(a.destructive_hint, Some(true));
        assert_eq!(a.idempotent_hint, Some(false));
        assert_eq!(a.open_world_hint, Some(true));
        assert_eq!(a.title.as_deref(), Some("Run Codex"));
    }
}
