//! Progress for a direct call: the run's progress relayed as `notifications/progress`,
//! with a keep-alive whenever Codex is quiet for [`KEEPALIVE`], so clients that reset
//! their timeout on progress do not cut long runs.

use std::time::{Duration, Instant};

use rmcp::model::{ProgressNotificationParam, ProgressToken};
use rmcp::{Peer, RoleServer};

use crate::runs::RunHandle;
use crate::runs::handle::Phase;

/// Longest silence on the progress channel before a keep-alive is sent.
pub const KEEPALIVE: Duration = Duration::from_secs(15);

/// Relay `handle`'s progress to `peer` under `token` until the run ends; returns once
/// every message published before the end was sent (so they precede the result).
pub async fn relay(handle: RunHandle, peer: Peer<RoleServer>, token: ProgressToken) {
    let started = Instant::now();
    let mut updates = handle.subscribe();
    let mut seen = 0u64;
    let mut step = 0u32;
    let mut client_gone = false;
    loop {
        let ended = matches!(updates.borrow_and_update().phase, Phase::Ended(_));
        let (messages, now_seen) = handle.progress_since(seen);
        seen = now_seen;
        for message in messages {
            step += 1;
            if !client_gone {
                client_gone = !send(&peer, &token, step, message).await;
            }
        }
        if ended {
            return;
        }
        match tokio::time::timeout(KEEPALIVE, updates.changed()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return,
            Err(_) => {
                step += 1;
                if !client_gone {
                    let note = format!("codex still running ({} s)", started.elapsed().as_secs());
                    client_gone = !send(&peer, &token, step, note).await;
                }
            }
        }
    }
}

/// `false` once the client is gone (the run goes on; only the relay stops talking).
async fn send(peer: &Peer<RoleServer>, token: &ProgressToken, step: u32, message: String) -> bool {
    let note = ProgressNotificationParam::new(token.clone(), f64::from(step)).with_message(message);
    peer.notify_progress(note).await.is_ok()
}
