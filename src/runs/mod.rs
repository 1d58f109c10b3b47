//! The one run lifecycle: every way into a Codex run goes through [`Runs`].
//!
//! ```text
//!                 admit (nothing spawned yet)                      start
//! RunRequest ─▶ policy ─▶ thread owners ─▶ kept place ─▶ queue ticket ─▶ Admitted ─▶ RunHandle
//!                  └──────────── RunRefusal (typed, at once) ◀───────┘               │
//!                                                     slot ─▶ CodexRunner ─▶ Ended ◀┘
//! ```
//!
//! A direct `tools/call` awaits the [`RunHandle`], an MCP task and a background run keep
//! it in [`KeptRuns`] and answer with snapshots; [`persist`] records them in the state
//! store too, which answers for them once they are not in memory (after a restart).
//! Because admission is decided before anything is spawned, a refusal is known at once
//! on every path (no timing guesses), and [`observe`] writes the audit record and the metrics at the same two points for
//! all of them: a refusal at admission, and the end of an admitted run.
//!
//! Here: [`Runs`] and admission. [`Admitted::start`] drives an admitted run on its own
//! task (`admitted.rs`); [`assemble`] builds the whole lifecycle from the configuration.

mod admitted;
mod asked;
pub mod assemble;
pub mod handle;
pub mod lease;
pub mod observe;
mod pending;
pub mod persist;
mod placement;
mod refusal;
pub mod store;

use std::sync::Arc;

use tokio_util::task::TaskTracker;

pub use self::admitted::Admitted;
pub use self::handle::{Ended, RunHandle, RunSnapshot, RunStatus};
pub use self::observe::Observer;
pub use self::pending::PendingApproval;
pub use self::persist::{LOST_MESSAGE, Persist, Stored};
pub use self::refusal::RunRefusal;
pub use self::store::{KeptError, KeptRuns, Reservation};
use crate::config::KeptConfig;
use crate::peer::Peers;
use crate::policy::{Policy, Refusal, Rule, check, check_cached};
use crate::run::control::ControlConfig;
use crate::run::{CallTransport, Principal, QuotaKey, RunPath, RunRequest, RunSpec};
use crate::run_queue::{RunQueue, Ticket};
use crate::runner::{CodexRunner, RunnerConfig};
use crate::state::Lasting;
use crate::thread_owners::ThreadOwners;

/// Who is asking, and how they came in.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The principal (policy and thread ownership are decided for it).
    pub principal: Principal,
    /// Who owns the kept run (the principal's key, or narrower: an anonymous session).
    pub owner: String,
    /// Whose share of the server the call uses (queue places, kept runs).
    pub quota: QuotaKey,
    /// The HTTP request id, passed to Codex as `TWOBOT_REQUEST_ID`.
    pub request_id: Option<String>,
    /// stdio or http.
    pub transport: CallTransport,
    /// direct, task or background.
    pub path: RunPath,
    /// How this caller's run asks a person for approvals (whether any channel reaches
    /// one, and for how long a request waits).
    pub approvals: ControlConfig,
}

/// What the MCP layer offers around runs: how long approvals wait, which tools it lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interaction {
    /// How long an approval request waits for a person (`TWOBOT_APPROVAL_TIMEOUT_SEC`).
    pub approval_timeout: std::time::Duration,
    /// Whether the read-only `ask_codex` is listed (`TWOBOT_ENABLE_ASK_TOOL`).
    pub ask_tool: bool,
}

impl Default for Interaction {
    fn default() -> Self {
        Self {
            approval_timeout: crate::run::control::DEFAULT_APPROVAL_TIMEOUT,
            ask_tool: false,
        }
    }
}

/// Everything a run needs, shared by every transport.
#[derive(Debug, Clone)]
pub struct Runs {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    policy: Arc<Policy>,
    owners: Arc<ThreadOwners>,
    kept: Arc<KeptRuns>,
    persist: Persist,
    queue: RunQueue,
    runner: CodexRunner,
    observer: Observer,
    tracker: TaskTracker,
    interaction: Interaction,
    peers: Option<Peers>,
}

impl Runs {
    /// The lifecycle over its parts, assembled once (see the module docs for the order).
    /// Kept runs are recorded in `lasting`'s store.
    pub fn new(
        policy: Arc<Policy>,
        owners: Arc<ThreadOwners>,
        lasting: Lasting,
        queue: RunQueue,
        kept: KeptConfig,
        runner: RunnerConfig,
        observer: Observer,
    ) -> Self {
        let runner = CodexRunner::new(runner);
        let tracker = runner.tracker();
        Self {
            inner: Arc::new(Inner {
                policy,
                owners,
                kept: Arc::new(KeptRuns::new(kept)),
                persist: Persist::new(lasting, kept.ttl),
                queue,
                runner,
                observer,
                tracker,
                interaction: Interaction::default(),
                peers: None,
            }),
        }
    }

