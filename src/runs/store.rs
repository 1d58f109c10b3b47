//! [`KeptRuns`]: runs that outlive the request that started them.
//!
//! Many MCP clients (ChatGPT among them) give up on a tool call after about a minute;
//! Codex runs take longer. Two front doors lead here: MCP tasks (a task-capable client's
//! `tools/call` answered with a task, followed with `tasks/get`, stopped with
//! `tasks/cancel`) and, for clients without tasks, background runs (`background=true`,
//! then `get_codex_run` and `cancel_codex_run`). Both keep the run's [`RunHandle`] here.
//!
//! Each run belongs to an owner (anyone else is told it does not exist), the store
//! holds at most `TWOBOT_MAX_RUNS` runs, at most `TWOBOT_MAX_RUNS_PER_PRINCIPAL` of them
//! per principal (so one principal cannot take every place), and a finished run is
//! forgotten `TWOBOT_TASK_TTL_SEC` after it ended. When there is no room, finished runs
//! make room before anyone is refused: the caller's own oldest first, then (store full)
//! the oldest finished run of anyone; running runs are never evicted ([`make_room`]).
//! Room is taken at admission (a [`Reservation`]), so a refusal comes before anything
//! is spawned.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use std::time::Instant;

use super::handle::RunHandle;
use crate::config::KeptConfig;
use crate::run::QuotaKey;

/// No room for another kept run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeptRefusal {
    /// The store is full.
    #[error(
        "too many runs: this server keeps at most {0} (TWOBOT_MAX_RUNS); fetch or cancel finished runs, or wait for them to expire"
    )]
    Full(usize),
    /// This principal keeps its maximum of running runs.
    #[error(
        "quota exceeded: this caller already keeps {0} running runs and tasks, its share of the server \
         (TWOBOT_MAX_RUNS_PER_PRINCIPAL); its finished runs were evicted first; wait for a run to end or cancel one"
    )]
    PrincipalFull(usize),
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
struct Held {
    owner: String,
    quota: QuotaKey,
    handle: RunHandle,
}

#[derive(Debug, Default)]
struct Inner {
    runs: HashMap<String, Held>,
    /// Places promised to admitted runs not yet started, per principal.
    reserved: HashMap<QuotaKey, usize>,
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
    quota: QuotaKey,
    live: bool,
    evicted: Vec<String>,
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
            .retain(|_, h| h.handle.ended_at().is_none_or(|at| at.elapsed() < ttl));
    }

    /// Room for one more run of `owner` (counted against `quota`), evicting finished
    /// runs if need be, or a refusal.
    pub fn reserve(
        self: &Arc<Self>,
        owner: &str,
        quota: &QuotaKey,
    ) -> Result<Reservation, KeptRefusal> {
        let mut inner = self.lock();
        self.prune(&mut inner);
        let evict: Vec<String> = {
            let promised = inner
                .reserved
                .iter()
                .flat_map(|(key, n)| std::iter::repeat_n(key, *n))
                .map(|key| Kept {
                    id: "",
                    quota_key: key,
                    finished: None,
                });
            let kept: Vec<Kept<'_>> = inner
                .runs
                .iter()
                .map(|(id, h)| Kept {
                    id: id.as_str(),
                    quota_key: &h.quota,
                    finished: h.handle.ended_at(),
                })
                .chain(promised)
                .collect();
            make_room(
                &kept,
                quota,
                self.config.max_runs,
                self.config.max_runs_per_principal,
            )?
            .into_iter()
            .map(str::to_owned)
            .collect()
        };
        for id in &evict {
            inner.runs.remove(id);
        }
        if !evict.is_empty() {
            tracing::info!(evicted = evict.len(), quota_key = %quota, "finished runs evicted to make room");
        }
        *inner.reserved.entry(quota.clone()).or_default() += 1;
        Ok(Reservation {
            store: self.clone(),
            owner: owner.to_owned(),
            quota: quota.clone(),
            live: true,
            evicted: evict,
        })
    }

    /// The run `id`, if `owner` owns it.
    pub fn get(&self, id: &str, owner: &str) -> Result<RunHandle, KeptError> {
        let mut inner = self.lock();
        self.prune(&mut inner);
        inner
            .runs
            .get(id)
            .filter(|h| h.owner == owner)
            .map(|h| h.handle.clone())
            .ok_or_else(|| KeptError::NotFound(id.to_owned()))
    }
}

impl Reservation {
    /// The finished runs evicted to make this room (their lasting records go too).
    pub fn evicted(&self) -> &[String] {
        &self.evicted
    }

    fn unreserve(&self, inner: &mut Inner) {
        if let Some(n) = inner.reserved.get_mut(&self.quota) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                inner.reserved.remove(&self.quota);
            }
        }
    }

    /// Keep `handle` in the reserved place.
    pub fn keep(mut self, handle: RunHandle) {
        let store = self.store.clone();
        let mut inner = store.lock();
        self.unreserve(&mut inner);
        let held = Held {
            owner: std::mem::take(&mut self.owner),
            quota: self.quota.clone(),
            handle,
        };
        inner.runs.insert(held.handle.id().to_owned(), held);
        self.live = false;
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.live {
            let store = self.store.clone();
            let mut inner = store.lock();
            self.unreserve(&mut inner);
        }
    }
}

/// A kept run as [`make_room`] sees it.
#[derive(Debug, Clone, Copy)]
pub struct Kept<'a> {
    /// The run's id.
    pub id: &'a str,
    /// Whose share it counts against.
    pub quota_key: &'a QuotaKey,
    /// When it finished (`None`: still running).
    pub finished: Option<Instant>,
}

/// Which kept runs to evict so that `caller` may start one more, or why it may not.
///
/// Only finished runs are ever evicted, oldest first. The caller's own go first: over its
/// quota it can only make room from its own; when the whole registry is full, its own
/// go first and then anyone's, because refusing a caller while results nobody fetched
/// sit there would let one principal's finished runs lock everyone else out.
pub fn make_room<'a>(
    kept: &[Kept<'a>],
    caller: &QuotaKey,
    max_runs: usize,
    max_per_principal: usize,
) -> Result<Vec<&'a str>, KeptRefusal> {
    let mut finished: Vec<&Kept<'a>> = kept.iter().filter(|k| k.finished.is_some()).collect();
    finished.sort_by_key(|k| k.finished);
    let (mine, others): (Vec<&Kept<'a>>, Vec<&Kept<'a>>) =
        finished.into_iter().partition(|k| k.quota_key == caller);
    let mut evict: Vec<&'a str> = Vec::new();

    let held = kept.iter().filter(|k| k.quota_key == caller).count();
    let over_quota = (held + 1).saturating_sub(max_per_principal);
    if over_quota > mine.len() {
        return Err(KeptRefusal::PrincipalFull(max_per_principal));
    }
    evict.extend(mine.iter().take(over_quota).map(|k| k.id));

    let total = kept.len() - evict.len();
    let over_total = (total + 1).saturating_sub(max_runs);
    let candidates = mine.iter().skip(over_quota).chain(others.iter());
    let more: Vec<&'a str> = candidates.take(over_total).map(|k| k.id).collect();
    if more.len() < over_total {
        return Err(KeptRefusal::Full(max_runs));
    }
    evict.extend(more);
    Ok(evict)
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
