//! `BENCH_ONLY=instructions`: the instructions a server executes per stateless
//! `tools/list`, counted by callgrind.
//!
//! The VM this runs on drifts by ±15 % in CPU time from one minute to the next, so a
//! change worth a few percent cannot be seen in the rows that time the server, however
//! often they alternate. Callgrind counts every instruction the server executes, and the
//! count is the same in every run (within half a percent): it says whether a change
//! removed work, though not what that work cost in time (a cache miss or a contended
//! atomic is one instruction). Each server is started twice under
//! `valgrind --tool=callgrind`, serves 200 requests to warm up, then either nothing or
//! 2 000 more, and exits on SIGTERM (callgrind writes its counts at exit); the
//! difference over 2 000 is the cost of one request, start-up and idle threads cancel.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::load::Connection;
use super::loopback_listener;

/// Requests served before the counted ones, in both runs.
const WARM: usize = 200;
/// Requests that make the difference between the two runs.
const COUNTED: usize = 2_000;

/// A server to count.
pub struct Server<'a> {
    /// Its executable.
    pub program: &'a Path,
    /// Its whole environment, but for its port.
    pub env: Vec<(String, String)>,
    /// The variable that gives it its port, given the port.
    pub port: &'a dyn Fn(u16) -> (String, String),
}

/// The instructions `server` executes per request, each request sent on one keep-alive
/// connection with `headers` and the body `body(n)` makes.
pub async fn per_request(
    server: &Server<'_>,
    headers: &[(&str, String)],
    body: &dyn Fn(usize) -> String,
) -> Result<f64> {
    let idle = total(server, headers, body, WARM).await?;
    let busy = total(server, headers, body, WARM + COUNTED).await?;
    anyhow::ensure!(busy > idle, "callgrind counted {busy} against {idle}");
    Ok((busy - idle) as f64 / COUNTED as f64)
}

/// All instructions callgrind counted in `server` (and any process it forked) serving
/// `requests` requests, from its start to its exit.
async fn total(
    server: &Server<'_>,
    headers: &[(&str, String)],
    body: &dyn Fn(usize) -> String,
    requests: usize,
) -> Result<u64> {
    let counts = tempfile::tempdir()?;
    // Released just before the server binds it, as for the floor and the stand-in.
    let (listener, port) = loopback_listener()?;
    drop(listener);
    let (name, value) = (server.port)(port);
    let mut child = tokio::process::Command::new("valgrind")
        .arg("--tool=callgrind")
        .arg(format!(
            "--callgrind-out-file={}/counts.%p",
            counts.path().display()
        ))
        .arg(server.program)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(server.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env(name, value)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context(
            "valgrind counts the instructions; install it (Debian: apt-get install valgrind)",
        )?;
    let pid = child.id().context("the server's pid")?;
    let address = format!("127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while tokio::net::TcpStream::connect(&address).await.is_err() {
        anyhow::ensure!(
            Instant::now() < deadline,
            "{} did not listen under callgrind in 60 s",
            server.program.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut connection = Connection::open(&format!("http://{address}/mcp"), headers).await?;
    for n in 0..requests {
        connection.post(body(n)).await?;
    }
    drop(connection);
    let pid = nix::unistd::Pid::from_raw(i32::try_from(pid)?);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM)?;
    tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .context("the server did not exit in 60 s of SIGTERM")??;
    let mut total = 0;
    for entry in std::fs::read_dir(counts.path())? {
        let text = std::fs::read_to_string(entry?.path())?;
        total += text
            .lines()
            .filter_map(|line| line.strip_prefix("totals: "))
            .map(str::parse::<u64>)
            .sum::<Result<u64, _>>()?;
    }
    anyhow::ensure!(total > 0, "callgrind wrote no counts");
    Ok(total)
}
