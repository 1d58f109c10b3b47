//! Kept runs in the state store, so a restart loses nothing finished.
//!
//! The in-memory [`RunHandle`](super::RunHandle) stays the fast path for a live run; the
//! store gets a row at admission (`queued`), at start (`running`) and at the end (the
//! final snapshot, kept `TWOBOT_TASK_TTL_SEC`). Each run's rows go through its own writer
//! task, in order, so a slow or failing database never holds a run up: a failed write is
//! a warning, never the run's failure. When a run id is not in memory (this process
//! restarted, or another one ran it), [`Persist::stored`] answers from the row, and a run
//! whose process died reads `lost`.

use std::time::Duration;

use serde::Deserialize;
use tokio_util::task::TaskTracker;

use super::handle::{RunSnapshot, RunStatus};
use crate::run::RunOutput;
use crate::state::{Lasting, RunRow, RunState, now_ms};

/// What a lost run says instead of a result.
pub const LOST_MESSAGE: &str =
    "lost: the server restarted or died while it ran; it will not finish (run it again)";

/// Kept runs' rows: where they are written and how long finished ones last.
#[derive(Debug, Clone)]
pub struct Persist {
    lasting: Lasting,
    ttl_ms: i64,
}

/// A kept run read back from the store.
#[derive(Debug, Clone)]
pub struct Stored {
    /// What `get_codex_run` shows for it.
    pub snapshot: RunSnapshot,
    /// Where its row stands.
    pub state: RunState,
    /// When it was admitted, ms since the Unix epoch.
    pub created_ms: i64,
    /// Its last change, ms since the Unix epoch.
    pub updated_ms: i64,
    /// The instance that runs (or ran) it.
    pub instance: String,
}

/// One run's writer: rows sent here reach the store in order, off the run's path.
#[derive(Debug)]
pub(crate) struct Writer {
    tx: tokio::sync::mpsc::UnboundedSender<RunRow>,
    base: RunRow,
    ttl_ms: i64,
}

impl Persist {
    /// Rows in `lasting`, finished ones kept `ttl`.
    pub fn new(lasting: Lasting, ttl: Duration) -> Self {
        Self {
            lasting,
            ttl_ms: i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX),
        }
    }

    /// The store and this instance.
    pub fn lasting(&self) -> &Lasting {
        &self.lasting
    }

    /// A writer for run `run_id` of `owner` (counted against `quota_key`); its task is
    /// on `tracker`, so shutdown waits for the last row.
    pub(crate) fn writer(
        &self,
        tracker: &TaskTracker,
        run_id: &str,
        owner: &str,
        quota_key: &str,
    ) -> Writer {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<RunRow>();
        let store = self.lasting.store.clone();
        tracker.spawn(async move {
            while let Some(row) = rx.recv().await {
                if let Err(e) = store.upsert_run(&row).await {
                    tracing::warn!(error = %e, run_id = %row.run_id, state = row.state.as_str(), "cannot save the run's record; it is served from memory only");
                }
            }
        });
        let now = now_ms();
        Writer {
            tx,
            base: RunRow {
                run_id: run_id.to_owned(),
                owner: owner.to_owned(),
                quota_key: quota_key.to_owned(),
                instance: self.lasting.instance.id().to_owned(),
                state: RunState::Queued,
                created_ms: now,
                updated_ms: now,
                ended_ms: None,
                expires_ms: None,
                snapshot: None,
            },
            ttl_ms: self.ttl_ms,
        }
    }

    /// Forget runs evicted from memory to make room, so the store does not bring them back.
    pub async fn expire(&self, run_ids: Vec<String>) {
        let store = &self.lasting.store;
        for id in run_ids {
            let now = now_ms();
            let result = match store.run(&id, now).await {
                Ok(Some(row)) => {
                    store
                        .upsert_run(&RunRow {
                            expires_ms: Some(now),
                            ..row
                        })
                        .await
                }
                Ok(None) => Ok(()),
                Err(e) => Err(e),
            };
            if let Err(e) = result {
                tracing::warn!(error = %e, run_id = %id, "cannot expire an evicted run's record");
            }
        }
    }

    /// Run `run_id` from the store, if `owner` owns it (anyone else is told nothing: the
    /// caller answers "no such run", exactly as for an unknown id). A store that cannot
    /// answer is logged and treated as not knowing the run.
    pub async fn stored(&self, run_id: &str, owner: &str) -> Option<Stored> {
        let row = match self.lasting.store.run(run_id, now_ms()).await {
            Ok(row) => row?,
            Err(e) => {
                tracing::warn!(error = %e, %run_id, "the state store did not answer for a run");
                return None;
            }
        };
        (row.owner == owner).then(|| Stored {
            snapshot: snapshot_of(&row, now_ms()),
            state: row.state,
            created_ms: row.created_ms,
            updated_ms: row.updated_ms,
            instance: row.instance,
        })
    }
}

