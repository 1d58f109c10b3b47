//! [`RunHandle`]: one admitted run, however the caller came in.
//!
//! A direct call awaits it, an MCP task and a background run keep it in
//! [`KeptRuns`](super::KeptRuns) and answer with snapshots of it. So progress,
//! cancellation and the outcome live here once, and every path reads them the same way.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use schemars::JsonSchema;
use serde::Serialize;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::error::ToolError;
use crate::run::RunOutput;
use crate::run::control::RunControl;

use super::pending::PendingApproval;

/// Progress messages kept per run (the latest ones).
pub const PROGRESS_KEPT: usize = 50;

/// How an admitted run ended.
#[derive(Debug)]
pub enum Ended {
    /// Codex ran; its output says how it went (`ok`, `timed_out`, `cancelled`, `error`).
    Ran(Box<RunOutput>),
    /// Codex never ran: cancelled while queued, the directory changed, or it could not start.
    NotRun(ToolError),
}

/// Where a run is in its life.
#[derive(Debug, Clone)]
pub enum Phase {
    /// Waiting for a run slot.
    Queued,
    /// Codex is running.
    Running,
    /// Over.
    Ended(Arc<Ended>),
}

/// What the handle publishes on every change: the phase and how many progress messages so far.
#[derive(Debug, Clone)]
pub struct Status {
    /// Where the run is.
    pub phase: Phase,
    /// Progress messages published so far (a sequence number, not a count kept).
    pub progress_seq: u64,
}

/// Where a run stands, as callers read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Codex is working (or the run waits for a slot).
    Working,
    /// Codex finished its turn (`result.ok` is true).
    Completed,
    /// The run ended without a completed turn (see `result.error` or `error`).
    Failed,
    /// Cancelled by the caller or the server.
    Cancelled,
    /// The server restarted or died while it ran: it will never finish (see `error`).
    Lost,
}

/// What `get_codex_run` and `cancel_codex_run` return.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct RunSnapshot {
    /// The run's id.
    pub run_id: String,
    /// Where it stands.
    pub status: RunStatus,
    /// Milliseconds since the run started.
    pub elapsed_ms: u64,
    /// Start time, seconds since the Unix epoch.
    pub started_at: u64,
    /// True while the run waits for a slot (Codex not started yet); absent otherwise.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub queued: bool,
    /// The latest progress messages, oldest first.
    pub progress: Vec<String>,
    /// Why the run could not run at all (cancelled while queued, Codex not startable).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The full result, once finished: the same as a direct `run_codex_prompt` call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<RunOutput>,
    /// Approval requests waiting for a person now (app-server backend); absent when none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    // Declared as objects: the full shape would double the pinned tools/list.
    #[schemars(with = "Vec<serde_json::Map<String, serde_json::Value>>")]
    pub pending_approvals: Vec<PendingApproval>,
}

#[derive(Debug)]
struct Shared {
    id: String,
    cancel: CancellationToken,
    cancel_requested: AtomicBool,
    status: watch::Sender<Status>,
    progress: Mutex<VecDeque<String>>,
    started: Instant,
    started_at: u64,
    created_at: String,
    updated_at: Mutex<String>,
    ended_at: Mutex<Option<Instant>>,
    control: Arc<RunControl>,
}

/// One admitted run. Cheap to clone; clones see the same run.
#[derive(Debug, Clone)]
pub struct RunHandle {
    shared: Arc<Shared>,
}

/// The run's side of a handle: what the run's driver publishes.
#[derive(Debug)]
pub(crate) struct Publisher {
    shared: Arc<Shared>,
}

/// A new handle (phase `Queued`) and its publisher; `cancel` stops the run.
pub(crate) fn channel(cancel: CancellationToken) -> (RunHandle, Publisher) {
    let created_at = rmcp::task_manager::current_timestamp();
    let (status, _) = watch::channel(Status {
        phase: Phase::Queued,
        progress_seq: 0,
    });
    let shared = Arc::new(Shared {
        id: uuid::Uuid::new_v4().to_string(),
        cancel,
        cancel_requested: AtomicBool::new(false),
        status,
        progress: Mutex::default(),
        started: Instant::now(),
        started_at: SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        updated_at: Mutex::new(created_at.clone()),
        created_at,
        ended_at: Mutex::new(None),
        control: Arc::default(),
    });
    (
        RunHandle {
            shared: shared.clone(),
        },
        Publisher { shared },
    )
}

impl Publisher {
    fn touch(&self) {
        if let Ok(mut at) = self.shared.updated_at.lock() {
            *at = rmcp::task_manager::current_timestamp();
        }
    }

    /// Codex got a slot and starts.
    pub(crate) fn running(&self) {
        self.shared.status.send_modify(|s| s.phase = Phase::Running);
        self.touch();
    }

    /// One progress line.
    pub(crate) fn progress(&self, message: String) {
        if let Ok(mut p) = self.shared.progress.lock() {
            if p.len() == PROGRESS_KEPT {
                p.pop_front();
            }
            p.push_back(message);
        }
        self.shared.status.send_modify(|s| s.progress_seq += 1);
        self.touch();
    }

