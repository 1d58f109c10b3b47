//! One behaviour of the state store per test, run against each backend: PostgreSQL on a
//! real throw-away cluster (`common::postgres`) and the embedded SQLite. Callers never
//! ask which backend they have, so both must answer every question the same way; each
//! test here is written once, over `Arc<dyn StateStore>`, and `on_both!` instantiates it
//! as `<behaviour>::on_postgres` and `<behaviour>::on_sqlite`. Behaviours only one backend
//! has (several instances migrating at once, TLS) follow at the end.

use std::sync::Arc;

use serde_json::json;
use twobot::state::postgres::SCHEMA_VERSION;
use twobot::state::{
    BackendKind, InstanceRow, PostgresStore, RunRow, RunState, SqliteStore, StateError, StateStore,
    ThreadRow,
};

use crate::common::postgres;

/// A place to open a store again and again, and to tamper with behind its back.
#[async_trait::async_trait]
pub(super) trait Backend: Send + Sync {
    /// Open (and migrate) the store.
    async fn open(&self) -> Result<Arc<dyn StateStore>, StateError>;
    /// Record that a migration to `version` ran (as a newer 2Bot would).
    async fn stamp_version(&self, version: i64);
    /// The versions recorded as migrated, in order.
    async fn applied(&self) -> Vec<i64>;
}

pub(super) struct Postgres(postgres::Database);

impl Postgres {
    pub(super) fn new() -> Self {
        Self(postgres::database())
    }

    /// A plain connection, for what the store itself would never do.
    async fn raw(&self) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::connect(&self.0.url(), tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        client
    }
}

#[async_trait::async_trait]
impl Backend for Postgres {
    async fn open(&self) -> Result<Arc<dyn StateStore>, StateError> {
        Ok(Arc::new(PostgresStore::connect(&self.0.url()).await?))
    }

    async fn stamp_version(&self, version: i64) {
        self.raw()
            .await
            .execute(
                "INSERT INTO schema_migrations (version, applied_ms) VALUES ($1, 0)",
                &[&version],
            )
            .await
            .unwrap();
    }

    async fn applied(&self) -> Vec<i64> {
        self.raw()
            .await
            .query(
                "SELECT version FROM schema_migrations ORDER BY version",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect()
    }
}

/// SQLite in a state directory of its own.
pub(super) struct Sqlite(tempfile::TempDir);

impl Sqlite {
    pub(super) fn new() -> Self {
        Self(tempfile::tempdir().unwrap())
    }

    fn raw(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.0.path().join(twobot::state::sqlite::DB_FILE)).unwrap()
    }
}

#[async_trait::async_trait]
impl Backend for Sqlite {
    async fn open(&self) -> Result<Arc<dyn StateStore>, StateError> {
        Ok(Arc::new(SqliteStore::open(self.0.path())?))
    }

    async fn stamp_version(&self, version: i64) {
        self.raw()
            .execute(
                "INSERT INTO schema_migrations (version, applied_ms) VALUES (?1, 0)",
                [version],
            )
            .unwrap();
    }

    async fn applied(&self) -> Vec<i64> {
        let conn = self.raw();
        let mut stmt = conn
            .prepare("SELECT version FROM schema_migrations ORDER BY version")
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }
}

/// `behaviour::on_postgres` and `behaviour::on_sqlite` for `async fn behaviour(&dyn Backend)`.
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
    the_schema_is_current_after_open_and_reopening_migrates_nothing,
    a_schema_newer_than_this_binary_is_refused,
    the_first_owner_of_a_thread_wins,
    a_run_is_stored_replaced_and_read_back_until_it_expires,
    mark_lost_ends_only_that_instances_unfinished_runs,
    reaping_dead_instances_ends_their_runs_and_forgets_them,
);

