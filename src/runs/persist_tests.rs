#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use super::*;
use crate::state::{Instance, Location, SqliteStore, StateStore};

fn row(state: RunState, snapshot: Option<serde_json::Value>) -> RunRow {
    let ended = state.is_final().then_some(9_000);
    RunRow {
        run_id: "r1".into(),
        owner: "token:alice".into(),
        quota_key: "token:alice".into(),
        instance: "i1".into(),
        state,
        created_ms: 1_000,
        updated_ms: 1_000,
        ended_ms: ended,
        expires_ms: ended.map(|e| e + 60_000),
        snapshot,
    }
}

/// Every row state reads as the status a caller expects; a lost run is never working.
#[test]
fn a_rows_state_decides_what_get_codex_run_shows() {
    let done = serde_json::json!({
        "run_id": "r1", "status": "completed", "elapsed_ms": 8_000, "started_at": 1,
        "progress": ["p"], "result": null,
    });
    // (state, stored snapshot, status, error, queued, elapsed)
    let cases = [
        (
            RunState::Queued,
            None,
            RunStatus::Working,
            None,
            true,
            4_000,
        ),
        (
            RunState::Running,
            None,
            RunStatus::Working,
            None,
            false,
            4_000,
        ),
        (
            RunState::Lost,
            None,
            RunStatus::Lost,
            Some(LOST_MESSAGE),
            false,
            8_000,
        ),
        (
            RunState::Completed,
            Some(done.clone()),
            RunStatus::Completed,
            None,
            false,
            8_000,
        ),
        (
            RunState::Failed,
            None,
            RunStatus::Failed,
            None,
            false,
            8_000,
        ),
        (
            RunState::Cancelled,
            None,
            RunStatus::Cancelled,
            None,
            false,
            8_000,
        ),
    ];
    for (state, snapshot, status, error, queued, elapsed) in cases {
        let got = snapshot_of(&row(state, snapshot), 5_000);
        assert_eq!(got.status, status, "{state:?}");
        assert_eq!(got.error.as_deref(), error, "{state:?}");
        assert_eq!(got.queued, queued, "{state:?}");
        assert_eq!(got.elapsed_ms, elapsed, "{state:?}");
        assert_eq!(got.run_id, "r1");
    }
    let completed = snapshot_of(&row(RunState::Completed, Some(done)), 0);
    assert_eq!(completed.progress, ["p"]);
}

#[test]
fn every_status_has_its_state() {
    let cases = [
        (RunStatus::Working, RunState::Running),
        (RunStatus::Completed, RunState::Completed),
        (RunStatus::Failed, RunState::Failed),
        (RunStatus::Cancelled, RunState::Cancelled),
        (RunStatus::Lost, RunState::Lost),
    ];
    for (status, state) in cases {
        assert_eq!(state_of(status), state);
    }
}

async fn persist() -> (Persist, Arc<dyn StateStore>) {
    let store: Arc<dyn StateStore> = Arc::new(SqliteStore::open_in_memory().unwrap());
    let instance = Instance::start(
        store.clone(),
        &Location::Memory,
        None,
        Duration::from_secs(60),
        None,
        tokio_util::sync::CancellationToken::new(),
    )
    .await
    .unwrap();
    let lasting = Lasting {
        store: store.clone(),
        instance: Arc::new(instance),
    };
    (Persist::new(lasting, Duration::from_secs(60)), store)
}

/// Rows land in the order sent, the final one with its expiry; only the owner reads it.
#[tokio::test]
async fn a_runs_rows_land_in_order_and_only_its_owner_reads_them() {
    let (persist, store) = persist().await;
    let tracker = TaskTracker::new();
    let writer = persist.writer(&tracker, "r1", "token:alice", "token:alice");
    writer.send(RunState::Queued, None);
    writer.send(RunState::Running, None);
    let (handle, publisher) = super::super::handle::channel(Default::default());
    drop(handle.clone());
    publisher.ended(super::super::Ended::NotRun(
        crate::error::ToolError::CancelledInQueue,
    ));
    writer.send(RunState::Cancelled, Some(&handle.snapshot()));
    drop(writer);
    tracker.close();
    tracker.wait().await;

    let row = store.run("r1", 0).await.unwrap().unwrap();
    assert_eq!(row.state, RunState::Cancelled);
    let ended = row.ended_ms.unwrap();
    assert_eq!(row.expires_ms, Some(ended + 60_000));
    let stored = persist.stored("r1", "token:alice").await.unwrap();
    assert_eq!(stored.snapshot.status, RunStatus::Cancelled);
    assert!(persist.stored("r1", "token:mallory").await.is_none());
    assert!(persist.stored("nope", "token:alice").await.is_none());

    persist.expire(vec!["r1".into()]).await;
    assert!(persist.stored("r1", "token:alice").await.is_none());
}
