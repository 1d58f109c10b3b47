//! Accepting connections: the part of serving that `axum::serve` does not let us tune.
//!
//! A public endpoint needs four things at the socket level that the router cannot give:
//! a deadline for a request's headers (hyper's timer-driven `header_read_timeout`, which
//! also closes idle keep-alive connections, so slowloris clients cannot pin sockets), a
//! cap on open connections (beyond it a caller gets the common `503` rejection and a closed socket
//! rather than a silent wait in the kernel backlog), a cap per client address under it
//! (`TWOBOT_MAX_CONNECTIONS_PER_ADDRESS`, IPv6 by /64: decided here because the peer is
//! known before a byte is read, so one address's trickling sockets cannot take every
//! slot; the operator's proxies are exempt, as every client arrives through them), and
//! a staged drain on shutdown.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use super::Shutdown;
use super::rescue::Rejection;
use crate::auth::client_addr::{AddressKey, TrustedProxies};
use crate::metrics::{AddressRefusal, metrics};

/// Socket-level limits and the shutdown grace period.
#[derive(Debug, Clone)]
pub struct ServeLimits {
    /// Open connections at most; more are answered `503` and closed.
    pub max_connections: usize,
    /// Open connections per client address at most; more are answered `429` and closed.
    pub max_connections_per_address: usize,
    /// Peers exempt from the per-address cap (they carry everyone's connections).
    pub trusted_proxies: Arc<TrustedProxies>,
    /// Time a connection has to deliver a request's headers (idle keep-alive included).
    pub header_read_timeout: Duration,
    /// How long running calls may finish after the shutdown signal.
    pub grace: Duration,
}

/// Refusals in flight at most; beyond this a flood's extra sockets are just closed.
const MAX_REFUSALS: usize = 64;

/// Serve `app` on `listener` until `shutdown.signal`, then drain in stages: stop
/// accepting, let running calls finish for the grace period, kill what is left, close
/// the MCP sessions, and wait briefly for connections to end.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    runs: TaskTracker,
    shutdown: Shutdown,
    limits: ServeLimits,
) -> std::io::Result<()> {
    let connections = TaskTracker::new();
    let grace = limits.grace;
    let accept = accept_loop(listener, app, &connections, &shutdown, limits);
    accept.await;

    tracing::info!(
        grace_sec = grace.as_secs(),
        "no longer accepting connections; letting running calls finish"
    );
    runs.close();
    if tokio::time::timeout(grace, runs.wait()).await.is_err() {
        tracing::warn!("grace period over: killing the Codex runs still going");
        shutdown.kill_runs.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(15), runs.wait()).await;
    }
    // Let the last results reach their streams, then end the sessions (and their SSE).
    tokio::time::sleep(Duration::from_millis(200)).await;
    shutdown.sessions.cancel();
    connections.close();
    if tokio::time::timeout(Duration::from_secs(5), connections.wait())
        .await
        .is_err()
    {
        tracing::warn!("connections did not close in time");
    }
    Ok(())
}

