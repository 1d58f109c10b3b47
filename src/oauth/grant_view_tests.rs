#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;

use super::*;
use crate::state::SqliteStore;

const NOW: i64 = 1_700_000_000;

/// One thing that happens to the memory.
#[derive(Debug, Clone)]
enum Step {
    /// The watch reports.
    Watch(Changes),
    /// The store answered for `g1` (revoked or not), asked in the epoch of now.
    Answer(bool),
    /// The store answered for `g1`, asked before the steps that follow it: the epoch
    /// is the one before the next step.
    AskThen(bool, Vec<Step>),
    /// This process revoked `g1`.
    Refuse,
    /// This process ended grants it cannot name.
    Forget,
}

fn run(memory: &mut Memory, steps: &[Step]) {
    for step in steps {
        match step.clone() {
            Step::Watch(changes) => memory.apply(changes, NOW),
            Step::Answer(revoked) => {
                let Decision::Ask { epoch } = memory.decide("g1") else {
                    // Known already: an answer would not be asked for.
                    continue;
                };
                memory.learn("g1", epoch, revoked, NOW);
            }
            Step::AskThen(revoked, meanwhile) => {
                let epoch = match memory.decide("g1") {
                    Decision::Ask { epoch } => epoch,
                    _ => memory.epoch,
                };
                run(memory, &meanwhile);
                memory.learn("g1", epoch, revoked, NOW);
            }
            Step::Refuse => memory.refuse("g1", NOW),
            Step::Forget => memory.forget_live(),
        }
    }
}

#[test]
fn the_view_trusts_memory_only_while_nothing_could_have_ended_the_grant() {
    use Step::*;
    let ask = |e| Decision::Ask { epoch: e };
    let revoked = |ids: &[&str]| Watch(Changes::Revoked(ids.iter().map(|s| (*s).into()).collect()));
    let cases: Vec<(&str, Vec<Step>, Decision)> = vec![
        ("never seen: ask", vec![], ask(0)),
        ("confirmed live", vec![Answer(false)], Decision::Live),
        (
            "confirmed, then nothing",
            vec![Answer(false), Watch(Changes::Nothing)],
            Decision::Live,
        ),
        (
            "revoked in the store: refused",
            vec![Answer(true)],
            Decision::Refused,
        ),
        (
            "unknown stays refused after any change",
            vec![Answer(true), Watch(Changes::Anything)],
            Decision::Refused,
        ),
        (
            "confirmed, then anything: ask again",
            vec![Answer(false), Watch(Changes::Anything)],
            ask(1),
        ),
        (
            "confirmed, then it was revoked elsewhere",
            vec![Answer(false), revoked(&["g1"])],
            Decision::Refused,
        ),
        (
            "confirmed, another grant revoked",
            vec![Answer(false), revoked(&["g2"])],
            Decision::Live,
        ),
        (
            "confirmed, then revoked here",
            vec![Answer(false), Refuse],
            Decision::Refused,
        ),
        (
            "confirmed, then some grants ended here",
            vec![Answer(false), Forget],
            ask(1),
        ),
        (
            "confirmed, watch blind: ask",
            vec![Answer(false), Watch(Changes::Blind)],
            ask(0),
        ),
        (
            "blind, then sees again",
            vec![
                Answer(false),
                Watch(Changes::Blind),
                Watch(Changes::Nothing),
            ],
            Decision::Live,
        ),
        (
            "a live answer that crossed a change is not remembered",
            vec![AskThen(false, vec![Watch(Changes::Anything)])],
            ask(1),
        ),
        (
            "a live answer that crossed a revocation is not remembered",
            vec![AskThen(false, vec![revoked(&["g1"])])],
            Decision::Refused,
        ),
        (
            "a live answer that crossed a local end is not remembered",
            vec![AskThen(false, vec![Forget])],
            ask(1),
        ),
        (
            "a live answer with nothing in between is",
            vec![AskThen(false, vec![Watch(Changes::Nothing)])],
            Decision::Live,
        ),
        (
            "a refusal is remembered whatever crossed it",
            vec![AskThen(true, vec![Watch(Changes::Anything)])],
            Decision::Refused,
        ),
    ];
    for (what, steps, want) in cases {
        let mut memory = Memory::default();
        run(&mut memory, &steps);
        assert_eq!(memory.decide("g1"), want, "{what}");
    }
}

