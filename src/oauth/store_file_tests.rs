#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The store on disk: modes, persistence, schema version, two connections at once, and
//! deletes that cascade.

use std::os::unix::fs::PermissionsExt;

use super::tests::{NOW, code, dcr, grant, refresh};
use super::*;
#[test]
fn state_survives_closing_and_reopening_the_database() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        store.insert_client(&dcr("c1")).unwrap();
        grant(&store, "c1", "g1", "r1");
        store.insert_client(&dcr("c2")).unwrap();
        grant(&store, "c2", "g2", "r2");
        store.revoke_client("c2", "test", NOW).unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    assert!(!store.grant_revoked("g1").unwrap());
    assert!(store.grant_revoked("g2").unwrap());
    assert!(matches!(
        store
            .rotate_refresh("r1", "c1", NOW + 1, &refresh("r1b", NOW + 1))
            .unwrap(),
        Rotation::Rotated(_)
    ));
    assert_eq!(store.count_clients().unwrap(), 2);
}

#[test]
fn the_database_is_created_0600_in_a_new_0700_directory_and_an_existing_directory_keeps_its_mode() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("new/state");
    let store = Store::open(&state).unwrap();
    store.insert_client(&dcr("c1")).unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&state), 0o700);
    assert_eq!(mode(&db_path(&state)), 0o600);
    assert_eq!(
        mode(&state.join("oauth.sqlite3-wal")),
        0o600,
        "WAL mode, private"
    );
    let (version, journal): (i64, String) = store
        .conn()
        .query_row("SELECT (SELECT user_version FROM pragma_user_version), (SELECT journal_mode FROM pragma_journal_mode)", [], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap();
    assert_eq!((version, journal.as_str()), (SCHEMA_VERSION, "wal"));

    let shared = dir.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o755)).unwrap();
    Store::open(&shared).unwrap();
    assert_eq!(
        mode(&shared),
        0o755,
        "an operator's directory is not chmodded"
    );
}

#[test]
fn a_database_other_users_may_write_is_refused_and_a_newer_schema_is_not_misread() {
    let dir = tempfile::tempdir().unwrap();
    Store::open(dir.path()).unwrap();
    let db = db_path(dir.path());
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o664)).unwrap();
    let err = Store::open(dir.path()).unwrap_err();
    assert!(
        matches!(err, StoreError::Insecure { mode: 0o664, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("chmod 600"), "{err}");

    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o600)).unwrap();
    rusqlite::Connection::open(&db)
        .unwrap()
        .pragma_update(None, "user_version", 99)
        .unwrap();
    let err = Store::open(dir.path()).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::SchemaTooNew {
                found: 99,
                supported: SCHEMA_VERSION
            }
        ),
        "{err}"
    );
}

#[test]
fn two_connections_exchanging_the_same_code_at_once_issue_at_most_one_grant() {
    let dir = tempfile::tempdir().unwrap();
    let setup = Store::open(dir.path()).unwrap();
    setup.insert_client(&dcr("c1")).unwrap();
    for round in 0..20 {
        setup
            .insert_code(&code(&format!("h{round}"), "c1", NOW + 60))
            .unwrap();
    }
    // Two separate connections (as two processes would have), not the one mutex.
    let stores = [
        Store::open(dir.path()).unwrap(),
        Store::open(dir.path()).unwrap(),
    ];
    for round in 0..20 {
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
        let outcomes: Vec<Exchange> = std::thread::scope(|s| {
            let handles: Vec<_> = stores
                .iter()
                .enumerate()
                .map(|(i, store)| {
                    let barrier = barrier.clone();
                    s.spawn(move || {
                        barrier.wait();
                        let gid = format!("g{round}-{i}");
                        store
                            .exchange_code(
                                &format!("h{round}"),
                                NOW,
                                &gid,
                                &refresh(&format!("r{round}-{i}"), NOW),
                            )
                            .unwrap()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let issued = outcomes
            .iter()
            .filter(|o| matches!(o, Exchange::Issued(_)))
            .count();
        assert_eq!(issued, 1, "round {round}: {outcomes:?}");
        assert!(
            outcomes.contains(&Exchange::Reused),
            "round {round}: {outcomes:?}"
        );
        // The loser's replay revoked the winner's grant, as a replayed code must.
        assert!(setup.grant_revoked(&format!("g{round}-0")).unwrap());
        assert!(setup.grant_revoked(&format!("g{round}-1")).unwrap());
    }
}

#[test]
fn deleting_a_client_takes_its_grants_along() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        store.insert_client(&dcr("c1")).unwrap();
        store.insert_client(&dcr("c2")).unwrap();
        grant(&store, "c1", "g1", "r1");
        grant(&store, "c2", "g2", "r2");
        assert!(store.delete_client("c1").unwrap());
        assert!(!store.delete_client("c1").unwrap(), "already gone");
    }
    let store = Store::open(dir.path()).unwrap();
    assert!(store.client("c1").unwrap().is_none());
    assert!(store.grant_revoked("g1").unwrap(), "its grant is gone");
    assert!(
        !store.grant_revoked("g2").unwrap(),
        "another client's grant stays"
    );
}
