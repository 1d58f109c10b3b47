//! The tools around an interactive run (app-server backend): `answer_codex_approval`,
//! which only the run card calls, `steer_codex_run`, and the read-only `ask_codex`.
//!
//! `answer_codex_approval` is how a person's click reaches Codex, so it is guarded three
//! ways: MCP Apps hosts keep it from the model (`_meta.ui.visibility: ["app"]`, and
//! ChatGPT's `openai/visibility: private`); it is owner-checked like `get_codex_run`; and
//! it needs the approval's token, which 2Bot puts only into results' `_meta` (hosts hand
//! `_meta` to the view, never to the model). A model that calls it anyway has no token.

use std::sync::Arc;

use rmcp::model::{CallToolResult, ContentBlock, Tool, ToolAnnotations};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;
use subtle::ConstantTimeEq;

use super::schema::portable;
use crate::run::control::{Answer, Channel, ControlError, Decision, RunControl};
use crate::run::{ApprovalPolicy, ReasoningEffort, RunOutput, RunRequest, SandboxMode};
use crate::runs::RunSnapshot;

/// Answers a pending approval from the run card.
pub const ANSWER_APPROVAL: &str = "answer_codex_approval";
/// Adds instructions to a running turn.
pub const STEER_RUN: &str = "steer_codex_run";
/// The read-only tool (with `TWOBOT_ENABLE_ASK_TOOL=true`).
pub const ASK_TOOL: &str = "ask_codex";

/// How the card answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CardDecision {
    /// Let Codex do it.
    Approve,
    /// Tell Codex no; the turn goes on.
    Deny,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AnswerArgs {
    /// The run.
    pub run_id: String,
    /// The pending approval's id (`a1`, `a2`, …).
    pub approval_id: String,
    /// The approval's token, from the result's `_meta` (given to the card only).
    pub token: String,
    /// `approve` or `deny`.
    pub decision: CardDecision,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SteerArgs {
    /// The `run_id` of a background run.
    pub run_id: String,
    /// What Codex should know or do now, added to the running turn.
    pub message: String,
}

/// What `answer_codex_approval` returns.
#[derive(Debug, serde::Serialize, JsonSchema)]
pub struct Answered {
    /// The run.
    pub run_id: String,
    /// The approval answered.
    pub approval_id: String,
    /// `accept` or `decline`.
    pub decision: String,
}

/// Input of `ask_codex`: a question about code, answered read-only.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "ask_codex arguments")]
pub struct AskArgs {
    /// The question for Codex, in natural language.
    pub prompt: String,
    /// Working directory (inside the allowed roots); defaults to the first allowed root.
    #[serde(default)]
    pub cwd: Option<String>,
    /// Model name for Codex. Defaults to Codex's configured model.
    #[serde(default)]
    pub model: Option<String>,
    /// Reasoning effort. Defaults to Codex's setting.
    #[serde(default)]
    pub reasoning_effort: Option<ReasoningEffort>,
    /// Seconds before Codex is killed; partial output is still returned.
    #[serde(default)]
    #[schemars(with = "i64")]
    pub timeout_sec: Option<i64>,
    /// Extra directories Codex may read, each inside an allowed root.
    #[serde(default)]
    pub add_dirs: Option<Vec<String>>,
    /// Image files for the question, inside the allowed roots.
    #[serde(default)]
    pub images: Option<Vec<String>>,
    /// Continue a thread you started (a result's `thread_id`).
    #[serde(default)]
    pub thread_id: Option<String>,
}

impl From<AskArgs> for RunRequest {
    /// Read-only by construction: no parameter can ask for more.
    fn from(a: AskArgs) -> Self {
        let mut r = RunRequest::new(a.prompt);
        r.cwd = a.cwd;
        r.model = a.model;
        r.reasoning_effort = a.reasoning_effort;
        r.timeout_sec = a.timeout_sec;
        r.add_dirs = a.add_dirs;
        r.images = a.images;
        r.thread_id = a.thread_id;
        r.sandbox = SandboxMode::ReadOnly;
        r.approval_policy = Some(ApprovalPolicy::Never);
        r.allow_edits = false;
        r
    }
}

/// Why the card's answer was not applied.
#[derive(Debug, thiserror::Error)]
pub enum AnswerError {
    /// The token is not the approval's.
    #[error(
        "refused: the token does not match approval `{0}` (only the run card, which 2Bot gives the token, may answer)"
    )]
    WrongToken(String),
    /// Not pending (answered, timed out, or never asked), or the run refused it.
    #[error(transparent)]
    Control(#[from] ControlError),
}

/// Why a steering message is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SteerRefusal {
    /// Nothing but white space.
    #[error("refused: message is empty; say what Codex should do")]
    Empty,
    /// Longer than a prompt may be.
    #[error(
        "refused: message is {len} bytes, over the prompt limit of {max} bytes (TWOBOT_MAX_PROMPT_BYTES)"
    )]
    TooLong {
        /// Its length in bytes.
        len: usize,
        /// The prompt limit.
        max: usize,
    },
}