#[test]
fn memory_is_bounded_and_forgetting_a_refusal_stops_answers_on_their_way() {
    let mut memory = Memory::default();
    for i in 0..LIVE_MAX + 5 {
        memory.learn(&format!("live{i}"), 0, false, NOW);
    }
    assert!(memory.live.len() <= LIVE_MAX, "{}", memory.live.len());

    // g1 is asked for, revoked meanwhile, and its refusal then dropped with the rest of
    // a memory full of refusals still useful: the epoch moved on, so the live answer
    // asked before the revocation does not land.
    let Decision::Ask { epoch } = memory.decide("g1") else {
        panic!("g1 is unknown");
    };
    memory.refuse("g1", NOW);
    for i in 0..REFUSED_MAX {
        memory.refuse(&format!("bad{i}"), NOW);
    }
    assert!(memory.refused.len() <= REFUSED_MAX);
    assert!(
        !memory.refused.contains_key("g1"),
        "g1's refusal was dropped"
    );
    memory.learn("g1", epoch, false, NOW);
    assert_ne!(memory.decide("g1"), Decision::Live);

    // Refusals past their use go first.
    let mut memory = Memory::default();
    for i in 0..REFUSED_MAX {
        memory.refuse(&format!("old{i}"), NOW - REFUSAL_USEFUL_SEC - 1);
    }
    memory.refuse("fresh", NOW);
    assert_eq!(memory.refused.len(), 1);
    assert_eq!(memory.decide("fresh"), Decision::Refused);
}

/// A watch that says what the test scripts, then nothing.
#[derive(Debug, Default)]
struct Scripted(Mutex<VecDeque<Changes>>);

impl RevocationWatch for Scripted {
    fn changes(&self) -> Changes {
        self.0
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or(Changes::Nothing)
    }
}

#[tokio::test]
async fn a_confirmed_grant_costs_no_query_until_the_watch_reports_a_change() {
    let store = Arc::new(SqliteStore::open_in_memory().unwrap());
    seed(&store, "g1").await;
    let watch = Arc::new(Scripted::default());
    let view = GrantView::new(store.clone(), watch.clone());
    assert!(view.live("g1").await);
    assert!(!view.live("never-issued").await);

    // Revoked behind the view's back, unwatched: memory answers (no query was made).
    store.revoke_grants(None, "test", NOW).await.unwrap();
    assert!(view.live("g1").await);
    // The watch reports it: the next decision asks, and refuses.
    watch.0.lock().unwrap().push_back(Changes::Anything);
    assert!(!view.live("g1").await);
}

async fn seed(store: &SqliteStore, gid: &str) {
    use crate::state::oauth::{AuthMethod, Client, ClientKind, NewCode, NewRefresh};
    let client = Client {
        id: "c1".into(),
        kind: ClientKind::Dcr,
        name: "c".into(),
        redirect_uris: vec!["https://a.example/cb".into()],
        auth_method: AuthMethod::None_,
        secret_hash: None,
        created_at: NOW,
    };
    assert!(store.insert_client(&client).await.unwrap());
    let code = NewCode {
        code_hash: "code".into(),
        client_id: "c1".into(),
        redirect_uri: "https://a.example/cb".into(),
        code_challenge: "x".into(),
        resource: "https://bot.example/mcp".into(),
        scope: "codex:read".into(),
        expires_at: NOW + 60,
    };
    store.insert_code(&code).await.unwrap();
    let refresh = NewRefresh {
        token_hash: "rt".into(),
        expires_at: NOW + 3600,
        issued_at: NOW,
    };
    store
        .exchange_code("code", NOW, gid, &refresh)
        .await
        .unwrap();
}
