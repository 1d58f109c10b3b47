//! Per-caller rate limiting with `governor` (GCRA), keyed by principal, else by client address.
//!
//! It sits after auth so an authenticated caller has its own budget wherever it
//! connects from; anonymous callers are keyed by client address (`client_addr.rs`: a
//! proxy's `X-Forwarded-For` / `Forwarded` only from `TWOBOT_TRUSTED_PROXIES`, since
//! anyone can send them; IPv6 by /64). Every address also has a budget of its own
//! before auth (`address_limit.rs`). Over the limit: 429 with `Retry-After`. Idle keys are pruned in the
//! background so memory stays bounded however many addresses call.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use http::{Request, Response};
use tower_http::validate_request::ValidateRequest;

use super::rescue::{self, Rejection};
use crate::auth::client_addr::{AddressKey, TrustedProxies, request_client};
use crate::run::Principal;

/// The limiter shared by every request.
#[derive(Clone)]
pub struct RateLimit {
    limiter: Arc<DefaultKeyedRateLimiter<String>>,
    trusted: Arc<TrustedProxies>,
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
    pub fn new(per_minute: NonZeroU32, burst: NonZeroU32, trusted: TrustedProxies) -> Self {
        let quota = Quota::per_minute(per_minute).allow_burst(burst);
        Self {
            limiter: Arc::new(RateLimiter::keyed(quota)),
            trusted: Arc::new(trusted),
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
        self.check_owned(&key.to_owned())
    }

    /// [`Self::check_key`] for a key already made: governor looks keys up by `&String`.
    #[allow(clippy::ptr_arg)]
    fn check_owned(&self, key: &String) -> Result<(), Duration> {
        self.limiter
            .check_key(key)
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }
}

/// The rate-limit key: the principal, else the client address (IPv6 by /64).
pub fn key_for(principal: Option<&Principal>, client: Option<IpAddr>) -> String {
    match principal {
        // Issuer and subject, as ownership is keyed: `bob` of two issuers is two callers.
        Some(p @ (Principal::Token { .. } | Principal::Authenticated { .. })) => p.owner_key(),
        _ => match client {
            Some(ip) => format!("ip:{}", AddressKey::of(ip)),
            None => "ip:unknown".to_owned(),
        },
    }
}

impl<B> ValidateRequest<B> for RateLimit {
    type ResponseBody = Body;

    fn validate(&mut self, request: &mut Request<B>) -> Result<(), Response<Body>> {
        let key = key_for(
            request.extensions().get::<Principal>(),
            request_client(request, &self.trusted),
        );
        self.check_owned(&key).map_err(|wait| {
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

    fn nz(n: u32) -> NonZeroU32 {
        NonZeroU32::new(n).unwrap()
    }

    #[test]
    fn a_burst_is_allowed_then_refused_with_a_wait_and_keys_are_independent() {
        let rl = RateLimit::new(nz(60), nz(3), TrustedProxies::default());
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
        let rl = RateLimit::new(nz(60_000), nz(1000), TrustedProxies::default());
        for i in 0..10_000 {
            rl.check_key(&format!("ip:{i}")).unwrap();
        }
        assert_eq!(rl.keys(), 10_000);
        std::thread::sleep(Duration::from_millis(20));
        rl.prune();
        assert!(rl.keys() < 10_000, "{} keys left", rl.keys());
    }

    #[test]
    fn principals_key_by_identity_and_anonymous_callers_by_address_or_64() {
        let peer = Some("10.0.0.1".parse().unwrap());
        assert_eq!(
            key_for(Some(&Principal::Token { name: "ci".into() }), peer),
            "token:ci"
        );
        assert_eq!(
            key_for(
                Some(&Principal::Authenticated {
                    issuer: Some("https://a.example".into()),
                    subject: "bob".into(),
                    scopes: vec![]
                }),
                peer
            ),
            r#"jwt-iss-sub:["https://a.example","bob"]"#
        );
        assert_eq!(key_for(Some(&Principal::Anonymous), peer), "ip:10.0.0.1");
        assert_eq!(
            key_for(None, Some("2001:db8:0:7::99".parse().unwrap())),
            "ip:2001:db8:0:7::/64"
        );
        assert_eq!(key_for(None, None), "ip:unknown");
    }
}
