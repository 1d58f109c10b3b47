//! Unauthenticated refusals, counted per client address and written once per interval.
//!
//! A caller without a valid token chooses how many refusals it causes; one audit line
//! each let it choose how much disk the log takes. So each refusal is only counted
//! here, per address (as the HTTP edge keys it, IPv6 by /64), and every
//! `TWOBOT_AUDIT_SUMMARY_SEC` one line per address says how many there were and why
//! (`"kind": "unauthenticated"`). The first refusal of an address in an interval may
//! still get its own detailed record (a refused `tools/call`, strings cut), at most
//! [`MAX_DETAILED`] per interval in all. Memory is bounded too: beyond
//! [`MAX_ADDRESSES`] addresses in one interval the rest share one line.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use serde::Serialize;

/// Addresses counted separately in one interval; the rest share one tally.
pub const MAX_ADDRESSES: usize = 4096;
/// Detailed records of unauthenticated refusals per interval, all addresses together.
pub const MAX_DETAILED: usize = 64;

/// The `client` of the line that counts addresses beyond [`MAX_ADDRESSES`].
pub const OTHER: &str = "other";

/// One interval's line for one address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnauthenticatedRecord {
    /// RFC 3339 UTC time the line was written (the interval's end).
    pub time: String,
    /// Always `unauthenticated`.
    pub kind: &'static str,
    /// RFC 3339 UTC time the interval began.
    pub since: String,
    /// The client address (an IPv6 /64), or `other` for addresses beyond the cap.
    pub client: String,
    /// Requests refused for want of a valid credential.
    pub refused: u64,
    /// How many of them per reason (`missing`, `invalid`, `insufficient_scope`, `malformed`).
    pub reasons: BTreeMap<&'static str, u64>,
}

#[derive(Debug, Default)]
struct Tally {
    refused: u64,
    reasons: BTreeMap<&'static str, u64>,
}

impl Tally {
    fn add(&mut self, reason: &'static str) {
        self.refused += 1;
        *self.reasons.entry(reason).or_default() += 1;
    }
}

#[derive(Debug, Default)]
struct Window {
    since: Option<String>,
    by_address: HashMap<String, Tally>,
    other: Tally,
    detailed: usize,
}

/// The counts of the current interval.
#[derive(Debug, Default)]
pub struct Unauthenticated(Mutex<Window>);

impl Unauthenticated {
    fn window(&self) -> std::sync::MutexGuard<'_, Window> {
        // Each change is a few counter bumps; a poisoned lock still holds usable counts.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Count one refusal of `client` for `reason`; `true` when it may also get a detailed
    /// record (the address's first in this interval, within [`MAX_DETAILED`]).
    pub fn note(&self, client: &str, reason: &'static str, now: impl FnOnce() -> String) -> bool {
        let mut w = self.window();
        if w.since.is_none() {
            w.since = Some(now());
        }
        let first = !w.by_address.contains_key(client);
        if first && w.by_address.len() >= MAX_ADDRESSES {
            w.other.add(reason);
            return false;
        }
        w.by_address
            .entry(client.to_owned())
            .or_default()
            .add(reason);
        let detailed = first && w.detailed < MAX_DETAILED;
        if detailed {
            w.detailed += 1;
        }
        detailed
    }

    /// End the interval: one record per address counted in it (sorted by address).
    pub fn drain(&self, now: &str) -> Vec<UnauthenticatedRecord> {
        let w = std::mem::take(&mut *self.window());
        let Some(since) = w.since else {
            return Vec::new();
        };
        let record = |client: String, tally: Tally| UnauthenticatedRecord {
            time: now.to_owned(),
            kind: "unauthenticated",
            since: since.clone(),
            client,
            refused: tally.refused,
            reasons: tally.reasons,
        };
        let mut by_address: Vec<_> = w.by_address.into_iter().collect();
        by_address.sort_by(|a, b| a.0.cmp(&b.0));
        let mut records: Vec<_> = by_address
            .into_iter()
            .map(|(client, tally)| record(client, tally))
            .collect();
        if w.other.refused > 0 {
            records.push(record(OTHER.to_owned(), w.other));
        }
        records
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> String {
        "2026-01-01T00:00:00Z".to_owned()
    }

    #[test]
    fn a_flood_from_one_address_is_one_line_with_its_count_and_one_detail() {
        let u = Unauthenticated::default();
        assert!(u.note("192.0.2.1", "missing", now));
        for _ in 0..299 {
            assert!(!u.note("192.0.2.1", "invalid", now));
        }
        assert!(u.note("192.0.2.2", "missing", now), "another address");
        let lines = u.drain("2026-01-01T00:01:00Z");
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].client, "192.0.2.1");
        assert_eq!(lines[0].refused, 300);
        assert_eq!(lines[0].reasons["missing"], 1);
        assert_eq!(lines[0].reasons["invalid"], 299);
        assert_eq!(lines[1].refused, 1);
        assert!(
            u.drain("later").is_empty(),
            "a quiet interval writes nothing"
        );
        assert!(
            u.note("192.0.2.1", "missing", now),
            "a new interval, a new detail"
        );
    }

    #[test]
    fn many_addresses_share_one_line_beyond_the_cap_and_details_are_capped() {
        let u = Unauthenticated::default();
        let mut detailed = 0;
        for i in 0..MAX_ADDRESSES + 10 {
            detailed += usize::from(u.note(&format!("a{i}"), "missing", now));
        }
        assert_eq!(detailed, MAX_DETAILED);
        let lines = u.drain("t");
        assert_eq!(lines.len(), MAX_ADDRESSES + 1);
        let other = lines.last().filter(|l| l.client == OTHER);
        assert_eq!(other.map(|l| l.refused), Some(10));
    }
}