async fn accept_loop(
    listener: TcpListener,
    app: Router,
    connections: &TaskTracker,
    shutdown: &Shutdown,
    limits: ServeLimits,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let refusals = Arc::new(Semaphore::new(MAX_REFUSALS));
    let open_by_address = Arc::new(OpenByAddress::default());
    let mut http1 = hyper::server::conn::http1::Builder::new();
    http1
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);

    loop {
        let (stream, remote) = tokio::select! {
            () = shutdown.signal.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning on the error.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let per_address = if limits.trusted_proxies.contains(remote.ip()) {
            None
        } else {
            let key = AddressKey::of(remote.ip());
            let max = limits.max_connections_per_address;
            let Some(place) = AddressPlace::take(&open_by_address, key, max) else {
                tracing::debug!(address = %key, max, "per-address connection cap reached; refusing");
                metrics().address_refused(AddressRefusal::connections);
                if let Ok(refusal) = refusals.clone().try_acquire_owned() {
                    connections.spawn(async move {
                        let _refusal = refusal;
                        refuse(stream, Rejection::TooManyConnectionsFromAddress { max }).await;
                    });
                }
                continue;
            };
            Some(place)
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            if let Ok(refusal) = refusals.clone().try_acquire_owned() {
                let max = limits.max_connections;
                tracing::warn!(%remote, max, "connection cap reached; refusing");
                connections.spawn(async move {
                    let _refusal = refusal;
                    refuse(stream, Rejection::TooManyConnections { max }).await;
                });
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        // Handlers (rate limit, logs) read the peer address from the extensions.
        let service = app
            .clone()
            .map_request(move |mut request: http::Request<Incoming>| {
                request.extensions_mut().insert(ConnectInfo(remote));
                request.map(Body::new)
            });
        let connection =
            http1.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let signal = shutdown.signal.clone();
        let closed = shutdown.sessions.clone();
        connections.spawn(async move {
            let _slot = (slot, per_address);
            let mut connection = pin!(connection);
            tokio::select! {
                result = connection.as_mut() => {
                    log_connection_end(remote, result);
                    return;
                }
                () = signal.cancelled() => connection.as_mut().graceful_shutdown(),
            }
            // A response in flight (an SSE stream of a running call) may still finish.
            tokio::select! {
                result = connection.as_mut() => log_connection_end(remote, result),
                () = closed.cancelled() => {
                    let _ = tokio::time::timeout(Duration::from_secs(2), connection).await;
                }
            }
        });
    }
}

fn log_connection_end(remote: SocketAddr, result: Result<(), hyper::Error>) {
    if let Err(e) = result {
        if e.is_timeout() {
            tracing::debug!(%remote, "connection closed: headers not received in time");
        } else {
            tracing::debug!(%remote, error = %e, "connection ended with an error");
        }
    }
}

/// Open connections per client address (only addresses with one open are kept).
#[derive(Debug, Default)]
struct OpenByAddress(Mutex<HashMap<AddressKey, usize>>);

impl OpenByAddress {
    fn counts(&self) -> std::sync::MutexGuard<'_, HashMap<AddressKey, usize>> {
        // Each change is one map operation; a poisoned lock still holds a consistent map.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// One open connection of an address; given back when dropped.
struct AddressPlace {
    table: Arc<OpenByAddress>,
    key: AddressKey,
}

impl AddressPlace {
    /// A place for `key` if it holds fewer than `max`.
    fn take(table: &Arc<OpenByAddress>, key: AddressKey, max: usize) -> Option<Self> {
        let mut counts = table.counts();
        let n = counts.entry(key).or_default();
        if *n >= max {
            if *n == 0 {
                counts.remove(&key);
            }
            return None;
        }
        *n += 1;
        Some(Self {
            table: table.clone(),
            key,
        })
    }
}

impl Drop for AddressPlace {
    fn drop(&mut self) {
        let mut counts = self.table.counts();
        if let Some(n) = counts.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.remove(&self.key);
            }
        }
    }
}

/// Answer an over-cap connection with a complete response and close it: the same
/// [`Rejection`] body as every other refusal, counted like every other response.
async fn refuse(mut stream: TcpStream, rejection: Rejection) {
    let response = rejection.to_http1();
    metrics()
        .http_requests
        .get_or_create(&crate::metrics::StatusLabels {
            status: rejection.status().as_u16(),
        })
        .inc();
    let write = async {
        // Read the request head first: a client that gets an answer before it has
        // finished sending treats it as a broken connection, not as a refusal.
        let mut head = Vec::with_capacity(1024);
        let mut buf = [0u8; 1024];
        while head.len() < 16 * 1024 && !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buf).await? {
                0 => break,
                n => head.extend_from_slice(&buf[..n]),
            }
        }
        stream.write_all(&response).await?;
        stream.shutdown().await
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), write).await;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn an_address_holds_at_most_its_places_and_gets_them_back_when_they_close() {
        let table = Arc::new(OpenByAddress::default());
        let key = |s: &str| AddressKey::of(s.parse().unwrap());
        let a = key("192.0.2.1");
        let held: Vec<_> = (0..2)
            .map(|_| AddressPlace::take(&table, a, 2).unwrap())
            .collect();
        assert!(AddressPlace::take(&table, a, 2).is_none());
        assert!(AddressPlace::take(&table, key("192.0.2.2"), 2).is_some());
        assert!(
            AddressPlace::take(&table, key("2001:db8::1"), 1).is_some(),
            "dropped at once"
        );
        let v6 = AddressPlace::take(&table, key("2001:db8::1"), 1).unwrap();
        assert!(
            AddressPlace::take(&table, key("2001:db8::ffff"), 1).is_none(),
            "the same /64"
        );
        drop(held);
        drop(v6);
        assert!(AddressPlace::take(&table, a, 2).is_some());
        assert!(table.counts().is_empty(), "no empty entries are kept");
    }
}
