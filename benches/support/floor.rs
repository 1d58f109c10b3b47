//! The floor of the stateless `tools/list` rows: a bare axum server (the same hyper,
//! the same multi-threaded tokio runtime as 2Bot) that answers every POST with the very
//! bytes 2Bot answers a stateless `tools/list`, and does nothing else: no auth, no
//! limits, no tracing, no request id, no parse of the body. What it costs per request
//! is the kernel's socket path and hyper, which any server on this stack pays; 2Bot's
//! row above it is the price of its layers, and the stand-in divided by the floor is the
//! most any server built this way could show beside the stand-in on this machine.
//!
//! It runs as this bench's own executable started again with `BENCH_FLOOR_SERVE` set
//! (see [`serve_if_asked`]), so its CPU is read from `/proc` like every other server's.

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use axum::Router;
use axum::routing::post;
use bytes::Bytes;

/// The environment variable that makes this executable the floor server: `PORT FILE`,
/// FILE holding the answer's bytes.
pub const SERVE: &str = "BENCH_FLOOR_SERVE";

/// When started as the floor server, serve until killed; otherwise return `false`.
pub async fn serve_if_asked() -> Result<bool> {
    let Ok(how) = std::env::var(SERVE) else {
        return Ok(false);
    };
    let (port, file) = how
        .split_once(' ')
        .context("BENCH_FLOOR_SERVE: PORT FILE")?;
    let answer = Bytes::from(std::fs::read(file)?);
    let app = Router::new().route(
        "/mcp",
        post(move || {
            let answer = answer.clone();
            async move { ([(http::header::CONTENT_TYPE, "application/json")], answer) }
        }),
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port.parse::<u16>()?)).await?;
    axum::serve(listener, app).await?;
    Ok(true)
}

/// A running floor server answering `answer`; killed when dropped.
pub struct Floor {
    child: tokio::process::Child,
    _dir: tempfile::TempDir,
    /// Its MCP URL.
    pub url: String,
}

impl Floor {
    /// Start one that answers every POST with `answer`.
    pub async fn start(answer: &[u8]) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let file = dir.path().join("answer.json");
        std::fs::write(&file, answer)?;
        let (listener, port) = super::loopback_listener()?;
        // The child binds the port itself: released just before, as for the stand-in.
        drop(listener);
        let child = tokio::process::Command::new(std::env::current_exe()?)
            .env(SERVE, format!("{port} {}", file.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        let base = format!("127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(&base).await.is_err() {
            anyhow::ensure!(
                Instant::now() < deadline,
                "the floor server did not listen in 10 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(Self {
            child,
            _dir: dir,
            url: format!("http://{base}/mcp"),
        })
    }

    /// Its process id, for its CPU time.
    pub fn pid(&self) -> Result<u32> {
        self.child.id().context("floor server pid")
    }
}
