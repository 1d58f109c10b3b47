//! Pending sign-ins and failed sign-in attempts in the state store, on both backends:
//! what lets a sign-in started on one instance be finished on another behind a
//! round-robin balancer, and a guesser's count be the same on every instance. A sign-in
//! reads back as stored until it expires, is marked signed in once, is taken by exactly
//! one decision (even racing ones), and the table stays bounded however many are
//! started; an address gets five attempts per window, even when racing, until the
//! oldest ages out or a right password clears it.

use std::sync::Arc;

use twobot::state::StateStore;
use twobot::state::oauth::SignInRow;

use super::oauth_state::{NOW, on_both_stores};

on_both_stores!(
    a_pending_sign_in_reads_back_until_it_expires,
    a_sign_in_is_marked_then_taken_by_exactly_one_decision,
    racing_decisions_on_one_sign_in_find_it_once,
    the_oldest_pending_sign_ins_go_when_too_many_are_started,
    purging_deletes_expired_sign_ins_only,
    five_attempts_are_counted_then_refused_until_the_oldest_leaves_the_window,
    racing_attempts_from_one_address_get_exactly_the_limit,
    a_right_password_clears_only_its_own_address,
);

const WINDOW_MS: i64 = 900_000;
const T0_MS: i64 = NOW * 1000;

fn pending(id: &str, created_at: i64) -> SignInRow {
    SignInRow {
        id_hash: format!("hash-{id}"),
        request: format!("{{\"client_id\":\"{id}\",\"csrf_hash\":\"c\"}}"),
        signed_in: false,
        created_at,
        expires_at: created_at + 600,
    }
}

async fn a_pending_sign_in_reads_back_until_it_expires(s: Arc<dyn StateStore>) {
    let row = pending("a", NOW);
    s.insert_sign_in(&row, 10).await.unwrap();
    assert_eq!(s.sign_in("hash-a", NOW + 1).await.unwrap(), Some(row));
    assert_eq!(s.sign_in("hash-b", NOW + 1).await.unwrap(), None);
    // At its expiry it is gone for every call, even before a purge.
    assert_eq!(s.sign_in("hash-a", NOW + 600).await.unwrap(), None);
    assert!(!s.mark_signed_in("hash-a", NOW + 600).await.unwrap());
    assert_eq!(s.take_sign_in("hash-a", NOW + 600).await.unwrap(), None);
}

async fn a_sign_in_is_marked_then_taken_by_exactly_one_decision(s: Arc<dyn StateStore>) {
    s.insert_sign_in(&pending("a", NOW), 10).await.unwrap();
    assert!(s.mark_signed_in("hash-a", NOW + 1).await.unwrap());
    let read = s.sign_in("hash-a", NOW + 2).await.unwrap().unwrap();
    assert!(
        read.signed_in,
        "another instance sees the password was given"
    );
    let taken = s.take_sign_in("hash-a", NOW + 3).await.unwrap().unwrap();
    assert!(taken.signed_in);
    assert_eq!(taken.request, pending("a", NOW).request);
    assert_eq!(s.take_sign_in("hash-a", NOW + 3).await.unwrap(), None);
    assert!(
        !s.mark_signed_in("hash-a", NOW + 4).await.unwrap(),
        "a decided sign-in cannot be signed in again"
    );
    assert_eq!(s.sign_in("hash-a", NOW + 4).await.unwrap(), None);
}

async fn racing_decisions_on_one_sign_in_find_it_once(s: Arc<dyn StateStore>) {
    s.insert_sign_in(&pending("a", NOW), 10).await.unwrap();
    let racers = (0..8).map(|_| {
        let s = s.clone();
        tokio::spawn(async move { s.take_sign_in("hash-a", NOW + 1).await.unwrap() })
    });
    let mut found = 0;
    for racer in racers.collect::<Vec<_>>() {
        found += usize::from(racer.await.unwrap().is_some());
    }
    assert_eq!(found, 1, "exactly one of eight decisions takes the sign-in");
}

