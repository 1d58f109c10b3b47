//! Accepting connections: the part of serving that `axum::serve` does not let us tune.
//!
//! A public endpoint needs three things at the socket level that the router cannot give:
//! a deadline for a request's headers (hyper's timer-driven `header_read_timeout`, which
//! also closes idle keep-alive connections, so slowloris clients cannot pin sockets), a
//! cap on open connections (beyond it a caller gets the common `503` rejection and a closed socket
//! rather than a silent wait in the kernel backlog), and a staged drain on shutdown.

use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
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

/// Socket-level limits and the shutdown grace period.
#[derive(Debug, Clone, Copy)]
pub struct ServeLimits {
    /// Open connections at most; more are answered `503` and closed.
    pub max_connections: usize,
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
    let accept = accept_loop(listener, app, &connections, &shutdown, limits);
    accept.await;

    tracing::info!(
        grace_sec = limits.grace.as_secs(),
        "no longer accepting connections; letting running calls finish"
    );
    runs.close();
    if tokio::time::timeout(limits.grace, runs.wait())
        .await
        .is_err()
    {
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
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            if let Ok(refusal) = refusals.clone().try_acquire_owned() {
                tracing::warn!(%remote, max = limits.max_connections, "connection cap reached; refusing");
                connections.spawn(async move {
                    let _refusal = refusal;
                    refuse(stream, limits.max_connections).await;
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
            let _slot = slot;
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

/// Answer an over-cap connection with a complete `503` and close it: the same
/// [`Rejection`] body as every other refusal, counted like every other response.
async fn refuse(mut stream: TcpStream, max: usize) {
    let rejection = Rejection::TooManyConnections { max };
    let response = rejection.to_http1();
    crate::metrics::metrics()
        .http_requests
        .get_or_create(&crate::metrics::StatusLabels {
            status: rejection.status().as_u16(),
        })
        .inc();
    let write = async {
        // Read the request head first: a client that gets an answer before it has
        // finished sending treats it as a broken connection, not as a 503.
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
