//! A session's idle clock, kept running by requests that never reach its worker.
//!
//! rmcp ends a session after `TWOBOT_SESSION_IDLE` without an event on its worker. A
//! `tools/list` that `http::listing` answers from cached bytes never reaches the worker,
//! so a client that only lists tools would see its session expire while in use. At most
//! once per [`touch_every`] such a request sends the worker a no-op (closing a
//! request channel that does not exist), which restarts rmcp's clock exactly as a
//! request would; between two, the clock is at most that much behind.

use std::time::{Duration, Instant};

use super::OwnedSessions;

/// A request channel id rmcp never hands out (its ids count up from zero per session).
const NO_CHANNEL: u64 = u64::MAX;

/// How often a session's worker hears of requests answered outside it: a quarter of
/// the idle limit, and at least once a second.
pub(super) fn touch_every(idle: Option<Duration>) -> Duration {
    idle.map_or(Duration::from_secs(1), |idle| {
        (idle / 4).min(Duration::from_secs(1))
    })
}

/// Pure: whether a session last touched at `last` is due for a touch at `now`.
fn due(last: Option<Instant>, now: Instant, every: Duration) -> bool {
    last.is_none_or(|last| now.saturating_duration_since(last) >= every)
}

impl OwnedSessions {
    /// Note a request of session `id` answered outside rmcp (see the module docs).
    /// `false` when the session's worker is gone: rmcp then answers, with its own error.
    pub async fn keep_alive(&self, id: &str) -> bool {
        let now = Instant::now();
        let every = touch_every(self.local.session_config.keep_alive);
        {
            let mut owners = self.owners();
            if !due(owners.touched.get(id).copied(), now, every) {
                return true;
            }
            owners.touched.insert(id.to_owned(), now);
        }
        let handle = self.local.sessions.read().await.get(id).cloned();
        let alive = match handle {
            Some(handle) => handle.close_request_wise_channel(NO_CHANNEL).await.is_ok(),
            None => false,
        };
        if !alive {
            self.owners().touched.remove(id);
        }
        alive
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_touched_at_most_once_per_interval_and_first_at_once() {
        let t0 = Instant::now();
        let every = Duration::from_secs(1);
        let cases = [
            ("never touched", None, t0, true),
            ("just touched", Some(t0), t0, false),
            (
                "touched half an interval ago",
                Some(t0),
                t0 + every / 2,
                false,
            ),
            ("touched an interval ago", Some(t0), t0 + every, true),
            ("a clock that went back", Some(t0 + every), t0, false),
        ];
        for (what, last, now, want) in cases {
            assert_eq!(due(last, now, every), want, "{what}");
        }
    }

    #[test]
    fn the_touch_interval_is_a_quarter_of_the_idle_limit_and_at_most_a_second() {
        let cases = [
            (None, Duration::from_secs(1)),
            (Some(Duration::from_secs(1800)), Duration::from_secs(1)),
            (Some(Duration::from_secs(2)), Duration::from_millis(500)),
        ];
        for (idle, want) in cases {
            assert_eq!(touch_every(idle), want, "{idle:?}");
        }
    }
}
