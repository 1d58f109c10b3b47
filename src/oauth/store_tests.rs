#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The store's decisions: codes, refresh rotation, revocation, listing, pruning.

use super::*;

pub(super) const NOW: i64 = 1_700_000_000;

pub(super) fn dcr(id: &str) -> Client {
    Client {
        id: id.into(),
        kind: ClientKind::Dcr,
        name: format!("client {id}"),
        redirect_uris: vec!["https://chatgpt.com/cb".into()],
        auth_method: AuthMethod::None_,
        secret_hash: None,
        created_at: NOW,
    }
}

pub(super) fn code(hash: &str, client: &str, expires_at: i64) -> NewCode {
    NewCode {
        code_hash: hash.into(),
        client_id: client.into(),
        redirect_uri: "https://chatgpt.com/cb".into(),
        code_challenge: "challenge".into(),
        resource: "https://bot.example/mcp".into(),
        scope: "codex:run".into(),
        expires_at,
    }
}

pub(super) fn refresh(hash: &str, now: i64) -> NewRefresh {
    NewRefresh {
        token_hash: hash.into(),
        issued_at: now,
        expires_at: now + 1_000,
    }
}

/// A store with client `c1`, which signed in once: grant `g1`, refresh token `r1`.
pub(super) fn signed_in() -> Store {
    let store = Store::open_in_memory().unwrap();
    store.insert_client(&dcr("c1")).unwrap();
    grant(&store, "c1", "g1", "r1");
    store
}

pub(super) fn grant(store: &Store, client: &str, gid: &str, rt: &str) {
    let hash = format!("code-{gid}");
    store.insert_code(&code(&hash, client, NOW + 60)).unwrap();
    let out = store
        .exchange_code(&hash, NOW, gid, &refresh(rt, NOW))
        .unwrap();
    assert!(matches!(out, Exchange::Issued(_)), "{out:?}");
}

#[test]
fn a_code_exchanges_once_and_its_reuse_revokes_the_grant_made_from_it() {
    let store = Store::open_in_memory().unwrap();
    store.insert_client(&dcr("c1")).unwrap();
    store.insert_code(&code("h", "c1", NOW + 60)).unwrap();
    let issued = store
        .exchange_code("h", NOW, "g1", &refresh("r1", NOW))
        .unwrap();
    let expected = Grant {
        id: "g1".into(),
        client_id: "c1".into(),
        scope: "codex:run".into(),
        resource: "https://bot.example/mcp".into(),
        created_at: NOW,
    };
    assert_eq!(issued, Exchange::Issued(expected));
    assert!(!store.grant_revoked("g1").unwrap());
    assert_eq!(store.code("h").unwrap().unwrap().used_at, Some(NOW));

    let again = store
        .exchange_code("h", NOW + 1, "g2", &refresh("r2", NOW))
        .unwrap();
    assert_eq!(again, Exchange::Reused);
    assert!(store.grant_revoked("g1").unwrap());
    assert_eq!(
        store
            .rotate_refresh("r1", "c1", NOW + 2, &refresh("r3", NOW + 2))
            .unwrap(),
        Rotation::Revoked,
        "the refresh token of the grant made from a replayed code stops working"
    );
    assert!(store.grant_revoked("g2").unwrap(), "no second grant exists");
}

#[test]
fn a_code_is_good_until_its_expiry_and_an_unknown_or_burnt_code_issues_nothing() {
    // (attempted at, burnt first, expected)
    let cases = [
        (NOW + 59, false, "issued"),
        (NOW + 60, false, "expired"),
        (NOW + 3_600, false, "expired"),
        (NOW, true, "reused"),
    ];
    for (at, burnt, expected) in cases {
        let store = Store::open_in_memory().unwrap();
        store.insert_client(&dcr("c1")).unwrap();
        store.insert_code(&code("h", "c1", NOW + 60)).unwrap();
        if burnt {
            store.burn_code("h", NOW).unwrap();
        }
        let out = store
            .exchange_code("h", at, "g1", &refresh("r1", at))
            .unwrap();
        let got = match out {
            Exchange::Issued(_) => "issued",
            Exchange::Reused => "reused",
            Exchange::Expired => "expired",
            Exchange::Unknown => "unknown",
        };
        assert_eq!(got, expected, "at {at}, burnt {burnt}");
        assert_eq!(store.grant_revoked("g1").unwrap(), expected != "issued");
    }
    let store = Store::open_in_memory().unwrap();
    assert_eq!(
        store
            .exchange_code("nope", NOW, "g1", &refresh("r1", NOW))
            .unwrap(),
        Exchange::Unknown
    );
}

