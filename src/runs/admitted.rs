//! An admitted call, and its start: the driver task that waits for a run slot, runs
//! Codex, records the thread's owner and the kept run's states, and writes the audit
//! record and metrics at the end. Apart from admission ([`super`]) because it is the
//! other half of the lifecycle: everything here happens after the decision, on the
//! run's own task.

use std::sync::Arc;
use std::time::Instant;

use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use tracing::Instrument;

use super::asked::Asked;
use super::handle::{self, Ended, RunHandle};
use super::store::Reservation;
use super::{Caller, Runs, lease, persist};
use crate::error::ToolError;
use crate::run::{CallContext, Job, RunSpec};
use crate::run_queue::Ticket;
use crate::state::RunState;
use crate::thread_owners::ThreadRecord;

/// A call that passed admission: it holds its queue place (and kept place) and has not
/// started anything yet. Dropping it gives both back.
#[derive(Debug)]
pub struct Admitted {
    pub(super) spec: RunSpec,
    pub(super) caller: Caller,
    pub(super) ticket: Ticket,
    pub(super) reservation: Option<Reservation>,
    pub(super) lease: Option<lease::Lease>,
    pub(super) runs: Runs,
}

impl Admitted {
    /// The checked run.
    pub fn spec(&self) -> &RunSpec {
        &self.spec
    }

    /// Start the run; it stops when `stop` fires (shutdown) or the handle is cancelled.
    /// A task or background run is kept in [`KeptRuns`] from here on.
    pub fn start(self, stop: &CancellationToken) -> RunHandle {
        let Self {
            spec,
            caller,
            ticket,
            reservation,
            lease,
            runs,
        } = self;
        let cancel = stop.child_token();
        let (handle, publisher) = handle::channel(cancel.clone());
        let control = handle.control().clone();
        control.configure(caller.approvals);
        {
            // Every decision, whoever made it, is one audit line and one metric.
            let observer = runs.inner.observer.clone();
            let caller = caller.clone();
            let run_id = handle.id().to_owned();
            control.on_decided(Arc::new(move |record| {
                observer.approval(&caller, &run_id, record);
            }));
        }
        // A kept run is recorded in the store from admission on, off the run's path.
        let writer = reservation.is_some().then(|| {
            runs.inner.persist.writer(
                &runs.inner.tracker,
                handle.id(),
                &caller.owner,
                &caller.quota.0,
            )
        });
        if let Some(writer) = &writer {
            writer.send(RunState::Queued, None);
        }
        if ticket.starts_now() {
            // Said before the caller's first snapshot (a background run's answer, a
            // task's first `tasks/get`), not when the driver's task first runs.
            publisher.running();
        }
        if let Some(reservation) = reservation {
            reservation.keep(handle.clone());
        }
        let watched = handle.clone();
        let inner = runs.inner.clone();
        // The driver runs on its own task: keep the caller's span (`tools/call`, with the
        // caller's trace) as the parent of the runner's `codex_run`.
        let span = tracing::Span::current();
        tracing::debug!(run_id = %publisher.id(), path = caller.path.as_str(), "run admitted");
        let driver = async move {
            let admitted = Instant::now();
            let facts = inner.observer.facts(&spec);
            let new_thread = spec.resume.is_none().then_some(spec.ephemeral);
            let asked = Asked::of(&spec);
            let ended = match ticket.slot(&cancel).await {
                None => Ended::NotRun(ToolError::CancelledInQueue),
                Some(slot) => {
                    publisher.running();
                    if let Some(writer) = &writer {
                        writer.send(RunState::Running, None);
                    }
                    let (tx, mut rx) = tokio::sync::mpsc::channel::<String>(64);
                    let job = Job {
                        spec,
                        ctx: CallContext {
                            principal: caller.principal.clone(),
                            quota_key: caller.quota.clone(),
                            request_id: caller.request_id.clone(),
                            cancel,
                            progress: Some(tx),
                            control: control.clone(),
                        },
                    };
                    let collect = async {
                        while let Some(message) = rx.recv().await {
                            publisher.progress(message);
                        }
                    };
                    let (result, ()) = tokio::join!(inner.runner.clone().oneshot(job), collect);
                    drop(slot);
                    match result {
                        Ok(mut out) => {
                            asked.complete(&mut out);
                            if let (Some(ephemeral), Some(thread_id)) =
                                (new_thread, &out.summary.thread_id)
                            {
                                inner
                                    .owners
                                    .record(ThreadRecord {
                                        thread_id: thread_id.clone(),
                                        owner: caller.principal.owner_key(),
                                        ephemeral,
                                    })
                                    .await;
                            }
                            Ended::Ran(Box::new(out))
                        }
                        Err(e) => Ended::NotRun(e),
                    }
                }
            };
            // The run no longer counts against its principal's share of the service.
            drop(lease);
            // Whatever still waits for a person is declined now; nothing hangs.
            control.end();
            inner
                .observer
                .ended(&caller, facts, &ended, admitted.elapsed());
            publisher.ended(ended);
            if let Some(writer) = &writer {
                let snapshot = watched.snapshot();
                writer.send(persist::state_of(snapshot.status), Some(&snapshot));
            }
        };
        runs.inner.tracker.spawn(driver.instrument(span));
        handle
    }
}