    /// The same lifecycle with `interaction` (call before sharing it).
    pub fn with_interaction(mut self, interaction: Interaction) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.interaction = interaction;
        }
        self
    }

    /// The same lifecycle reaching the other instances of its service through `peers`
    /// (call before sharing it).
    pub fn with_peers(mut self, peers: Peers) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.peers = Some(peers);
        }
        self
    }

    /// [`Self::with_peers`] when there are `peers`.
    pub fn with_peers_if(self, peers: Option<Peers>) -> Self {
        match peers {
            Some(peers) => self.with_peers(peers),
            None => self,
        }
    }

    /// The other instances, when several share the store.
    pub fn peers(&self) -> Option<&Peers> {
        self.inner.peers.as_ref()
    }

    /// Approval timeout and the optional tools.
    pub fn interaction(&self) -> Interaction {
        self.inner.interaction
    }

    /// How Codex is started, for probes that must start it as runs do (`/readyz`).
    pub fn runner_config(&self) -> Arc<RunnerConfig> {
        self.inner.runner.config().clone()
    }

    /// Every run in flight, queued ones included (shutdown waits on it).
    pub fn tracker(&self) -> TaskTracker {
        self.inner.tracker.clone()
    }

    /// Tasks and background runs.
    pub fn kept(&self) -> &Arc<KeptRuns> {
        &self.inner.kept
    }

    /// Kept runs' lasting records: what answers for a run not in memory.
    pub fn persist(&self) -> &Persist {
        &self.inner.persist
    }

    /// The longest prompt the policy takes, in bytes (a steering message's cap too).
    pub fn max_prompt_bytes(&self) -> usize {
        self.inner.policy.max_prompt_bytes
    }

    /// The audit log and metrics.
    pub fn observer(&self) -> &Observer {
        &self.inner.observer
    }

    /// Decide whether `request` may run for `caller`: a permit to start it, or why not.
    /// Nothing is spawned here; a refusal is recorded (audit, metrics) before it returns.
    pub async fn admit(
        &self,
        request: &RunRequest,
        caller: Caller,
    ) -> Result<Admitted, RunRefusal> {
        match self.decide(request, &caller).await {
            Ok((spec, reservation, (ticket, lease))) => Ok(Admitted {
                spec,
                caller,
                ticket,
                reservation,
                lease,
                runs: self.clone(),
            }),
            Err(refusal) => {
                if refusal.is_busy() {
                    tracing::warn!(principal = %caller.principal.label(), %refusal, "run refused: no room");
                } else {
                    tracing::info!(principal = %caller.principal.label(), %refusal, "run refused");
                }
                self.inner.observer.refused(&caller, request, &refusal);
                Err(refusal)
            }
        }
    }

    async fn decide(
        &self,
        request: &RunRequest,
        caller: &Caller,
    ) -> Result<(RunSpec, Option<Reservation>, (Ticket, Option<lease::Lease>)), RunRefusal> {
        let inner = &self.inner;
        if caller.path == RunPath::Background && !inner.kept.config().background {
            return Err(RunRefusal::BackgroundDisabled);
        }
        // The request itself first: a bad one never takes a place anyone else could use.
        let spec = checked(&inner.policy, &caller.principal, request).await?;
        // A resume or a fork must name a thread this caller started (a fork is a new
        // thread, owned by whoever forked it).
        if let Some(thread) = spec.resume.as_ref().or(spec.fork.as_ref())
            && let Err(rule) = inner.owners.check(thread, &caller.principal).await
        {
            return Err(RunRefusal::ThreadOwner(Refusal {
                param: "thread_id".into(),
                value: format!("{thread:?}"),
                rule,
            }));
        }
        // Room to keep the run (tasks, background), then a place in the queue.
        let reservation = match caller.path {
            RunPath::Direct => None,
            RunPath::Task | RunPath::Background => {
                let reservation = inner.kept.reserve(&caller.owner, &caller.quota)?;
                // Evicted runs leave the store before this call goes on, so no follow-up
                // (on this instance or another) can still find a run memory forgot.
                if !reservation.evicted().is_empty() {
                    inner.persist.expire(reservation.evicted().to_vec()).await;
                }
                Some(reservation)
            }
        };
        if let Some(thread) = &spec.resume {
            self.resume_here(thread).await?;
        }
        let ticket = inner.queue.ticket(&caller.quota)?;
        // Several instances: the principal's share of the whole service, in the store
        // (after the local ticket, so a call this instance refuses costs no round trip).
        let lease = match &inner.peers {
            Some(_) => {
                let limit = lease::service_limit(inner.queue.limits());
                lease::take(inner.persist.lasting(), &caller.quota, limit).await?
            }
            None => None,
        };
        Ok((spec, reservation, (ticket, lease)))
    }
}

/// [`check`], waiting on tokio's blocking pool where it must. Resolving the request's
/// paths touches the file system (`canonicalize`, `is_dir`, `is_file`), which a hung
/// network mount or a slow disk can stall for as long as it likes; a runtime thread must
/// never wait on it, or every other call and request on that thread waits too
/// (`tests/suite/hung_mount.rs` holds three checks on a mount that never answers and is
/// served meanwhile). Most requests name no path or one the kernel has cached:
/// [`check_cached`] admits those here, without the two thread hand-offs of the pool
/// (about 0.1 ms each on the 2-vCPU VM, BENCHMARKS.md).
async fn checked(
    policy: &Arc<Policy>,
    principal: &Principal,
    request: &RunRequest,
) -> Result<RunSpec, RunRefusal> {
    if let Some(spec) = check_cached(policy, principal, request) {
        return Ok(spec);
    }
    let (policy, principal, request) = (policy.clone(), principal.clone(), request.clone());
    match tokio::task::spawn_blocking(move || check(&policy, &principal, &request)).await {
        Ok(checked) => checked.map_err(RunRefusal::Policy),
        // The check panicked: as if it had run here.
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        // Only a runtime that is shutting down cancels a blocking task.
        Err(_) => Err(RunRefusal::Policy(Refusal {
            param: "cwd".into(),
            value: "(not checked)".into(),
            rule: Rule::Unresolvable("the server is stopping".into()),
        })),
    }
}
