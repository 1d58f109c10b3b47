//! Unit tests of the kept-runs store: bounds, ownership, expiry and eviction order
//! (apart from store.rs so that file reads as the code).

#![allow(clippy::unwrap_used, clippy::expect_used)]
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::*;
use crate::runs::handle::{Ended, channel};

fn store(max: usize) -> Arc<KeptRuns> {
    Arc::new(KeptRuns::new(KeptConfig {
        max_runs: max,
        ttl: Duration::from_millis(50),
        ..KeptConfig::default()
    }))
}

#[tokio::test]
async fn a_full_store_refuses_before_anything_runs_and_a_dropped_reservation_frees_its_place() {
    let s = store(1);
    let (a, b) = (QuotaKey("a".into()), QuotaKey("b".into()));
    let r = s.reserve("a", &a).unwrap();
    assert_eq!(s.reserve("b", &b).unwrap_err(), KeptRefusal::Full(1));
    drop(r);
    assert!(s.reserve("b", &b).is_ok());
}

#[tokio::test]
async fn only_the_owner_sees_a_run_and_a_finished_run_expires() {
    let s = store(4);
    let (handle, publisher) = channel(CancellationToken::new());
    s.reserve("a", &QuotaKey("a".into()))
        .unwrap()
        .keep(handle.clone());
    assert!(s.get(handle.id(), "a").is_ok());
    assert_eq!(
        s.get(handle.id(), "b").unwrap_err(),
        KeptError::NotFound(handle.id().to_owned())
    );
    publisher.ended(Ended::NotRun(crate::error::ToolError::CancelledInQueue));
    tokio::time::sleep(Duration::from_millis(80)).await;
    assert!(s.get(handle.id(), "a").is_err());
    assert!(s.is_empty());
}

#[test]
fn finished_runs_make_room_the_callers_own_first_and_running_runs_never() {
    let t0 = Instant::now();
    let at = |s: u64| Some(t0 + Duration::from_secs(s));
    let a = QuotaKey("a".into());
    let b = QuotaKey("b".into());
    let run = |id: &'static str, key: &'static QuotaKey, finished| Kept {
        id,
        quota_key: key,
        finished,
    };
    // Leaked for 'static keys in the table.
    let a: &'static QuotaKey = Box::leak(Box::new(a));
    let b: &'static QuotaKey = Box::leak(Box::new(b));
    type Want = Result<Vec<&'static str>, KeptRefusal>;
    type Case = (
        &'static str,
        Vec<Kept<'static>>,
        &'static QuotaKey,
        usize,
        usize,
        Want,
    );
    let table: Vec<Case> = vec![
        (
            "room: nothing evicted",
            vec![run("a1", a, None)],
            a,
            4,
            2,
            Ok(vec![]),
        ),
        (
            "over its quota, the caller's oldest finished run goes",
            vec![
                run("a1", a, at(5)),
                run("a2", a, at(1)),
                run("b1", b, at(0)),
            ],
            a,
            10,
            2,
            Ok(vec!["a2"]),
        ),
        (
            "over its quota with only running runs: refused with the quota",
            vec![run("a1", a, None), run("a2", a, None), run("b1", b, at(0))],
            a,
            10,
            2,
            Err(KeptRefusal::PrincipalFull(2)),
        ),
        (
            "registry full: the caller's own finished run goes before anyone else's",
            vec![run("a1", a, at(9)), run("b1", b, at(1)), run("b2", b, None)],
            a,
            3,
            3,
            Ok(vec!["a1"]),
        ),
        (
            "registry full, caller has none finished: the oldest finished run goes",
            vec![run("a1", a, None), run("b1", b, at(7)), run("b2", b, at(3))],
            b,
            3,
            3,
            Ok(vec!["b2"]),
        ),
        (
            "registry full of another principal's finished runs: one goes, the newcomer is served",
            vec![run("a1", a, at(7)), run("a2", a, at(3))],
            b,
            2,
            2,
            Ok(vec!["a2"]),
        ),
        (
            "registry full of running runs: refused as full",
            vec![run("a1", a, None), run("b1", b, None)],
            b,
            2,
            2,
            Err(KeptRefusal::Full(2)),
        ),
    ];
    for (name, kept, caller, max, per, want) in table {
        assert_eq!(make_room(&kept, caller, max, per), want, "{name}");
    }
}