fn run(id: &str, instance: &str, state: RunState) -> RunRow {
    RunRow {
        run_id: id.to_owned(),
        owner: "alice".to_owned(),
        quota_key: "alice".to_owned(),
        instance: instance.to_owned(),
        state,
        created_ms: 1_000,
        updated_ms: 1_000,
        ended_ms: state.is_final().then_some(2_000),
        expires_ms: state.is_final().then_some(10_000),
        snapshot: Some(json!({"status": state.as_str(), "text": "ünïcode ✓"})),
    }
}

fn thread(id: &str, owner: &str) -> ThreadRow {
    ThreadRow {
        thread_id: id.to_owned(),
        owner: owner.to_owned(),
        instance: "host-a".to_owned(),
        codex_home: "/home/codex/.codex".to_owned(),
        created_ms: 5,
    }
}

async fn the_schema_is_current_after_open_and_reopening_migrates_nothing(b: &dyn Backend) {
    let store = b.open().await.unwrap();
    assert_eq!(store.schema_version().await.unwrap(), SCHEMA_VERSION);
    assert!(store.insert_thread(&thread("t1", "alice")).await.unwrap());
    drop(store);
    let again = b.open().await.unwrap();
    assert_eq!(again.schema_version().await.unwrap(), SCHEMA_VERSION);
    assert_eq!(
        again.thread("t1").await.unwrap(),
        Some(thread("t1", "alice"))
    );
    let every: Vec<i64> = (1..=SCHEMA_VERSION).collect();
    assert_eq!(b.applied().await, every, "each migration recorded once");
}

