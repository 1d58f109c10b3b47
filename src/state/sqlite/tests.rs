#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::state::{InstanceRow, RunRow, RunState, StateStore, ThreadRow};

const TTL: i64 = 60_000;

fn thread(id: &str, owner: &str) -> ThreadRow {
    ThreadRow {
        thread_id: id.into(),
        owner: owner.into(),
        instance: "i1".into(),
        codex_home: "/home/u/.codex".into(),
        created_ms: 1,
    }
}

fn run(id: &str, instance: &str, state: RunState) -> RunRow {
    let ended = state.is_final().then_some(500);
    RunRow {
        run_id: id.into(),
        owner: "token:alice".into(),
        quota_key: "token:alice".into(),
        instance: instance.into(),
        state,
        created_ms: 100,
        updated_ms: 100,
        ended_ms: ended,
        expires_ms: ended.map(|e| e + TTL),
        snapshot: state
            .is_final()
            .then(|| serde_json::json!({"run_id": id, "status": state.as_str()})),
    }
}

fn instance(id: &str, heartbeat_ms: i64) -> InstanceRow {
    InstanceRow {
        instance: id.into(),
        url: None,
        started_ms: 0,
        heartbeat_ms,
    }
}

#[tokio::test]
async fn a_new_database_is_at_the_newest_schema_version() {
    let store = SqliteStore::open_in_memory().unwrap();
    assert_eq!(store.schema_version().await.unwrap(), SCHEMA_VERSION);
    assert_eq!(store.kind(), crate::state::BackendKind::Sqlite);
}

#[tokio::test]
async fn the_first_owner_of_a_thread_wins() {
    let store = SqliteStore::open_in_memory().unwrap();
    let cases = [
        (thread("t1", "token:alice"), true),
        (thread("t1", "token:mallory"), false),
        (thread("t2", "token:bob"), true),
    ];
    for (row, inserted) in cases {
        assert_eq!(
            store.insert_thread(&row).await.unwrap(),
            inserted,
            "{row:?}"
        );
    }
    assert_eq!(
        store.thread("t1").await.unwrap(),
        Some(thread("t1", "token:alice"))
    );
    assert_eq!(
        store.thread("t2").await.unwrap().unwrap().owner,
        "token:bob"
    );
    assert_eq!(store.thread("t3").await.unwrap(), None);
}

#[tokio::test]
async fn a_run_is_replaced_whole_and_read_back_until_it_expires() {
    let store = SqliteStore::open_in_memory().unwrap();
    store
        .upsert_run(&run("r1", "i1", RunState::Running))
        .await
        .unwrap();
    assert_eq!(
        store.run("r1", 1_000).await.unwrap(),
        Some(run("r1", "i1", RunState::Running))
    );
    let done = run("r1", "i1", RunState::Completed);
    store.upsert_run(&done).await.unwrap();
    let expires = done.expires_ms.unwrap();
    // (now, present?) around the expiry.
    let cases = [
        (1_000, true),
        (expires - 1, true),
        (expires, false),
        (expires + 1, false),
    ];
    for (now, present) in cases {
        assert_eq!(
            store.run("r1", now).await.unwrap().is_some(),
            present,
            "at {now}"
        );
    }
    assert_eq!(store.run("nope", 0).await.unwrap(), None);
}

#[tokio::test]
async fn expired_runs_are_deleted_and_unfinished_ones_never_expire() {
    let store = SqliteStore::open_in_memory().unwrap();
    store
        .upsert_run(&run("done", "i1", RunState::Failed))
        .await
        .unwrap();
    store
        .upsert_run(&run("live", "i1", RunState::Queued))
        .await
        .unwrap();
    assert_eq!(store.delete_expired_runs(500 + TTL - 1).await.unwrap(), 0);
    assert_eq!(store.delete_expired_runs(i64::MAX).await.unwrap(), 1);
    assert!(store.run("done", 0).await.unwrap().is_none());
    assert!(store.run("live", i64::MAX).await.unwrap().is_some());
}

#[tokio::test]
async fn mark_lost_touches_only_that_instances_unfinished_runs() {
    let store = SqliteStore::open_in_memory().unwrap();
    let rows = [
        run("q", "dead", RunState::Queued),
        run("r", "dead", RunState::Running),
        run("c", "dead", RunState::Completed),
        run("x", "dead", RunState::Cancelled),
        run("other", "alive", RunState::Running),
    ];
    for row in &rows {
        store.upsert_run(row).await.unwrap();
    }
    assert_eq!(store.mark_lost("dead", 2_000, TTL).await.unwrap(), 2);
    // (run, state after, ended, expires)
    let cases = [
        ("q", RunState::Lost, Some(2_000), Some(2_000 + TTL)),
        ("r", RunState::Lost, Some(2_000), Some(2_000 + TTL)),
        ("c", RunState::Completed, Some(500), Some(500 + TTL)),
        ("x", RunState::Cancelled, Some(500), Some(500 + TTL)),
        ("other", RunState::Running, None, None),
    ];
    for (id, state, ended, expires) in cases {
        let got = store.run(id, 0).await.unwrap().unwrap();
        assert_eq!(
            (got.state, got.ended_ms, got.expires_ms),
            (state, ended, expires),
            "{id}"
        );
    }
    assert_eq!(store.run("r", 0).await.unwrap().unwrap().updated_ms, 2_000);
    // Marking again changes nothing.
    assert_eq!(store.mark_lost("dead", 3_000, TTL).await.unwrap(), 0);
}

