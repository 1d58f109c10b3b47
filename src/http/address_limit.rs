//! The per-address request limit, before auth: an unauthenticated flood is refused (429)
//! before a token is checked, a body read or a line written anywhere.
//!
//! The per-principal limit (`rate_limit.rs`) sits after auth, so a caller without a
//! valid token never reached it: 300 unauthenticated requests all got their 401 (and
//! their audit line). This layer counts every request by its client address
//! ([`client_ip`]: the peer, or what a `TWOBOT_TRUSTED_PROXIES` proxy reports; IPv6 by
//! /64) with `governor` (GCRA), `TWOBOT_ADDRESS_RATE_PER_MINUTE` sustained and
//! `TWOBOT_ADDRESS_RATE_BURST` at once, and puts the address into the request's
//! extensions ([`ClientAddr`]) so the layers below key on the same one. A refusal is
//! counted (`twobot_address_refusals_total{limit="requests"}`) and logged at debug only:
//! a flood must not become a flood of log lines either. Idle keys are pruned in the
//! background, so memory stays bounded however many addresses call.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use futures::future::BoxFuture;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use http::{Request, Response};
use tower::{Layer, Service};

use super::rescue::{self, Rejection};
use crate::auth::client_addr::{AddressKey, ClientAddr, TrustedProxies, client_ip};
use crate::metrics::{AddressRefusal, metrics};

/// Builds [`AddressLimit`]; one limiter shared by every route it wraps.
#[derive(Clone)]
pub struct AddressLimitLayer {
    limiter: Arc<DefaultKeyedRateLimiter<AddressKey>>,
    trusted: Arc<TrustedProxies>,
}

impl std::fmt::Debug for AddressLimitLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AddressLimitLayer")
            .field("keys", &self.limiter.len())
            .field("trusted", &self.trusted)
            .finish()
    }
}

impl AddressLimitLayer {
    /// `per_minute` sustained and `burst` at once per address.
    pub fn new(per_minute: NonZeroU32, burst: NonZeroU32, trusted: TrustedProxies) -> Self {
        let quota = Quota::per_minute(per_minute).allow_burst(burst);
        Self {
            limiter: Arc::new(RateLimiter::keyed(quota)),
            trusted: Arc::new(trusted),
        }
    }

    /// Forget addresses whose budget is full again every `every`, until `shutdown`.
    pub fn spawn_pruner(&self, every: Duration, shutdown: tokio_util::sync::CancellationToken) {
        let limiter = self.limiter.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        limiter.retain_recent();
                        limiter.shrink_to_fit();
                    }
                    () = shutdown.cancelled() => break,
                }
            }
        });
    }

    /// The decision for one address: `Err(seconds to wait)` when over its budget.
    pub fn check(&self, key: AddressKey) -> Result<(), u64> {
        self.limiter.check_key(&key).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
        })
    }
}

impl<S> Layer<S> for AddressLimitLayer {
    type Service = AddressLimit<S>;
    fn layer(&self, inner: S) -> Self::Service {
        AddressLimit {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service built by [`AddressLimitLayer`].
#[derive(Clone, Debug)]
pub struct AddressLimit<S> {
    inner: S,
    layer: AddressLimitLayer,
}

impl<S, B> Service<Request<B>> for AddressLimit<S>
where
    S: Service<Request<B>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send,
    B: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response<Body>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let peer = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        let client = client_ip(peer, request.headers(), &self.layer.trusted);
        if let Some(ip) = client {
            let key = AddressKey::of(ip);
            if let Err(secs) = self.layer.check(key) {
                tracing::debug!(address = %key, retry_after = secs, "per-address rate limit");
                metrics().address_refused(AddressRefusal::requests);
                let response = rescue::render(&Rejection::AddressRateLimited {
                    retry_after_secs: secs,
                });
                return Box::pin(async move { Ok(response) });
            }
            request.extensions_mut().insert(ClientAddr(ip));
        }
        // Decided before the call, so the ready inner service serves it now: no clone.
        Box::pin(self.inner.call(request))
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
    fn one_address_spends_its_burst_and_another_or_another_64_keeps_its_own() {
        let limit = AddressLimitLayer::new(nz(60), nz(3), TrustedProxies::default());
        let key = |s: &str| AddressKey::of(s.parse().unwrap());
        for _ in 0..3 {
            assert!(limit.check(key("192.0.2.1")).is_ok());
        }
        let wait = limit.check(key("192.0.2.1")).unwrap_err();
        assert!((1..=2).contains(&wait), "{wait}");
        assert!(limit.check(key("192.0.2.2")).is_ok());
        for i in 0..3 {
            assert!(limit.check(key(&format!("2001:db8:0:1::{i}"))).is_ok());
        }
        assert!(
            limit.check(key("2001:db8:0:1:ffff::9")).is_err(),
            "the same /64 shares one budget"
        );
        assert!(limit.check(key("2001:db8:0:2::1")).is_ok());
    }
}
