//! MCP tasks (SEP-2663 as rmcp 3.11 speaks it, plus `tasks/result` of 2025-11-25): a
//! task-capable client's `tools/call` is answered at once with a task that keeps the
//! run's handle; `tasks/get` shows its progress and, once it ended, the direct call's
//! result; `tasks/cancel` kills its process tree.

use std::time::Duration;

use rmcp::model::{
    CallToolResponse, CreateTaskResult, DetailedTask, ErrorData, Task, TaskPayload, TaskStatus,
};

use super::results;
use crate::runs::{Ended, KeptRuns, LOST_MESSAGE, RunHandle, RunStatus, Stored};

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
        Some(_) if snapshot.status == RunStatus::Cancelled => {
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

/// A task only the store knows (this process restarted, or another one ran it): what
/// its row says, read the same way as a live one. A lost task failed: its process died.
pub fn stored_task_of(kept: &KeptRuns, stored: &Stored) -> DetailedTask {
    let shown = &stored.snapshot;
    let mut task = Task::new(
        shown.run_id.clone(),
        TaskStatus::Working,
        rfc3339(stored.created_ms),
        rfc3339(stored.updated_ms),
    )
    .with_ttl_ms(u64::try_from(kept.config().ttl.as_millis()).unwrap_or(u64::MAX))
    .with_poll_interval_ms(TASK_POLL_INTERVAL_MS);
    let payload = match shown.status {
        RunStatus::Working => {
            task = task.with_status_message("running in another 2Bot process on this state store");
            TaskPayload::Working
        }
        RunStatus::Cancelled => {
            task = task.with_status_message("cancelled: Codex and its children were killed");
            TaskPayload::Cancelled
        }
        RunStatus::Lost => {
            task = task.with_status_message(LOST_MESSAGE);
            let error = ErrorData::internal_error(LOST_MESSAGE, None);
            TaskPayload::Failed {
                error: match serde_json::to_value(error) {
                    Ok(serde_json::Value::Object(map)) => map,
                    _ => serde_json::Map::new(),
                },
            }
        }
        RunStatus::Completed | RunStatus::Failed => {
            let result = match (&shown.result, &shown.error) {
                (Some(out), _) => results::ended(&Ended::Ran(Box::new(out.clone()))),
                (None, error) => results::error_text(
                    error
                        .clone()
                        .unwrap_or_else(|| "The run ended without a result.".to_owned()),
                ),
            };
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
pub fn result_of(task: DetailedTask) -> Result<serde_json::Value, ErrorData> {
    let id = task.task.task_id;
    match task.payload {
        TaskPayload::Completed { result } => Ok(serde_json::Value::Object(result)),
        TaskPayload::Cancelled => Err(ErrorData::invalid_request(
            format!("task {id} was cancelled; Codex and its children were killed"),
            None,
        )),
        TaskPayload::Failed { .. } => Err(ErrorData::invalid_request(
            format!("task {id}: {LOST_MESSAGE}"),
            None,
        )),
        _ => Err(ErrorData::invalid_request(
            format!("task {id} has not finished"),
            None,
        )),
    }
}

/// `ms` since the Unix epoch as RFC 3339 UTC (what tasks' times are), e.g.
/// `2026-12-05T05:10:40.000Z`. Days to civil dates after Howard Hinnant's algorithm.
pub fn rfc3339(ms: i64) -> String {
    let (secs, millis) = (ms.div_euclid(1000), ms.rem_euclid(1000));
    let (days, day_secs) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        day_secs / 3_600,
        day_secs % 3_600 / 60,
        day_secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_as_rfc_3339_utc() {
        let cases = [
            (0, "1970-01-01T00:00:00.000Z"),
            (951_782_400_000, "2000-02-29T00:00:00.000Z"),
            (1_764_911_440_123, "2025-12-05T05:10:40.123Z"),
            (4_102_444_799_999, "2099-12-31T23:59:59.999Z"),
            (-1, "1969-12-31T23:59:59.999Z"),
        ];
        for (ms, want) in cases {
            assert_eq!(rfc3339(ms), want, "{ms}");
        }
    }
}
