//! Codex's process group: one signal reaches Codex and every command it started, and
//! dropping the handle kills whatever is left, so an abandoned run leaves nothing behind.

use std::process::ExitStatus;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use super::child::RunChild;

/// SIGTERM the group, wait up to `grace`, then SIGKILL; returns Codex's status once reaped.
pub(super) async fn terminate(
    child: &mut RunChild,
    group: &ProcessGroup,
    grace: Duration,
) -> Option<ExitStatus> {
    group.signal(Signal::SIGTERM);
    match tokio::time::timeout(grace, child.wait()).await {
        Ok(status) => status.ok(),
        Err(_) => {
            group.signal(Signal::SIGKILL);
            child.wait().await.ok()
        }
    }
}

/// Codex's process group; SIGKILLed when dropped, so an abandoned run leaves nothing behind.
#[derive(Debug)]
pub(super) struct ProcessGroup(Option<Pid>);

impl ProcessGroup {
    pub(super) fn of(child: &RunChild) -> Self {
        Self(
            child
                .id()
                .and_then(|id| i32::try_from(id).ok())
                .map(Pid::from_raw),
        )
    }

    pub(super) fn signal(&self, signal: Signal) {
        if let Some(pgid) = self.0 {
            // ESRCH (the group is already gone) is the normal case after a clean exit.
            let _ = killpg(pgid, signal);
        }
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        self.signal(Signal::SIGKILL);
    }
}
