//! The one mapping from what happened to a run — refused, ended, or still going — to
//! the `CallToolResult` a client reads. Direct calls, tasks and background runs all
//! answer through here, so the same run reads the same on every path.

use rmcp::model::{CallToolResult, ContentBlock, JsonObject};

use super::tools::GET_RUN;
use crate::error::ToolError;
use crate::run::RunOutput;
use crate::runs::{Ended, RunHandle, RunRefusal, RunSnapshot, RunStatus, Stored};

/// A tool error with `text` as its only content.
pub fn error_text(text: impl std::fmt::Display) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(text.to_string())])
}

/// A call refused at admission: nothing ran.
pub fn refusal(refusal: &RunRefusal) -> CallToolResult {
    error_text(refusal.to_string())
}

/// An admitted run that ended: its output, or why Codex never ran.
pub fn ended(ended: &Ended) -> CallToolResult {
    match ended {
        Ended::Ran(output) => output_result(output),
        Ended::NotRun(error) => not_run(error),
    }
}

fn not_run(error: &ToolError) -> CallToolResult {
    match error {
        ToolError::Spawn { .. } => tracing::error!(%error, "codex could not be started"),
        _ => tracing::debug!(%error, "run ended before Codex started"),
    }
    error_text(error.to_string())
}

/// What the caller reads first: Codex's answer, or why there is none.
fn headline(output: &RunOutput) -> String {
    let mut text = match (&output.error, &output.summary.final_message) {
        (None, Some(message)) => message.clone(),
        (None, None) => "Codex finished without a message.".to_owned(),
        (Some(error), _) => error.clone(),
    };
    // The model's answer alone can read as success when the sandbox stopped its commands.
    if let Some(warning) = crate::runner::refusal_warning(output.sandbox_refused) {
        text.push_str("\n\n[2Bot] ");
        text.push_str(&warning);
    }
    // A model should know what the reply does not show.
    if let Some(note) = output.summary.truncated.describe() {
        text.push_str("\n\n[2Bot] ");
        text.push_str(&note);
    }
    text
}

/// The result a client sees for a finished run: the answer (or the error) as text,
/// everything as `structuredContent`, and `isError` unless Codex fully succeeded.
fn output_result(output: &RunOutput) -> CallToolResult {
    let mut result = CallToolResult::success(vec![ContentBlock::text(headline(output))]);
    match serde_json::to_value(output) {
        Ok(value) => result.structured_content = Some(value),
        Err(e) => tracing::warn!(error = %e, "run output did not serialize"),
    }
    result.is_error = Some(!output.ok);
    result
}

/// A kept run as `get_codex_run`, `cancel_codex_run` and a background start answer it.
pub fn snapshot(snapshot: &RunSnapshot) -> CallToolResult {
    let text = match (&snapshot.status, &snapshot.result, &snapshot.error) {
        (RunStatus::Working, _, _) if !snapshot.pending_approvals.is_empty() => format!(
            "Run {} is waiting for a person to approve {} request(s) in the run card (declined after {} s without an answer). Call {GET_RUN} with this run_id to follow it.",
            snapshot.run_id,
            snapshot.pending_approvals.len(),
            snapshot
                .pending_approvals
                .iter()
                .map(|p| p.seconds_left)
                .min()
                .unwrap_or(0)
        ),
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
        (_, Some(out), _) => headline(out),
        (_, None, Some(error)) => error.clone(),
        (_, None, None) => "The run ended without a result.".to_owned(),
    };
    let failed = matches!(
        snapshot.status,
        RunStatus::Failed | RunStatus::Cancelled | RunStatus::Lost
    );
    let mut result = CallToolResult::success(vec![ContentBlock::text(text)]);
    match serde_json::to_value(snapshot) {
        Ok(value) => result.structured_content = Some(value),
        Err(e) => tracing::warn!(error = %e, "run snapshot did not serialize"),
    }
    result.is_error = Some(failed);
    result
}

/// `cancel_codex_run` of a run only the store knows. One that ended is already over
/// (its snapshot, with a sentence saying so); one still running belongs to another 2Bot
/// process on the same state, which alone can stop its processes.
pub fn not_cancelled(stored: &Stored) -> CallToolResult {
    let shown = &stored.snapshot;
    if !stored.state.is_final() {
        return error_text(format!(
            "run {} is running in another 2Bot process on this state store; it cannot be cancelled from here (cancel it through the server that started it)",
            shown.run_id
        ));
    }
    let mut result = snapshot(shown);
    let status = serde_json::to_value(shown.status)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let before = result
        .content
        .first()
        .and_then(|c| c.as_text())
        .map(|t| t.text.clone())
        .unwrap_or_default();
    result.content = vec![ContentBlock::text(format!(
        "Run {} is already over ({status}): nothing to cancel.\n\n{before}",
        shown.run_id
    ))];
    result
}

/// The `_meta` key under which the run card finds the pending approvals' tokens.
pub const APPROVAL_TOKENS_META: &str = "2bot/approvalTokens";

/// A kept run's snapshot as a result, with the tokens of its pending approvals in
/// `_meta` only: hosts give a result's `_meta` to the view and keep it from the model,
/// so the card can answer and the model cannot. Never in content or structuredContent.
pub fn snapshot_of(handle: &RunHandle) -> CallToolResult {
    let mut result = snapshot(&handle.snapshot());
    let tokens: serde_json::Map<String, serde_json::Value> = handle
        .control()
        .pending()
        .into_iter()
        .filter(|p| !p.token.is_empty())
        .map(|p| (p.id, serde_json::Value::String(p.token)))
        .collect();
    if !tokens.is_empty() {
        let mut meta = rmcp::model::MetaObject::new();
        meta.0.insert(APPROVAL_TOKENS_META.into(), tokens.into());
        result.meta = Some(meta);
    }
    result
}

/// A result as a JSON object (a task's payload carries it so).
pub fn as_object(result: &CallToolResult) -> JsonObject {
    match serde_json::to_value(result) {
        Ok(serde_json::Value::Object(map)) => map,
        _ => JsonObject::new(),
    }
}
