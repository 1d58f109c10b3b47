//! [`RunRefusal`]: why a call was not admitted. Decided before anything is spawned, so
//! the caller learns it at once, and every path (direct, task, background) gets the
//! same refusal in the same words.

use crate::policy::Refusal;
use crate::run_queue::QueueRefusal;

/// Why a call got no run.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RunRefusal {
    /// The policy refused the request (paths, sandbox, limits…).
    #[error("refused by policy: {0}")]
    Policy(Refusal),
    /// A resume of a thread this caller may not continue.
    #[error("refused by policy: {0}")]
    ThreadOwner(Refusal),
    /// No run slot or queue place (the server's or the caller's share) is left.
    #[error("{0}")]
    Queue(#[from] QueueRefusal),
    /// No room to keep another task or background run.
    #[error("{0}")]
    Kept(#[from] super::store::KeptRefusal),
    /// The caller already holds its share of the whole service (every instance's
    /// queued and running runs, counted in the shared store).
    #[error(
        "quota exceeded: this caller already has {limit} runs queued or running across this service's instances, its share \
         (TWOBOT_MAX_CONCURRENT_RUNS_PER_PRINCIPAL + TWOBOT_MAX_QUEUED_RUNS_PER_PRINCIPAL); wait for one of them to end, then try again"
    )]
    ServiceQuota {
        /// Runs a principal may have admitted at once, service-wide.
        limit: usize,
    },
    /// A resume of a thread whose Codex home is on another, live instance.
    #[error(
        "refused: thread {thread_id} is held by 2Bot instance {instance}{at}, whose Codex home has its history; \
         a resume runs only there (this instance is {me}); retry, or reach that instance directly"
    )]
    ThreadElsewhere {
        /// The thread.
        thread_id: String,
        /// The instance holding it.
        instance: String,
        /// ` (url)` when it has an internal address.
        at: String,
        /// This instance.
        me: String,
    },
    /// `background=true` while background runs are off.
    #[error(
        "background runs are disabled on this server (TWOBOT_ENABLE_BACKGROUND_RUNS=false); call without background"
    )]
    BackgroundDisabled,
}

impl RunRefusal {
    /// Whether the refusal is about load (try again later) rather than the request itself.
    pub fn is_busy(&self) -> bool {
        matches!(
            self,
            Self::Queue(_) | Self::Kept(_) | Self::ServiceQuota { .. }
        )
    }
}
