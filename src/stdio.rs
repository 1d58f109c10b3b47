//! stdio transport: MCP over stdin/stdout for local clients. No network layers: the
//! caller is [`Principal::Local`] and calls go straight into the shared job stack.
//!
//! When stdin reaches EOF (the client went away) or a signal arrives, every running
//! Codex is killed, each child is reaped, and the server exits 0.

use std::sync::Arc;
use std::time::Duration;

use rmcp::ServiceExt;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::job::Principal;
use crate::mcp::TwoBot;
use crate::registry::RunRegistry;
use crate::tool::ToolService;

/// Longest wait for killed runs to be reaped before exiting anyway.
const REAP_WAIT: Duration = Duration::from_secs(10);

/// Serve MCP on `io` (stdin/stdout in production, a duplex pipe in tests) until EOF or `shutdown`.
pub async fn serve<IO>(
    io: IO,
    tools: ToolService,
    registry: Arc<RunRegistry>,
    default_timeout_sec: u64,
    runs: TaskTracker,
    shutdown: CancellationToken,
) -> Result<(), rmcp::service::ServerInitializeError>
where
    IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let handler = TwoBot::new(
        tools,
        Principal::Local,
        default_timeout_sec,
        shutdown.clone(),
    )
    .with_registry(registry, default_timeout_sec);
    let service = handler.serve_with_ct(io, shutdown.child_token()).await?;
    tokio::select! {
        reason = service.waiting() => tracing::info!(?reason, "stdio client disconnected"),
        () = shutdown.cancelled() => {},
    }
    // Stop every run still in flight, then wait until each child is reaped.
    shutdown.cancel();
    runs.close();
    if tokio::time::timeout(REAP_WAIT, runs.wait()).await.is_err() {
        tracing::warn!("some Codex runs did not stop in time");
    }
    Ok(())
}
