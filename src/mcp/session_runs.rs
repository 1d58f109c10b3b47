//! The runs each HTTP session's direct calls wait on, so that the session's end (a
//! DELETE, idle expiry) stops them at once.
//!
//! A direct call's result can only reach its caller on the session that made it. When
//! the session ends, rmcp drains responses for up to 5 s before it cancels the call,
//! and the run then still gets its kill grace: about 7.5 s in which a Codex nobody can
//! hear from held a run slot. The HTTP session manager calls [`SessionRuns::end`] as the
//! session closes instead, and answers the DELETE once those runs are over.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::runs::RunHandle;

/// Runs by session id; cheap to clone, clones share the map.
#[derive(Debug, Clone, Default)]
pub struct SessionRuns {
    by_session: Arc<Mutex<HashMap<String, Vec<RunHandle>>>>,
}

/// A run recorded under its session until this is dropped (its call ended).
#[derive(Debug)]
pub struct Tracked {
    runs: SessionRuns,
    session: String,
    run_id: String,
}

impl SessionRuns {
    fn map(&self) -> MutexGuard<'_, HashMap<String, Vec<RunHandle>>> {
        // Each change under the lock is one map operation: a poisoned map is consistent.
        self.by_session
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Record `handle` as waited on by a direct call of `session`.
    pub fn track(&self, session: &str, handle: &RunHandle) -> Tracked {
        self.map()
            .entry(session.to_owned())
            .or_default()
            .push(handle.clone());
        Tracked {
            runs: self.clone(),
            session: session.to_owned(),
            run_id: handle.id().to_owned(),
        }
    }

    /// Runs `session` still waits on.
    pub fn count(&self, session: &str) -> usize {
        self.map().get(session).map_or(0, Vec::len)
    }

    /// `session` ended: cancel its runs and wait, each up to `limit`, until they are over
    /// (Codex and everything it started are gone by then).
    pub async fn end(&self, session: &str, limit: Duration) {
        let runs = self.map().remove(session).unwrap_or_default();
        for run in &runs {
            run.cancel();
        }
        let never = CancellationToken::new();
        futures::future::join_all(runs.iter().map(|run| run.outcome_within(limit, &never))).await;
        if !runs.is_empty() {
            tracing::info!(
                session,
                runs = runs.len(),
                "session ended: its direct calls' runs were cancelled"
            );
        }
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        let mut map = self.runs.map();
        if let Some(runs) = map.get_mut(&self.session) {
            runs.retain(|r| r.id() != self.run_id);
            if runs.is_empty() {
                map.remove(&self.session);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ending_a_session_cancels_only_its_runs_and_forgets_them() {
        let runs = SessionRuns::default();
        let (mine, _p1) = crate::runs::handle::channel(CancellationToken::new());
        let (other, _p2) = crate::runs::handle::channel(CancellationToken::new());
        let _a = runs.track("s1", &mine);
        let _b = runs.track("s2", &other);
        runs.end("s1", Duration::from_millis(10)).await;
        assert!(mine.cancel_requested());
        assert!(!other.cancel_requested());
        assert_eq!(runs.count("s1"), 0);
        assert_eq!(runs.count("s2"), 1);
    }

    #[test]
    fn a_call_that_ended_leaves_nothing_behind() {
        let runs = SessionRuns::default();
        let (run, _p) = crate::runs::handle::channel(CancellationToken::new());
        drop(runs.track("s1", &run));
        assert_eq!(runs.count("s1"), 0);
        assert!(runs.map().is_empty());
    }
}
