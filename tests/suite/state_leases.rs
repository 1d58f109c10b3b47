//! Run leases (a principal's admitted runs counted across instances) behave the same on
//! both backends: at most `limit` live leases per quota key, even when many instances
//! ask at once; a released, expired or reaped instance's lease stops counting; renewal
//! keeps a live instance's leases counting.

use std::sync::Arc;

use twobot::state::{LeaseRow, StateStore};

use super::state_conformance::{Backend, Postgres, Sqlite};

macro_rules! on_both {
    ($($behaviour:ident),* $(,)?) => {$(
        mod $behaviour {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn on_postgres() {
                super::$behaviour(&super::Postgres::new()).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn on_sqlite() {
                super::$behaviour(&super::Sqlite::new()).await;
            }
        }
    )*};
}

on_both!(
    a_key_gets_at_most_its_limit_of_leases_and_a_release_makes_room,
    many_instances_asking_at_once_never_exceed_the_limit,
    an_expired_or_reaped_instances_leases_stop_counting_and_renewed_ones_do_not,
);

fn lease(id: &str, key: &str, instance: &str, expires_ms: i64) -> LeaseRow {
    LeaseRow {
        lease_id: id.to_owned(),
        quota_key: key.to_owned(),
        instance: instance.to_owned(),
        expires_ms,
    }
}

async fn a_key_gets_at_most_its_limit_of_leases_and_a_release_makes_room(b: &dyn Backend) {
    let store = b.open().await.unwrap();
    let now = 1_000;
    assert!(
        store
            .acquire_lease(&lease("a1", "alice", "i1", 9_000), 2, now)
            .await
            .unwrap()
    );
    assert!(
        store
            .acquire_lease(&lease("a2", "alice", "i2", 9_000), 2, now)
            .await
            .unwrap()
    );
    assert!(
        !store
            .acquire_lease(&lease("a3", "alice", "i3", 9_000), 2, now)
            .await
            .unwrap()
    );
    // Another principal's share is its own.
    assert!(
        store
            .acquire_lease(&lease("b1", "bob", "i1", 9_000), 1, now)
            .await
            .unwrap()
    );
    assert_eq!(store.live_leases("alice", now).await.unwrap(), 2);
    store.release_lease("a1").await.unwrap();
    assert_eq!(store.live_leases("alice", now).await.unwrap(), 1);
    assert!(
        store
            .acquire_lease(&lease("a3", "alice", "i3", 9_000), 2, now)
            .await
            .unwrap()
    );
}

async fn many_instances_asking_at_once_never_exceed_the_limit(b: &dyn Backend) {
    // Separate stores (separate pools) stand for separate instances.
    let mut stores: Vec<Arc<dyn StateStore>> = Vec::new();
    for _ in 0..3 {
        stores.push(b.open().await.unwrap());
    }
    let mut asks = tokio::task::JoinSet::new();
    for i in 0..24 {
        let store = stores[i % stores.len()].clone();
        asks.spawn(async move {
            let row = lease(&format!("l{i}"), "alice", &format!("i{}", i % 3), 60_000);
            store.acquire_lease(&row, 5, 1_000).await.unwrap()
        });
    }
    let granted = asks.join_all().await.into_iter().filter(|g| *g).count();
    assert_eq!(granted, 5, "exactly the limit is granted under contention");
    assert_eq!(stores[0].live_leases("alice", 1_000).await.unwrap(), 5);
}

async fn an_expired_or_reaped_instances_leases_stop_counting_and_renewed_ones_do_not(
    b: &dyn Backend,
) {
    let store = b.open().await.unwrap();
    for (id, instance) in [("d1", "dead"), ("r1", "reaped"), ("l1", "live")] {
        let row = lease(id, "alice", instance, 5_000);
        assert!(store.acquire_lease(&row, 10, 1_000).await.unwrap());
    }
    // The live instance's heartbeat pushes its lease on; the others stop beating.
    assert_eq!(store.renew_leases("live", 30_000, 4_000).await.unwrap(), 1);
    store.drop_leases("reaped").await.unwrap();
    assert_eq!(store.live_leases("alice", 4_000).await.unwrap(), 2);
    assert_eq!(
        store.live_leases("alice", 6_000).await.unwrap(),
        1,
        "expired"
    );
    // A later renewal also forgets the expired rows for good.
    store.renew_leases("live", 40_000, 6_000).await.unwrap();
    assert!(
        !store
            .acquire_lease(&lease("x", "alice", "i", 50_000), 1, 6_000)
            .await
            .unwrap()
    );
    assert!(
        store
            .acquire_lease(&lease("y", "alice", "i", 50_000), 2, 6_000)
            .await
            .unwrap()
    );
}
