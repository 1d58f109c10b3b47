//! The app-server backend: one `codex app-server` per run (one server is one tenant),
//! started like exec ([`super::spawn`]: supervisor, namespaces, Codex user, env policy,
//! process group), spoken to over newline-delimited JSON-RPC on its stdin and stdout.
//! [`params`] says a run in the protocol ([`protocol`]).

pub mod params;
pub mod protocol;

use std::sync::Arc;

use super::RunnerConfig;
use crate::error::ToolError;
use crate::job::{Job, RunOutput};

/// Run one job on `codex app-server`.
pub(super) async fn run(config: &Arc<RunnerConfig>, job: Job) -> Result<RunOutput, ToolError> {
    let _plan = params::plan(&job.spec)?;
    Err(ToolError::Unsupported {
        param: "TWOBOT_CODEX_BACKEND=app-server".to_owned(),
        reason: format!(
            "the app-server driver is not built yet on this branch; use exec ({})",
            config.program.display()
        ),
    })
}
