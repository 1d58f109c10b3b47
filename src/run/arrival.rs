//! How a call reached its run: the transport it came in on ([`CallTransport`]) and the
//! way into a run it took ([`RunPath`]).
//!
//! Both are facts about one run that several layers record (the run lifecycle keeps
//! them with the caller, the audit log writes them, the metrics label by them), so they
//! live with the run's other plain data, below all of those layers.

use serde::Serialize;

/// Which way into a run the caller took.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum RunPath {
    /// A plain `tools/call` that waits for the result.
    Direct,
    /// An MCP task (SEP-2663).
    Task,
    /// `background=true`, followed with `get_codex_run`.
    Background,
}

impl RunPath {
    /// The label value, as in the audit record.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Direct => "direct",
            Self::Task => "task",
            Self::Background => "background",
        }
    }
}

/// The transport a call came in on. Named apart from `config::Transport`, the transport
/// the server is told to serve: this is what one call used, recorded with its run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum CallTransport {
    /// The local client on stdin/stdout.
    Stdio,
    /// MCP Streamable HTTP.
    Http,
}

impl CallTransport {
    /// The label value, as in the audit record.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stdio => "stdio",
            Self::Http => "http",
        }
    }
}