    /// The run is over.
    pub(crate) fn ended(self, ended: Ended) -> Arc<Ended> {
        let ended = Arc::new(ended);
        if let Ok(mut at) = self.shared.ended_at.lock() {
            *at = Some(Instant::now());
        }
        self.touch();
        let e = ended.clone();
        self.shared
            .status
            .send_modify(|s| s.phase = Phase::Ended(e));
        ended
    }

    /// The run's id, for logs.
    pub(crate) fn id(&self) -> &str {
        &self.shared.id
    }
}

impl RunHandle {
    /// The run's id (`run_id` of background runs, `taskId` of tasks).
    pub fn id(&self) -> &str {
        &self.shared.id
    }

    /// Approvals waiting for a person, and steering (app-server backend).
    pub fn control(&self) -> &Arc<RunControl> {
        &self.shared.control
    }

    /// Stop the run: its whole process tree is killed; partial output is kept.
    pub fn cancel(&self) {
        self.shared.cancel_requested.store(true, Ordering::Relaxed);
        self.shared.cancel.cancel();
    }

    /// Whether someone asked this run to stop.
    pub fn cancel_requested(&self) -> bool {
        self.shared.cancel_requested.load(Ordering::Relaxed)
    }

    /// Watch the run's phase and progress.
    pub fn subscribe(&self) -> watch::Receiver<Status> {
        self.shared.status.subscribe()
    }

    /// The outcome, if the run has ended.
    pub fn ended(&self) -> Option<Arc<Ended>> {
        match &self.shared.status.borrow().phase {
            Phase::Ended(e) => Some(e.clone()),
            _ => None,
        }
    }

    /// When it ended.
    pub fn ended_at(&self) -> Option<Instant> {
        self.shared.ended_at.lock().ok().and_then(|at| *at)
    }

    /// Wait for the end.
    pub async fn outcome(&self) -> Arc<Ended> {
        let mut rx = self.subscribe();
        loop {
            if let Phase::Ended(e) = &rx.borrow_and_update().phase {
                return e.clone();
            }
            if rx.changed().await.is_err() {
                // The driver is gone without a word: only possible if its task was aborted.
                return Arc::new(Ended::NotRun(ToolError::CancelledInQueue));
            }
        }
    }

    /// Wait until the run has left the queue (Codex got a slot, or the run ended).
    pub async fn started(&self) {
        let mut rx = self.subscribe();
        while matches!(rx.borrow_and_update().phase, Phase::Queued) {
            if rx.changed().await.is_err() {
                return;
            }
        }
    }

    /// Wait up to `wait` for the end, or until `stop` fires; `None` while still going.
    pub async fn outcome_within(
        &self,
        wait: Duration,
        stop: &CancellationToken,
    ) -> Option<Arc<Ended>> {
        tokio::select! {
            ended = tokio::time::timeout(wait, self.outcome()) => ended.ok(),
            () = stop.cancelled() => self.ended(),
        }
    }

    /// Progress messages after the `seen`th one (at most the kept ones), and the new count.
    pub fn progress_since(&self, seen: u64) -> (Vec<String>, u64) {
        let seq = self.shared.status.borrow().progress_seq;
        let kept = self
            .shared
            .progress
            .lock()
            .map(|p| p.iter().cloned().collect::<Vec<_>>())
            .unwrap_or_default();
        let new = usize::try_from(seq.saturating_sub(seen)).unwrap_or(usize::MAX);
        let skip = kept.len().saturating_sub(new);
        (kept.into_iter().skip(skip).collect(), seq)
    }

    /// RFC 3339 time the run was admitted.
    pub fn created_at(&self) -> &str {
        &self.shared.created_at
    }

    /// RFC 3339 time of its last change.
    pub fn updated_at(&self) -> String {
        self.shared
            .updated_at
            .lock()
            .map(|at| at.clone())
            .unwrap_or_default()
    }

    /// What `get_codex_run` shows.
    pub fn snapshot(&self) -> RunSnapshot {
        let (status, error, result) = match self.ended().as_deref() {
            None => (RunStatus::Working, None, None),
            Some(Ended::NotRun(ToolError::CancelledInQueue)) => (
                RunStatus::Cancelled,
                Some(ToolError::CancelledInQueue.to_string()),
                None,
            ),
            Some(Ended::NotRun(e)) => (RunStatus::Failed, Some(e.to_string()), None),
            Some(Ended::Ran(out)) => {
                let status = if out.ok {
                    RunStatus::Completed
                } else if out.cancelled || self.cancel_requested() {
                    RunStatus::Cancelled
                } else {
                    RunStatus::Failed
                };
                (status, None, Some((**out).clone()))
            }
        };
        RunSnapshot {
            run_id: self.id().to_owned(),
            status,
            elapsed_ms: u64::try_from(self.shared.started.elapsed().as_millis())
                .unwrap_or(u64::MAX),
            started_at: self.shared.started_at,
            queued: matches!(self.shared.status.borrow().phase, Phase::Queued),
            progress: self
                .shared
                .progress
                .lock()
                .map(|p| p.iter().cloned().collect())
                .unwrap_or_default(),
            error,
            result,
            pending_approvals: {
                let timeout = self.shared.control.config().approval_timeout;
                self.shared
                    .control
                    .pending()
                    .iter()
                    .map(|p| PendingApproval::of(p, timeout))
                    .collect()
            },
        }
    }
}

#[cfg(test)]
#[path = "handle_tests.rs"]
mod tests;
