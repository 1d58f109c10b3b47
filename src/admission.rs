//! [`AdmissionLayer`]: a concurrency limit with a bounded queue.
//!
//! tower's `ConcurrencyLimit` makes every extra caller wait, without bound; a gateway
//! must instead say "busy" once the queue is full, so a burst cannot pile up
//! unbounded work. A caller first takes a *ticket* (running + queued places; none left
//! → [`ToolError::Busy`] at once), then waits for a *slot* (running places). A call
//! cancelled while it waits leaves the queue without starting Codex.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::sync::Semaphore;
use tower::{Layer, Service, ServiceExt};

use crate::error::ToolError;
use crate::job::Job;

/// Builds [`Admission`] services sharing one set of slots and tickets.
#[derive(Clone, Debug)]
pub struct AdmissionLayer {
    state: Arc<State>,
}

#[derive(Debug)]
struct State {
    slots: Arc<Semaphore>,
    tickets: Arc<Semaphore>,
    running: usize,
    queued: usize,
}

impl AdmissionLayer {
    /// At most `running` jobs at once and `queued` more waiting (`running` ≥ 1).
    pub fn new(running: usize, queued: usize) -> Self {
        let running = running.max(1);
        Self {
            state: Arc::new(State {
                slots: Arc::new(Semaphore::new(running)),
                tickets: Arc::new(Semaphore::new(running.saturating_add(queued))),
                running,
                queued,
            }),
        }
    }
}

impl<S> Layer<S> for AdmissionLayer {
    type Service = Admission<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Admission {
            inner,
            state: self.state.clone(),
        }
    }
}

/// The service built by [`AdmissionLayer`].
#[derive(Clone, Debug)]
pub struct Admission<S> {
    inner: S,
    state: Arc<State>,
}

impl<S> Service<Job> for Admission<S>
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
        let state = self.state.clone();
        let inner = self.inner.clone();
        Box::pin(async move {
            let Ok(ticket) = state.tickets.clone().try_acquire_owned() else {
                tracing::warn!(principal = %job.ctx.principal.label(), "run refused: busy");
                return Err(ToolError::Busy {
                    running: state.running,
                    queued: state.queued,
                });
            };
            let cancel = job.ctx.cancel.clone();
            let slot = tokio::select! {
                slot = state.slots.clone().acquire_owned() => slot,
                () = cancel.cancelled() => return Err(ToolError::CancelledInQueue),
            };
            let result = inner.oneshot(job).await;
            drop((slot, ticket));
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

    fn job() -> Job {
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
            ctx: CallContext::new(Principal::Local),
        }
    }

    #[tokio::test]
    async fn beyond_running_plus_queued_calls_are_refused_as_busy_at_once() {
        let gate = Arc::new(tokio::sync::Notify::new());
        let g = gate.clone();
        let svc = AdmissionLayer::new(1, 1).layer(service_fn(move |_job: Job| {
            let g = g.clone();
            async move {
                g.notified().await;
                Ok::<_, ToolError>(())
            }
        }));
        let first = tokio::spawn(svc.clone().oneshot(job()));
        let second = tokio::spawn(svc.clone().oneshot(job()));
        tokio::time::sleep(Duration::from_millis(50)).await;
        let third = svc.clone().oneshot(job()).await;
        assert!(matches!(
            third,
            Err(ToolError::Busy {
                running: 1,
                queued: 1
            })
        ));
        gate.notify_one();
        first.await.unwrap().unwrap();
        gate.notify_one();
        second.await.unwrap().unwrap();
        // Capacity is back once the work is done.
        let again = tokio::spawn(svc.clone().oneshot(job()));
        tokio::time::sleep(Duration::from_millis(50)).await;
        gate.notify_one();
        again.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn a_queued_call_that_is_cancelled_never_reaches_the_runner() {
        let gate = Arc::new(tokio::sync::Notify::new());
        let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (g, c) = (gate.clone(), calls.clone());
        let svc = AdmissionLayer::new(1, 4).layer(service_fn(move |_job: Job| {
            let (g, c) = (g.clone(), c.clone());
            async move {
                c.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                g.notified().await;
                Ok::<_, ToolError>(())
            }
        }));
        let first = tokio::spawn(svc.clone().oneshot(job()));
        tokio::time::sleep(Duration::from_millis(50)).await;
        let queued = job();
        let cancel = queued.ctx.cancel.clone();
        let waiting = tokio::spawn(svc.clone().oneshot(queued));
        tokio::time::sleep(Duration::from_millis(50)).await;
        cancel.cancel();
        assert!(matches!(
            waiting.await.unwrap(),
            Err(ToolError::CancelledInQueue)
        ));
        gate.notify_one();
        first.await.unwrap().unwrap();
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
    }
}
