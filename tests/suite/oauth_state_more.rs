//! The built-in authorization server's records in the state store, continued (helpers
//! in `oauth_state.rs`): clients register once, metadata documents refresh in place,
//! listing and pruning and purging keep what a token may still need, the signing key
//! set takes exactly one successor per generation, and on SQLite an old
//! `oauth.sqlite3` moves into `state.db` once.

use std::sync::Arc;

use twobot::state::StateStore;
use twobot::state::oauth::{
    ACCESS_TTL_MAX_SEC, AuthMethod, Client, Exchange, Rotation, SigningKeyRow, sha256_hex,
};

use super::oauth_state::{NOW, cimd, code, dcr, grant, on_both_stores, refresh, signed_in};

on_both_stores!(
    a_client_id_registers_once_and_a_metadata_document_refresh_keeps_its_grants,
    a_client_reads_back_as_stored_with_its_secret_hash,
    the_listing_shows_every_client_with_only_its_live_grants,
    pruning_deletes_old_clients_of_either_kind_that_never_got_a_grant,
    deleting_a_client_takes_its_grants_codes_and_tokens_along,
    purging_forgets_only_what_no_token_can_still_need,
    each_signing_key_generation_is_added_once_and_its_predecessor_set_to_retire,
);

async fn a_client_id_registers_once_and_a_metadata_document_refresh_keeps_its_grants(
    s: Arc<dyn StateStore>,
) {
    signed_in(s.as_ref()).await;
    assert!(!s.insert_client(&dcr("c1")).await.unwrap(), "id taken");
    assert!(
        !s.upsert_cimd_client(&dcr("c1")).await.unwrap(),
        "a DCR client is not refreshed as a document"
    );
    let url = "https://app.example/client.json";
    let first = cimd(url);
    assert!(s.upsert_cimd_client(&first).await.unwrap());
    grant(s.as_ref(), url, "gc", "rc").await;
    let refetched = Client {
        name: "Renamed".into(),
        redirect_uris: vec!["http://127.0.0.1/cb".into()],
        created_at: NOW + 500,
        ..first
    };
    assert!(s.upsert_cimd_client(&refetched).await.unwrap());
    let stored = s.client(url).await.unwrap().unwrap();
    assert_eq!(
        stored,
        Client {
            created_at: NOW,
            ..refetched
        }
    );
    assert!(!s.grant_revoked("gc").await.unwrap());
}

async fn a_client_reads_back_as_stored_with_its_secret_hash(s: Arc<dyn StateStore>) {
    let client = Client {
        auth_method: AuthMethod::ClientSecretBasic,
        secret_hash: Some(sha256_hex("s3cret")),
        redirect_uris: vec!["https://a.example/cb".into(), "http://127.0.0.1:9/ü".into()],
        ..dcr("c1")
    };
    assert!(s.insert_client(&client).await.unwrap());
    let back = s.client("c1").await.unwrap().unwrap();
    assert_eq!(back, client);
    assert!(back.secret_matches("s3cret"));
    assert!(!back.secret_matches("s3cret "));
    assert!(s.client("c2").await.unwrap().is_none());
}

async fn the_listing_shows_every_client_with_only_its_live_grants(s: Arc<dyn StateStore>) {
    signed_in(s.as_ref()).await;
    grant(s.as_ref(), "c1", "g2", "r2").await;
    s.revoke_refresh_family("r2", None, "test", NOW)
        .await
        .unwrap();
    assert!(s.insert_client(&dcr("c2")).await.unwrap());

    let listed = s.listing(NOW + 10).await.unwrap();
    let ids: Vec<(&str, Vec<&str>)> = listed
        .iter()
        .map(|l| {
            (
                l.client.id.as_str(),
                l.grants.iter().map(|g| g.grant.id.as_str()).collect(),
            )
        })
        .collect();
    assert_eq!(ids, [("c1", vec!["g1"]), ("c2", vec![])]);
    assert_eq!(listed[0].client, dcr("c1"));

    // Refresh expired (NOW + 1000) but an access token may live on for a day.
    let later = s.listing(NOW + 2_000).await.unwrap();
    assert_eq!(later[0].grants.len(), 1);
    assert_eq!(later[0].grants[0].refresh_expires_at, None);
    let much_later = s.listing(NOW + ACCESS_TTL_MAX_SEC + 1).await.unwrap();
    assert!(much_later[0].grants.is_empty());
}