#[test]
fn a_refresh_token_rotates_into_the_same_grant_and_is_then_used_up() {
    let store = signed_in();
    let out = store
        .rotate_refresh("r1", "c1", NOW + 10, &refresh("r2", NOW + 10))
        .unwrap();
    let Rotation::Rotated(grant) = out else {
        panic!("{out:?}")
    };
    assert_eq!(grant.id, "g1");
    let out = store
        .rotate_refresh("r2", "c1", NOW + 20, &refresh("r3", NOW + 20))
        .unwrap();
    assert!(matches!(out, Rotation::Rotated(_)), "{out:?}");
    let listed = store.listing(NOW + 20).unwrap();
    assert_eq!(listed[0].grants[0].last_used_at, NOW + 20);
    assert_eq!(listed[0].grants[0].refresh_expires_at, Some(NOW + 1_020));
}

#[test]
fn a_replayed_refresh_token_revokes_its_family_so_the_new_token_stops_working_too() {
    let store = signed_in();
    let out = store
        .rotate_refresh("r1", "c1", NOW + 10, &refresh("r2", NOW + 10))
        .unwrap();
    assert!(matches!(out, Rotation::Rotated(_)));
    let replay = store
        .rotate_refresh("r1", "c1", NOW + 11, &refresh("rx", NOW + 11))
        .unwrap();
    assert_eq!(replay, Rotation::Reused);
    assert!(store.grant_revoked("g1").unwrap());
    assert_eq!(
        store
            .rotate_refresh("r2", "c1", NOW + 12, &refresh("ry", NOW + 12))
            .unwrap(),
        Rotation::Revoked
    );
    assert_eq!(
        store
            .rotate_refresh("rx", "c1", NOW + 12, &refresh("rz", NOW + 12))
            .unwrap(),
        Rotation::Unknown,
        "the replay stored no token"
    );
}

#[test]
fn a_refresh_token_of_a_revoked_grant_another_client_or_past_its_expiry_is_refused() {
    // (setup, token, client, at, expected)
    type Setup = fn(&Store);
    let cases: [(Setup, &str, &str, i64, Rotation); 5] = [
        (
            |s| {
                s.revoke_client("c1", "test", NOW).unwrap();
            },
            "r1",
            "c1",
            NOW + 1,
            Rotation::Revoked,
        ),
        (|_| {}, "r1", "c2", NOW + 1, Rotation::WrongClient),
        (|_| {}, "r1", "c1", NOW + 1_000, Rotation::Expired),
        (|_| {}, "r0", "c1", NOW + 1, Rotation::Unknown),
        (
            |_| {},
            "r1",
            "c1",
            NOW + 999,
            Rotation::Rotated(signed_in_grant()),
        ),
    ];
    for (setup, token, client, at, expected) in cases {
        let store = signed_in();
        store.insert_client(&dcr("c2")).unwrap();
        setup(&store);
        let got = store
            .rotate_refresh(token, client, at, &refresh("next", at))
            .unwrap();
        assert_eq!(got, expected, "{token} by {client} at {at}");
        if expected == Rotation::WrongClient {
            assert!(
                !store.grant_revoked("g1").unwrap(),
                "another client's attempt changes nothing"
            );
        }
    }
}

fn signed_in_grant() -> Grant {
    Grant {
        id: "g1".into(),
        client_id: "c1".into(),
        scope: "codex:run".into(),
        resource: "https://bot.example/mcp".into(),
        created_at: NOW,
    }
}

#[test]
fn revoking_a_refresh_family_needs_the_token_of_the_named_client() {
    let store = signed_in();
    assert!(
        !store
            .revoke_refresh_family("r1", Some("c2"), "rfc7009", NOW)
            .unwrap()
    );
    assert!(!store.grant_revoked("g1").unwrap());
    assert!(
        !store
            .revoke_refresh_family("nope", None, "rfc7009", NOW)
            .unwrap()
    );
    assert!(
        store
            .revoke_refresh_family("r1", Some("c1"), "rfc7009", NOW)
            .unwrap()
    );
    assert!(store.grant_revoked("g1").unwrap());
    assert!(
        !store
            .revoke_refresh_family("r1", None, "rfc7009", NOW)
            .unwrap(),
        "already ended"
    );
}

#[test]
fn revoke_client_and_revoke_all_count_the_grants_they_end_and_use_up_pending_codes() {
    let store = signed_in();
    grant(&store, "c1", "g2", "r2");
    store.insert_client(&dcr("c2")).unwrap();
    grant(&store, "c2", "g3", "r3");
    store.insert_code(&code("pending", "c1", NOW + 60)).unwrap();

    assert_eq!(store.revoke_client("c1", "operator", NOW).unwrap(), 2);
    assert_eq!(
        store.revoke_client("c1", "operator", NOW).unwrap(),
        0,
        "already ended"
    );
    assert!(!store.grant_revoked("g3").unwrap());
    assert_eq!(
        store
            .exchange_code("pending", NOW, "g4", &refresh("r4", NOW))
            .unwrap(),
        Exchange::Reused,
        "a code issued before the revocation cannot start a new grant"
    );
    assert_eq!(store.revoke_all("operator", NOW).unwrap(), 1);
    assert!(store.grant_revoked("g3").unwrap());
    assert_eq!(store.revoke_all("operator", NOW).unwrap(), 0);
}

