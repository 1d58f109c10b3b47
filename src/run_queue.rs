//! The run queue: a bounded number of Codex runs at once, a bounded queue behind them,
//! and fairness between principals.
//!
//! A gateway in front of several principals must not let one of them take the server:
//! with one FIFO queue, a principal that queues twenty slow calls makes everyone else
//! wait for all twenty, and then get "busy". So the queue is one FIFO per principal
//! ([`QuotaKey`]), each holding at most `TWOBOT_MAX_QUEUED_RUNS_PER_PRINCIPAL` calls, and
//! a freed run slot goes to the waiting principal served *least recently* (one never
//! served, or not since it went idle, first; ties by arrival). Among busy principals
//! that is round-robin; for a newcomer it means its first call starts as soon as one
//! run ends, however long another principal's backlog is.
//!
//! Fair turns are not enough when runs are long: a principal that starts as many runs as
//! there are slots holds all of them for up to `TWOBOT_MAX_TIMEOUT_SEC`, and the newcomer
//! waits that long for its "next free slot". So each principal also has a cap on slots
//! it *runs* (`TWOBOT_MAX_CONCURRENT_RUNS_PER_PRINCIPAL`, by default one below the
//! global cap): at its cap its calls wait in its own queue, while another principal's
//! call takes a free slot at once. A slot is free only while no waiting call may take it
//! (every waiter's principal is at its cap), so a free slot never sits beside a waiter
//! that could use it.
//!
//! [`Scheduler`] is the decision, pure and table-tested (`run_queue/scheduler.rs`);
//! [`RunQueue`] is its async wrapper, in two steps that match the run lifecycle ([`crate::runs`]): at admission a
//! call takes a [`Ticket`] (a place, or a typed refusal at once: nothing is spawned),
//! and the admitted run then waits on it for a [`RunPermit`] (a slot is handed to a
//! waiter through a oneshot, so no wake-up is lost and a waiter cancelled at the same
//! moment passes the slot on). A call cancelled while it waits leaves the queue without
//! starting Codex. The `twobot_runs_active` and `twobot_runs_queued` gauges follow the
//! scheduler's counts.

mod scheduler;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

pub use self::scheduler::{QueueLimits, QueueRefusal, Scheduler, Slot};
use crate::metrics::metrics;
use crate::run::QuotaKey;

#[derive(Debug)]
struct Shared {
    scheduler: Scheduler,
    waiters: HashMap<u64, oneshot::Sender<()>>,
    next_ticket: u64,
}

/// The async run queue shared by every path into a run.
#[derive(Debug, Clone)]
pub struct RunQueue {
    shared: Arc<Mutex<Shared>>,
}

/// A place taken at admission: a slot already (`Start`) or a place in the caller's queue.
/// Dropped unused, it gives the place back (and a slot it held to the next waiter).
#[derive(Debug)]
pub struct Ticket {
    queue: RunQueue,
    key: QuotaKey,
    state: TicketState,
}

#[derive(Debug)]
enum TicketState {
    Start,
    Wait {
        ticket: u64,
        rx: oneshot::Receiver<()>,
    },
    Spent,
}

/// A run slot; dropping it hands the slot to the next waiting call.
#[derive(Debug)]
pub struct RunPermit {
    queue: RunQueue,
    key: QuotaKey,
}

impl Drop for RunPermit {
    fn drop(&mut self) {
        self.queue.release(&self.key);
    }
}

impl RunQueue {
    /// An empty queue with these bounds.
    pub fn new(limits: impl Into<QueueLimits>) -> Self {
        Self {
            shared: Arc::new(Mutex::new(Shared {
                scheduler: Scheduler::new(limits.into()),
                waiters: HashMap::new(),
                next_ticket: 0,
            })),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Shared) -> T) -> T {
        // A poisoned lock means a panic elsewhere; the state itself is still consistent
        // (every change is a few plain assignments), so keep serving.
        let mut guard = match self.shared.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let out = f(&mut guard);
        let (running, waiting) = guard.scheduler.load();
        let m = metrics();
        m.runs_active
            .set(i64::try_from(running).unwrap_or(i64::MAX));
        m.runs_queued
            .set(i64::try_from(waiting).unwrap_or(i64::MAX));
        out
    }

    /// Runs now, and calls waiting.
    pub fn load(&self) -> (usize, usize) {
        self.with(|s| s.scheduler.load())
    }

    /// Its bounds, as the scheduler applies them.
    pub fn limits(&self) -> QueueLimits {
        self.with(|s| s.scheduler.limits())
    }

    fn release(&self, key: &QuotaKey) {
        self.with(|s| {
            if let Some((_, ticket)) = s.scheduler.finish(key)
                && let Some(waiter) = s.waiters.remove(&ticket)
            {
                // A waiter that is gone has its ticket pass the slot on, which needs
                // this lock: so the failed send is never the end of the slot.
                let _ = waiter.send(());
            }
        });
    }

    /// A place for `key`'s call, or why not, at once.
    pub fn ticket(&self, key: &QuotaKey) -> Result<Ticket, QueueRefusal> {
        let state = self.with(|s| {
            s.next_ticket += 1;
            let ticket = s.next_ticket;
            s.scheduler.admit(key, ticket).map(|a| match a {
                Slot::Start => TicketState::Start,
                Slot::Queued => {
                    let (tx, rx) = oneshot::channel();
                    s.waiters.insert(ticket, tx);
                    TicketState::Wait { ticket, rx }
                }
            })
        })?;
        Ok(Ticket {
            queue: self.clone(),
            key: key.clone(),
            state,
        })
    }

    /// Give back a waiting ticket; if its slot came in the meantime, pass the slot on.
    fn withdraw(&self, key: &QuotaKey, ticket: u64) {
        let withdrawn = self.with(|s| {
            s.waiters.remove(&ticket);
            s.scheduler.withdraw(key, ticket)
        });
        if !withdrawn {
            self.release(key);
        }
    }
}

impl Ticket {
    /// Whether the slot is already this ticket's (a free slot at admission): the run's
    /// first snapshot then says running, not queued.
    pub fn starts_now(&self) -> bool {
        matches!(self.state, TicketState::Start)
    }

    /// Wait for a slot; `None` when `cancel` fires first (the place is given back).
    pub async fn slot(mut self, cancel: &CancellationToken) -> Option<RunPermit> {
        let given = match std::mem::replace(&mut self.state, TicketState::Spent) {
            TicketState::Start => true,
            TicketState::Spent => false,
            TicketState::Wait { ticket, rx } => {
                // Until the slot is ours, dropping this future (or cancelling) withdraws:
                // the ticket's own drop does it.
                self.state = TicketState::Wait {
                    ticket,
                    rx: oneshot::channel().1,
                };
                let given = tokio::select! {
                    given = rx => given.is_ok(),
                    () = cancel.cancelled() => false,
                };
                if given {
                    self.state = TicketState::Spent;
                }
                given
            }
        };
        given.then(|| RunPermit {
            queue: self.queue.clone(),
            key: self.key.clone(),
        })
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        match std::mem::replace(&mut self.state, TicketState::Spent) {
            TicketState::Start => self.queue.release(&self.key),
            TicketState::Wait { ticket, .. } => self.queue.withdraw(&self.key, ticket),
            TicketState::Spent => {}
        }
    }
}

#[cfg(test)]
#[path = "run_queue_tests.rs"]
mod tests;
