//! [`CodexRunner`]: the innermost service of the run stack. It runs one Codex per [`Job`]
//! (`codex exec --json -`, or `codex app-server`: [`Backend`]) and always returns what
//! it saw.
//!
//! - No shell: the program and argv (from `codex::exec_argv`) go straight to `execve`.
//! - The prompt is written to stdin, then stdin is closed (Codex waits for EOF).
//! - Codex gets its own process group, so a timeout, a cancellation or a shutdown can
//!   signal the whole tree: SIGTERM, a short grace, then SIGKILL. The group is killed
//!   again once Codex is reaped (and if the run's future is dropped), so no grandchild
//!   outlives its run.
//! - stdout is read line by line as it arrives and folded into the summary; stderr is
//!   kept as a bounded tail. Memory is capped whatever Codex prints, and the reply is
//!   fitted to 256 KB ([`bound`]); the fold itself lives in `fold.rs`.
//! - A Codex that keeps retrying its model connection is stopped after
//!   `model_unreachable`, with the endpoint and the cause (`crate::model_endpoint`).
//! - Two backends ([`Backend`]): `codex exec --json -` ([`exec`]), and one
//!   `codex app-server` per run ([`app_server`]), which can ask a person before a command
//!   or a file change and take more instructions while it runs. Both prepare a run the
//!   same way ([`prepare`]) and start Codex the same way ([`spawn`]).
//! - Codex is started in one place ([`spawn`]), through the run supervisor
//!   ([`supervise`], forked by the run [`spawner`]; its descendants found and ended
//!   through `/proc` by `proc_tree`), which gives each run private mount and PID namespaces
//!   ([`namespace`]): Codex gets its directories at private names ([`isolation`]) that
//!   no other process can re-point, and nothing of the run outlives it.

pub mod app_server;
pub mod bound;
pub mod child;
pub mod cwd;
pub mod env;
mod exec;
mod fold;
mod group;
pub mod image_reader;
pub mod images;
pub mod io;
pub mod isolation;
pub mod namespace;
mod prepare;
mod proc_tree;
mod run_init;
pub mod schema_file;
mod signals;
pub mod spawn;
pub mod spawner;
pub mod supervise;
pub mod user;

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio_util::task::TaskTracker;
use tower::Service;
use tracing::Instrument;

pub use self::fold::refusal_warning;
use crate::error::ToolError;
use crate::policy::EnvPolicy;
use crate::run::{Job, RunOutput};

/// How the runner starts Codex and how much it keeps.
#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// The Codex executable (`CODEX_BIN`).
    pub program: PathBuf,
    /// The child's environment rules.
    pub env: EnvPolicy,
    /// Time between SIGTERM and SIGKILL.
    pub kill_grace: Duration,
    /// Bytes kept of one stdout line.
    pub max_line_bytes: usize,
    /// Bytes of raw events kept for `include_event_log`.
    pub max_event_log_bytes: usize,
    /// Bytes of stderr kept.
    pub stderr_tail_bytes: usize,
    /// How long Codex may keep retrying its model connection ("Reconnecting...") before
    /// the run is stopped with the reason (`TWOBOT_MODEL_UNREACHABLE_SEC`).
    pub model_unreachable: Duration,
    /// The `2bot-mcp` binary to start as the run supervisor ([`supervise`]); `None` starts
    /// Codex directly (library use: then a `setsid` command can outlive its run).
    pub supervisor: Option<PathBuf>,
    /// The run spawner that forks each supervisor ([`spawner`]); `None` (or a spawner
    /// gone) starts the supervisor by exec of `supervisor`.
    pub spawner: Option<Arc<spawner::Spawner>>,
    /// The canonical allowed roots: the cwd is opened beneath the one it lies in.
    pub roots: Vec<PathBuf>,
    /// Run Codex as this uid, gid and supplementary groups (`TWOBOT_CODEX_USER`).
    pub codex_user: Option<(u32, u32, Vec<u32>)>,
    /// Run each Codex in private mount and PID namespaces ([`namespace`]); decided at
    /// start by `TWOBOT_RUN_NAMESPACES` and [`namespace::probe`]. Needs `supervisor`.
    pub isolate: bool,
    /// How Codex is driven (`TWOBOT_CODEX_BACKEND`).
    pub backend: Backend,
}

