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
//! [`Scheduler`] is the decision, pure and table-tested; [`RunQueue`] is its async
//! wrapper (a slot is handed to a waiter through a oneshot, so no wake-up is lost and a
//! waiter cancelled at the same moment passes the slot on). [`RunQueueLayer`] puts it in
//! the job stack. A call cancelled while it waits leaves the queue without starting Codex.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tower::{Layer, Service, ServiceExt};

use crate::error::ToolError;
use crate::job::{Job, QuotaKey};

/// The queue's bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueLimits {
    /// Runs at once (at least 1).
    pub running: usize,
    /// Calls waiting for a slot, all principals together.
    pub queued: usize,
    /// Calls waiting for a slot, per principal.
    pub queued_per_principal: usize,
}

/// Why a call gets no place; typed so every path can word (and count) it the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueRefusal {
    /// Every run slot and every queue place is taken.
    Busy {
        /// Runs allowed at once.
        running: usize,
        /// Calls allowed to wait.
        queued: usize,
    },
    /// This principal already holds its share of the queue.
    PrincipalQueueFull {
        /// Waiting calls allowed per principal.
        per_principal: usize,
    },
}

impl From<QueueRefusal> for ToolError {
    fn from(refusal: QueueRefusal) -> Self {
        match refusal {
            QueueRefusal::Busy { running, queued } => Self::Busy { running, queued },
            QueueRefusal::PrincipalQueueFull { per_principal } => {
                Self::QueueQuota { per_principal }
            }
        }
    }
}

/// What [`Scheduler::admit`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admitted {
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
    /// exceeds the whole queue).
    pub fn new(limits: QueueLimits) -> Self {
        Self {
            limits: QueueLimits {
                running: limits.running.max(1),
                queued: limits.queued,
                queued_per_principal: limits.queued_per_principal.min(limits.queued),
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
    pub fn admit(&mut self, key: &QuotaKey, ticket: u64) -> Result<Admitted, QueueRefusal> {
        if self.running < self.limits.running && self.waiting == 0 {
            let now = self.tick();
            let entry = self.keys.entry(key.clone()).or_default();
            entry.running += 1;
            entry.last_served = now;
            self.running += 1;
            return Ok(Admitted::Start);
        }
        let mine = self.keys.get(key).map_or(0, |k| k.waiting.len());
        if mine >= self.limits.queued_per_principal && self.waiting < self.limits.queued {
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
        Ok(Admitted::Queued)
    }

    /// A run of `key` ended. Returns the waiting call its slot now belongs to, if any
    /// (already counted as running).
    pub fn finish(&mut self, key: &QuotaKey) -> Option<(QuotaKey, u64)> {
        self.running = self.running.saturating_sub(1);
        if let Some(entry) = self.keys.get_mut(key) {
            entry.running = entry.running.saturating_sub(1);
        }
        self.forget_if_idle(key);
        let next = self
            .keys
            .iter()
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
}

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

/// Why [`RunQueue::acquire`] gave no slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcquireError {
    /// Refused at once.
    Refused(QueueRefusal),
    /// Cancelled while waiting.
    Cancelled,
}

/// Withdraws a waiting call whose future is dropped or cancelled; if its slot came in
/// the meantime, passes the slot on.
struct Waiting<'a> {
    queue: &'a RunQueue,
    key: &'a QuotaKey,
    ticket: u64,
    armed: bool,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let withdrawn = self.queue.with(|s| {
            s.waiters.remove(&self.ticket);
            s.scheduler.withdraw(self.key, self.ticket)
        });
        if withdrawn != Some(true) {
            self.queue.release(self.key);
        }
    }
}

impl RunQueue {
    /// An empty queue with these bounds.
    pub fn new(limits: QueueLimits) -> Self {
        Self {
            shared: Arc::new(Mutex::new(Shared {
                scheduler: Scheduler::new(limits),
                waiters: HashMap::new(),
                next_ticket: 0,
            })),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Shared) -> T) -> Option<T> {
        // A poisoned lock means a panic elsewhere; the state itself is still consistent
        // (every change is a few plain assignments), so keep serving.
        let mut guard = match self.shared.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        Some(f(&mut guard))
    }

    /// Runs now, and calls waiting.
    pub fn load(&self) -> (usize, usize) {
        self.with(|s| s.scheduler.load()).unwrap_or_default()
    }

    fn release(&self, key: &QuotaKey) {
        self.with(|s| {
            if let Some((_, ticket)) = s.scheduler.finish(key)
                && let Some(waiter) = s.waiters.remove(&ticket)
            {
                // A waiter that is gone has its `Waiting` guard pass the slot on, which
                // needs this lock: so the failed send is never the end of the slot.
                let _ = waiter.send(());
            }
        });
    }

    /// Take a slot for `key`, waiting in its queue until one comes or `cancel` fires.
    pub async fn acquire(
        &self,
        key: &QuotaKey,
        cancel: &CancellationToken,
    ) -> Result<RunPermit, AcquireError> {
        let admitted = self.with(|s| {
            s.next_ticket += 1;
            let ticket = s.next_ticket;
            s.scheduler.admit(key, ticket).map(|a| match a {
                Admitted::Start => None,
                Admitted::Queued => {
                    let (tx, rx) = oneshot::channel();
                    s.waiters.insert(ticket, tx);
                    Some((ticket, rx))
                }
            })
        });
        let permit = || RunPermit {
            queue: self.clone(),
            key: key.clone(),
        };
        let (ticket, rx) = match admitted {
            Some(Ok(None)) => return Ok(permit()),
            Some(Ok(Some(wait))) => wait,
            Some(Err(refusal)) => return Err(AcquireError::Refused(refusal)),
            None => return Err(AcquireError::Cancelled),
        };
        let mut waiting = Waiting {
            queue: self,
            key,
            ticket,
            armed: true,
        };
        tokio::select! {
            given = rx => {
                if given.is_ok() {
                    waiting.armed = false;
                    Ok(permit())
                } else {
                    Err(AcquireError::Cancelled)
                }
            }
            () = cancel.cancelled() => Err(AcquireError::Cancelled),
        }
    }
}

/// Puts the [`RunQueue`] in the job stack.
#[derive(Clone, Debug)]
pub struct RunQueueLayer {
    queue: RunQueue,
}

impl RunQueueLayer {
    /// A layer over `queue`.
    pub fn new(queue: RunQueue) -> Self {
        Self { queue }
    }
}

impl<S> Layer<S> for RunQueueLayer {
    type Service = Queued<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Queued {
            inner,
            queue: self.queue.clone(),
        }
    }
}

