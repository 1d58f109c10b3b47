//! Plain settings types of the run lifecycle: what `Config::load` fills in and
//! `run_queue` and `runs` read.
//!
//! Why here: `config` must not import the stack it configures. When these structs lived
//! in `run_queue` and `runs`, loading the configuration meant importing the assembly of
//! the run stack (`runs::Runs`), and nothing in the stack could read a setting without an
//! import cycle. So the settings sit in this leaf (it imports nothing from the crate),
//! below both the code that fills them and the code that obeys them; `run_queue` and
//! `runs` re-export them under their old paths. `config` itself still imports the plain
//! data of inner modules (`policy::Policy`, `runner::RunnerConfig`, `run::SandboxMode`),
//! none of which imports `config` back.

use std::time::Duration;

/// Limits on Codex processes (the operator's settings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunLimits {
    /// Codex processes at once.
    pub max_concurrent_runs: usize,
    /// Calls that may wait for a slot.
    pub max_queued_runs: usize,
    /// Calls one principal may have waiting for a slot.
    pub max_queued_runs_per_principal: usize,
    /// Codex processes one principal may have at once (at most `max_concurrent_runs`).
    pub max_concurrent_runs_per_principal: usize,
}

/// `TWOBOT_MAX_CONCURRENT_RUNS_PER_PRINCIPAL` as the queue obeys it, from the global cap
/// and the value given (if any). Unset: one less than the global cap, at least 1 — one
/// slot stays free of any single principal, so another principal's call starts at once
/// however long the first one's runs are, while a lone principal loses only one slot.
/// A value above the global cap could never bind, so it is refused rather than ignored.
/// Pure; `Err` is the reason, for [`crate::config::ConfigError::Invalid`].
pub fn per_principal_runs(global: u64, given: Option<u32>) -> Result<usize, String> {
    let cap = match given {
        None => global.saturating_sub(1).max(1),
        Some(0) => return Err("must be at least 1".to_owned()),
        Some(n) if u64::from(n) > global => {
            return Err(format!(
                "must be at most TWOBOT_MAX_CONCURRENT_RUNS ({global}), the slots there are"
            ));
        }
        Some(n) => u64::from(n),
    };
    Ok(usize::try_from(cap).unwrap_or(usize::MAX))
}

/// How runs kept beyond their request (MCP tasks, background runs) are offered and bounded.
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
    /// Runs kept at once per principal.
    pub max_runs_per_principal: usize,
}

impl Default for KeptConfig {
    fn default() -> Self {
        Self {
            background: false,
            tasks: true,
            ttl: Duration::from_secs(6 * 3600),
            max_runs: 256,
            max_runs_per_principal: 64,
        }
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
            let got = per_principal_runs(*global, *given);
            match expected {
                Ok(n) => assert_eq!(got, Ok(*n), "{global} {given:?}"),
                Err(start) => assert!(
                    got.as_ref().is_err_and(|e| e.starts_with(start)),
                    "{global} {given:?}: {got:?}"
                ),
            }
        }
    }
}