async fn the_oldest_pending_sign_ins_go_when_too_many_are_started(s: Arc<dyn StateStore>) {
    for (i, id) in ["a", "b", "c", "d"].into_iter().enumerate() {
        let at = NOW + i64::try_from(i).unwrap();
        s.insert_sign_in(&pending(id, at), 3).await.unwrap();
    }
    let now = NOW + 10;
    assert_eq!(
        s.sign_in("hash-a", now).await.unwrap(),
        None,
        "the oldest went"
    );
    for id in ["b", "c", "d"] {
        assert!(
            s.sign_in(&format!("hash-{id}"), now)
                .await
                .unwrap()
                .is_some(),
            "{id} stays"
        );
    }
}

async fn purging_deletes_expired_sign_ins_only(s: Arc<dyn StateStore>) {
    s.insert_sign_in(&pending("old", NOW), 10).await.unwrap();
    s.insert_sign_in(&pending("new", NOW + 500), 10)
        .await
        .unwrap();
    assert_eq!(s.purge(NOW + 600).await.unwrap(), 1);
    assert_eq!(s.sign_in("hash-old", NOW).await.unwrap(), None);
    assert!(s.sign_in("hash-new", NOW + 600).await.unwrap().is_some());
}

async fn five_attempts_are_counted_then_refused_until_the_oldest_leaves_the_window(
    s: Arc<dyn StateStore>,
) {
    for i in 0..5 {
        let at = T0_MS + i * 1000;
        assert_eq!(
            s.reserve_sign_in_attempt("203.0.113.7", at, WINDOW_MS, 5)
                .await
                .unwrap(),
            None,
            "attempt {i}"
        );
    }
    let at = T0_MS + 10_000;
    assert_eq!(
        s.reserve_sign_in_attempt("203.0.113.7", at, WINDOW_MS, 5)
            .await
            .unwrap(),
        Some(WINDOW_MS - 10_000),
        "the sixth waits for the first to age out"
    );
    assert_eq!(
        s.reserve_sign_in_attempt("203.0.113.8", at, WINDOW_MS, 5)
            .await
            .unwrap(),
        None,
        "another address has its own count"
    );
    // The first attempt leaves the window: one more place.
    let later = T0_MS + WINDOW_MS;
    assert_eq!(
        s.reserve_sign_in_attempt("203.0.113.7", later, WINDOW_MS, 5)
            .await
            .unwrap(),
        None
    );
    assert!(
        s.reserve_sign_in_attempt("203.0.113.7", later, WINDOW_MS, 5)
            .await
            .unwrap()
            .is_some()
    );
}

async fn racing_attempts_from_one_address_get_exactly_the_limit(s: Arc<dyn StateStore>) {
    let racers: Vec<_> = (0..28)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move {
                s.reserve_sign_in_attempt("198.51.100.4", T0_MS, WINDOW_MS, 5)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut counted = 0;
    for racer in racers {
        counted += usize::from(racer.await.unwrap().is_none());
    }
    assert_eq!(counted, 5, "28 concurrent guesses, five checks");
}

async fn a_right_password_clears_only_its_own_address(s: Arc<dyn StateStore>) {
    for address in ["192.0.2.1", "192.0.2.2"] {
        for _ in 0..5 {
            s.reserve_sign_in_attempt(address, T0_MS, WINDOW_MS, 5)
                .await
                .unwrap();
        }
    }
    s.clear_sign_in_attempts("192.0.2.1").await.unwrap();
    assert_eq!(
        s.reserve_sign_in_attempt("192.0.2.1", T0_MS, WINDOW_MS, 5)
            .await
            .unwrap(),
        None
    );
    assert!(
        s.reserve_sign_in_attempt("192.0.2.2", T0_MS, WINDOW_MS, 5)
            .await
            .unwrap()
            .is_some()
    );
}