async fn a_schema_newer_than_this_binary_is_refused(b: &dyn Backend) {
    drop(b.open().await.unwrap());
    b.stamp_version(SCHEMA_VERSION + 1).await;
    match b.open().await {
        Err(StateError::SchemaTooNew { found, known }) => {
            assert_eq!((found, known), (SCHEMA_VERSION + 1, SCHEMA_VERSION));
        }
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
}

async fn the_first_owner_of_a_thread_wins(b: &dyn Backend) {
    let store = b.open().await.unwrap();
    assert_eq!(store.thread("t1").await.unwrap(), None);
    assert!(store.insert_thread(&thread("t1", "alice")).await.unwrap());
    assert!(!store.insert_thread(&thread("t1", "mallory")).await.unwrap());
    assert_eq!(
        store.thread("t1").await.unwrap().map(|t| t.owner),
        Some("alice".to_owned())
    );
    // Many claims at once: exactly one is told it won, and its owner is the one kept.
    let claims = (0..16).map(|i| {
        let store = store.clone();
        tokio::spawn(async move {
            (
                i,
                store.insert_thread(&thread("t2", &format!("o{i}"))).await,
            )
        })
    });
    let mut winners = Vec::new();
    for claim in claims {
        let (i, won) = claim.await.unwrap();
        if won.unwrap() {
            winners.push(format!("o{i}"));
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    assert_eq!(
        store.thread("t2").await.unwrap().map(|t| t.owner),
        winners.pop()
    );
}

async fn a_run_is_stored_replaced_and_read_back_until_it_expires(b: &dyn Backend) {
    let store = b.open().await.unwrap();
    let running = run("r1", "host-a", RunState::Running);
    store.upsert_run(&running).await.unwrap();
    assert_eq!(store.run("r1", 5_000).await.unwrap(), Some(running));
    let done = RunRow {
        updated_ms: 2_000,
        ..run("r1", "host-a", RunState::Completed)
    };
    store.upsert_run(&done).await.unwrap();
    assert_eq!(store.run("r1", 9_999).await.unwrap(), Some(done.clone()));
    assert_eq!(store.run("nope", 0).await.unwrap(), None);
    // Expired (expires_ms 10 000): absent at once, and deleted by the sweep.
    assert_eq!(store.run("r1", 10_000).await.unwrap(), None);
    store
        .upsert_run(&run("r2", "host-a", RunState::Running))
        .await
        .unwrap();
    assert_eq!(store.delete_expired_runs(10_000).await.unwrap(), 1);
    assert_eq!(store.run("r1", 0).await.unwrap(), None);
    assert!(
        store.run("r2", 10_000_000).await.unwrap().is_some(),
        "unfinished runs never expire"
    );
}

async fn mark_lost_ends_only_that_instances_unfinished_runs(b: &dyn Backend) {
    let store = b.open().await.unwrap();
    for row in [
        run("a-running", "host-a", RunState::Running),
        run("a-queued", "host-a", RunState::Queued),
        run("a-done", "host-a", RunState::Completed),
        run("b-running", "host-b", RunState::Running),
    ] {
        store.upsert_run(&row).await.unwrap();
    }
    assert_eq!(store.mark_lost("host-a", 3_000, 60_000).await.unwrap(), 2);
    for id in ["a-running", "a-queued"] {
        let lost = store.run(id, 3_000).await.unwrap().unwrap();
        assert_eq!(lost.state, RunState::Lost, "{id}");
        assert_eq!(
            (lost.updated_ms, lost.ended_ms, lost.expires_ms),
            (3_000, Some(3_000), Some(63_000)),
            "{id}"
        );
    }
    assert_eq!(
        store.run("a-done", 3_000).await.unwrap(),
        Some(run("a-done", "host-a", RunState::Completed))
    );
    assert_eq!(
        store
            .run("b-running", 3_000)
            .await
            .unwrap()
            .map(|r| r.state),
        Some(RunState::Running)
    );
    assert_eq!(store.mark_lost("host-a", 4_000, 60_000).await.unwrap(), 0);
}

async fn reaping_dead_instances_ends_their_runs_and_forgets_them(b: &dyn Backend) {
    let store = b.open().await.unwrap();
    let beat = |name: &str, at: i64| InstanceRow {
        instance: name.to_owned(),
        url: Some(format!("http://{name}:9001")),
        started_ms: 100,
        heartbeat_ms: at,
    };
    store.heartbeat(&beat("dead", 1_000)).await.unwrap();
    store.heartbeat(&beat("alive", 1_000)).await.unwrap();
    store.heartbeat(&beat("alive", 20_000)).await.unwrap();
    assert_eq!(
        store.instance("alive").await.unwrap(),
        Some(beat("alive", 20_000))
    );
    store
        .upsert_run(&run("dead-run", "dead", RunState::Running))
        .await
        .unwrap();
    store
        .upsert_run(&run("alive-run", "alive", RunState::Running))
        .await
        .unwrap();
    let reaped = store
        .reap_dead_instances(15_000, 21_000, 1_000)
        .await
        .unwrap();
    assert_eq!(reaped, vec!["dead".to_owned()]);
    assert_eq!(store.instance("dead").await.unwrap(), None);
    let lost = store.run("dead-run", 21_000).await.unwrap().unwrap();
    assert_eq!(
        (lost.state, lost.expires_ms),
        (RunState::Lost, Some(22_000))
    );
    assert_eq!(
        store
            .run("alive-run", 21_000)
            .await
            .unwrap()
            .map(|r| r.state),
        Some(RunState::Running)
    );
    assert!(
        store
            .reap_dead_instances(15_000, 21_000, 1_000)
            .await
            .unwrap()
            .is_empty()
    );
}

/// Three instances of a deploy start together on a fresh database: one migrates, the
/// others wait for its lock and find the schema current.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_migrating_one_database_at_once_all_start() {
    let db = postgres::database();
    let url = db.url();
    let opens = (0..3).map(|_| {
        let url = url.clone();
        tokio::spawn(async move { PostgresStore::connect(&url).await })
    });
    for open in opens {
        let store = open.await.unwrap().unwrap();
        assert_eq!(store.kind(), BackendKind::Postgres);
        assert_eq!(store.schema_version().await.unwrap(), SCHEMA_VERSION);
    }
    let every: Vec<i64> = (1..=SCHEMA_VERSION).collect();
    assert_eq!(Postgres(db).applied().await, every);
}

/// `sslmode=require` means "never in plain text": against a server without TLS the
/// connection is refused, saying so, and the password never shows.
#[tokio::test]
async fn sslmode_require_against_a_server_without_tls_is_refused_with_the_reason() {
    let db = postgres::database();
    let url = format!("{}&password=s3cret&sslmode=require", db.url());
    let err = PostgresStore::connect(&url).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, StateError::Connect(_)), "{err:?}");
    assert!(
        text.contains("does not offer TLS")
            && text.contains("sslmode=require refuses a plain-text connection"),
        "{text}"
    );
    assert!(
        text.contains("password=***") && !text.contains("s3cret"),
        "{text}"
    );
    // The same cluster, TLS not demanded: it connects.
    let prefer = format!("{}&sslmode=prefer", db.url());
    PostgresStore::connect(&prefer).await.unwrap();
}

