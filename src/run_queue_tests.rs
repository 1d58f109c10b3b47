//! Unit tests of the async run queue: its hand-offs and cancellations (apart from
//! run_queue.rs so that file reads as the code; the scheduler's tables are beside it).

#![allow(clippy::unwrap_used, clippy::expect_used)]
use std::time::Duration;

use super::*;

fn key(name: &str) -> QuotaKey {
    QuotaKey(name.to_owned())
}

/// Limits without a per-principal slot cap (one principal may take every slot).
fn limits(running: usize, queued: usize, per: usize) -> QueueLimits {
    QueueLimits {
        running,
        queued,
        queued_per_principal: per,
        running_per_principal: running,
    }
}

#[tokio::test]
async fn beyond_running_plus_queued_calls_are_refused_as_busy_at_once() {
    let q = RunQueue::new(limits(1, 1, 1));
    let never = CancellationToken::new();
    let first = q.ticket(&key("a")).unwrap().slot(&never).await.unwrap();
    let second = q.ticket(&key("b")).unwrap();
    assert_eq!(
        q.ticket(&key("c")).unwrap_err(),
        QueueRefusal::Busy {
            running: 1,
            queued: 1
        }
    );
    let waiting =
        tokio::spawn(async move { second.slot(&CancellationToken::new()).await.is_some() });
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(!waiting.is_finished());
    drop(first);
    assert!(waiting.await.unwrap());
    assert_eq!(q.load(), (0, 0));
    assert!(q.ticket(&key("c")).is_ok());
}

#[tokio::test]
async fn a_queued_call_that_is_cancelled_or_dropped_gives_its_place_back() {
    let q = RunQueue::new(limits(1, 4, 4));
    let never = CancellationToken::new();
    let running = q.ticket(&key("a")).unwrap().slot(&never).await.unwrap();
    let cancel = CancellationToken::new();
    let cancelled = q.ticket(&key("b")).unwrap();
    let dropped = q.ticket(&key("c")).unwrap();
    let waiting = {
        let cancel = cancel.clone();
        tokio::spawn(async move { cancelled.slot(&cancel).await.is_some() })
    };
    let abandoned =
        tokio::spawn(async move { dropped.slot(&CancellationToken::new()).await.is_some() });
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(q.load(), (1, 2));
    cancel.cancel();
    abandoned.abort();
    assert!(!waiting.await.unwrap());
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(q.load(), (1, 0));
    drop(running);
    assert_eq!(q.load(), (0, 0));
    // A ticket dropped before it waited gives its slot back too.
    drop(q.ticket(&key("d")).unwrap());
    assert_eq!(q.load(), (0, 0));
}
