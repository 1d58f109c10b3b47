//! Everything about the Codex CLI's own interface: the argv of `codex exec --json -`
//! ([`command`]), the JSONL events it prints ([`events`]) and how a stream of them
//! folds into the tool's result ([`summary`]), and the sandbox refusals only its stderr
//! reports ([`stderr`]), and a final message read back as JSON ([`structured`]).
//!
//! This module is pure: no processes, no I/O. The runner feeds it.

pub mod command;
pub mod events;
pub mod stderr;
pub mod structured;
pub mod summary;

pub use command::{exec_argv, exec_unsupported};
pub use events::{ThreadEvent, ThreadItem};
pub use summary::SummaryBuilder;
