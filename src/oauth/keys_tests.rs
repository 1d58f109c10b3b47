#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The key set's decisions, and its life in a store: one key shared, a successor
//! published before it signs, the old key kept until its tokens expired.

use super::*;

const DAY: i64 = 86_400;

fn t(generation: i64, created_at: i64, not_before: i64) -> Times {
    Times {
        generation,
        created_at,
        not_before,
    }
}

#[test]
fn a_successor_is_due_without_keys_or_once_the_newest_is_a_rotation_period_old() {
    let month = Duration::from_secs(30 * DAY as u64);
    let cases: [(&[Times], i64, bool); 5] = [
        (&[], 0, true),
        (&[t(1, 0, 0)], 29 * DAY, false),
        (&[t(1, 0, 0)], 30 * DAY, true),
        (
            &[t(1, 0, 0), t(2, 30 * DAY, 30 * DAY + LEAD_SEC)],
            31 * DAY,
            false,
        ),
        (&[t(2, 30 * DAY, 30 * DAY), t(1, 0, 0)], 60 * DAY, true),
    ];
    for (keys, now, due) in cases {
        assert_eq!(successor_due(keys, now, month), due, "{keys:?} at {now}");
    }
}

#[test]
fn the_newest_started_key_signs_and_a_published_successor_waits_for_its_start() {
    let keys = [t(1, 0, 0), t(2, 100, 100 + LEAD_SEC)];
    let cases = [
        (50, Some(0)),
        (100 + LEAD_SEC - 1, Some(0)),
        (100 + LEAD_SEC, Some(1)),
    ];
    for (now, want) in cases {
        assert_eq!(signer(&keys, now), want, "at {now}");
    }
    assert_eq!(signer(&[], 0), None);
    assert_eq!(
        signer(&[t(3, 10, 500), t(4, 20, 600)], 0),
        Some(0),
        "clock gone back"
    );
}

async fn store() -> Arc<dyn StateStore> {
    Arc::new(crate::state::SqliteStore::open_in_memory().unwrap())
}

#[tokio::test]
async fn two_instances_on_one_store_share_one_key_and_accept_each_other_s_tokens() {
    let store = store().await;
    let dir = tempfile::tempdir().unwrap();
    let day = Duration::from_secs(DAY as u64);
    let a = KeyRing::open(store.clone(), day, dir.path()).await.unwrap();
    let b = KeyRing::open(store.clone(), day, dir.path()).await.unwrap();
    assert_eq!(store.signing_keys(0).await.unwrap().len(), 1);
    let token = a.sign(&serde_json::json!({"gid": "g"})).unwrap();
    assert_eq!(b.own_claims(&token).unwrap()["gid"], "g");
    assert_eq!(a.jwks(), b.jwks());
}

#[tokio::test]
async fn a_due_successor_is_published_first_and_the_old_key_retires_after_the_longest_token_life() {
    let store = store().await;
    let dir = tempfile::tempdir().unwrap();
    let ring = KeyRing::open(store.clone(), Duration::ZERO, dir.path())
        .await
        .unwrap();
    let old = ring.sign(&serde_json::json!({"gid": "g"})).unwrap();
    let (seen, _) = ring.snapshot();
    let now = crate::oauth::now();
    ring.reread(now).await.unwrap();
    let rows = store.signing_keys(now).await.unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[1].not_before, now + LEAD_SEC);
    assert_eq!(
        rows[0].retire_at,
        Some(now + LEAD_SEC + ACCESS_TTL_MAX_SEC + SKEW_SEC)
    );
    let (after, verify) = ring.snapshot();
    assert_ne!(seen, after);
    assert_eq!(verify.len(), 2);
    assert_eq!(ring.jwks()["keys"].as_array().unwrap().len(), 2);
    let header = |t: &str| jsonwebtoken::decode_header(t).unwrap().kid.unwrap();
    let still = ring.sign(&serde_json::json!({"gid": "g"})).unwrap();
    assert_eq!(
        header(&still),
        header(&old),
        "the successor does not sign yet"
    );
    assert!(ring.own_claims(&old).is_some());
    let retired = rows[0].retire_at.unwrap();
    assert_eq!(store.signing_keys(retired).await.unwrap().len(), 1);
    assert!(store.purge(retired).await.unwrap() >= 1);
}

#[tokio::test]
async fn an_old_key_file_is_moved_into_the_store_once_and_keeps_signing() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let (key, pem) = SigningKey::generate().unwrap();
    let path = dir.path().join(crate::oauth::signing::KEY_FILE);
    std::fs::write(&path, pem).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let store = store().await;
    let month = Duration::from_secs(30 * DAY as u64);
    let ring = KeyRing::open(store.clone(), month, dir.path())
        .await
        .unwrap();
    assert!(!path.exists());
    assert!(dir.path().join("oauth-signing-key.pem.migrated").exists());
    let token = ring.sign(&serde_json::json!({"gid": "g"})).unwrap();
    let kid = jsonwebtoken::decode_header(&token).unwrap().kid.unwrap();
    assert_eq!(kid, key.kid());
    KeyRing::open(store.clone(), month, dir.path())
        .await
        .unwrap();
    assert_eq!(store.signing_keys(0).await.unwrap().len(), 1);
}