/// Apply the card's answer to `control`: the token must match (constant time; an empty
/// token never matches), and the request must still be pending.
pub fn answer(control: &RunControl, args: &AnswerArgs, by: &str) -> Result<Decision, AnswerError> {
    let pending = control
        .pending()
        .into_iter()
        .find(|p| p.id == args.approval_id)
        .ok_or_else(|| ControlError::NotPending(args.approval_id.clone()))?;
    let matches = !pending.token.is_empty()
        && bool::from(pending.token.as_bytes().ct_eq(args.token.as_bytes()));
    if !matches {
        return Err(AnswerError::WrongToken(args.approval_id.clone()));
    }
    let decision = match args.decision {
        CardDecision::Approve => Decision::Accept,
        CardDecision::Deny => Decision::Decline,
    };
    control
        .answer(
            &args.approval_id,
            Answer {
                decision,
                channel: Channel::Card,
                by: Some(by.to_owned()),
                note: None,
            },
        )
        .map(|()| decision)
        .map_err(AnswerError::from)
}

/// Check a steering message: not empty, at most `max_bytes` (the prompt limit).
pub fn steer_message(message: &str, max_bytes: usize) -> Result<(), SteerRefusal> {
    if message.trim().is_empty() {
        return Err(SteerRefusal::Empty);
    }
    if message.len() > max_bytes {
        return Err(SteerRefusal::TooLong {
            len: message.len(),
            max: max_bytes,
        });
    }
    Ok(())
}

/// `answer_codex_approval`: app-only (MCP Apps hosts keep it from the model).
pub fn answer_definition() -> Tool {
    let mut tool = Tool::new_with_raw(
        ANSWER_APPROVAL,
        Some("Run card only: approve or deny a pending Codex approval request. Needs the approval's token, which only the card receives.".into()),
        rmcp::handler::server::common::schema_for_type::<AnswerArgs>(),
    )
    .with_raw_output_schema(rmcp::handler::server::common::schema_for_output::<Answered>())
    .with_title("Answer a Codex approval")
    .with_annotations(
        ToolAnnotations::with_title("Answer a Codex approval")
            .read_only(false)
            .destructive(true)
            .idempotent(false)
            .open_world(false),
    );
    tool.meta = Some(super::apps::app_only_tool_meta());
    portable(tool)
}

/// `steer_codex_run`.
pub fn steer_definition() -> Tool {
    let mut tool = Tool::new_with_raw(
        STEER_RUN,
        Some("Add instructions to the current turn of a Codex run started with background=true or as an MCP task (app-server backend: TWOBOT_CODEX_BACKEND=app-server). Returns the run's snapshot.".into()),
        rmcp::handler::server::common::schema_for_type::<SteerArgs>(),
    )
    .with_raw_output_schema(rmcp::handler::server::common::schema_for_output::<RunSnapshot>())
    .with_title("Steer a Codex run")
    .with_annotations(
        ToolAnnotations::with_title("Steer a Codex run")
            .read_only(false)
            .destructive(false)
            .idempotent(false)
            .open_world(false),
    );
    tool.meta = Some(super::apps::follow_tool_meta());
    portable(tool)
}

/// `ask_codex`: read-only, so hosts that confirm other tools need not confirm it.
pub fn ask_definition(default_timeout_sec: u64) -> Tool {
    let mut input = (*rmcp::handler::server::common::schema_for_type::<AskArgs>()).clone();
    if let Some(timeout) = input
        .get_mut("properties")
        .and_then(|p| p.get_mut("timeout_sec"))
        .and_then(|t| t.as_object_mut())
    {
        timeout.insert("default".into(), default_timeout_sec.into());
    }
    let mut tool = Tool::new_with_raw(ASK_TOOL, Some(ASK_DESCRIPTION.into()), Arc::new(input))
        .with_raw_output_schema(rmcp::handler::server::common::schema_for_output::<RunOutput>())
        .with_title("Ask Codex")
        .with_annotations(
            ToolAnnotations::with_title("Ask Codex")
                .read_only(true)
                .destructive(false)
                .idempotent(false)
                .open_world(false),
        );
    tool.meta = Some(super::apps::run_tool_meta());
    portable(tool)
}

const ASK_DESCRIPTION: &str = "Ask the local OpenAI Codex CLI a question about code and get its answer. \
Read-only: Codex reads files in `cwd` (inside the allowed roots) under a `read-only` sandbox, never asks for \
approvals and cannot change anything. Use run_codex_prompt for work that changes files.";

/// A tool's arguments, or a clear error naming the tool.
pub fn parse<T: serde::de::DeserializeOwned>(
    tool: &str,
    args: Option<rmcp::model::JsonObject>,
) -> Result<T, super::arguments::InvalidArguments> {
    super::arguments::parse(tool, args)
}

/// What the answer tool returns.
pub fn answered(run_id: &str, approval_id: &str, decision: Decision) -> CallToolResult {
    let mut result = CallToolResult::success(vec![ContentBlock::text(format!(
        "approval {approval_id} answered: {}",
        decision.as_str()
    ))]);
    result.structured_content = Some(
        json!({ "run_id": run_id, "approval_id": approval_id, "decision": decision.as_str() }),
    );
    result
}

#[cfg(test)]
#[path = "interactive_tests.rs"]
mod tests;