/// How Codex is driven.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backend {
    /// `codex exec --json -`: the prompt on stdin, JSONL events on stdout.
    #[default]
    Exec,
    /// `codex app-server`, one per run: JSON-RPC over stdio, with approvals and steering.
    AppServer,
}

impl RunnerConfig {
    /// Defaults for `program`.
    pub fn new(program: impl Into<PathBuf>) -> Self {
        Self {
            program: program.into(),
            env: EnvPolicy::default(),
            kill_grace: Duration::from_secs(3),
            max_line_bytes: 1024 * 1024,
            max_event_log_bytes: 8 * 1024 * 1024,
            stderr_tail_bytes: 16 * 1024,
            model_unreachable: DEFAULT_MODEL_UNREACHABLE,
            supervisor: None,
            spawner: None,
            roots: Vec::new(),
            codex_user: None,
            isolate: false,
            backend: Backend::Exec,
        }
    }
}

/// Default of [`RunnerConfig::model_unreachable`]: well past a blip, well within a minute.
pub const DEFAULT_MODEL_UNREACHABLE: Duration = Duration::from_secs(45);

/// Runs Codex for each [`Job`]. Cheap to clone; clones share the run tracker.
#[derive(Clone, Debug)]
pub struct CodexRunner {
    config: Arc<RunnerConfig>,
    tracker: TaskTracker,
}

impl CodexRunner {
    /// A runner with `config`.
    pub fn new(config: RunnerConfig) -> Self {
        Self {
            config: Arc::new(config),
            tracker: TaskTracker::new(),
        }
    }

    /// Tracks every run in flight, so shutdown can wait until each child is reaped.
    pub fn tracker(&self) -> TaskTracker {
        self.tracker.clone()
    }

    /// How this runner starts Codex (for probes that must start it the same way).
    pub fn config(&self) -> &Arc<RunnerConfig> {
        &self.config
    }
}

impl Service<Job> for CodexRunner {
    type Response = RunOutput;
    type Error = ToolError;
    type Future = Pin<Box<dyn Future<Output = Result<RunOutput, ToolError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, job: Job) -> Self::Future {
        let config = self.config.clone();
        let span = tracing::info_span!(
            "codex_run",
            principal = %job.ctx.principal.label(),
            request_id = job.ctx.request_id.as_deref().unwrap_or(""),
            sandbox = %job.spec.sandbox,
            cwd = %job.spec.cwd.display(),
            exit_code = tracing::field::Empty,
            timed_out = tracing::field::Empty,
            cancelled = tracing::field::Empty,
            duration_ms = tracing::field::Empty,
            input_tokens = tracing::field::Empty,
            output_tokens = tracing::field::Empty,
        );
        Box::pin(
            self.tracker.track_future(
                async move {
                    let out = run(&config, job).await;
                    if let Ok(out) = &out {
                        let span = tracing::Span::current();
                        span.record("exit_code", out.exit_code.unwrap_or(-1));
                        span.record("timed_out", out.timed_out);
                        span.record("cancelled", out.cancelled);
                        span.record("duration_ms", out.duration_ms);
                        span.record("input_tokens", out.summary.usage.input_tokens);
                        span.record("output_tokens", out.summary.usage.output_tokens);
                        tracing::info!(ok = out.ok, "codex run finished");
                    }
                    out
                }
                .instrument(span),
            ),
        )
    }
}

/// Run one job to the end on the configured backend. Only a failure to start Codex (or
/// to prepare its run) is an `Err`.
pub async fn run(config: &Arc<RunnerConfig>, job: Job) -> Result<RunOutput, ToolError> {
    match config.backend {
        Backend::Exec => exec::run(config, job).await,
        Backend::AppServer => app_server::run(config, job).await,
    }
}