async fn pruning_deletes_old_clients_of_either_kind_that_never_got_a_grant(s: Arc<dyn StateStore>) {
    signed_in(s.as_ref()).await;
    assert!(s.insert_client(&dcr("unused-old")).await.unwrap());
    let new = Client {
        created_at: NOW + 100,
        ..dcr("unused-new")
    };
    assert!(s.insert_client(&new).await.unwrap());
    assert!(
        s.upsert_cimd_client(&cimd("https://app.example/old.json"))
            .await
            .unwrap()
    );
    let new_doc = Client {
        created_at: NOW + 100,
        ..cimd("https://app.example/new.json")
    };
    assert!(s.upsert_cimd_client(&new_doc).await.unwrap());
    assert!(s.insert_client(&dcr("revoked")).await.unwrap());
    grant(s.as_ref(), "revoked", "g9", "r9").await;
    s.revoke_grants(Some("revoked"), "test", NOW).await.unwrap();
    assert_eq!(
        s.count_clients().await.unwrap(),
        4,
        "documents do not count"
    );

    assert_eq!(s.prune_unused_clients(NOW + 50).await.unwrap(), 2);
    for gone in ["unused-old", "https://app.example/old.json"] {
        assert!(s.client(gone).await.unwrap().is_none(), "{gone} was kept");
    }
    for kept in [
        "c1",
        "unused-new",
        "https://app.example/new.json",
        "revoked",
    ] {
        assert!(s.client(kept).await.unwrap().is_some(), "{kept} was pruned");
    }
    assert_eq!(s.count_clients().await.unwrap(), 3);
}

async fn deleting_a_client_takes_its_grants_codes_and_tokens_along(s: Arc<dyn StateStore>) {
    signed_in(s.as_ref()).await;
    s.insert_code(&code("pending", "c1", NOW + 60))
        .await
        .unwrap();
    assert!(s.delete_client("c1").await.unwrap());
    assert!(!s.delete_client("c1").await.unwrap(), "gone already");
    assert!(s.grant_revoked("g1").await.unwrap());
    assert!(s.code("pending").await.unwrap().is_none());
    let rotation = s
        .rotate_refresh("r1", "c1", NOW + 1, &refresh("r2", NOW + 1))
        .await
        .unwrap();
    assert_eq!(rotation, Rotation::Unknown);
    assert!(s.listing(NOW).await.unwrap().is_empty());
}

async fn purging_forgets_only_what_no_token_can_still_need(s: Arc<dyn StateStore>) {
    signed_in(s.as_ref()).await;
    assert_eq!(s.purge(NOW + 10).await.unwrap(), 0);
    assert!(!s.grant_revoked("g1").await.unwrap());
    // A day past everything: the used code, the expired refresh token and its grant go.
    assert_eq!(s.purge(NOW + 1_000 + ACCESS_TTL_MAX_SEC).await.unwrap(), 3);
    assert!(s.grant_revoked("g1").await.unwrap());
    assert!(s.client("c1").await.unwrap().is_some());
}

fn key(kid: &str, generation: i64, created_at: i64) -> SigningKeyRow {
    SigningKeyRow {
        kid: kid.into(),
        generation,
        private_pem: format!("-----BEGIN PRIVATE KEY-----\n{kid}\n"),
        created_at,
        not_before: created_at,
        retire_at: None,
    }
}

async fn each_signing_key_generation_is_added_once_and_its_predecessor_set_to_retire(
    s: Arc<dyn StateStore>,
) {
    assert!(s.signing_keys(NOW).await.unwrap().is_empty());
    assert!(s.add_signing_key(&key("k1", 1, NOW), 0).await.unwrap());
    assert!(
        !s.add_signing_key(&key("k1", 7, NOW), 0).await.unwrap(),
        "kid taken"
    );
    assert_eq!(s.signing_keys(NOW).await.unwrap(), [key("k1", 1, NOW)]);
    // Two instances add generation 2 at once: one wins, and only it retires k1.
    let (a, b) = (s.clone(), s.clone());
    let x =
        tokio::spawn(async move { a.add_signing_key(&key("k2a", 2, NOW + 5), NOW + 100).await });
    let y =
        tokio::spawn(async move { b.add_signing_key(&key("k2b", 2, NOW + 5), NOW + 200).await });
    let won = [x.await.unwrap().unwrap(), y.await.unwrap().unwrap()];
    assert_eq!(won.iter().filter(|w| **w).count(), 1, "{won:?}");
    let retire = if won[0] { NOW + 100 } else { NOW + 200 };
    let keys = s.signing_keys(NOW).await.unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(
        (keys[0].kid.as_str(), keys[0].retire_at),
        ("k1", Some(retire))
    );
    assert_eq!(keys[1].kid, if won[0] { "k2a" } else { "k2b" });
    assert!(
        !format!("{:?}", keys[0]).contains("PRIVATE"),
        "Debug hides the key"
    );
    assert_eq!(s.signing_keys(retire).await.unwrap().len(), 1, "k1 retired");
    assert_eq!(s.purge(retire).await.unwrap(), 1);
    assert_eq!(s.signing_keys(0).await.unwrap().len(), 1);
}

