//! Two instances of one service deciding on the same record at the same moment: two
//! pools on one PostgreSQL database, or two connections on one `state.db`. A code is
//! exchanged once and a refresh token rotated once, whoever asks first; the loser sees a
//! replay (and revokes what it issued, as a replay must). Helpers in `oauth_state.rs`.

use std::sync::Arc;

use twobot::state::StateStore;
use twobot::state::oauth::{Exchange, Rotation};

use super::oauth_state::{NOW, code, dcr, grant, postgres_store, refresh};
use crate::common::postgres;

/// `a` and `b` each run `op` at the same moment, `rounds` times (round number given);
/// every round's two outcomes.
async fn race<T, F, Fut>(
    a: Arc<dyn StateStore>,
    b: Arc<dyn StateStore>,
    rounds: usize,
    op: F,
) -> Vec<[T; 2]>
where
    T: Send + 'static,
    F: Fn(Arc<dyn StateStore>, usize, &'static str) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = T> + Send + 'static,
{
    let mut all = Vec::new();
    for round in 0..rounds {
        let go = Arc::new(tokio::sync::Barrier::new(2));
        let start = |s: Arc<dyn StateStore>, who: &'static str| {
            let (go, op) = (go.clone(), op.clone());
            tokio::spawn(async move {
                go.wait().await;
                op(s, round, who).await
            })
        };
        let (x, y) = (start(a.clone(), "a"), start(b.clone(), "b"));
        all.push([x.await.unwrap(), y.await.unwrap()]);
    }
    all
}

/// Two stores on one database exchanging one code at the same moment, 20 times over:
/// each time exactly one is issued a grant, the other sees the code used (and, as a
/// replay, revokes what the first was issued).
async fn one_code_exchanged_at_once_twice_issues_exactly_one_grant(
    a: Arc<dyn StateStore>,
    b: Arc<dyn StateStore>,
) {
    assert!(a.insert_client(&dcr("c1")).await.unwrap());
    for round in 0..20 {
        a.insert_code(&code(&format!("race{round}"), "c1", NOW + 60))
            .await
            .unwrap();
    }
    let rounds = race(a, b, 20, |s, round, who| async move {
        let gid = format!("g-{who}-{round}");
        s.exchange_code(
            &format!("race{round}"),
            NOW,
            &gid,
            &refresh(&format!("r-{gid}"), NOW),
        )
        .await
        .unwrap()
    })
    .await;
    for (round, outcomes) in rounds.iter().enumerate() {
        let issued = outcomes
            .iter()
            .filter(|o| matches!(o, Exchange::Issued(_)))
            .count();
        let reused = outcomes.iter().filter(|o| **o == Exchange::Reused).count();
        assert_eq!((issued, reused), (1, 1), "round {round}: {outcomes:?}");
    }
}

/// Two stores on one database rotating one refresh token at the same moment: exactly
/// one rotation, the other is a replay (which ends the grant).
async fn one_refresh_token_rotated_at_once_twice_rotates_exactly_once(
    a: Arc<dyn StateStore>,
    b: Arc<dyn StateStore>,
) {
    assert!(a.insert_client(&dcr("c1")).await.unwrap());
    for round in 0..20 {
        grant(a.as_ref(), "c1", &format!("g{round}"), &format!("r{round}")).await;
    }
    let rounds = race(a, b, 20, |s, round, who| async move {
        let next = refresh(&format!("next-{who}-{round}"), NOW + 1);
        s.rotate_refresh(&format!("r{round}"), "c1", NOW + 1, &next)
            .await
            .unwrap()
    })
    .await;
    for (round, outcomes) in rounds.iter().enumerate() {
        let rotated = outcomes
            .iter()
            .filter(|o| matches!(o, Rotation::Rotated(_)))
            .count();
        let reused = outcomes.iter().filter(|o| **o == Rotation::Reused).count();
        assert_eq!((rotated, reused), (1, 1), "round {round}: {outcomes:?}");
    }
}

/// Two instances: two pools on one PostgreSQL database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_exchanging_one_code_at_once_issue_exactly_one_grant_on_postgres() {
    let db = postgres::database();
    let (a, b) = (postgres_store(&db).await, postgres_store(&db).await);
    one_code_exchanged_at_once_twice_issues_exactly_one_grant(a, b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_rotating_one_refresh_token_at_once_rotate_it_once_on_postgres() {
    let db = postgres::database();
    let (a, b) = (postgres_store(&db).await, postgres_store(&db).await);
    one_refresh_token_rotated_at_once_twice_rotates_exactly_once(a, b).await;
}

/// Two processes (two connections) on one `state.db`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_connections_exchanging_one_code_or_rotating_one_token_at_once_win_once_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let open = || -> Arc<dyn StateStore> {
        Arc::new(twobot::state::SqliteStore::open(dir.path()).unwrap())
    };
    one_code_exchanged_at_once_twice_issues_exactly_one_grant(open(), open()).await;
    let dir = tempfile::tempdir().unwrap();
    let open = || -> Arc<dyn StateStore> {
        Arc::new(twobot::state::SqliteStore::open(dir.path()).unwrap())
    };
    one_refresh_token_rotated_at_once_twice_rotates_exactly_once(open(), open()).await;
}
