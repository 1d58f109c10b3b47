//! Per-caller rate limiting with `governor` (GCRA), keyed by principal, else by client address.
//!
//! It sits after auth so an authenticated caller has its own budget wherever it
//! connects from; anonymous callers are keyed by address (the proxy's `X-Forwarded-For`
//! / `Forwarded` only with `TWOBOT_TRUST_PROXY_HEADERS=true`, since anyone can send
//! them). Over the limit: 429 with `Retry-After`. Idle keys are pruned in the
//! background so memory stays bounded however many addresses call.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use http::{HeaderMap, Request, Response};
use tower_http::validate_request::ValidateRequest;

use super::rescue::{self, Rejection};
use crate::job::Principal;

/// The limiter shared by every request.
#[derive(Clone)]
pub struct RateLimit {
    limiter: Arc<DefaultKeyedRateLimiter<String>>,
    trust_proxy_headers: bool,
}

impl std::fmt::Debug for RateLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimit")
            .field("keys", &self.limiter.len())
            .finish()
    }
}

impl RateLimit {
    /// `per_minute` sustained, `burst` at once.
    pub fn new(per_minute: NonZeroU32, burst: NonZeroU32, trust_proxy_headers: bool) -> Self {
        let quota = Quota::per_minute(per_minute).allow_burst(burst);
        Self {
            limiter: Arc::new(RateLimiter::keyed(quota)),
            trust_proxy_headers,
        }
    }

    /// Forget keys whose budget is full again; call periodically.
    pub fn prune(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }

    /// Keys currently tracked.
    pub fn keys(&self) -> usize {
        self.limiter.len()
    }

    /// Prune every `every` until `shutdown`.
    pub fn spawn_pruner(&self, every: Duration, shutdown: tokio_util::sync::CancellationToken) {
        let this = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tokio::select! {
                    _ = tick.tick() => this.prune(),
                    () = shutdown.cancelled() => break,
                }
            }
        });
    }

    /// The decision for `key`: `Err(wait)` when over the limit.
    pub fn check_key(&self, key: &str) -> Result<(), Duration> {
        self.limiter
            .check_key(&key.to_owned())
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }
}

/// The rate-limit key: the principal, else the client address.
pub fn key_for(
    principal: Option<&Principal>,
    peer: Option<IpAddr>,
    headers: &HeaderMap,
    trust_proxy: bool,
) -> String {
    match principal {
        // Issuer and subject, as ownership is keyed: `bob` of two issuers is two callers.
        Some(p @ (Principal::Token { .. } | Principal::Authenticated { .. })) => p.owner_key(),
        _ => match client_ip(peer, headers, trust_proxy) {
            Some(ip) => format!("ip:{ip}"),
            None => "ip:unknown".to_owned(),
        },
    }
}

/// The caller's address: what a trusted proxy reports, else the peer. Every per-client
/// limit without a principal (rate limit, quotas in no-auth mode) keys on this.
pub fn client_ip(peer: Option<IpAddr>, headers: &HeaderMap, trust_proxy: bool) -> Option<IpAddr> {
    trust_proxy
        .then(|| forwarded_client(headers))
        .flatten()
        .or(peer)
}

/// The client address a trusted proxy reports: the last `X-Forwarded-For` entry
/// (the one our proxy appended), else the last `Forwarded: for=`.
pub fn forwarded_client(headers: &HeaderMap) -> Option<IpAddr> {
    let last_xff = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .rfind(|v| !v.is_empty());
    if let Some(ip) = last_xff.and_then(parse_ip) {
        return Some(ip);
    }
    headers
        .get_all(http::header::FORWARDED)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split([',', ';']))
        .filter_map(|part| {
            let (k, v) = part.trim().split_once('=')?;
            k.eq_ignore_ascii_case("for").then(|| v.trim_matches('"'))
        })
        .filter_map(parse_ip)
        .next_back()
}

fn parse_ip(s: &str) -> Option<IpAddr> {
    let s = s.trim();
    s.parse()
        .ok()
        .or_else(|| s.parse::<SocketAddr>().ok().map(|a| a.ip()))
        .or_else(|| s.trim_start_matches('[').split(']').next()?.parse().ok())
}

impl<B> ValidateRequest<B> for RateLimit {
    type ResponseBody = Body;

    fn validate(&mut self, request: &mut Request<B>) -> Result<(), Response<Body>> {
        let peer = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        let key = key_for(
            request.extensions().get::<Principal>(),
            peer,
            request.headers(),
            self.trust_proxy_headers,
        );
        self.check_key(&key).map_err(|wait| {
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            tracing::warn!(key = %key, retry_after = secs, "rate limited");
            crate::metrics::metrics().rate_limited.inc();
            rescue::render(&Rejection::RateLimited {
                retry_after_secs: secs,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use http::HeaderValue;

    fn nz(n: u32) -> NonZeroU32 {
        NonZeroU32::new(n).unwrap()
    }

    #[test]
    fn a_burst_is_allowed_then_refused_with_a_wait_and_keys_are_independent() {
        let rl = RateLimit::new(nz(60), nz(3), false);
        for _ in 0..3 {
            assert!(rl.check_key("a").is_ok());
        }
        let wait = rl.check_key("a").unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        assert!(rl.check_key("b").is_ok(), "another key has its own budget");
    }

    #[test]
    fn pruning_keeps_memory_bounded_under_many_keys() {
        let rl = RateLimit::new(nz(60_000), nz(1000), false);
        for i in 0..10_000 {
            rl.check_key(&format!("ip:{i}")).unwrap();
        }
        assert_eq!(rl.keys(), 10_000);
        std::thread::sleep(Duration::from_millis(20));
        rl.prune();
        assert!(rl.keys() < 10_000, "{} keys left", rl.keys());
    }

    #[test]
    fn principals_key_by_identity_and_anonymous_callers_by_address() {
        let h = HeaderMap::new();
        let peer = Some("10.0.0.1".parse().unwrap());
        assert_eq!(
            key_for(
                Some(&Principal::Token { name: "ci".into() }),
                peer,
                &h,
                false
            ),
            "token:ci"
        );
        assert_eq!(
            key_for(
                Some(&Principal::Authenticated {
                    issuer: Some("https://a.example".into()),
                    subject: "bob".into(),
                    scopes: vec![]
                }),
                peer,
                &h,
                false
            ),
            r#"jwt-iss-sub:["https://a.example","bob"]"#
        );
        assert_eq!(
            key_for(Some(&Principal::Anonymous), peer, &h, false),
            "ip:10.0.0.1"
        );
    }

    #[test]
    fn forwarded_headers_count_only_when_trusted() {
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_static("6.6.6.6, 203.0.113.7"),
        );
        let peer = Some("127.0.0.1".parse().unwrap());
        assert_eq!(key_for(None, peer, &h, false), "ip:127.0.0.1");
        assert_eq!(key_for(None, peer, &h, true), "ip:203.0.113.7");
        let mut f = HeaderMap::new();
        f.insert(
            http::header::FORWARDED,
            HeaderValue::from_static("for=192.0.2.60;proto=https, for=\"[2001:db8::1]:4711\""),
        );
        assert_eq!(forwarded_client(&f), Some("2001:db8::1".parse().unwrap()));
    }
}