/// The service built by [`RunQueueLayer`].
#[derive(Clone, Debug)]
pub struct Queued<S> {
    inner: S,
    queue: RunQueue,
}

impl<S> Service<Job> for Queued<S>
where
    S: Service<Job, Error = ToolError> + Clone + Send + 'static,
    S::Future: Send,
    S::Response: Send,
{
    type Response = S::Response;
    type Error = ToolError;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, ToolError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Admission is decided per call, so that a full queue is an immediate answer.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, job: Job) -> Self::Future {
        let queue = self.queue.clone();
        let inner = self.inner.clone();
        Box::pin(async move {
            let key = job.ctx.quota_key.clone();
            let cancel = job.ctx.cancel.clone();
            let permit = match queue.acquire(&key, &cancel).await {
                Ok(permit) => permit,
                Err(AcquireError::Refused(refusal)) => {
                    tracing::warn!(principal = %job.ctx.principal.label(), quota_key = %key, ?refusal, "run refused");
                    return Err(refusal.into());
                }
                Err(AcquireError::Cancelled) => return Err(ToolError::CancelledInQueue),
            };
            let result = inner.oneshot(job).await;
            drop(permit);
            result
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::time::Duration;

    use tower::service_fn;

    use super::*;
    use crate::job::{CallContext, Principal, RunSpec};

    fn key(name: &str) -> QuotaKey {
        QuotaKey(name.to_owned())
    }

    fn limits(running: usize, queued: usize, per: usize) -> QueueLimits {
        QueueLimits {
            running,
            queued,
            queued_per_principal: per,
        }
    }

    #[derive(Debug, Clone, Copy)]
    enum Step {
        /// principal, ticket, expected answer
        Admit(&'static str, u64, Result<Admitted, QueueRefusal>),
        /// a run of this principal ends; the ticket that gets its slot
        Finish(&'static str, Option<u64>),
        /// a waiting ticket withdraws; whether it was still waiting
        Withdraw(&'static str, u64, bool),
    }
    use Admitted::{Queued as Q, Start as S};
    use Step::{Admit, Finish, Withdraw};

    const BUSY_1_4: QueueRefusal = QueueRefusal::Busy {
        running: 1,
        queued: 4,
    };

    #[test]
    fn the_scheduler_is_bounded_and_fair_between_principals() {
        let table: &[(&str, QueueLimits, &[Step])] = &[
            (
                "a free slot starts at once; beyond slots the call waits; beyond the queue, busy",
                limits(1, 4, 4),
                &[
                    Admit("a", 1, Ok(S)),
                    Admit("a", 2, Ok(Q)),
                    Admit("b", 3, Ok(Q)),
                    Admit("c", 4, Ok(Q)),
                    Admit("d", 5, Ok(Q)),
                    Admit("e", 6, Err(BUSY_1_4)),
                ],
            ),
            (
                "one principal holds at most its share of the queue; others still get places",
                limits(1, 4, 2),
                &[
                    Admit("a", 1, Ok(S)),
                    Admit("a", 2, Ok(Q)),
                    Admit("a", 3, Ok(Q)),
                    Admit(
                        "a",
                        4,
                        Err(QueueRefusal::PrincipalQueueFull { per_principal: 2 }),
                    ),
                    Admit("b", 5, Ok(Q)),
                ],
            ),
            (
                "a newcomer's first call takes the next free slot, ahead of a long backlog",
                limits(2, 8, 8),
                &[
                    Admit("a", 1, Ok(S)),
                    Admit("a", 2, Ok(S)),
                    Admit("a", 3, Ok(Q)),
                    Admit("a", 4, Ok(Q)),
                    Admit("a", 5, Ok(Q)),
                    Admit("b", 6, Ok(Q)),
                    Finish("a", Some(6)),
                    Finish("a", Some(3)),
                ],
            ),
            (
                "busy principals take turns (round-robin), each in its own FIFO order",
                limits(1, 8, 8),
                &[
                    Admit("a", 1, Ok(S)),
                    Admit("a", 2, Ok(Q)),
                    Admit("a", 3, Ok(Q)),
                    Admit("b", 4, Ok(Q)),
                    Admit("b", 5, Ok(Q)),
                    Admit("c", 6, Ok(Q)),
                    Finish("a", Some(4)),
                    Finish("b", Some(6)),
                    Finish("c", Some(2)),
                    Finish("a", Some(5)),
                    Finish("b", Some(3)),
                    Finish("a", None),
                ],
            ),
            (
                "two newcomers go in the order they arrived",
                limits(1, 8, 8),
                &[
                    Admit("a", 1, Ok(S)),
                    Admit("a", 2, Ok(Q)),
                    Admit("c", 3, Ok(Q)),
                    Admit("b", 4, Ok(Q)),
                    Finish("a", Some(3)),
                    Finish("c", Some(4)),
                    Finish("b", Some(2)),
                ],
            ),
            (
                "a withdrawn call never gets a slot and frees its place",
                limits(1, 1, 1),
                &[
                    Admit("a", 1, Ok(S)),
                    Admit("b", 2, Ok(Q)),
                    Admit(
                        "c",
                        3,
                        Err(QueueRefusal::Busy {
                            running: 1,
                            queued: 1,
                        }),
                    ),
                    Withdraw("b", 2, true),
                    Withdraw("b", 2, false),
                    Admit("c", 3, Ok(Q)),
                    Finish("a", Some(3)),
                    Finish("c", None),
                    Admit("d", 4, Ok(S)),
                ],
            ),
            (
                "a call whose slot was already handed over cannot withdraw",
                limits(1, 2, 2),
                &[
                    Admit("a", 1, Ok(S)),
                    Admit("b", 2, Ok(Q)),
                    Finish("a", Some(2)),
                    Withdraw("b", 2, false),
                ],
            ),
            (
                "no queue at all: busy as soon as the slots are taken",
                limits(1, 0, 8),
                &[
                    Admit("a", 1, Ok(S)),
                    Admit(
                        "b",
                        2,
                        Err(QueueRefusal::Busy {
                            running: 1,
                            queued: 0,
                        }),
                    ),
                ],
            ),
        ];
        for (name, limits, steps) in table {
            let mut s = Scheduler::new(*limits);
            for (i, step) in steps.iter().enumerate() {
                match *step {
                    Admit(k, t, want) => {
                        assert_eq!(s.admit(&key(k), t), want, "{name}: step {i} {step:?}")
                    }
                    Finish(k, want) => assert_eq!(
                        s.finish(&key(k)).map(|(_, t)| t),
                        want,
                        "{name}: step {i} {step:?}"
                    ),
                    Withdraw(k, t, want) => {
                        assert_eq!(s.withdraw(&key(k), t), want, "{name}: step {i} {step:?}")
                    }
                }
            }
        }
        let _ = BUSY_1_4;
    }

    #[test]
    fn an_idle_scheduler_forgets_every_principal() {
        let mut s = Scheduler::new(limits(1, 4, 4));
        s.admit(&key("a"), 1).unwrap();
        s.admit(&key("b"), 2).unwrap();
        s.admit(&key("c"), 3).unwrap();
        assert!(s.withdraw(&key("c"), 3));
        assert_eq!(s.finish(&key("a")).map(|(_, t)| t), Some(2));
        assert_eq!(s.finish(&key("b")), None);
        assert!(s.keys.is_empty());
        assert_eq!(s.load(), (0, 0));
    }

    fn job(principal: &str) -> Job {
        let mut ctx = CallContext::new(Principal::Local);
        ctx.quota_key = key(principal);
        Job {
            spec: RunSpec {
                prompt: "p".into(),
                cwd: "/".into(),
                add_dirs: vec![],
                model: None,
                profile: None,
                sandbox: Default::default(),
                approval_policy: None,
                skip_git_repo_check: false,
                ephemeral: true,
                include_event_log: false,
                timeout: Duration::from_secs(1),
                resume: None,
            },
            ctx,
        }
    }

    #[tokio::test]
    async fn beyond_running_plus_queued_calls_are_refused_as_busy_at_once() {
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        let g = gate.clone();
        let svc = RunQueueLayer::new(RunQueue::new(limits(1, 1, 1))).layer(service_fn(
            move |_job: Job| {
                let g = g.clone();
                async move {
                    g.acquire().await.unwrap().forget();
                    Ok::<_, ToolError>(())
                }
            },
        ));
        let first = tokio::spawn(svc.clone().oneshot(job("a")));
        tokio::time::sleep(Duration::from_millis(50)).await;
        let second = tokio::spawn(svc.clone().oneshot(job("b")));
        tokio::time::sleep(Duration::from_millis(50)).await;
        let third = svc.clone().oneshot(job("c")).await;
        assert!(matches!(
            third,
            Err(ToolError::Busy {
                running: 1,
                queued: 1
            })
        ));
        gate.add_permits(2);
        first.await.unwrap().unwrap();
        second.await.unwrap().unwrap();
        // Capacity is back once the work is done.
        gate.add_permits(1);
        svc.clone().oneshot(job("c")).await.unwrap();
    }

    #[tokio::test]
    async fn a_queued_call_that_is_cancelled_never_reaches_the_runner() {
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (g, c) = (gate.clone(), calls.clone());
        let queue = RunQueue::new(limits(1, 4, 4));
        let svc = RunQueueLayer::new(queue.clone()).layer(service_fn(move |_job: Job| {
            let (g, c) = (g.clone(), c.clone());
            async move {
                c.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                g.acquire().await.unwrap().forget();
                Ok::<_, ToolError>(())
            }
        }));
        let first = tokio::spawn(svc.clone().oneshot(job("a")));
        tokio::time::sleep(Duration::from_millis(50)).await;
        let queued = job("b");
        let cancel = queued.ctx.cancel.clone();
        let waiting = tokio::spawn(svc.clone().oneshot(queued));
        // A waiting call whose future is simply dropped leaves the queue too.
        let dropped = tokio::spawn(svc.clone().oneshot(job("c")));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(queue.load(), (1, 2));
        cancel.cancel();
        dropped.abort();
        assert!(matches!(
            waiting.await.unwrap(),
            Err(ToolError::CancelledInQueue)
        ));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(queue.load(), (1, 0));
        gate.add_permits(1);
        first.await.unwrap().unwrap();
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert_eq!(queue.load(), (0, 0));
    }
}
