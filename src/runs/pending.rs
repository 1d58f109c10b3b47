//! How a snapshot shows an approval request that waits for a person: what would happen,
//! why, and how long before it is declined; never the token that answers it.

use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::run::control::{ApprovalKind, Pending};

/// A request waiting for a person, as snapshots show it (never with its token).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PendingApproval {
    /// Its id within the run (`a1`, `a2`, …).
    pub id: String,
    /// What would happen on approve: `command` and `cwd`, or `paths` and `diff` (text).
    #[serde(flatten)]
    pub request: ApprovalKind,
    /// Codex's reason, when it gave one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When it was asked, seconds since the Unix epoch.
    pub asked_at: u64,
    /// Seconds before it is declined for want of an answer.
    pub seconds_left: u64,
}

impl PendingApproval {
    /// `pending` as shown, `timeout` after it was asked.
    pub fn of(pending: &Pending, timeout: Duration) -> Self {
        let now_ms = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        let waited = Duration::from_millis(now_ms.saturating_sub(pending.asked_at_ms));
        Self {
            id: pending.id.clone(),
            request: pending.request.kind.clone(),
            reason: pending.request.reason.clone(),
            asked_at: pending.asked_at_ms / 1000,
            seconds_left: timeout.saturating_sub(waited).as_secs(),
        }
    }
}
