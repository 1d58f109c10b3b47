//! [`KeptRuns`]: runs that outlive the request that started them.
//!
//! Many MCP clients (ChatGPT among them) give up on a tool call after about a minute;
//! Codex runs take longer. Two front doors lead here: MCP tasks (a task-capable client's
//! `tools/call` answered with a task, followed with `tasks/get`, stopped with
//! `tasks/cancel`) and, for clients without tasks, background runs (`background=true`,
//! then `get_codex_run` and `cancel_codex_run`). Both keep the run's [`RunHandle`] here.
//!
//! Each run belongs to an owner (anyone else is told it does not exist), the store
//! holds at most `TWOBOT_MAX_RUNS` runs, and a finished run is forgotten
//! `TWOBOT_TASK_TTL_SEC` after it ended. Room is taken at admission (a
//! [`Reservation`]), so a full store refuses before anything is spawned.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::handle::RunHandle;

/// Operator settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeptConfig {
    /// Whether clients may start background runs.
    pub background: bool,
    /// Whether task-capable clients get their calls run as MCP tasks.
    pub tasks: bool,
    /// How long a finished run stays fetchable.
    pub ttl: Duration,
    /// Runs kept at once.
    pub max_runs: usize,
}

impl Default for KeptConfig {
    fn default() -> Self {
        Self {
            background: false,
            tasks: true,
            ttl: Duration::from_secs(6 * 3600),
            max_runs: 256,
        }
    }
}

/// No room for another kept run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeptRefusal {
    /// The store is full.
    #[error(
        "too many runs: this server keeps at most {0} (TWOBOT_MAX_RUNS); fetch or cancel finished runs, or wait for them to expire"
    )]
    Full(usize),
}

/// A kept run that is not there for this caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeptError {
    /// No such run for this caller (or it expired).
    #[error(
        "no run {0:?} for this caller; it may have expired (TWOBOT_TASK_TTL_SEC) or belong to someone else"
    )]
    NotFound(String),
}

#[derive(Debug)]
struct Kept {
    owner: String,
    handle: RunHandle,
}

#[derive(Debug, Default)]
struct Inner {
    runs: HashMap<String, Kept>,
    /// Places promised to admitted runs not yet started.
    reserved: usize,
}

/// The store of tasks and background runs.
#[derive(Debug)]
pub struct KeptRuns {
    config: KeptConfig,
    inner: Mutex<Inner>,
}

/// Room for one run, taken at admission; given back if the run never starts.
#[derive(Debug)]
pub struct Reservation {
    store: Arc<KeptRuns>,
    owner: String,
    live: bool,
}

impl KeptRuns {
    /// An empty store.
    pub fn new(config: KeptConfig) -> Self {
        Self {
            config,
            inner: Mutex::default(),
        }
    }

    /// The operator's settings.
    pub fn config(&self) -> KeptConfig {
        self.config
    }

    /// Runs held now (after forgetting expired ones).
    pub fn len(&self) -> usize {
        let mut inner = self.lock();
        self.prune(&mut inner);
        inner.runs.len()
    }

    /// Whether no run is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the map half-written (each
        // operation is one insert or remove), so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn prune(&self, inner: &mut Inner) {
        let ttl = self.config.ttl;
        inner
            .runs
            .retain(|_, k| k.handle.ended_at().is_none_or(|at| at.elapsed() < ttl));
    }

    /// Room for one more run of `owner`, or a refusal.
    pub fn reserve(self: &Arc<Self>, owner: &str) -> Result<Reservation, KeptRefusal> {
        let mut inner = self.lock();
        self.prune(&mut inner);
        if inner.runs.len() + inner.reserved >= self.config.max_runs {
            return Err(KeptRefusal::Full(self.config.max_runs));
        }
        inner.reserved += 1;
        Ok(Reservation {
            store: self.clone(),
            owner: owner.to_owned(),
            live: true,
        })
    }

    /// The run `id`, if `owner` owns it.
    pub fn get(&self, id: &str, owner: &str) -> Result<RunHandle, KeptError> {
        let mut inner = self.lock();
        self.prune(&mut inner);
        inner
            .runs
            .get(id)
            .filter(|k| k.owner == owner)
            .map(|k| k.handle.clone())
            .ok_or_else(|| KeptError::NotFound(id.to_owned()))
    }
}

impl Reservation {
    /// Keep `handle` in the reserved place.
    pub fn keep(mut self, handle: RunHandle) {
        let mut inner = self.store.lock();
        inner.reserved = inner.reserved.saturating_sub(1);
        let owner = std::mem::take(&mut self.owner);
        inner
            .runs
            .insert(handle.id().to_owned(), Kept { owner, handle });
        self.live = false;
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.live {
            let mut inner = self.store.lock();
            inner.reserved = inner.reserved.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::runs::handle::{Ended, channel};

    fn store(max: usize) -> Arc<KeptRuns> {
        Arc::new(KeptRuns::new(KeptConfig {
            max_runs: max,
            ttl: Duration::from_millis(50),
            ..KeptConfig::default()
        }))
    }

    #[tokio::test]
    async fn a_full_store_refuses_before_anything_runs_and_a_dropped_reservation_frees_its_place() {
        let s = store(1);
        let r = s.reserve("a").unwrap();
        assert_eq!(s.reserve("b").unwrap_err(), KeptRefusal::Full(1));
        drop(r);
        assert!(s.reserve("b").is_ok());
    }

    #[tokio::test]
    async fn only_the_owner_sees_a_run_and_a_finished_run_expires() {
        let s = store(4);
        let (handle, publisher) = channel(CancellationToken::new());
        s.reserve("a").unwrap().keep(handle.clone());
        assert!(s.get(handle.id(), "a").is_ok());
        assert_eq!(
            s.get(handle.id(), "b").unwrap_err(),
            KeptError::NotFound(handle.id().to_owned())
        );
        publisher.ended(Ended::NotRun(crate::error::ToolError::CancelledInQueue));
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert!(s.get(handle.id(), "a").is_err());
        assert!(s.is_empty());
    }
}