#[test]
fn the_listing_shows_every_client_with_only_its_live_grants() {
    let store = signed_in();
    grant(&store, "c1", "g2", "r2");
    store
        .revoke_refresh_family("r2", None, "test", NOW)
        .unwrap();
    store.insert_client(&dcr("c2")).unwrap();

    let listed = store.listing(NOW + 10).unwrap();
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
    let later = store.listing(NOW + 2_000).unwrap();
    assert_eq!(later[0].grants.len(), 1);
    assert_eq!(later[0].grants[0].refresh_expires_at, None);
    let much_later = store.listing(NOW + ACCESS_TTL_MAX_SEC + 1).unwrap();
    assert!(much_later[0].grants.is_empty());
}

#[test]
fn pruning_deletes_old_clients_of_either_kind_that_never_got_a_grant() {
    let store = signed_in();
    store.insert_client(&dcr("unused-old")).unwrap();
    store
        .insert_client(&Client {
            created_at: NOW + 100,
            ..dcr("unused-new")
        })
        .unwrap();
    store
        .upsert_cimd_client(&Client {
            kind: ClientKind::Cimd,
            ..dcr("https://app.example/old.json")
        })
        .unwrap();
    store
        .upsert_cimd_client(&Client {
            kind: ClientKind::Cimd,
            created_at: NOW + 100,
            ..dcr("https://app.example/new.json")
        })
        .unwrap();
    store.insert_client(&dcr("revoked")).unwrap();
    grant(&store, "revoked", "g9", "r9");
    store.revoke_client("revoked", "test", NOW).unwrap();
    assert_eq!(store.count_clients().unwrap(), 4, "documents do not count");

    assert_eq!(store.prune_unused_clients(NOW + 50).unwrap(), 2);
    for gone in ["unused-old", "https://app.example/old.json"] {
        assert!(store.client(gone).unwrap().is_none(), "{gone} was kept");
    }
    for kept in [
        "c1",
        "unused-new",
        "https://app.example/new.json",
        "revoked",
    ] {
        assert!(store.client(kept).unwrap().is_some(), "{kept} was pruned");
    }
    assert_eq!(store.count_clients().unwrap(), 3);
}

#[test]
fn a_client_id_registers_once_and_a_metadata_document_refresh_keeps_its_grants() {
    let store = signed_in();
    assert!(
        matches!(store.insert_client(&dcr("c1")), Err(StoreError::ClientExists(id)) if id == "c1")
    );
    assert!(matches!(
        store.upsert_cimd_client(&dcr("c1")),
        Err(StoreError::NotCimd(_))
    ));

    let url = "https://app.example/client.json";
    let first = Client {
        kind: ClientKind::Cimd,
        ..dcr(url)
    };
    store.upsert_cimd_client(&first).unwrap();
    grant(&store, url, "gc", "rc");
    let refetched = Client {
        name: "Renamed".into(),
        redirect_uris: vec!["http://127.0.0.1/cb".into()],
        created_at: NOW + 500,
        ..first
    };
    store.upsert_cimd_client(&refetched).unwrap();
    let stored = store.client(url).unwrap().unwrap();
    assert_eq!(
        stored,
        Client {
            created_at: NOW,
            ..refetched
        }
    );
    assert!(!store.grant_revoked("gc").unwrap());
}

#[test]
fn a_client_secret_matches_only_itself_and_auth_methods_keep_their_rfc_names() {
    let client = Client {
        auth_method: AuthMethod::ClientSecretBasic,
        secret_hash: Some(sha256_hex("s3cret")),
        ..dcr("c1")
    };
    assert!(client.secret_matches("s3cret"));
    assert!(!client.secret_matches("s3cret "));
    assert!(
        !dcr("c2").secret_matches(""),
        "a public client has no secret"
    );
    assert_eq!(
        sha256_hex("abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    for m in [
        AuthMethod::None_,
        AuthMethod::ClientSecretPost,
        AuthMethod::ClientSecretBasic,
    ] {
        assert_eq!(AuthMethod::parse(m.as_str()), Some(m));
    }
    assert_eq!(AuthMethod::parse("private_key_jwt"), None);
    let store = Store::open_in_memory().unwrap();
    store.insert_client(&client).unwrap();
    assert_eq!(store.client("c1").unwrap().unwrap(), client);
}

#[test]
fn an_unknown_grant_counts_as_revoked() {
    let store = signed_in();
    assert!(store.grant_revoked("never-issued").unwrap());
    assert!(!store.grant_revoked("g1").unwrap());
}

#[test]
fn purging_forgets_only_what_no_token_can_still_need() {
    let store = signed_in();
    assert_eq!(store.purge(NOW + 10).unwrap(), 0);
    assert!(!store.grant_revoked("g1").unwrap());
    // A day past everything: the used code, the expired refresh token and its grant go.
    assert_eq!(store.purge(NOW + 1_000 + ACCESS_TTL_MAX_SEC).unwrap(), 3);
    assert!(store.grant_revoked("g1").unwrap());
    assert!(store.client("c1").unwrap().is_some());
}
