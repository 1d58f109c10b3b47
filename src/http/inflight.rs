//! Each principal's share of open connections: requests in flight (SSE streams included),
//! and the quota key every per-principal limit counts against.
//!
//! A TCP connection is accepted before anyone is authenticated, and one HTTP/1.1
//! connection may carry requests of different principals one after another, so "open
//! connections per principal" cannot be counted at accept time. What *is* attributable
//! is a request once auth has run: this layer counts each principal's requests in flight
//! until their response body ends (a long call's SSE stream holds its place for as long
//! as it is open) and refuses one beyond `TWOBOT_MAX_INFLIGHT_PER_PRINCIPAL` with `429`
//! and `Connection: close`, so the refused caller's extra socket is given back at once.
//! Sockets that never get as far as a request are bounded for everyone together by
//! `TWOBOT_MAX_CONNECTIONS` and the header deadline (`server.rs`).
//!
//! The quota key is the principal's owner key; in no-auth mode, where every HTTP caller
//! is the one principal "anonymous", it is `anonymous@<client address>` (the address as
//! every per-address limit sees it, `client_addr.rs`: the peer, or what a
//! `TWOBOT_TRUSTED_PROXIES` proxy reports; IPv6 by /64), so anonymous clients on
//! different machines get separate shares. It goes into the request's extensions for the session guard and the run stack.

use std::collections::HashMap;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use axum::body::Body;
use axum::body::Bytes;
use futures::future::BoxFuture;
use http::{Request, Response};
use http_body::Frame;
use tower::{Layer, Service};

use super::rescue::{self, Rejection};
use crate::auth::client_addr::{AddressKey, TrustedProxies, request_client};
use crate::run::{Principal, QuotaKey};

/// Counts requests in flight per quota key.
#[derive(Clone, Debug)]
pub struct InflightLayer {
    state: Arc<State>,
}

#[derive(Debug)]
struct State {
    counts: Mutex<HashMap<QuotaKey, usize>>,
    max: usize,
    trusted: TrustedProxies,
}

impl State {
    fn counts(&self) -> std::sync::MutexGuard<'_, HashMap<QuotaKey, usize>> {
        // Each change is one map operation; a poisoned lock still holds a consistent map.
        self.counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl InflightLayer {
    /// At most `max` requests in flight per quota key.
    pub fn new(max: usize, trusted: TrustedProxies) -> Self {
        Self {
            state: Arc::new(State {
                counts: Mutex::default(),
                max,
                trusted,
            }),
        }
    }
}

impl<S> Layer<S> for InflightLayer {
    type Service = Inflight<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Inflight {
            inner,
            state: self.state.clone(),
        }
    }
}

/// The service built by [`InflightLayer`].
#[derive(Clone, Debug)]
pub struct Inflight<S> {
    inner: S,
    state: Arc<State>,
}

/// The quota key of a request: see the module docs.
pub fn quota_key(principal: Option<&Principal>, client: Option<IpAddr>) -> QuotaKey {
    match principal {
        Some(p) if *p != Principal::Anonymous => QuotaKey::of(p),
        _ => match client {
            Some(ip) => QuotaKey(format!("anonymous@{}", AddressKey::of(ip))),
            None => QuotaKey::of(&Principal::Anonymous),
        },
    }
}

/// One place in flight; given back when dropped.
struct Place {
    state: Arc<State>,
    key: QuotaKey,
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut counts = self.state.counts();
        if let Some(n) = counts.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.remove(&self.key);
            }
        }
    }
}

/// A response body that holds its request's place until it ends or is dropped.
struct Held {
    body: Body,
    _place: Place,
}

impl http_body::Body for Held {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

impl<S, B> Service<Request<B>> for Inflight<S>
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
        let state = self.state.clone();
        let key = quota_key(
            request.extensions().get::<Principal>(),
            request_client(&request, &state.trusted),
        );
        let admitted = {
            let mut counts = state.counts();
            let n = counts.entry(key.clone()).or_default();
            if *n >= state.max {
                false
            } else {
                *n += 1;
                true
            }
        };
        if !admitted {
            tracing::warn!(quota_key = %key, max = state.max, "per-principal in-flight quota reached");
            let max = state.max;
            return Box::pin(
                async move { Ok(rescue::render(&Rejection::TooManyInFlight { max })) },
            );
        }
        let place = Place {
            state,
            key: key.clone(),
        };
        request.extensions_mut().insert(key);
        // Admitted before the call, so the ready inner service serves it now: no clone.
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await?;
            Ok(response.map(|body| {
                Body::new(Held {
                    body,
                    _place: place,
                })
            }))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotas_key_on_the_principal_and_without_auth_on_the_client_address() {
        let ip = |s: &str| s.parse::<IpAddr>().ok();
        let token = Principal::Token {
            name: "alice".into(),
        };
        let jwt = Principal::Authenticated {
            issuer: Some("https://idp".into()),
            subject: "alice".into(),
            scopes: vec![],
        };
        let anon = Principal::Anonymous;
        let cases: [(Option<&Principal>, Option<IpAddr>, &str); 6] = [
            (Some(&token), ip("10.0.0.7"), "token:alice"),
            (
                Some(&jwt),
                ip("203.0.113.9"),
                r#"jwt-iss-sub:["https://idp","alice"]"#,
            ),
            (Some(&anon), ip("10.0.0.7"), "anonymous@10.0.0.7"),
            (None, ip("10.0.0.7"), "anonymous@10.0.0.7"),
            (
                Some(&anon),
                ip("2001:db8:0:1::5"),
                "anonymous@2001:db8:0:1::/64",
            ),
            (Some(&anon), None, "anonymous"),
        ];
        for (principal, client, want) in cases {
            assert_eq!(
                quota_key(principal, client).as_str(),
                want,
                "{principal:?} {client:?}"
            );
        }
    }
}
