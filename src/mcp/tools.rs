//! The tools as `tools/list` shows them: names, descriptions, annotations and schemas.
//!
//! The schemas are part of the contract with every client (and with the models that
//! read them), so the exact shapes are pinned by the tests at the bottom.

use std::sync::Arc;

use rmcp::model::{Tool, ToolAnnotations};
use schemars::JsonSchema;
use serde::Deserialize;

use super::schema::portable;
use crate::job::{RunOutput, RunRequest};
use crate::runs::RunSnapshot;

/// The one tool.
pub const TOOL_NAME: &str = "run_codex_prompt";
/// Follows a background run (only with `TWOBOT_ENABLE_BACKGROUND_RUNS=true`).
pub const GET_RUN: &str = "get_codex_run";
/// Cancels a background run (only with `TWOBOT_ENABLE_BACKGROUND_RUNS=true`).
pub const CANCEL_RUN: &str = "cancel_codex_run";
/// Longest `wait_sec` of `get_codex_run`: under the ~60 s after which clients give up.
pub const MAX_WAIT_SEC: i64 = 55;

/// The tools listed: the one tool, or it and the background-run tools (following,
/// cancelling, steering, and the card's answer tool); `ask_codex` when `ask`.
pub fn listed(default_timeout_sec: u64, background: bool, ask: bool) -> Vec<Tool> {
    let mut tools = if background {
        [
            background_tool_definition(default_timeout_sec),
            get_run_definition(),
            cancel_run_definition(),
        ]
        .map(portable)
        .to_vec()
    } else {
        vec![portable(tool_definition(default_timeout_sec))]
    };
    // MCP Apps: the run card; hosts without MCP Apps ignore `_meta`.
    for tool in &mut tools {
        tool.meta = Some(if tool.name == TOOL_NAME {
            super::apps::run_tool_meta()
        } else {
            super::apps::follow_tool_meta()
        });
    }
    if ask {
        tools.insert(1, super::interactive::ask_definition(default_timeout_sec));
    }
    if background {
        tools.push(super::interactive::steer_definition());
        tools.push(super::interactive::answer_definition());
    }
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
                "fork",
                "images",
                "include_event_log",
                "model",
                "output_schema",
                "profile",
                "prompt",
                "reasoning_effort",
                "review",
                "sandbox",
                "skip_git_repo_check",
                "thread_id",
                "timeout_sec"
            ]
        );
        // The additions to the seed's parameters are optional.
        for added in [
            "thread_id",
            "reasoning_effort",
            "images",
            "output_schema",
            "review",
        ] {
            assert!(
                props[added].get("default").is_none_or(|d| d.is_null()),
                "{added}"
            );
        }
        assert_eq!(props["fork"]["default"], false);
        // `prompt` may be left out with a review target; the policy refuses it elsewhere.
        assert_eq!(schema.get("required"), None);
        assert!(props["prompt"].get("default").is_none());
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
            "on-request",
            "never",
            "granular:KNOB",
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
            "sandbox_refused",
            "warnings",
            "duration_ms",
            "argv",
            "events",
            "event_log_truncated",
            "output",
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
