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
    /// `background=true` while background runs are off.
    #[error(
        "background runs are disabled on this server (TWOBOT_ENABLE_BACKGROUND_RUNS=false); call without background"
    )]
    BackgroundDisabled,
}

impl RunRefusal {
    /// Whether the refusal is about load (try again later) rather than the request itself.
    pub fn is_busy(&self) -> bool {
        matches!(self, Self::Queue(_) | Self::Kept(_))
    }
}
