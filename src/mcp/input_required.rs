//! The 2026-07-28 channel to a person (SEP-2322, multi round-trip requests): a stateless
//! client cannot be sent `elicitation/create`, so a direct call whose run asks for
//! approval is answered with `input_required` — one elicitation per pending request,
//! keyed by its approval id — and a `requestState` naming the run. The client asks its
//! user, then retries the same call with the answers and the state; 2Bot applies them
//! and keeps waiting on the same run. No second run is ever started.
//!
//! The run keeps going between the rounds, kept like a background run for its owner
//! (so the retry finds it), and a client that never retries costs nothing more: its
//! requests time out (declined) and the run is reaped as kept runs are.
//!
//! `requestState` is untrusted: it is only a handle (`<run id>~<ids asked so far>`).
//! The run is looked up for the retrying caller's owner key, so a state from someone
//! else's call finds nothing; the ids only stop 2Bot from asking the same thing twice.

use std::collections::BTreeMap;

use rmcp::model::{InputRequest, InputRequiredResult, InputResponses};
use serde_json::json;

use std::sync::Arc;

use super::approvals;
use crate::run::control::{Answer, Channel, Pending, RunControl};
use crate::runs::{Caller, KeptRuns, RunHandle};

/// Longest `requestState` 2Bot reads (its own are far shorter).
pub const MAX_STATE_LEN: usize = 4096;

/// What a `requestState` says: the run, and the approvals already put to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    /// The run the call waits on.
    pub run_id: String,
    /// Approval ids already asked in an earlier round.
    pub asked: Vec<String>,
}

impl State {
    /// The opaque string the client echoes back.
    pub fn encode(&self) -> String {
        format!("{}~{}", self.run_id, self.asked.join(","))
    }

    /// Read a state the client echoed back; `None` if 2Bot cannot have issued it.
    pub fn decode(text: &str) -> Option<Self> {
        if text.len() > MAX_STATE_LEN {
            return None;
        }
        let (run_id, asked) = text.split_once('~')?;
        let id_ok = !run_id.is_empty()
            && run_id.len() <= 64
            && run_id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
        if !id_ok {
            return None;
        }
        let asked: Vec<String> = asked
            .split(',')
            .filter(|a| !a.is_empty())
            .map(str::to_owned)
            .collect();
        let asked_ok = asked.iter().all(|a| {
            a.len() <= 12 && a.starts_with('a') && a[1..].bytes().all(|b| b.is_ascii_digit())
        });
        asked_ok.then(|| Self {
            run_id: run_id.to_owned(),
            asked,
        })
    }
}

/// The `input_required` result asking about `new` (and naming everything asked so far).
pub fn result(state: &State, new: &[Pending]) -> InputRequiredResult {
    let requests: BTreeMap<String, InputRequest> = new
        .iter()
        .filter_map(|p| {
            let form = approvals::form(p)?;
            let request: InputRequest =
                serde_json::from_value(json!({ "method": "elicitation/create", "params": form }))
                    .ok()?;
            Some((p.id.clone(), request))
        })
        .collect();
    InputRequiredResult::new(
        (!requests.is_empty()).then_some(requests),
        Some(state.encode()),
    )
}

/// Wait until `control` has requests not in `asked`, and return them.
pub async fn new_pending(control: &RunControl, asked: &[String]) -> Vec<Pending> {
    let mut changed = control.changed();
    loop {
        let new: Vec<Pending> = control
            .pending()
            .into_iter()
            .filter(|p| !asked.contains(&p.id))
            .collect();
        if !new.is_empty() {
            return new;
        }
        if changed.changed().await.is_err() {
            return std::future::pending().await;
        }
    }
}

/// Wait for requests of `handle`'s run not yet `asked`, and keep the run for `caller`
/// (once) so that the retry finds it; returns them and everything asked so far. With no
/// room to keep the run, its requests are left to their timeout (and not asked).
pub async fn next_round(
    handle: &RunHandle,
    kept: &Arc<KeptRuns>,
    caller: &Caller,
    mut asked: Vec<String>,
) -> (Vec<Pending>, Vec<String>) {
    loop {
        let new = new_pending(handle.control(), &asked).await;
        if kept.get(handle.id(), &caller.owner).is_ok() {
            return (new, asked);
        }
        match kept.reserve(&caller.owner, &caller.quota) {
            Ok(reservation) => {
                reservation.keep(handle.clone());
                return (new, asked);
            }
            Err(e) => {
                tracing::warn!(error = %e, "no room to keep the run between input rounds; its approvals wait for their timeout");
                asked.extend(new.into_iter().map(|p| p.id));
            }
        }
    }
}