impl Writer {
    /// Record that the run now stands at `state`; a final state carries its snapshot
    /// and starts its time to live.
    pub(crate) fn send(&self, state: RunState, snapshot: Option<&RunSnapshot>) {
        let now = now_ms();
        let ended = state.is_final().then_some(now);
        let row = RunRow {
            state,
            updated_ms: now,
            ended_ms: ended,
            expires_ms: ended.map(|e| e.saturating_add(self.ttl_ms)),
            snapshot: snapshot.and_then(|s| serde_json::to_value(s).ok()),
            ..self.base.clone()
        };
        // The writer task ends only after every sender is gone: a send cannot fail here.
        let _ = self.tx.send(row);
    }
}

/// The store's name for a snapshot's status.
pub fn state_of(status: RunStatus) -> RunState {
    match status {
        RunStatus::Working => RunState::Running,
        RunStatus::Completed => RunState::Completed,
        RunStatus::Failed => RunState::Failed,
        RunStatus::Cancelled => RunState::Cancelled,
        RunStatus::Lost => RunState::Lost,
    }
}

/// The stored part of a [`RunSnapshot`] (pending approvals are never stored: a stored
/// run waits for nobody).
#[derive(Debug, Deserialize)]
struct StoredSnapshot {
    status: RunStatus,
    elapsed_ms: u64,
    started_at: u64,
    #[serde(default)]
    progress: Vec<String>,
    error: Option<String>,
    result: Option<RunOutput>,
}

/// What `get_codex_run` shows for `row` at `now_ms`: its final snapshot once it ended;
/// `lost` (never `working`) once its process died; else working, as far as the row knows.
pub fn snapshot_of(row: &RunRow, now_ms: i64) -> RunSnapshot {
    let ms = |from: i64, to: i64| u64::try_from(to.saturating_sub(from)).unwrap_or(0);
    let stored = row
        .snapshot
        .clone()
        .and_then(|v| serde_json::from_value::<StoredSnapshot>(v).ok());
    let mut snapshot = RunSnapshot {
        run_id: row.run_id.clone(),
        status: RunStatus::Working,
        elapsed_ms: ms(row.created_ms, row.ended_ms.unwrap_or(now_ms)),
        started_at: u64::try_from(row.created_ms / 1000).unwrap_or(0),
        queued: row.state == RunState::Queued,
        progress: Vec::new(),
        error: None,
        result: None,
        pending_approvals: Vec::new(),
    };
    if let Some(s) = stored {
        snapshot.status = s.status;
        snapshot.elapsed_ms = s.elapsed_ms;
        snapshot.started_at = s.started_at;
        snapshot.progress = s.progress;
        snapshot.error = s.error;
        snapshot.result = s.result;
    }
    match row.state {
        RunState::Lost => {
            snapshot.status = RunStatus::Lost;
            snapshot.queued = false;
            snapshot.error = Some(LOST_MESSAGE.to_owned());
        }
        RunState::Queued | RunState::Running => snapshot.status = RunStatus::Working,
        RunState::Completed if row.snapshot.is_none() => snapshot.status = RunStatus::Completed,
        RunState::Failed if row.snapshot.is_none() => snapshot.status = RunStatus::Failed,
        RunState::Cancelled if row.snapshot.is_none() => snapshot.status = RunStatus::Cancelled,
        RunState::Completed | RunState::Failed | RunState::Cancelled => {}
    }
    snapshot
}

#[cfg(test)]
#[path = "persist_tests.rs"]
mod tests;
