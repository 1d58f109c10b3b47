//! stdio transport: MCP over stdin/stdout for local clients. No network layers: the
//! caller is [`Principal::Local`] and calls go straight into the shared run stack.
//!
//! When stdin reaches EOF (the client went away) or a signal arrives, every running
//! Codex is killed, each child is reaped, and the server exits 0.

use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::pin::Pin;
use std::time::Duration;

use rmcp::ServiceExt;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::unix::pipe;
use tokio_util::sync::CancellationToken;

use crate::mcp::TwoBot;
use crate::run::CallTransport;
use crate::run::Principal;
use crate::runs::Runs;

/// Longest wait for killed runs to be reaped before exiting anyway.
const REAP_WAIT: Duration = Duration::from_secs(10);

/// Serve MCP on `io` (stdin/stdout in production, a duplex pipe in tests) until EOF or `shutdown`.
pub async fn serve<IO>(
    io: IO,
    runs: Runs,
    default_timeout_sec: u64,
    shutdown: CancellationToken,
) -> Result<(), rmcp::service::ServerInitializeError>
where
    IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let tracker = runs.tracker();
    let handler = TwoBot::new(
        runs,
        CallTransport::Stdio,
        Principal::Local,
        default_timeout_sec,
        shutdown.clone(),
    );
    let service = handler.serve_with_ct(io, shutdown.child_token()).await?;
    tokio::select! {
        reason = service.waiting() => tracing::info!(?reason, "stdio client disconnected"),
        () = shutdown.cancelled() => {},
    }
    // Stop every run still in flight, then wait until each child is reaped.
    shutdown.cancel();
    tracker.close();
    if tokio::time::timeout(REAP_WAIT, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("some Codex runs did not stop in time");
    }
    Ok(())
}

/// The reading and writing halves of the process's stdin and stdout.
pub type Streams = (
    Pin<Box<dyn AsyncRead + Send>>,
    Pin<Box<dyn AsyncWrite + Send>>,
);

/// stdin and stdout as the client gave them. tokio's own `stdin()`/`stdout()` do every
/// read and write on a blocking-pool thread, so each request and each answer costs a
/// hand-off between threads (two wake-ups on the way in, one on the way out). MCP
/// clients start the server with pipes (rmcp, the Python SDK) or socket pairs (Node's
/// libuv), and both can sit in the runtime's epoll: read and written by the worker that
/// handles the message. Anything else (a terminal, a file) keeps tokio's blocking
/// streams, and so does a stream that is also stderr, which the log writes to with
/// blocking writes and must not find non-blocking.
pub fn standard_streams() -> Streams {
    let stderr = identity(std::io::stderr().as_fd());
    let reader: Option<Pin<Box<dyn AsyncRead + Send>>> =
        match polled(std::io::stdin().as_fd(), stderr) {
            Some(Polled::Pipe(f)) => pipe::Receiver::from_file(f).ok().map(|r| Box::pin(r) as _),
            Some(Polled::Socket(s)) => socket_stream(s).ok().map(|s| Box::pin(s) as _),
            None => None,
        };
    let writer: Option<Pin<Box<dyn AsyncWrite + Send>>> =
        match polled(std::io::stdout().as_fd(), stderr) {
            Some(Polled::Pipe(f)) => pipe::Sender::from_file(f).ok().map(|w| Box::pin(w) as _),
            Some(Polled::Socket(s)) => socket_stream(s).ok().map(|s| Box::pin(s) as _),
            None => None,
        };
    (
        reader.unwrap_or_else(|| Box::pin(tokio::io::stdin())),
        writer.unwrap_or_else(|| Box::pin(tokio::io::stdout())),
    )
}

/// A standard stream the runtime can poll, as a duplicate of its descriptor.
enum Polled {
    Pipe(File),
    /// A stream socket. `UnixStream` only reads and writes it, so any stream socket will do.
    Socket(std::os::unix::net::UnixStream),
}

/// `fd` as something the runtime can poll: a pipe or a socket that is not `stderr`.
fn polled(fd: BorrowedFd<'_>, stderr: Option<(u64, u64)>) -> Option<Polled> {
    if stderr.is_some() && identity(fd) == stderr {
        return None;
    }
    let file = File::from(fd.try_clone_to_owned().ok()?);
    let kind = file.metadata().ok()?.file_type();
    if kind.is_fifo() {
        Some(Polled::Pipe(file))
    } else if kind.is_socket() {
        let socket = std::os::unix::net::UnixStream::from(std::os::fd::OwnedFd::from(file));
        Some(Polled::Socket(socket))
    } else {
        None
    }
}

/// `socket` in the runtime's epoll; left blocking if the runtime cannot take it, for the
/// blocking stream that then reads it.
fn socket_stream(
    socket: std::os::unix::net::UnixStream,
) -> std::io::Result<tokio::net::UnixStream> {
    let restore = socket.try_clone()?;
    socket.set_nonblocking(true)?;
    tokio::net::UnixStream::from_std(socket).inspect_err(|_| {
        let _ = restore.set_nonblocking(false);
    })
}

/// The file behind a descriptor (for pipes and sockets: which one).
fn identity(fd: BorrowedFd<'_>) -> Option<(u64, u64)> {
    let file = File::from(fd.try_clone_to_owned().ok()?);
    let meta = file.metadata().ok()?;
    Some((meta.dev(), meta.ino()))
}
