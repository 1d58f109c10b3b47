//! Where a resume may run. A Codex thread's history lives in the `CODEX_HOME` of the
//! host that started it (docs/scaling.md), so with several instances a resume that
//! lands on another one is refused with the holder's name and address, rather than
//! starting a Codex that cannot find the thread. A holder that is gone (restarted, or
//! dead) no longer claims the thread: a restarted instance on the same host has the
//! same Codex home and resumes it.

use super::{RunRefusal, Runs};

impl Runs {
    /// `Ok` when `thread` may resume on this instance.
    pub(super) async fn resume_here(&self, thread: &str) -> Result<(), RunRefusal> {
        let Some(peers) = &self.inner.peers else {
            return Ok(());
        };
        let store = &self.inner.persist.lasting().store;
        // Unknown threads were judged by the owner check already.
        let Ok(Some(row)) = store.thread(thread).await else {
            return Ok(());
        };
        if row.instance == peers.me() {
            return Ok(());
        }
        match store.instance(&row.instance).await {
            Ok(Some(holder)) => Err(RunRefusal::ThreadElsewhere {
                thread_id: thread.to_owned(),
                instance: holder.instance,
                at: holder.url.map(|u| format!(" ({u})")).unwrap_or_default(),
                me: peers.me().to_owned(),
            }),
            _ => Ok(()),
        }
    }
}
