//! The tools as `tools/list` shows them: names, descriptions, annotations and schemas.
//!
//! The schemas are part of the contract with every client (and with the models that
//! read them), so the exact shapes are pinned by the tests at the bottom.

use std::sync::Arc;

use rmcp::model::{Tool, ToolAnnotations};
use schemars::JsonSchema;
use serde::Deserialize;

use super::schema::portable;
use crate::run::{RunOutput, RunRequest};
use crate::runs::RunSnapshot;

/// The one tool.
pub const TOOL_NAME: &str = "run_codex_prompt";
/// Follows a background run or a task (listed per [`followers`]).
pub const GET_RUN: &str = "get_codex_run";
/// Cancels a background run or a task (listed per [`followers`]).
pub const CANCEL_RUN: &str = "cancel_codex_run";
/// Longest `wait_sec` of `get_codex_run`: under the ~60 s after which clients give up.
pub const MAX_WAIT_SEC: i64 = 55;

/// Who `tools/list` shows the follow-up tools to: `get_codex_run`, `cancel_codex_run`,
/// `steer_codex_run` and the card's `answer_codex_approval`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Followers {
    /// Nobody: no run outlives its call with a person to ask, so the list stays the
    /// one tool (the exec backend's default surface).
    Nobody,
    /// The model and the run card: background runs are on, and the model follows the
    /// runs it started with `background=true`.
    ModelAndCard,
    /// The run card only (app-only `_meta`, kept from the model): background runs are
    /// off, but a task on the app-server backend can wait on a person, and the card
    /// follows it, answers, steers and cancels it through the host, which lets a view
    /// call only the tools the server lists.
    CardOnly,
}

/// Who the follow-up tools are listed for: everyone with background runs on (as
/// before); else the card alone when runs can be kept as MCP tasks (`tasks`) and can
/// ask a person (`interactive`: the app-server backend); else nobody. Background starts
/// stay refused without `TWOBOT_ENABLE_BACKGROUND_RUNS` whatever is listed.
pub fn followers(background: bool, tasks: bool, interactive: bool) -> Followers {
    match (background, tasks && interactive) {
        (true, _) => Followers::ModelAndCard,
        (false, true) => Followers::CardOnly,
        (false, false) => Followers::Nobody,
    }
}

/// The tools listed: the one tool, and the follow-up tools for `followers`;
/// `ask_codex` when `ask`.
pub fn listed(default_timeout_sec: u64, followers: Followers, ask: bool) -> Vec<Tool> {
    let run = match followers {
        Followers::ModelAndCard => background_tool_definition(default_timeout_sec),
        Followers::Nobody | Followers::CardOnly => tool_definition(default_timeout_sec),
    };
    let mut tools = vec![portable(run)];
    // MCP Apps: the run card; hosts without MCP Apps ignore `_meta`.
    tools[0].meta = Some(super::apps::run_tool_meta());
    if ask {
        tools.push(super::interactive::ask_definition(default_timeout_sec));
    }
    let follow_meta = match followers {
        Followers::Nobody => return tools,
        Followers::ModelAndCard => super::apps::follow_tool_meta(),
        Followers::CardOnly => super::apps::app_only_tool_meta(),
    };
    for mut tool in [
        portable(get_run_definition()),
        portable(cancel_run_definition()),
        super::interactive::steer_definition(),
    ] {
        tool.meta = Some(follow_meta.clone());
        tools.push(tool);
    }
    tools.push(super::interactive::answer_definition());
    tools
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct GetRunArgs {
    /// The `run_id` returned by `run_codex_prompt` with `background=true`.
    pub run_id: String,
    /// Seconds to wait for the run to finish before answering with its progress (0 to 55).
    #[serde(default = "default_wait")]
    #[schemars(extend("default" = 45, "minimum" = 0, "maximum" = MAX_WAIT_SEC))]
    pub wait_sec: i64,
}

fn default_wait() -> i64 {
    45
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CancelRunArgs {
    /// The `run_id` to cancel.
    pub run_id: String,
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
                "description": "Return at once with a run_id instead of waiting; follow the run with get_codex_run and stop it with cancel_codex_run. Use it for work that may take more than a minute."
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
            "Follow a Codex run started with background=true or as an MCP task: waits up to wait_sec (default 45, at most 55) for it to finish, then returns its status, the latest progress and, once finished, the full result of run_codex_prompt."
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
        Some("Cancel a Codex run started with background=true or as an MCP task: Codex and everything it started are killed; the partial result is kept.".into()),
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

const DESCRIPTION: &str = "Run the local OpenAI Codex CLI on a prompt and return its final \
message, thread id, token usage, commands and file changes. Codex works in `cwd` (inside the allowed roots) under a \
sandbox, `read-only` by default; writing needs `allow_edits=true`. Killed after `timeout_sec` (partial output kept). \
Runs take minutes; progress is reported. `ok` is true only when Codex completed its turn; else `error` says why.";

#[cfg(test)]
#[path = "tools_tests.rs"]
mod tests;
