//! One principal's share of the server, said once: every per-principal cap, its
//! variable, its default and what happens beyond it.
//!
//! These caps are what keeps one caller from starving the rest (SECURITY.md), and they
//! used to be spelled out wherever they were parsed, defaulted, described or enforced.
//! Now the flags take their defaults from here, `Config` holds the values as one
//! [`PrincipalLimits`], and the run queue, the kept runs, the cross-instance leases and
//! the HTTP session and in-flight guards read them from it. Like the rest of
//! `config::settings`, this is a leaf: it imports nothing from the crate.

/// A principal's share of the server (a principal is one caller: one subject with
/// auth, one client address without). Each field names its variable; each is at least 1
/// except [`Self::queued`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrincipalLimits {
    /// `TWOBOT_MAX_CONCURRENT_RUNS_PER_PRINCIPAL`: Codex processes running at once. At its
    /// cap a principal's calls wait while another principal's call takes a free slot.
    /// Default: [`Self::running_share`].
    pub running: usize,
    /// `TWOBOT_MAX_QUEUED_RUNS_PER_PRINCIPAL`: calls waiting for a run slot, its share
    /// of `TWOBOT_MAX_QUEUED_RUNS` ("quota exceeded" beyond). Default [`Self::QUEUED`].
    pub queued: usize,
    /// `TWOBOT_MAX_RUNS_PER_PRINCIPAL`: background runs and tasks kept at once, running
    /// or finished (its finished ones are evicted first). Default [`Self::KEPT`].
    pub kept: usize,
    /// `TWOBOT_MAX_SESSIONS_PER_PRINCIPAL`: live MCP sessions (429 beyond). Default
    /// [`Self::SESSIONS`].
    pub sessions: usize,
    /// `TWOBOT_MAX_INFLIGHT_PER_PRINCIPAL`: HTTP requests in flight, open SSE streams
    /// included (429 and close beyond). Default [`Self::INFLIGHT`].
    pub inflight: usize,
}

/// Why a per-principal running share cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShareError {
    /// Zero would let no principal run anything.
    #[error("must be at least 1")]
    Zero,
    /// Above the global cap it could never bind (the global cap, carried for the message).
    #[error("must be at most TWOBOT_MAX_CONCURRENT_RUNS ({0}), the slots there are")]
    AboveGlobal(u64),
}

impl PrincipalLimits {
    /// Default of [`Self::queued`].
    pub const QUEUED: u32 = 8;
    /// Default of [`Self::kept`].
    pub const KEPT: u32 = 64;
    /// Default of [`Self::sessions`].
    pub const SESSIONS: u32 = 64;
    /// Default of [`Self::inflight`].
    pub const INFLIGHT: u32 = 512;
    /// How [`Self::running`] defaults, in words (`--print-config`).
    pub const RUNNING_DEFAULT: &str = "TWOBOT_MAX_CONCURRENT_RUNS - 1, at least 1";

    /// [`Self::running`] from the global cap and the value given (if any). Unset: one
    /// less than the global cap, at least 1 — one slot stays free of any single
    /// principal, so another principal's call starts at once however long the first
    /// one's runs are, while a lone principal loses only one slot. A value above the
    /// global cap could never bind, so it is refused rather than ignored. Pure; `Err` is
    /// the reason, for [`crate::config::ConfigError::Invalid`].
    pub fn running_share(global: u64, given: Option<u32>) -> Result<usize, ShareError> {
        let cap = match given {
            None => global.saturating_sub(1).max(1),
            Some(0) => return Err(ShareError::Zero),
            Some(n) if u64::from(n) > global => return Err(ShareError::AboveGlobal(global)),
            Some(n) => u64::from(n),
        };
        Ok(usize::try_from(cap).unwrap_or(usize::MAX))
    }

    /// Runs one principal may have admitted at once across the service (several
    /// instances, counted in the shared store): the running share plus the queue share
    /// one instance's queue applies (`running`, `queued`: after its clamping), counted
    /// once for all instances.
    pub fn across_service(running: usize, queued: usize) -> usize {
        running.max(1).saturating_add(queued)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_per_principal_run_cap_defaults_to_one_below_the_global_cap_and_never_exceeds_it() {
        let table: &[(u64, Option<u32>, Result<usize, &str>)] = &[
            (4, None, Ok(3)),
            (2, None, Ok(1)),
            (1, None, Ok(1)),
            (16, None, Ok(15)),
            (4, Some(2), Ok(2)),
            (4, Some(4), Ok(4)),
            (
                4,
                Some(5),
                Err("must be at most TWOBOT_MAX_CONCURRENT_RUNS (4)"),
            ),
            (4, Some(0), Err("must be at least 1")),
        ];
        for (global, given, expected) in table {
            let got = PrincipalLimits::running_share(*global, *given);
            match expected {
                Ok(n) => assert_eq!(got, Ok(*n), "{global} {given:?}"),
                Err(start) => assert!(
                    got.as_ref()
                        .is_err_and(|e| e.to_string().starts_with(start)),
                    "{global} {given:?}: {got:?}"
                ),
            }
        }
    }

    #[test]
    fn across_the_service_a_principal_has_its_running_share_plus_its_queue_share() {
        for (running, queued, want) in [(1, 0, 1), (3, 4, 7), (0, 0, 1), (2, 1, 3)] {
            assert_eq!(PrincipalLimits::across_service(running, queued), want);
        }
    }
}
