//! Plain settings types of the run lifecycle: what `Config::load` fills in and
//! `run_queue` and `runs` read.
//!
//! Why here: `config` must not import the stack it configures. When these structs lived
//! in `run_queue` and `runs`, loading the configuration meant importing the assembly of
//! the run stack (`runs::Runs`), and nothing in the stack could read a setting without an
//! import cycle. So the settings sit in this leaf (it imports nothing from the crate),
//! below both the code that fills them and the code that obeys them. `config` itself still imports the plain
//! data of inner modules (`policy::Policy`, `runner::RunnerConfig`, `run::SandboxMode`),
//! none of which imports `config` back.

use std::time::Duration;

use super::principal::PrincipalLimits;

/// Limits on Codex processes, all principals together (the operator's settings; each
/// principal's share of them is in [`PrincipalLimits`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunLimits {
    /// Codex processes at once.
    pub max_concurrent_runs: usize,
    /// Calls that may wait for a slot.
    pub max_queued_runs: usize,
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
    /// Runs kept at once per principal ([`PrincipalLimits::kept`]).
    pub max_runs_per_principal: usize,
}

impl Default for KeptConfig {
    fn default() -> Self {
        Self {
            background: false,
            tasks: true,
            ttl: Duration::from_secs(6 * 3600),
            max_runs: 256,
            max_runs_per_principal: PrincipalLimits::KEPT as usize,
        }
    }
}
