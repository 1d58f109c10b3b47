//! Where a resume may run. A Codex thread's history lives in the `CODEX_HOME` of the
//! host that started it (docs/scaling.md), so with several instances a resume that
//! lands on one in another place is refused with the holder's name and address, rather
//! than starting a Codex that cannot find the thread. "Another place" is a different
//! Codex home, or a different host in the instances' addresses (`TWOBOT_INSTANCE_URL`);
//! instances on one host sharing one Codex home resume each other's threads. A holder
//! that is gone (restarted, or dead) no longer claims the thread: a restarted instance
//! on the same host has the same Codex home and resumes it.

use super::{RunRefusal, Runs};

impl Runs {
    /// `Ok` when `thread` may resume on this instance.
    pub async fn resume_here(&self, thread: &str) -> Result<(), RunRefusal> {
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
            Ok(Some(holder))
                if !same_place(
                    (&row.codex_home, holder.url.as_deref()),
                    (self.inner.owners.codex_home(), peers.url()),
                ) =>
            {
                Err(RunRefusal::ThreadElsewhere {
                    thread_id: thread.to_owned(),
                    instance: holder.instance,
                    at: holder.url.map(|u| format!(" ({u})")).unwrap_or_default(),
                    me: peers.me().to_owned(),
                })
            }
            _ => Ok(()),
        }
    }
}

/// Whether a thread held at `(codex_home, url)` is where this instance, at `(codex_home,
/// url)`, runs Codex: the same Codex home, and the same host when both addresses are known.
fn same_place(holder: (&str, Option<&str>), here: (&str, Option<&str>)) -> bool {
    let host = |u: &str| {
        url::Url::parse(u)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
    };
    let hosts = match (holder.1.map(host), here.1.map(host)) {
        (Some(a), Some(b)) => a == b,
        _ => true,
    };
    holder.0 == here.0 && hosts
}

#[cfg(test)]
mod tests {
    use super::same_place;

    #[test]
    fn a_thread_is_here_with_the_same_codex_home_on_the_same_host() {
        let h = "/home/bot/.codex";
        let table = [
            ((h, None), (h, None), true),
            (
                (h, Some("http://10.0.0.5:8811")),
                (h, Some("http://10.0.0.5:8812")),
                true,
            ),
            (
                (h, Some("http://10.0.0.5:8811")),
                (h, Some("http://10.0.0.6:8811")),
                false,
            ),
            ((h, Some("http://10.0.0.5:8811")), (h, None), true),
            ((h, None), ("/srv/other/.codex", None), false),
        ];
        for (holder, here, want) in table {
            assert_eq!(same_place(holder, here), want, "{holder:?} {here:?}");
        }
    }
}
