//! The first channel to a person: a legacy (2025-11-25) session whose client declared
//! form elicitation gets one `elicitation/create` per approval request while its direct
//! call waits. The relay runs inside the call's handler (never `tokio::spawn`ed), so rmcp
//! sends each elicitation on the call's own response stream (SEP-2260).
//!
//! A reply is read by [`super::approvals::decision_of`]. Anything else — the client
//! refuses, errors or does not answer within the request's remaining time — leaves the
//! request pending, so the run card or the timeout answers it: never a silent decline,
//! never a hang.

use std::collections::HashSet;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use rmcp::{Peer, RoleServer};

use super::approvals;
use crate::run::control::{Answer, Channel, Pending, RunControl};
use crate::runs::RunHandle;

/// Ask `peer` about every request `handle`'s run makes, as `by`; runs until the run's
/// control goes away (the caller stops polling it when the run ends).
pub async fn relay(handle: &RunHandle, peer: &Peer<RoleServer>, by: &str) {
    let control = handle.control().clone();
    let mut changed = control.changed();
    let mut asked: HashSet<String> = HashSet::new();
    let mut inflight = FuturesUnordered::new();
    loop {
        for pending in control.pending() {
            if asked.insert(pending.id.clone()) {
                inflight.push(ask(&control, peer, pending, by));
            }
        }
        tokio::select! {
            changed = changed.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            Some(()) = inflight.next(), if !inflight.is_empty() => {}
        }
    }
}

/// What is left of a request's wait, from when it was asked.
fn remaining(control: &RunControl, pending: &Pending) -> Duration {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    let waited = Duration::from_millis(now_ms.saturating_sub(pending.asked_at_ms));
    control.config().approval_timeout.saturating_sub(waited)
}

async fn ask(control: &RunControl, peer: &Peer<RoleServer>, pending: Pending, by: &str) {
    let Some(form) = approvals::form(&pending) else {
        return;
    };
    let wait = remaining(control, &pending);
    match peer.create_elicitation_with_timeout(form, Some(wait)).await {
        Ok(reply) => {
            let (decision, note) = approvals::decision_of(&reply.action, reply.content.as_ref());
            let answered = control.answer(
                &pending.id,
                Answer {
                    decision,
                    channel: Channel::Elicitation,
                    by: Some(by.to_owned()),
                    note,
                },
            );
            if let Err(e) = answered {
                // Another channel (the card) or the timeout was first.
                tracing::debug!(approval_id = %pending.id, error = %e, "elicitation reply came too late");
            }
        }
        Err(e) => tracing::info!(
            approval_id = %pending.id,
            error = %e,
            "elicitation not answered; the request waits for the run card or its timeout"
        ),
    }
}

#[cfg(test)]
#[path = "elicit_tests.rs"]
mod tests;
