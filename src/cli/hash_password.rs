//! `2bot-mcp oauth hash-password`: a placeholder so this branch builds; the real command (another engineer's) replaces this file at merge.

use std::process::ExitCode;

/// Refuse: this build has no `oauth hash-password`.
pub fn run() -> ExitCode {
    eprintln!("error: oauth hash-password: not in this build");
    ExitCode::from(2)
}
