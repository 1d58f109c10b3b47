//! The load generator of the throughput rows: `clients` HTTP/1.1 keep-alive connections,
//! each driven by hyper's client connection (no pool, no redirect logic, the headers
//! built once), one request in flight each, for a fixed time. Its [`Connection`] is also
//! the lean client of the per-call rows.
//!
//! Why not reqwest: on the 2-core VM the generator shares the cores with the server it
//! measures. reqwest spent about as much CPU per request as 2Bot's whole `tools/list`
//! (~18 µs each), so the rows measured the generator as much as the server. The
//! server's CPU per request, read from `/proc`, does not depend on the generator; the
//! requests per second do (BENCHMARKS.md, "Issue 22: a lighter load generator").

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::header::{HeaderName, HeaderValue};
use hyper_util::rt::TokioIo;

/// What a load produced: the requests answered, and how many per second.
#[derive(Debug, Clone, Copy)]
pub struct Done {
    /// Requests answered (200, read to the end).
    pub requests: f64,
    /// Per second of the load.
    pub per_second: f64,
}

/// One HTTP/1.1 keep-alive connection to one URL, its headers built once: the load
/// generator's connection, and the lean client of the per-call rows (a call timed
/// through it holds none of an MCP SDK's own work, only 2Bot's and the kernel's).
pub struct Connection {
    send: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    authority: http::uri::Authority,
    path: String,
    fixed: hyper::HeaderMap,
}

impl Connection {
    /// Connect to `url`.
    pub async fn open(url: &str, headers: &[(&str, String)]) -> Result<Self> {
        let uri: hyper::Uri = url.parse().context("the URL")?;
        let authority = uri.authority().context("the URL's authority")?.clone();
        let mut fixed = hyper::HeaderMap::new();
        fixed.insert(
            hyper::header::HOST,
            HeaderValue::from_str(authority.as_str())?,
        );
        for (name, value) in headers {
            fixed.insert(
                HeaderName::from_bytes(name.as_bytes())?,
                HeaderValue::from_str(value)?,
            );
        }
        let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
        Ok(Self {
            send: connect(&authority).await?,
            authority,
            path,
            fixed,
        })
    }

    /// POST `body`; the answer must be 200, and is read to its end.
    pub async fn post(&mut self, body: String) -> Result<Bytes> {
        self.send(Request::post(self.path.as_str()).body(Full::new(Bytes::from(body)))?)
            .await
    }

    /// GET the URL; the answer must be 200, and is read to its end.
    pub async fn get(&mut self) -> Result<Bytes> {
        self.send(Request::get(self.path.as_str()).body(Full::new(Bytes::new()))?)
            .await
    }

    async fn send(&mut self, mut request: Request<Full<Bytes>>) -> Result<Bytes> {
        *request.headers_mut() = self.fixed.clone();
        // A server may end a keep-alive connection between two requests (nginx does
        // after `keepalive_requests`, 1000 by default, saying `Connection: close`): open
        // another, as every client does. The request was not sent, so nothing repeats.
        if self.send.ready().await.is_err() {
            self.send = connect(&self.authority).await?;
        }
        let response = self.send.send_request(request).await?;
        anyhow::ensure!(response.status() == 200, "{}", response.status());
        Ok(response.into_body().collect().await?.to_bytes())
    }
}

/// A new connection to `authority` (TCP_NODELAY, as every HTTP client that cares about
/// latency), driven by its own task.
async fn connect(
    authority: &http::uri::Authority,
) -> Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>> {
    let stream = tokio::net::TcpStream::connect(authority.as_str()).await?;
    stream.set_nodelay(true)?;
    let (send, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    Ok(send)
}

/// What `clients` connections get from `url`, each sending POSTs with `headers` and the
/// body `body(worker, n)` for `for_how_long`; every answer must be 200 and is read to
/// its end.
pub async fn run(
    url: &str,
    headers: &[(&str, String)],
    body: fn(usize, u64) -> String,
    clients: usize,
    for_how_long: Duration,
) -> Result<Done> {
    let mut connections = Vec::with_capacity(clients);
    for _ in 0..clients {
        connections.push(Connection::open(url, headers).await?);
    }
    let done = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + for_how_long;
    let mut workers = Vec::new();
    for (worker, mut connection) in connections.into_iter().enumerate() {
        let done = done.clone();
        workers.push(tokio::spawn(async move {
            let mut n = 0u64;
            while Instant::now() < deadline {
                n += 1;
                connection.post(body(worker, n)).await?;
                done.fetch_add(1, Ordering::Relaxed);
            }
            anyhow::Ok(())
        }));
    }
    let started = Instant::now();
    for w in workers {
        w.await??;
    }
    let requests = done.load(Ordering::Relaxed) as f64;
    Ok(Done {
        requests,
        per_second: requests / started.elapsed().as_secs_f64(),
    })
}