#[tokio::test]
async fn a_heartbeat_registers_an_instance_and_moves_its_time() {
    let store = SqliteStore::open_in_memory().unwrap();
    assert_eq!(store.instance("i1").await.unwrap(), None);
    store.heartbeat(&instance("i1", 10)).await.unwrap();
    let mut later = instance("i1", 20);
    later.url = Some("http://10.0.0.1:9000".into());
    store.heartbeat(&later).await.unwrap();
    assert_eq!(store.instance("i1").await.unwrap(), Some(later));
}

#[tokio::test]
async fn reaping_removes_stale_instances_and_loses_their_runs() {
    let store = SqliteStore::open_in_memory().unwrap();
    for (id, beat) in [("old", 1_000), ("edge", 5_000), ("fresh", 9_000)] {
        store.heartbeat(&instance(id, beat)).await.unwrap();
        store
            .upsert_run(&run(&format!("run-{id}"), id, RunState::Running))
            .await
            .unwrap();
    }
    let reaped = store.reap_dead_instances(5_000, 10_000, TTL).await.unwrap();
    assert_eq!(reaped, ["old"]);
    // (instance, still registered, its run's state)
    let cases = [
        ("old", false, RunState::Lost),
        ("edge", true, RunState::Running),
        ("fresh", true, RunState::Running),
    ];
    for (id, registered, state) in cases {
        assert_eq!(
            store.instance(id).await.unwrap().is_some(),
            registered,
            "{id}"
        );
        let got = store.run(&format!("run-{id}"), 0).await.unwrap().unwrap();
        assert_eq!(got.state, state, "{id}");
    }
    let lost = store.run("run-old", 0).await.unwrap().unwrap();
    assert_eq!(lost.expires_ms, Some(10_000 + TTL));
    assert!(
        store
            .reap_dead_instances(5_000, 10_000, TTL)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn the_file_is_private_and_survives_a_reopen() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let store = SqliteStore::open(&state).unwrap();
    store.insert_thread(&thread("t1", "local")).await.unwrap();
    drop(store);
    let store = SqliteStore::open(&state).unwrap();
    assert!(store.thread("t1").await.unwrap().is_some());
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&state.join(DB_FILE)), 0o600);
    assert_eq!(mode(&state), 0o700);
    assert_eq!(store.path(), Some(state.join(DB_FILE).as_path()));
}

#[tokio::test]
async fn a_database_others_may_write_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    drop(SqliteStore::open(dir.path()).unwrap());
    let path = dir.path().join(DB_FILE);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
    let err = SqliteStore::open(dir.path()).unwrap_err();
    assert!(
        matches!(err, StateError::Connect(ref m) if m.contains("chmod 600")),
        "{err}"
    );
}

#[tokio::test]
async fn a_schema_newer_than_this_build_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(SqliteStore::open(dir.path()).unwrap());
    let conn = Connection::open(dir.path().join(DB_FILE)).unwrap();
    conn.execute(
        "INSERT INTO schema_migrations (version, applied_ms) VALUES (?1, 0)",
        [SCHEMA_VERSION + 1],
    )
    .unwrap();
    drop(conn);
    let err = SqliteStore::open(dir.path()).unwrap_err();
    assert!(
        matches!(err, StateError::SchemaTooNew { found, known } if found == SCHEMA_VERSION + 1 && known == SCHEMA_VERSION),
        "{err}"
    );
}

#[test]
fn inspecting_reads_the_version_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(SqliteStore::inspect(dir.path()).unwrap(), None);
    assert!(
        !dir.path().join(DB_FILE).exists(),
        "inspect created nothing"
    );
    drop(SqliteStore::open(dir.path()).unwrap());
    assert_eq!(
        SqliteStore::inspect(dir.path()).unwrap(),
        Some(SCHEMA_VERSION)
    );
    let conn = Connection::open(dir.path().join(DB_FILE)).unwrap();
    conn.execute(
        "INSERT INTO schema_migrations (version, applied_ms) VALUES (?1, 0)",
        [SCHEMA_VERSION + 1],
    )
    .unwrap();
    assert!(matches!(
        SqliteStore::inspect(dir.path()),
        Err(StateError::SchemaTooNew { .. })
    ));
}

#[tokio::test]
async fn a_corrupt_run_row_is_reported_not_misread() {
    let store = SqliteStore::open_in_memory().unwrap();
    store
        .upsert_run(&run("r1", "i1", RunState::Completed))
        .await
        .unwrap();
    store
        .call(|conn| {
            conn.execute("UPDATE runs SET snapshot = '{not json'", [])?;
            Ok(())
        })
        .await
        .unwrap();
    let err = store.run("r1", 0).await.unwrap_err();
    assert!(matches!(err, StateError::Corrupt(_)), "{err}");
}
