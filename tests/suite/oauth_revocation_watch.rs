//! `OAuthStore::watch_revocations` on each backend: a grant revoked or deleted through
//! another connection to the same database (another process's store: `2bot-mcp oauth
//! revoke`, another instance) is reported by the watch of this one. SQLite reports it at
//! the very first look after the revoking call returned; PostgreSQL once the `NOTIFY` of
//! the revoking transaction arrived, which these tests bound at [`NOTIFY_BOUND`]. Both
//! may also say "anything" where they cannot name the grant; neither may say "nothing".

use std::sync::Arc;
use std::time::{Duration, Instant};

use twobot::state::oauth::{Changes, RevocationWatch, Rotation};
use twobot::state::{OAuthStore, PostgresStore, SqliteStore, StateStore};

use crate::common::postgres;
use crate::suite::oauth_state::{NOW, dcr, grant, refresh};

/// How long a PostgreSQL notification may take to reach the listening instance.
pub const NOTIFY_BOUND: Duration = Duration::from_millis(500);

/// Two connections to one database: `this` (whose watch is asked) and `other`.
struct Pair {
    this: Arc<dyn StateStore>,
    other: Arc<dyn StateStore>,
    /// How long a change may take to be seen (zero: at the first look).
    bound: Duration,
    _keep: Box<dyn std::any::Any + Send>,
}

async fn on_sqlite() -> Pair {
    let dir = tempfile::tempdir().unwrap();
    let this = Arc::new(SqliteStore::open(dir.path()).unwrap());
    let other = Arc::new(SqliteStore::open(dir.path()).unwrap());
    Pair {
        this,
        other,
        bound: Duration::ZERO,
        _keep: Box::new(dir),
    }
}

async fn on_postgres() -> Pair {
    let db = postgres::database();
    let this = Arc::new(PostgresStore::connect(&db.url()).await.unwrap());
    let other = Arc::new(PostgresStore::connect(&db.url()).await.unwrap());
    Pair {
        this,
        other,
        bound: NOTIFY_BOUND,
        _keep: Box::new(db),
    }
}

/// Whatever the watch reports first, looking until `bound` has passed (at least once).
async fn first_report(watch: &dyn RevocationWatch, bound: Duration) -> Changes {
    let start = Instant::now();
    loop {
        let changes = watch.changes();
        if changes != Changes::Nothing || start.elapsed() >= bound {
            return changes;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Whether `changes` tells that `grant` may have ended.
fn tells_end_of(changes: &Changes, grant: &str) -> bool {
    match changes {
        Changes::Anything => true,
        Changes::Revoked(grants) => grants.iter().any(|g| g == grant),
        Changes::Nothing | Changes::Blind => false,
    }
}

/// Grants g1 and g2 of client c1 (refresh tokens rt1, rt2), g3 of client c2; the watch
/// opened and its start-up report taken.
async fn seeded(pair: &Pair) -> Arc<dyn RevocationWatch> {
    let s = &pair.other;
    for client in ["c1", "c2"] {
        assert!(s.insert_client(&dcr(client)).await.unwrap());
    }
    for (client, gid) in [("c1", "g1"), ("c1", "g2"), ("c2", "g3")] {
        grant(s.as_ref(), client, gid, &format!("rt-{gid}")).await;
    }
    let watch = pair.this.watch_revocations().await.unwrap();
    let _ = first_report(watch.as_ref(), pair.bound).await;
    assert_eq!(watch.changes(), Changes::Nothing, "quiet once started");
    watch
}

async fn each_revocation_through_another_connection_is_reported(pair: Pair) {
    let watch = seeded(&pair).await;
    let s = &pair.other;

    assert!(s.revoke_grant_of("g1", "c1", "test", NOW).await.unwrap());
    let seen = first_report(watch.as_ref(), pair.bound).await;
    assert!(tells_end_of(&seen, "g1"), "revoke_grant_of: {seen:?}");

    let next = refresh("rt2-next", NOW);
    assert!(matches!(
        s.rotate_refresh("rt-g2", "c1", NOW, &next).await.unwrap(),
        Rotation::Rotated(_)
    ));
    let _ = first_report(watch.as_ref(), pair.bound).await;
    let replay = refresh("rt2-replay", NOW);
    assert_eq!(
        s.rotate_refresh("rt-g2", "c1", NOW, &replay).await.unwrap(),
        Rotation::Reused
    );
    let seen = first_report(watch.as_ref(), pair.bound).await;
    assert!(
        tells_end_of(&seen, "g2"),
        "a replayed refresh token: {seen:?}"
    );

    assert_eq!(s.revoke_grants(Some("c2"), "test", NOW).await.unwrap(), 1);
    let seen = first_report(watch.as_ref(), pair.bound).await;
    assert!(tells_end_of(&seen, "g3"), "revoke_grants: {seen:?}");
}

async fn a_deleted_client_is_reported_though_no_revoked_row_is_left(pair: Pair) {
    let watch = seeded(&pair).await;
    assert!(pair.other.delete_client("c1").await.unwrap());
    let seen = first_report(watch.as_ref(), pair.bound).await;
    assert!(
        tells_end_of(&seen, "g1") && tells_end_of(&seen, "g2"),
        "delete_client: {seen:?}"
    );
}

async fn a_refresh_token_family_revoked_elsewhere_is_reported(pair: Pair) {
    let watch = seeded(&pair).await;
    assert!(
        pair.other
            .revoke_refresh_family("rt-g3", Some("c2"), "test", NOW)
            .await
            .unwrap()
    );
    let seen = first_report(watch.as_ref(), pair.bound).await;
    assert!(tells_end_of(&seen, "g3"), "revoke_refresh_family: {seen:?}");
}

macro_rules! on_both {
    ($($behaviour:ident),* $(,)?) => {$(
        mod $behaviour {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn on_postgres() {
                super::$behaviour(super::on_postgres().await).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn on_sqlite() {
                super::$behaviour(super::on_sqlite().await).await;
            }
        }
    )*};
}

on_both!(
    each_revocation_through_another_connection_is_reported,
    a_deleted_client_is_reported_though_no_revoked_row_is_left,
    a_refresh_token_family_revoked_elsewhere_is_reported,
);

/// PostgreSQL: the listening connection killed by the server, the watch is blind (every
/// decision asks the store) until it has listened again, and then says "anything" once
/// (a notification may have been lost meanwhile), then nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_listener_makes_the_watch_blind_until_it_listens_again() {
    let db = postgres::database();
    let store = PostgresStore::connect(&db.url()).await.unwrap();
    let watch = store.watch_revocations().await.unwrap();
    let _ = first_report(watch.as_ref(), NOTIFY_BOUND).await;
    assert_eq!(watch.changes(), Changes::Nothing);

    let (admin, connection) = tokio_postgres::connect(&db.url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let killed = admin
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE datname = current_database() AND application_name = '2bot-revocations'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(killed, 1, "one listening connection");
    assert_eq!(
        first_report(watch.as_ref(), NOTIFY_BOUND).await,
        Changes::Blind
    );

    // Reconnected after a second's pause.
    let start = Instant::now();
    let back = loop {
        match watch.changes() {
            Changes::Blind if start.elapsed() < Duration::from_secs(10) => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            other => break other,
        }
    };
    assert_eq!(back, Changes::Anything, "back, after {:?}", start.elapsed());
    assert_eq!(watch.changes(), Changes::Nothing);
}
