//! Unit tests of [`super`]: the exact shapes of the listed tools, and who sees which.

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

/// The rule, whole: background runs list the follow-up tools for everyone; without
/// them, only tasks that can ask a person (app-server) list them, for the card alone.
#[test]
fn the_follow_up_tools_are_listed_for_the_card_alone_when_only_tasks_can_ask_a_person() {
    use Followers::*;
    // (background, tasks, interactive) -> who sees them
    let table = [
        ((false, false, false), Nobody),
        ((false, true, false), Nobody),
        ((false, false, true), Nobody),
        ((false, true, true), CardOnly),
        ((true, false, false), ModelAndCard),
        ((true, true, false), ModelAndCard),
        ((true, false, true), ModelAndCard),
        ((true, true, true), ModelAndCard),
    ];
    for ((background, tasks, interactive), expected) in table {
        assert_eq!(
            followers(background, tasks, interactive),
            expected,
            "background={background} tasks={tasks} interactive={interactive}"
        );
    }
}

fn names_and_visibility(tools: &[Tool]) -> Vec<(String, serde_json::Value)> {
    tools
        .iter()
        .map(|t| {
            let meta = serde_json::to_value(&t.meta).unwrap();
            (t.name.to_string(), meta["ui"]["visibility"].clone())
        })
        .collect()
}

#[test]
fn the_card_only_list_hides_every_follow_up_tool_from_the_model_and_offers_no_background_flag() {
    let tools = listed(1800, Followers::CardOnly, false);
    let app = serde_json::json!(["app"]);
    assert_eq!(
        names_and_visibility(&tools),
        [
            (TOOL_NAME.to_owned(), serde_json::Value::Null),
            (GET_RUN.to_owned(), app.clone()),
            (CANCEL_RUN.to_owned(), app.clone()),
            (crate::mcp::interactive::STEER_RUN.to_owned(), app.clone()),
            (crate::mcp::interactive::ANSWER_APPROVAL.to_owned(), app),
        ]
    );
    for tool in &tools[1..] {
        let meta = serde_json::to_value(&tool.meta).unwrap();
        assert_eq!(meta["openai/visibility"], "private", "{}", tool.name);
    }
    let input = serde_json::Value::Object((*tools[0].input_schema).clone());
    assert!(input["properties"].get("background").is_none());
    assert_eq!(
        serde_json::to_value(&tools[0]).unwrap(),
        serde_json::to_value(&listed(1800, Followers::Nobody, false)[0]).unwrap(),
        "the run tool is the default one"
    );
}

#[test]
fn the_default_list_is_the_one_tool_and_background_runs_show_the_follow_ups_to_the_model() {
    let nobody = listed(1800, Followers::Nobody, false);
    assert_eq!(names_and_visibility(&nobody).len(), 1);
    assert_eq!(nobody[0].name, TOOL_NAME);
    let asked = listed(1800, Followers::Nobody, true);
    let names: Vec<&str> = asked.iter().map(|t| t.name.as_ref()).collect();
    assert_eq!(names, [TOOL_NAME, crate::mcp::interactive::ASK_TOOL]);
    let everyone = listed(1800, Followers::ModelAndCard, true);
    let shown: Vec<(String, serde_json::Value)> = names_and_visibility(&everyone);
    let names: Vec<&str> = shown.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            TOOL_NAME,
            crate::mcp::interactive::ASK_TOOL,
            GET_RUN,
            CANCEL_RUN,
            crate::mcp::interactive::STEER_RUN,
            crate::mcp::interactive::ANSWER_APPROVAL
        ]
    );
    // Only the answer tool is the card's alone when the model follows runs itself.
    for (name, visibility) in &shown[..5] {
        assert!(visibility.is_null(), "{name}: {visibility}");
    }
    assert_eq!(shown[5].1, serde_json::json!(["app"]));
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
