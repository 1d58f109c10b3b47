//! The built-in authorization server's records in the state store, one behaviour per
//! test, run against each backend (`on_postgres` on a throw-away cluster, `on_sqlite`
//! in a state directory): codes exchange once, refresh tokens rotate once, and a replay
//! of either revokes the grant; revocations end what they name. Clients, listing,
//! pruning, the signing keys and the move of an old `oauth.sqlite3` are in
//! `oauth_state_more.rs`; two instances racing for one code or token in
//! `oauth_state_races.rs`.

use std::sync::Arc;

use twobot::state::oauth::{
    AuthMethod, Client, ClientKind, Exchange, Grant, NewCode, NewRefresh, Rotation,
};
use twobot::state::{PostgresStore, StateStore};

use crate::common::postgres;

pub const NOW: i64 = 1_700_000_000;

/// `behaviour::on_postgres` and `behaviour::on_sqlite` for
/// `async fn behaviour(Arc<dyn StateStore>)`, each on a store of its own.
macro_rules! on_both_stores {
    ($($behaviour:ident),* $(,)?) => {$(
        mod $behaviour {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn on_postgres() {
                let db = crate::common::postgres::database();
                super::$behaviour(crate::suite::oauth_state::postgres_store(&db).await).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn on_sqlite() {
                let dir = tempfile::tempdir().unwrap();
                let store = twobot::state::SqliteStore::open(dir.path()).unwrap();
                super::$behaviour(std::sync::Arc::new(store)).await;
            }
        }
    )*};
}
pub(crate) use on_both_stores;

pub async fn postgres_store(db: &postgres::Database) -> Arc<dyn StateStore> {
    Arc::new(PostgresStore::connect(&db.url()).await.unwrap())
}

pub fn dcr(id: &str) -> Client {
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

pub fn cimd(url: &str) -> Client {
    Client {
        kind: ClientKind::Cimd,
        ..dcr(url)
    }
}

pub fn code(hash: &str, client: &str, expires_at: i64) -> NewCode {
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

pub fn refresh(hash: &str, now: i64) -> NewRefresh {
    NewRefresh {
        token_hash: hash.into(),
        issued_at: now,
        expires_at: now + 1_000,
    }
}

pub fn grant_of(id: &str, client: &str) -> Grant {
    Grant {
        id: id.into(),
        client_id: client.into(),
        scope: "codex:run".into(),
        resource: "https://bot.example/mcp".into(),
        created_at: NOW,
    }
}

/// Client `client` signs in once: grant `gid`, refresh token `rt`.
pub async fn grant(s: &dyn StateStore, client: &str, gid: &str, rt: &str) {
    let hash = format!("code-{gid}");
    s.insert_code(&code(&hash, client, NOW + 60)).await.unwrap();
    let out = s
        .exchange_code(&hash, NOW, gid, &refresh(rt, NOW))
        .await
        .unwrap();
    assert!(matches!(out, Exchange::Issued(_)), "{out:?}");
}

/// Client `c1`, which signed in once: grant `g1`, refresh token `r1`.
pub async fn signed_in(s: &dyn StateStore) {
    assert!(s.insert_client(&dcr("c1")).await.unwrap());
    grant(s, "c1", "g1", "r1").await;
}

on_both_stores!(
    a_code_exchanges_once_and_its_reuse_revokes_the_grant_made_from_it,
    a_code_is_good_until_its_expiry_and_an_unknown_or_burnt_code_issues_nothing,
    a_refresh_token_rotates_into_the_same_grant_and_is_then_used_up,
    a_replayed_refresh_token_revokes_its_family_so_the_new_token_stops_working_too,
    a_refresh_token_of_a_revoked_grant_another_client_or_past_its_expiry_is_refused,
    revoking_a_refresh_family_needs_the_token_of_the_named_client,
    revoking_an_access_token_s_grant_needs_its_own_client,
    revoking_a_client_or_all_counts_the_grants_ended_and_uses_up_pending_codes,
    an_unknown_grant_counts_as_revoked,
);

async fn a_code_exchanges_once_and_its_reuse_revokes_the_grant_made_from_it(
    s: Arc<dyn StateStore>,
) {
    assert!(s.insert_client(&dcr("c1")).await.unwrap());
    s.insert_code(&code("h", "c1", NOW + 60)).await.unwrap();
    let issued = s
        .exchange_code("h", NOW, "g1", &refresh("r1", NOW))
        .await
        .unwrap();
    assert_eq!(issued, Exchange::Issued(grant_of("g1", "c1")));
    assert!(!s.grant_revoked("g1").await.unwrap());
    assert_eq!(s.code("h").await.unwrap().unwrap().used_at, Some(NOW));

    let again = s
        .exchange_code("h", NOW + 1, "g2", &refresh("r2", NOW))
        .await
        .unwrap();
    assert_eq!(again, Exchange::Reused);
    assert!(s.grant_revoked("g1").await.unwrap());
    assert_eq!(
        s.rotate_refresh("r1", "c1", NOW + 2, &refresh("r3", NOW + 2))
            .await
            .unwrap(),
        Rotation::Revoked,
        "the refresh token of the grant made from a replayed code stops working"
    );
    assert!(
        s.grant_revoked("g2").await.unwrap(),
        "no second grant exists"
    );
}

async fn a_code_is_good_until_its_expiry_and_an_unknown_or_burnt_code_issues_nothing(
    s: Arc<dyn StateStore>,
) {
    assert!(s.insert_client(&dcr("c1")).await.unwrap());
    // (attempted at, burnt first, expected); each case its own code and grant.
    let cases = [
        (NOW + 59, false, "issued"),
        (NOW + 60, false, "expired"),
        (NOW + 3_600, false, "expired"),
        (NOW, true, "reused"),
    ];
    for (i, (at, burnt, expected)) in cases.into_iter().enumerate() {
        let (hash, gid) = (format!("h{i}"), format!("g{i}"));
        s.insert_code(&code(&hash, "c1", NOW + 60)).await.unwrap();
        if burnt {
            s.burn_code(&hash, NOW).await.unwrap();
        }
        let out = s
            .exchange_code(&hash, at, &gid, &refresh(&format!("r{i}"), at))
            .await
            .unwrap();
        let got = match out {
            Exchange::Issued(_) => "issued",
            Exchange::Reused => "reused",
            Exchange::Expired => "expired",
            Exchange::Unknown => "unknown",
        };
        assert_eq!(got, expected, "at {at}, burnt {burnt}");
        assert_eq!(s.grant_revoked(&gid).await.unwrap(), expected != "issued");
    }
    assert_eq!(
        s.exchange_code("nope", NOW, "gx", &refresh("rx", NOW))
            .await
            .unwrap(),
        Exchange::Unknown
    );
}

async fn a_refresh_token_rotates_into_the_same_grant_and_is_then_used_up(s: Arc<dyn StateStore>) {
    signed_in(s.as_ref()).await;
    let out = s
        .rotate_refresh("r1", "c1", NOW + 10, &refresh("r2", NOW + 10))
        .await
        .unwrap();
    assert_eq!(out, Rotation::Rotated(grant_of("g1", "c1")));
    let out = s
        .rotate_refresh("r2", "c1", NOW + 20, &refresh("r3", NOW + 20))
        .await
        .unwrap();
    assert!(matches!(out, Rotation::Rotated(_)), "{out:?}");
    let listed = s.listing(NOW + 20).await.unwrap();
    assert_eq!(listed[0].grants[0].last_used_at, NOW + 20);
    assert_eq!(listed[0].grants[0].refresh_expires_at, Some(NOW + 1_020));
}

async fn a_replayed_refresh_token_revokes_its_family_so_the_new_token_stops_working_too(
    s: Arc<dyn StateStore>,
) {
    signed_in(s.as_ref()).await;
    let out = s
        .rotate_refresh("r1", "c1", NOW + 10, &refresh("r2", NOW + 10))
        .await
        .unwrap();
    assert!(matches!(out, Rotation::Rotated(_)));
    let replay = s
        .rotate_refresh("r1", "c1", NOW + 11, &refresh("rx", NOW + 11))
        .await
        .unwrap();
    assert_eq!(replay, Rotation::Reused);
    assert!(s.grant_revoked("g1").await.unwrap());
    let next = s
        .rotate_refresh("r2", "c1", NOW + 12, &refresh("ry", NOW + 12))
        .await
        .unwrap();
    assert_eq!(next, Rotation::Revoked);
    let stored = s
        .rotate_refresh("rx", "c1", NOW + 12, &refresh("rz", NOW + 12))
        .await
        .unwrap();
    assert_eq!(stored, Rotation::Unknown, "the replay stored no token");
}

async fn a_refresh_token_of_a_revoked_grant_another_client_or_past_its_expiry_is_refused(
    s: Arc<dyn StateStore>,
) {
    assert!(s.insert_client(&dcr("c1")).await.unwrap());
    assert!(s.insert_client(&dcr("c2")).await.unwrap());
    // (revoke the grant first, token presented, by client, at, expected)
    let cases = [
        (true, "rt", "c1", NOW + 1, Rotation::Revoked),
        (false, "rt", "c2", NOW + 1, Rotation::WrongClient),
        (false, "rt", "c1", NOW + 1_000, Rotation::Expired),
        (false, "r-none", "c1", NOW + 1, Rotation::Unknown),
        (
            false,
            "rt",
            "c1",
            NOW + 999,
            Rotation::Rotated(grant_of("", "c1")),
        ),
    ];
    for (i, (revoked, token, client, at, expected)) in cases.into_iter().enumerate() {
        let (gid, rt) = (format!("g{i}"), format!("rt{i}"));
        grant(s.as_ref(), "c1", &gid, &rt).await;
        if revoked {
            s.revoke_grant_of(&gid, "c1", "test", NOW).await.unwrap();
        }
        let token = if token == "rt" { rt } else { token.to_owned() };
        let got = s
            .rotate_refresh(&token, client, at, &refresh(&format!("next{i}"), at))
            .await
            .unwrap();
        let expected = match expected {
            Rotation::Rotated(_) => Rotation::Rotated(grant_of(&gid, "c1")),
            other => other,
        };
        assert_eq!(got, expected, "{token} by {client} at {at}");
        if expected == Rotation::WrongClient {
            assert!(
                !s.grant_revoked(&gid).await.unwrap(),
                "another client's attempt changes nothing"
            );
        }
    }
}

async fn revoking_a_refresh_family_needs_the_token_of_the_named_client(s: Arc<dyn StateStore>) {
    signed_in(s.as_ref()).await;
    let revoke = |token: &'static str, client: Option<&'static str>| {
        let s = s.clone();
        async move {
            s.revoke_refresh_family(token, client, "rfc7009", NOW)
                .await
                .unwrap()
        }
    };
    assert!(!revoke("r1", Some("c2")).await);
    assert!(!s.grant_revoked("g1").await.unwrap());
    assert!(!revoke("nope", None).await);
    assert!(revoke("r1", Some("c1")).await);
    assert!(s.grant_revoked("g1").await.unwrap());
    assert!(!revoke("r1", None).await, "already ended");
}

async fn revoking_an_access_token_s_grant_needs_its_own_client(s: Arc<dyn StateStore>) {
    signed_in(s.as_ref()).await;
    assert!(!s.revoke_grant_of("g1", "c2", "client", NOW).await.unwrap());
    assert!(!s.revoke_grant_of("gx", "c1", "client", NOW).await.unwrap());
    assert!(!s.grant_revoked("g1").await.unwrap());
    assert!(s.revoke_grant_of("g1", "c1", "client", NOW).await.unwrap());
    assert!(s.grant_revoked("g1").await.unwrap());
    assert!(
        !s.revoke_grant_of("g1", "c1", "client", NOW).await.unwrap(),
        "already ended"
    );
}

async fn revoking_a_client_or_all_counts_the_grants_ended_and_uses_up_pending_codes(
    s: Arc<dyn StateStore>,
) {
    signed_in(s.as_ref()).await;
    grant(s.as_ref(), "c1", "g2", "r2").await;
    assert!(s.insert_client(&dcr("c2")).await.unwrap());
    grant(s.as_ref(), "c2", "g3", "r3").await;
    s.insert_code(&code("pending", "c1", NOW + 60))
        .await
        .unwrap();

    assert_eq!(
        s.revoke_grants(Some("c1"), "operator", NOW).await.unwrap(),
        2
    );
    assert_eq!(
        s.revoke_grants(Some("c1"), "operator", NOW).await.unwrap(),
        0,
        "already ended"
    );
    assert!(!s.grant_revoked("g3").await.unwrap());
    assert_eq!(
        s.exchange_code("pending", NOW, "g4", &refresh("r4", NOW))
            .await
            .unwrap(),
        Exchange::Reused,
        "a code issued before the revocation cannot start a new grant"
    );
    assert_eq!(s.revoke_grants(None, "operator", NOW).await.unwrap(), 1);
    assert!(s.grant_revoked("g3").await.unwrap());
    assert_eq!(s.revoke_grants(None, "operator", NOW).await.unwrap(), 0);
}

async fn an_unknown_grant_counts_as_revoked(s: Arc<dyn StateStore>) {
    signed_in(s.as_ref()).await;
    assert!(s.grant_revoked("never-issued").await.unwrap());
    assert!(!s.grant_revoked("g1").await.unwrap());
}
