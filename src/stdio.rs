//! stdio transport: MCP over stdin/stdout for local clients. No network layers: the
//! caller is [`Principal::Local`] and calls go straight into the shared run stack.
//!
//! When stdin reaches EOF (the client went away) or a signal arrives, every running
//! Codex is killed, each child is reaped, and the server exits 0.

use std::time::Duration;

use rmcp::ServiceExt;
use tokio::io::{AsyncRead, AsyncWrite};
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