/// A database that is not there fails at connect, naming the URL without its password.
#[tokio::test]
async fn an_unreachable_database_is_a_connect_error_without_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "postgres://u:s3cret@/x?host={}&port=5432&connect_timeout=2",
        dir.path().display()
    );
    let err = PostgresStore::connect(&url).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, StateError::Connect(_)), "{err:?}");
    assert!(text.contains("postgres://u:***@/x"), "{text}");
    assert!(!text.contains("s3cret"), "{text}");
    assert!(PostgresStore::inspect(&url).await.is_err());
}

/// Over TCP to a server with TLS, each `sslmode` checks what libpq's does: `verify-full`
/// wants the CA and the name, `verify-ca` the CA only, `require` and `prefer` encrypt
/// without checking; the server sees every accepted connection encrypted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_sslmode_checks_the_server_certificate_as_libpq_does() {
    let (cluster, ca) = postgres::tls_cluster();
    let db = postgres::database_on(cluster.clone());
    let tcp = |host: &str, query: String| {
        format!(
            "postgres://{}@{host}:{}/{}?{query}",
            postgres::USER,
            cluster.port,
            db.name
        )
    };
    let ca = ca.display();
    let accepted = [
        tcp("localhost", format!("sslmode=verify-full&sslrootcert={ca}")),
        tcp("127.0.0.1", format!("sslmode=verify-ca&sslrootcert={ca}")),
        tcp("127.0.0.1", "sslmode=require".to_owned()),
        tcp("localhost", "sslmode=prefer".to_owned()),
    ];
    for (i, url) in accepted.iter().enumerate() {
        let store = PostgresStore::connect(url)
            .await
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        assert!(
            store
                .insert_thread(&thread(&format!("tls-{i}"), "alice"))
                .await
                .unwrap()
        );
        let over_tcp = Postgres(postgres::Database {
            cluster: cluster.clone(),
            name: db.name.clone(),
        })
        .raw()
        .await
        .query_one(
            "SELECT count(*), coalesce(bool_and(s.ssl), false) FROM pg_stat_ssl s
             JOIN pg_stat_activity a USING (pid) WHERE a.datname = $1 AND a.client_addr IS NOT NULL",
            &[&db.name],
        )
        .await
        .unwrap();
        let (connections, all_tls): (i64, bool) = (over_tcp.get(0), over_tcp.get(1));
        assert!(
            connections >= 1 && all_tls,
            "{url}: {connections} {all_tls}"
        );
    }
    let refused = [
        // The certificate names localhost, not 127.0.0.1.
        (
            tcp("127.0.0.1", format!("sslmode=verify-full&sslrootcert={ca}")),
            "certificate",
        ),
        // The system's roots do not know the test CA.
        (
            tcp("localhost", "sslmode=verify-full".to_owned()),
            "certificate",
        ),
        (
            tcp(
                "localhost",
                "sslmode=verify-ca&sslrootcert=/nonexistent/ca.pem".to_owned(),
            ),
            "sslrootcert /nonexistent/ca.pem",
        ),
    ];
    for (url, says) in refused {
        let err = PostgresStore::connect(&url).await.unwrap_err().to_string();
        eprintln!("refused as it should be: {err}");
        assert!(err.contains(says), "{url}: {err}");
    }
}
