//! The authorization server's own limits on guessing and flooding, beside the HTTP
//! stack's per-address rate limit. Failed sign-ins per client address (5 per 15 minutes,
//! then 429) are counted in the state store, so every instance behind a balancer shares
//! one count (an attempt is reserved before the password is checked, under a lock on the
//! address, so a locked-out guesser learns nothing and concurrent guesses on any
//! instances cannot all slip past a check that has not yet seen the others' failures).
//! Dynamic client registrations per address are counted here, in memory, per instance.
//! IPv6 callers are keyed by their /64, the smallest block one customer usually gets, so
//! rotating addresses in it buys nothing.
//!
//! Decisions take `now`, so the table tests need no clock.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Events per window per address; beyond, refused until the oldest leaves the window.
#[derive(Debug)]
pub struct Window {
    max: usize,
    window: Duration,
    seen: Mutex<HashMap<IpAddr, VecDeque<Instant>>>,
}

/// Failed sign-ins an address may make per [`SIGN_IN_WINDOW`].
pub const SIGN_IN_ATTEMPTS: u32 = 5;
/// The window failed sign-ins are counted in.
pub const SIGN_IN_WINDOW: Duration = Duration::from_secs(15 * 60);

/// Addresses tracked at most; beyond, the stalest is forgotten (memory stays bounded).
const MAX_ADDRESSES: usize = 10_000;

impl Window {
    /// `max` events per `window`.
    pub fn new(max: usize, window: Duration) -> Self {
        Self {
            max,
            window,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Client registrations: 20 per hour.
    pub fn registrations() -> Self {
        Self::new(20, Duration::from_secs(3600))
    }

    /// `Err(wait)` while `ip` has used up its window.
    pub fn check(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let Some(events) = seen.get_mut(&key(ip)) else {
            return Ok(());
        };
        while events
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= self.window)
        {
            events.pop_front();
        }
        match events.front() {
            Some(oldest) if events.len() >= self.max => Err(self
                .window
                .saturating_sub(now.saturating_duration_since(*oldest))),
            _ => Ok(()),
        }
    }

    /// Count one event (a registration) for `ip`.
    pub fn record(&self, ip: IpAddr, now: Instant) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        self.push(&mut seen, ip, now);
    }

    fn push(&self, seen: &mut HashMap<IpAddr, VecDeque<Instant>>, ip: IpAddr, now: Instant) {
        if seen.len() >= MAX_ADDRESSES && !seen.contains_key(&key(ip)) {
            let window = self.window;
            seen.retain(|_, events| {
                events
                    .back()
                    .is_some_and(|t| now.saturating_duration_since(*t) < window)
            });
            if seen.len() >= MAX_ADDRESSES
                && let Some(stalest) = seen
                    .iter()
                    .min_by_key(|(_, events)| events.back().copied())
                    .map(|(ip, _)| *ip)
            {
                seen.remove(&stalest);
            }
        }
        let events = seen.entry(key(ip)).or_default();
        events.push_back(now);
        while events.len() > self.max {
            events.pop_front();
        }
    }
}

/// The key an address's sign-in attempts are counted under in the store ([`key`]'s text).
pub fn address_key(ip: IpAddr) -> String {
    key(ip).to_string()
}

/// IPv4 as is (and IPv4-mapped IPv6 as its IPv4), IPv6 by its /64.
fn key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_twenty_first_registration_within_an_hour_is_refused_until_the_first_ages_out() {
        let w = Window::registrations();
        let t0 = Instant::now();
        let a = ip("203.0.113.7");
        for i in 0..20 {
            assert!(
                w.check(a, t0 + Duration::from_secs(i)).is_ok(),
                "registration {i}"
            );
            w.record(a, t0 + Duration::from_secs(i));
        }
        let wait = w.check(a, t0 + Duration::from_secs(30)).unwrap_err();
        assert_eq!(wait, Duration::from_secs(3600 - 30));
        assert!(w.check(ip("203.0.113.8"), t0).is_ok(), "another address");
        assert!(
            w.check(a, t0 + Duration::from_secs(3600)).is_ok(),
            "aged out"
        );
    }

    #[test]
    fn the_store_key_of_an_address_is_its_ipv4_or_its_ipv6_slash_64() {
        assert_eq!(address_key(ip("::ffff:198.51.100.4")), "198.51.100.4");
        assert_eq!(address_key(ip("2001:db8:1:2:ffff::9")), "2001:db8:1:2::");
    }

    #[test]
    fn addresses_in_one_ipv6_slash_64_share_a_window_and_mapped_ipv4_is_ipv4() {
        let cases = [
            ("2001:db8:1:2::1", "2001:db8:1:2:ffff::9", true),
            ("2001:db8:1:2::1", "2001:db8:1:3::1", false),
            ("::ffff:198.51.100.4", "198.51.100.4", true),
            ("198.51.100.4", "198.51.100.5", false),
        ];
        for (first, second, shared) in cases {
            let w = Window::new(1, Duration::from_secs(60));
            let now = Instant::now();
            w.record(ip(first), now);
            assert_eq!(
                w.check(ip(second), now).is_err(),
                shared,
                "{first} {second}"
            );
        }
    }

    #[test]
    fn memory_stays_bounded_however_many_addresses_register() {
        let w = Window::new(1, Duration::from_secs(60));
        let now = Instant::now();
        for i in 0..(MAX_ADDRESSES as u32 + 50) {
            w.record(IpAddr::V4(std::net::Ipv4Addr::from(i)), now);
        }
        assert!(w.seen.lock().unwrap().len() <= MAX_ADDRESSES);
    }
}
