//! MCP tasks (SEP-2663 as rmcp 3.11 speaks it, plus `tasks/result` of 2025-11-25): a
//! task-capable client's `tools/call` is answered at once with a task that keeps the
//! run's handle; `tasks/get` shows its progress and, once it ended, the direct call's
//! result; `tasks/cancel` kills its process tree.

use std::time::Duration;

use rmcp::model::{
    CallToolResponse, CreateTaskResult, DetailedTask, ErrorData, Task, TaskPayload, TaskStatus,
};

use super::results;
use crate::runs::{KeptRuns, RunHandle};

/// How often a task-capable client is asked to poll `tasks/get`.
pub const TASK_POLL_INTERVAL_MS: u64 = 2_000;

/// Longest a `tasks/result` waits: a run ends by `TWOBOT_MAX_TIMEOUT_SEC` (at most 7
/// days); the client may cancel sooner.
pub const RESULT_WAIT: Duration = Duration::from_secs(7 * 24 * 3600 + 60);

/// The answer to the `tools/call` that started `handle` as a task.
pub fn created(kept: &KeptRuns, handle: &RunHandle) -> CallToolResponse {
    CallToolResponse::Task(CreateTaskResult::new(task_of(kept, handle).task))
}

/// A task as `tasks/get` shows it.
pub fn task_of(kept: &KeptRuns, handle: &RunHandle) -> DetailedTask {
    let snapshot = handle.snapshot();
    let mut task = Task::new(
        snapshot.run_id.clone(),
        TaskStatus::Working,
        handle.created_at().to_owned(),
        handle.updated_at(),
    )
    .with_ttl_ms(u64::try_from(kept.config().ttl.as_millis()).unwrap_or(u64::MAX))
    .with_poll_interval_ms(TASK_POLL_INTERVAL_MS);
    let payload = match handle.ended() {
        None if !snapshot.pending_approvals.is_empty() => {
            task = task.with_status_message(format!(
                "waiting for a person to approve {} request(s); declined after {} s without an answer",
                snapshot.pending_approvals.len(),
                snapshot
                    .pending_approvals
                    .iter()
                    .map(|p| p.seconds_left)
                    .min()
                    .unwrap_or(0)
            ));
            TaskPayload::Working
        }
        None => {
            task = task.with_status_message(
                snapshot
                    .progress
                    .last()
                    .cloned()
                    .unwrap_or_else(|| "Codex is starting".to_owned()),
            );
            TaskPayload::Working
        }
        Some(_) if snapshot.status == crate::runs::RunStatus::Cancelled => {
            task = task.with_status_message("cancelled: Codex and its children were killed");
            TaskPayload::Cancelled
        }
        // A finished call, failed or not, is a completed task whose result says so
        // (`isError`), exactly as the direct call would have answered.
        Some(ended) => {
            let result = results::ended(&ended);
            task = task.with_status_message(if result.is_error == Some(true) {
                "finished with an error"
            } else {
                "completed"
            });
            TaskPayload::Completed {
                result: results::as_object(&result),
            }
        }
    };
    DetailedTask::new(task, payload)
}

/// `tasks/result`: the direct call's result once the task ended.
pub fn result_of(kept: &KeptRuns, handle: &RunHandle) -> Result<serde_json::Value, ErrorData> {
    match task_of(kept, handle).payload {
        TaskPayload::Completed { result } => Ok(serde_json::Value::Object(result)),
        TaskPayload::Cancelled => Err(ErrorData::invalid_request(
            format!(
                "task {} was cancelled; Codex and its children were killed",
                handle.id()
            ),
            None,
        )),
        _ => Err(ErrorData::invalid_request(
            format!("task {} has not finished", handle.id()),
            None,
        )),
    }
}