/// Apply the client's answers to the approvals it was asked about (`asked`); answers
/// to anything else, and replies that are not an `ElicitResult`, are ignored (the
/// request then waits for the card or its timeout). Returns how many were applied.
pub fn apply(
    control: &RunControl,
    responses: &InputResponses,
    asked: &[String],
    by: &str,
) -> usize {
    let mut applied = 0;
    for (id, reply) in responses {
        if !asked.contains(id) {
            continue;
        }
        let Some((decision, note)) = approvals::decision_of_json(reply) else {
            tracing::info!(approval_id = %id, "input response is not an elicitation result; ignored");
            continue;
        };
        let answer = Answer {
            decision,
            channel: Channel::InputRequired,
            by: Some(by.to_owned()),
            note,
        };
        match control.answer(id, answer) {
            Ok(()) => applied += 1,
            Err(e) => {
                tracing::debug!(approval_id = %id, error = %e, "input response came too late")
            }
        }
    }
    applied
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn a_state_round_trips_and_a_forged_one_is_not_read() {
        let state = State {
            run_id: "0b5c6a3e-1f2d-4c1b-9d8e-7a6b5c4d3e2f".into(),
            asked: vec!["a1".into(), "a2".into()],
        };
        assert_eq!(State::decode(&state.encode()), Some(state));
        let empty = State {
            run_id: "abc".into(),
            asked: vec![],
        };
        assert_eq!(State::decode(&empty.encode()), Some(empty));
        for bad in [
            "",
            "no-separator",
            "~a1",
            "../../etc~a1",
            "abc~a1,b2",
            "abc~a1;drop",
            "abc~a99999999999999",
            &"a".repeat(MAX_STATE_LEN + 1),
        ] {
            assert_eq!(State::decode(bad), None, "{bad}");
        }
    }

    /// Between rounds the run is kept for the caller who started it: the retry finds it,
    /// anyone else's lookup does not, and a second round asks only what is new.
    #[tokio::test]
    async fn the_run_is_kept_for_its_owner_between_rounds_and_nothing_is_asked_twice() {
        use crate::run::control::{ApprovalKind, ApprovalRequest, ControlConfig};
        use crate::run::{Principal, QuotaKey};
        let (handle, _publisher) =
            crate::runs::handle::channel(tokio_util::sync::CancellationToken::new());
        handle.control().configure(ControlConfig {
            approval_timeout: std::time::Duration::from_secs(30),
            reachable: true,
        });
        let kept = Arc::new(KeptRuns::new(crate::config::KeptConfig::default()));
        let alice = Principal::Token {
            name: "alice".into(),
        };
        let caller = Caller {
            quota: QuotaKey::of(&alice),
            owner: alice.owner_key(),
            principal: alice,
            request_id: None,
            transport: crate::run::CallTransport::Http,
            path: crate::run::RunPath::Direct,
            approvals: ControlConfig::default(),
        };
        let ask = |command: &str| {
            let control = handle.control().clone();
            let command = command.to_owned();
            tokio::spawn(async move {
                control
                    .ask(ApprovalRequest {
                        kind: ApprovalKind::Command {
                            command,
                            cwd: "/r".into(),
                        },
                        reason: None,
                    })
                    .await
            })
        };
        let _first = ask("one");
        let (new, asked) = next_round(&handle, &kept, &caller, vec![]).await;
        assert_eq!(new.len(), 1);
        assert!(asked.is_empty());
        assert!(
            kept.get(handle.id(), &caller.owner).is_ok(),
            "the retry finds the run"
        );
        assert!(
            kept.get(handle.id(), "token:mallory").is_err(),
            "nobody else does"
        );
        let _second = ask("two");
        let (new, _) = next_round(&handle, &kept, &caller, vec!["a1".into()]).await;
        assert_eq!(
            new.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(),
            ["a2"]
        );
        assert_eq!(kept.len(), 1, "kept once");
    }

    #[tokio::test]
    async fn only_answers_to_what_was_asked_are_applied() {
        use crate::run::control::{ApprovalKind, ApprovalRequest, ControlConfig, Decision};
        let control = std::sync::Arc::new(RunControl::new(ControlConfig {
            approval_timeout: std::time::Duration::from_secs(30),
            reachable: true,
        }));
        let asker = {
            let control = control.clone();
            tokio::spawn(async move {
                control
                    .ask(ApprovalRequest {
                        kind: ApprovalKind::Command {
                            command: "touch x".into(),
                            cwd: "/r".into(),
                        },
                        reason: None,
                    })
                    .await
            })
        };
        let mut changed = control.changed();
        while control.pending().is_empty() {
            changed.changed().await.unwrap();
        }
        let pending = control.pending();
        let state = State {
            run_id: "r".into(),
            asked: vec![pending[0].id.clone()],
        };
        let asked = serde_json::to_value(result(&state, &pending)).unwrap();
        assert_eq!(asked["resultType"], "input_required");
        assert_eq!(asked["inputRequests"]["a1"]["method"], "elicitation/create");
        assert_eq!(asked["requestState"], "r~a1");
        let mut responses = InputResponses::new();
        responses.insert("a7".into(), json!({"action": "accept"}));
        assert_eq!(apply(&control, &responses, &state.asked, "bob"), 0);
        responses.insert("a1".into(), json!({"action": "cancel"}));
        assert_eq!(apply(&control, &responses, &state.asked, "bob"), 1);
        let record = asker.await.unwrap();
        assert_eq!(record.decision, Decision::Decline);
        assert_eq!(record.channel, Channel::InputRequired);
        assert_eq!(record.answered_by.as_deref(), Some("bob"));
        assert!(record.note.unwrap().contains("dismissed"));
    }
}
