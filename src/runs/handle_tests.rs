//! Unit tests of a run handle: what readers of its progress see, that the outcome
//! reaches every waiter and the snapshot, and that cancel is remembered.

#![allow(clippy::unwrap_used, clippy::expect_used)]
use super::*;

#[tokio::test]
async fn progress_since_returns_only_what_the_reader_has_not_seen() {
    let (handle, publisher) = channel(CancellationToken::new());
    publisher.progress("a".into());
    publisher.progress("b".into());
    let (first, seen) = handle.progress_since(0);
    assert_eq!(first, ["a", "b"]);
    publisher.progress("c".into());
    let (next, seen) = handle.progress_since(seen);
    assert_eq!(next, ["c"]);
    assert_eq!(seen, 3);
    assert!(handle.progress_since(seen).0.is_empty());
}

#[tokio::test]
async fn a_reader_far_behind_gets_the_kept_messages_only() {
    let (handle, publisher) = channel(CancellationToken::new());
    for i in 0..(PROGRESS_KEPT + 10) {
        publisher.progress(format!("m{i}"));
    }
    let (got, _) = handle.progress_since(0);
    assert_eq!(got.len(), PROGRESS_KEPT);
    assert_eq!(got[0], "m10");
}

#[tokio::test]
async fn the_outcome_reaches_every_waiter_and_the_snapshot() {
    let (handle, publisher) = channel(CancellationToken::new());
    let waiter = {
        let h = handle.clone();
        tokio::spawn(async move { h.outcome().await })
    };
    assert!(
        handle
            .outcome_within(Duration::from_millis(10), &CancellationToken::new())
            .await
            .is_none()
    );
    assert_eq!(handle.snapshot().status, RunStatus::Working);
    publisher.ended(Ended::NotRun(ToolError::CancelledInQueue));
    assert!(matches!(
        *waiter.await.unwrap(),
        Ended::NotRun(ToolError::CancelledInQueue)
    ));
    assert_eq!(handle.snapshot().status, RunStatus::Cancelled);
    assert!(handle.ended_at().is_some());
}

#[tokio::test]
async fn cancel_fires_the_runs_token_and_is_remembered() {
    let token = CancellationToken::new();
    let (handle, _publisher) = channel(token.clone());
    assert!(!handle.cancel_requested());
    handle.cancel();
    assert!(token.is_cancelled());
    assert!(handle.cancel_requested());
}