/// An `oauth.sqlite3` as 2Bot kept it before the state store: its schema (version 1).
const LEGACY_SCHEMA: &str = "
CREATE TABLE clients (id TEXT PRIMARY KEY, kind TEXT NOT NULL, name TEXT NOT NULL,
    redirect_uris TEXT NOT NULL, auth_method TEXT NOT NULL, secret_hash TEXT,
    created_at INTEGER NOT NULL, fetched_at INTEGER) STRICT;
CREATE TABLE grants (id TEXT PRIMARY KEY, client_id TEXT NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    scope TEXT NOT NULL, resource TEXT NOT NULL, created_at INTEGER NOT NULL,
    last_used_at INTEGER NOT NULL, revoked_at INTEGER, revoked_reason TEXT) STRICT;
CREATE TABLE codes (code_hash TEXT PRIMARY KEY, client_id TEXT NOT NULL, redirect_uri TEXT NOT NULL,
    code_challenge TEXT NOT NULL, resource TEXT NOT NULL, scope TEXT NOT NULL,
    expires_at INTEGER NOT NULL, used_at INTEGER, grant_id TEXT) STRICT;
CREATE TABLE refresh_tokens (token_hash TEXT PRIMARY KEY, grant_id TEXT NOT NULL,
    issued_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, used_at INTEGER) STRICT;
INSERT INTO clients VALUES ('c1', 'dcr', 'client c1', '[\"https://chatgpt.com/cb\"]', 'none', NULL, 1700000000, NULL);
INSERT INTO grants VALUES ('g1', 'c1', 'codex:run', 'https://bot.example/mcp', 1700000000, 1700000000, NULL, NULL);
INSERT INTO grants VALUES ('g0', 'c1', 'codex:run', 'https://bot.example/mcp', 1700000000, 1700000000, 1700000001, 'old');
INSERT INTO codes VALUES ('used', 'c1', 'https://chatgpt.com/cb', 'x', 'https://bot.example/mcp', 'codex:run', 1700000060, 1700000000, 'g1');
INSERT INTO refresh_tokens VALUES ('r1', 'g1', 1700000000, 1700001000, NULL);
PRAGMA user_version = 1;
";

/// An old `oauth.sqlite3` moves into `state.db` at the first open (its clients, grants,
/// codes and refresh tokens working as before), is renamed `.migrated`, and is never read
/// again; the state directory's new file is 0600.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_oauth_database_moves_into_the_state_store_once_on_sqlite() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let legacy = dir.path().join("oauth.sqlite3");
    rusqlite::Connection::open(&legacy)
        .unwrap()
        .execute_batch(LEGACY_SCHEMA)
        .unwrap();
    let open = || -> Arc<dyn StateStore> {
        Arc::new(twobot::state::SqliteStore::open(dir.path()).unwrap())
    };
    let s = open();
    assert!(!legacy.exists());
    assert!(dir.path().join("oauth.sqlite3.migrated").exists());
    let mode = std::fs::metadata(dir.path().join("state.db"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(s.client("c1").await.unwrap().unwrap(), dcr("c1"));
    assert!(
        s.grant_revoked("g0").await.unwrap(),
        "a revoked grant stays revoked"
    );
    let rotated = s
        .rotate_refresh("r1", "c1", NOW + 10, &refresh("r2", NOW + 10))
        .await
        .unwrap();
    assert!(matches!(rotated, Rotation::Rotated(_)), "{rotated:?}");
    let replay = s
        .exchange_code("used", NOW + 11, "gx", &refresh("rx", NOW))
        .await
        .unwrap();
    assert_eq!(replay, Exchange::Reused, "the code's use moved in too");
    assert!(s.grant_revoked("g1").await.unwrap());
    drop(s);
    // Reopened: nothing is imported again (the revocation above stands).
    let s = open();
    assert!(s.grant_revoked("g1").await.unwrap());
    assert_eq!(s.listing(NOW).await.unwrap().len(), 1);
}
