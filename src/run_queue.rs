//! [`RunQueue`]: how many Codex runs go at once, and how many calls may wait for one.
//!
//! A call first takes a [`Ticket`] (a running or a queued place) at admission: none left
//! is an immediate, typed "busy" — a burst cannot pile up unbounded work. The ticket
//! then waits for a [`Slot`] (a running place); a call cancelled while it waits leaves
//! the queue without starting Codex.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::metrics::{GaugeGuard, metrics};

/// Limits on Codex processes (the operator's settings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunLimits {
    /// Codex processes at once.
    pub max_concurrent_runs: usize,
    /// Calls that may wait for a slot.
    pub max_queued_runs: usize,
}

/// Why a call got no place in the queue.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueueRefusal {
    /// Every run slot and queue place is taken.
    #[error(
        "busy: {running} Codex runs are in progress and {queued} more are queued, the most this server allows \
         (TWOBOT_MAX_CONCURRENT_RUNS, TWOBOT_MAX_QUEUED_RUNS); try again later"
    )]
    Busy {
        /// Runs allowed at once.
        running: usize,
        /// Calls allowed to wait.
        queued: usize,
    },
}

/// The server's run slots and queue places.
#[derive(Debug, Clone)]
pub struct RunQueue {
    slots: Arc<Semaphore>,
    tickets: Arc<Semaphore>,
    running: usize,
    queued: usize,
}

/// A place in the queue (or in a slot): taken at admission, released when the run ends.
#[derive(Debug)]
pub struct Ticket {
    slots: Arc<Semaphore>,
    _place: OwnedSemaphorePermit,
}

/// A running place; Codex may run while it is held.
#[derive(Debug)]
pub struct Slot {
    _slot: OwnedSemaphorePermit,
    _place: OwnedSemaphorePermit,
    _active: GaugeGuard,
}

impl RunQueue {
    /// At most `running` runs at once (at least 1) and `queued` more waiting.
    pub fn new(running: usize, queued: usize) -> Self {
        let running = running.max(1);
        Self {
            slots: Arc::new(Semaphore::new(running)),
            tickets: Arc::new(Semaphore::new(running.saturating_add(queued))),
            running,
            queued,
        }
    }

    /// A place for `owner`'s call, or "busy" at once.
    pub fn ticket(&self, _owner: &str) -> Result<Ticket, QueueRefusal> {
        let place = self
            .tickets
            .clone()
            .try_acquire_owned()
            .map_err(|_| QueueRefusal::Busy {
                running: self.running,
                queued: self.queued,
            })?;
        Ok(Ticket {
            slots: self.slots.clone(),
            _place: place,
        })
    }
}

impl Ticket {
    /// Wait for a running place; `None` if `cancel` fires first (the place is given back).
    pub async fn slot(self, cancel: &CancellationToken) -> Option<Slot> {
        let _queued = GaugeGuard::raise(&metrics().runs_queued);
        let slot = tokio::select! {
            slot = self.slots.clone().acquire_owned() => slot.ok()?,
            () = cancel.cancelled() => return None,
        };
        Some(Slot {
            _slot: slot,
            _place: self._place,
            _active: GaugeGuard::raise(&metrics().runs_active),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn beyond_slots_and_places_a_ticket_is_busy_at_once() {
        let q = RunQueue::new(1, 1);
        let a = q.ticket("a").unwrap();
        let b = q.ticket("b").unwrap();
        assert_eq!(
            q.ticket("c").unwrap_err(),
            QueueRefusal::Busy {
                running: 1,
                queued: 1
            }
        );
        let never = CancellationToken::new();
        let slot_a = a.slot(&never).await.unwrap();
        // b waits for a's slot.
        let waiting =
            tokio::spawn(async move { b.slot(&CancellationToken::new()).await.is_some() });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished());
        drop(slot_a);
        assert!(waiting.await.unwrap());
        assert!(q.ticket("c").is_ok());
    }

    #[tokio::test]
    async fn a_call_cancelled_while_queued_gives_its_place_back() {
        let q = RunQueue::new(1, 1);
        let _running = q
            .ticket("a")
            .unwrap()
            .slot(&CancellationToken::new())
            .await
            .unwrap();
        let cancel = CancellationToken::new();
        let waiting = q.ticket("b").unwrap();
        cancel.cancel();
        assert!(waiting.slot(&cancel).await.is_none());
        assert!(q.ticket("c").is_ok());
    }
}
