//! The job stack: the one `tower` service every transport calls for `run_codex_prompt`.
//!
//! ```text
//! ToolCall ─▶ PolicyLayer ─▶ ThreadLayer ─▶ RunQueueLayer ─▶ CodexRunner ─▶ RunOutput
//!             (check → RunSpec)  (resume: owner?)  (slots + fair queue) (codex exec --json -)
//! ```
//!
//! stdio and Streamable HTTP both hold a [`ToolService`] built here, so policy,
//! limits and the runner are the same whatever the transport.

use std::sync::Arc;

use tokio_util::task::TaskTracker;
use tower::ServiceBuilder;
use tower::util::BoxCloneSyncService;

use crate::error::ToolError;
use crate::job::{RunOutput, ToolCall};
use crate::policy::{Policy, PolicyLayer};
use crate::run_queue::{QueueLimits, RunQueue, RunQueueLayer};
use crate::runner::{CodexRunner, RunnerConfig};
use crate::threads::{ThreadLayer, ThreadStore};

/// The job stack, type-erased: `ToolCall` in, `RunOutput` out.
pub type ToolService = BoxCloneSyncService<ToolCall, RunOutput, ToolError>;

/// Limits on Codex processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunLimits {
    /// Codex processes at once.
    pub max_concurrent_runs: usize,
    /// Calls that may wait for a slot.
    pub max_queued_runs: usize,
    /// Calls one principal may have waiting for a slot.
    pub max_queued_runs_per_principal: usize,
}

/// Build the job stack. The returned tracker sees every run in flight (for shutdown).
pub fn tool_service(
    policy: Arc<Policy>,
    limits: RunLimits,
    runner: RunnerConfig,
    threads: Arc<ThreadStore>,
) -> (ToolService, TaskTracker) {
    let runner = CodexRunner::new(runner);
    let tracker = runner.tracker();
    let service = ServiceBuilder::new()
        // Refuse bad requests before they take a queue place, and never spawn for them.
        .layer(PolicyLayer::new(policy))
        // A resume must name a thread this caller started; new threads are recorded.
        .layer(ThreadLayer::new(threads))
        // Bound live Codex processes and waiting calls, fairly between principals;
        // beyond the bounds, "busy" or "quota exceeded" at once.
        .layer(RunQueueLayer::new(RunQueue::new(QueueLimits {
            running: limits.max_concurrent_runs,
            queued: limits.max_queued_runs,
            queued_per_principal: limits.max_queued_runs_per_principal,
        })))
        // Innermost: the Codex subprocess.
        .service(runner);
    (BoxCloneSyncService::new(service), tracker)
}
