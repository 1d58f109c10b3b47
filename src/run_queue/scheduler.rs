//! The run queue's decision, pure: who gets a free slot, who waits in which principal's
//! queue, who is refused and why (the rules are in [`super`]'s module doc). Apart from
//! the async queue so the fairness rules are table-tested without a runtime or a lock.

use std::collections::{HashMap, VecDeque};

use crate::config::{PrincipalLimits, RunLimits};
use crate::run::QuotaKey;

/// The queue's bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueLimits {
    /// Runs at once (at least 1).
    pub running: usize,
    /// Calls waiting for a slot, all principals together.
    pub queued: usize,
    /// Calls waiting for a slot, per principal ([`PrincipalLimits::queued`]).
    pub queued_per_principal: usize,
    /// Runs at once, per principal (at least 1, at most `running`;
    /// [`PrincipalLimits::running`]).
    pub running_per_principal: usize,
}

impl QueueLimits {
    /// The bounds `config` sets: the global ones and each principal's run shares.
    pub fn of(limits: RunLimits, share: PrincipalLimits) -> Self {
        Self {
            running: limits.max_concurrent_runs,
            queued: limits.max_queued_runs,
            queued_per_principal: share.queued,
            running_per_principal: share.running,
        }
    }
}

/// Why a call gets no place; typed so every path can word (and count) it the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum QueueRefusal {
    /// Every run slot and every queue place is taken.
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
    /// This principal already holds its share of the queue.
    #[error(
        "quota exceeded: this caller already has {per_principal} calls waiting for a run slot, its share of the queue \
         (TWOBOT_MAX_QUEUED_RUNS_PER_PRINCIPAL); wait for one of them to start, then try again"
    )]
    PrincipalQueueFull {
        /// Waiting calls allowed per principal.
        per_principal: usize,
    },
}

/// Whether [`Scheduler::admit`] gave the ticket a run slot now or queued it for one
/// (named apart from `runs::Admitted`, a run that passed every admission check).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// A slot was free: run now.
    Start,
    /// Wait; [`Scheduler::finish`] will name this ticket when its slot comes.
    Queued,
}

#[derive(Debug, Default)]
struct PerKey {
    /// Waiting tickets with their arrival number, oldest first.
    waiting: VecDeque<(u64, u64)>,
    running: usize,
    /// When this principal last got a slot (0: not since it was idle).
    last_served: u64,
}

/// The pure scheduling state: who runs, who waits, who is next.
#[derive(Debug)]
pub struct Scheduler {
    limits: QueueLimits,
    running: usize,
    waiting: usize,
    keys: HashMap<QuotaKey, PerKey>,
    clock: u64,
}

impl Scheduler {
    /// An empty scheduler (`running` is raised to 1; the per-principal queue never
    /// exceeds the whole queue, nor per-principal slots the slots).
    pub fn new(limits: QueueLimits) -> Self {
        let running = limits.running.max(1);
        Self {
            limits: QueueLimits {
                running,
                queued: limits.queued,
                queued_per_principal: limits.queued_per_principal.min(limits.queued),
                running_per_principal: limits.running_per_principal.clamp(1, running),
            },
            running: 0,
            waiting: 0,
            keys: HashMap::new(),
            clock: 0,
        }
    }

    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    /// A call by `key` with `ticket` (unique while it waits) asks for a slot.
    pub fn admit(&mut self, key: &QuotaKey, ticket: u64) -> Result<Slot, QueueRefusal> {
        // A free slot means no waiter may take it (see the module doc), so the only
        // question is whether this principal may: under its cap, and none of its own
        // calls ahead of this one.
        let (mine_running, mine_waiting) = self
            .keys
            .get(key)
            .map_or((0, 0), |k| (k.running, k.waiting.len()));
        if self.running < self.limits.running
            && mine_running < self.limits.running_per_principal
            && mine_waiting == 0
        {
            let now = self.tick();
            let entry = self.keys.entry(key.clone()).or_default();
            entry.running += 1;
            entry.last_served = now;
            self.running += 1;
            return Ok(Slot::Start);
        }
        if mine_waiting >= self.limits.queued_per_principal && self.waiting < self.limits.queued {
            return Err(QueueRefusal::PrincipalQueueFull {
                per_principal: self.limits.queued_per_principal,
            });
        }
        if self.waiting >= self.limits.queued {
            return Err(QueueRefusal::Busy {
                running: self.limits.running,
                queued: self.limits.queued,
            });
        }
        let arrived = self.tick();
        self.keys
            .entry(key.clone())
            .or_default()
            .waiting
            .push_back((ticket, arrived));
        self.waiting += 1;
        Ok(Slot::Queued)
    }

    /// A run of `key` ended. Returns the waiting call its slot now belongs to, if any
    /// (already counted as running). One hand-off is enough: before this call no waiter
    /// could take a free slot, and only `key` dropped below its cap.
    pub fn finish(&mut self, key: &QuotaKey) -> Option<(QuotaKey, u64)> {
        self.running = self.running.saturating_sub(1);
        if let Some(entry) = self.keys.get_mut(key) {
            entry.running = entry.running.saturating_sub(1);
        }
        self.forget_if_idle(key);
        let cap = self.limits.running_per_principal;
        let next = self
            .keys
            .iter()
            .filter(|(_, e)| e.running < cap)
            .filter_map(|(k, e)| e.waiting.front().map(|(_, at)| (e.last_served, *at, k)))
            .min()
            .map(|(_, _, k)| k.clone())?;
        let now = self.tick();
        let entry = self.keys.get_mut(&next)?;
        let (ticket, _) = entry.waiting.pop_front()?;
        entry.running += 1;
        entry.last_served = now;
        self.waiting -= 1;
        self.running += 1;
        Some((next, ticket))
    }

    /// The waiting call `ticket` of `key` gives up its place. False when it is not
    /// waiting (any more): its slot was already handed to it.
    pub fn withdraw(&mut self, key: &QuotaKey, ticket: u64) -> bool {
        let Some(entry) = self.keys.get_mut(key) else {
            return false;
        };
        let Some(at) = entry.waiting.iter().position(|(t, _)| *t == ticket) else {
            return false;
        };
        entry.waiting.remove(at);
        self.waiting -= 1;
        self.forget_if_idle(key);
        true
    }

    fn forget_if_idle(&mut self, key: &QuotaKey) {
        if self
            .keys
            .get(key)
            .is_some_and(|e| e.running == 0 && e.waiting.is_empty())
        {
            self.keys.remove(key);
        }
    }

    /// Runs now, and calls waiting.
    pub fn load(&self) -> (usize, usize) {
        (self.running, self.waiting)
    }

    /// Its bounds, as it applies them (after [`Self::new`]'s clamping).
    pub fn limits(&self) -> QueueLimits {
        self.limits
    }
}

#[cfg(test)]
#[path = "scheduler_tests.rs"]
mod tests;
