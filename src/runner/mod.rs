//! [`CodexRunner`]: the innermost service of the job stack. It runs one
//! `codex exec --json -` per [`Job`] and always returns what it saw.
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
//! - Codex is started in one place ([`spawn`]), through the run supervisor
//!   ([`supervise`]), which gives each run private mount and PID namespaces
//!   ([`namespace`]): Codex gets its directories at private names ([`isolation`]) that
//!   no other process can re-point, and nothing of the run outlives it.

pub mod bound;
pub mod cwd;
pub mod env;
mod fold;
mod group;
pub mod image_reader;
pub mod images;
pub mod io;
pub mod isolation;
pub mod namespace;
mod run_init;
pub mod schema_file;
mod signals;
pub mod spawn;
pub mod supervise;
pub mod user;

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::ExitStatus;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio_util::task::TaskTracker;
use tower::Service;
use tracing::Instrument;

pub use self::fold::refusal_warning;
use self::fold::{Finish, Fold, Stop};
use self::group::{ProcessGroup, terminate};
use self::io::{Line, LineReader, TailBuffer, strip_backtraces};
use crate::codex::exec_argv;
use crate::codex::stderr::RefusalCounter;
use crate::error::ToolError;
use crate::job::{Job, RunOutput};
use crate::policy::EnvPolicy;

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

/// Open `path` (canonical, checked by the policy) beneath its root, following no symlink:
/// it is still the directory the policy allowed. The refusal names the checked path and
/// the roots, never where a name points now.
fn reopen(
    param: &str,
    path: &std::path::Path,
    roots: &[PathBuf],
) -> Result<cwd::OpenDir, ToolError> {
    cwd::open_beneath(roots, path).map_err(|e| ToolError::PathChanged {
        param: param.to_owned(),
        path: path.display().to_string(),
        roots: roots_text(roots),
        reason: e.to_string(),
    })
}

/// The allowed roots as a refusal names them.
fn roots_text(roots: &[PathBuf]) -> String {
    if roots.is_empty() {
        "any directory".to_owned()
    } else {
        roots
            .iter()
            .map(|r| r.display().to_string())
            .collect::<Vec<_>>()
            .join(":")
    }
}

/// After Codex exits, how long its stdout may stay open (held by a grandchild) before we stop reading.
const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(2);

/// Run one job to the end. Only a failure to start Codex is an `Err`.
pub async fn run(config: &RunnerConfig, job: Job) -> Result<RunOutput, ToolError> {
    let Job { mut spec, ctx } = job;
    // The policy resolved these paths, maybe long ago (the call may have queued): open
    // them again, right before the spawn, beneath their root and through no symlink.
    // The supervisor starts in the very directory opened here; with namespaces it binds
    // it, and the extra directories (opened again the same way), at private names.
    let workdir = reopen("cwd", &spec.cwd, &config.roots)?;
    for (i, dir) in spec.add_dirs.iter().enumerate() {
        reopen(&format!("add_dirs[{i}]"), dir, &config.roots)?;
    }
    let view = (config.isolate && config.supervisor.is_some())
        .then(|| isolation::View::plan(&spec.cwd, &spec.add_dirs));
    let owner = config.codex_user.as_ref().map(|(uid, gid, _)| (*uid, *gid));
    // Codex opens images by name: it gets private copies of the files opened here, so a
    // name swapped since the check cannot reach a file outside the roots. Read as Codex's
    // user when it has its own (issue 19 point 3). Removed on drop.
    let reader = images::Reader::for_run(config.supervisor.as_deref(), owner);
    let images = images::PrivateImages::copy(
        &spec.images,
        &config.roots,
        &std::env::temp_dir(),
        owner,
        &reader,
    )
    .map_err(|(i, e)| ToolError::Image {
        param: format!("images[{i}]"),
        path: spec
            .images
            .get(i)
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        reason: e.to_string(),
    })?;
    if !images.paths().is_empty() {
        spec.images = images.paths().to_vec();
    }
    // Lives until the run ends: dropping it removes the file.
    let schema_file = match &spec.output_schema {
        None => None,
        Some(schema) => Some(
            schema_file::SchemaFile::create(&std::env::temp_dir(), schema, owner)
                .map_err(|e| ToolError::OutputSchemaFile(e.kind().to_string()))?,
        ),
    };
    // Codex gets the private names when the run is isolated: names nobody can re-point.
    let isolation = view.as_ref().map(|view| {
        spec.cwd = view.private_of(&spec.cwd);
        spec.add_dirs = spec.add_dirs.iter().map(|d| view.private_of(d)).collect();
        namespace::Isolation {
            roots: config.roots.clone(),
            binds: view
                .binds()
                .iter()
                .map(|b| (b.private.clone(), b.real.clone()))
                .collect(),
        }
    });
    let argv = exec_argv(&spec, schema_file.as_ref().map(|f| f.path()));
    let env = spawn::run_env(&config.env, ctx.request_id.as_deref());
    let cwd = workdir.proc_path();
    let mut command = spawn::command(
        config,
        spawn::Launch {
            args: argv.clone(),
            cwd: &cwd,
            isolation,
            env: &env,
        },
    );

    let started = Instant::now();
    let spawned = command.spawn();
    drop(workdir);
    let mut child = spawned.map_err(|source| ToolError::Spawn {
        program: config.program.display().to_string(),
        source,
    })?;
    let group = ProcessGroup::of(&child);
    tracing::debug!(pid = child.id(), "codex started");

    let stdin_task = child.stdin.take().map(|mut stdin| {
        let prompt = spec.prompt.clone();
        tokio::spawn(async move {
            // A Codex that exits without reading gives EPIPE here; its exit status tells the story.
            let _ = stdin.write_all(prompt.as_bytes()).await;
            let _ = stdin.shutdown().await;
        })
    });
    let stderr_task = child.stderr.take().map(|mut stderr| {
        let max = config.stderr_tail_bytes;
        tokio::spawn(async move {
            let mut tail = TailBuffer::new(max);
            let mut refusals = RefusalCounter::default();
            let mut chunk = vec![0u8; 8192];
            while let Ok(n) = stderr.read(&mut chunk).await {
                if n == 0 {
                    break;
                }
                tail.push(&chunk[..n]);
                refusals.feed(&chunk[..n]);
            }
            (tail.into_string(), refusals.finish())
        })
    });

    let mut fold = Fold::new(config, spec.include_event_log, ctx.progress.clone());
    let mut stdout = child
        .stdout
        .take()
        .map(|out| LineReader::new(BufReader::new(out), config.max_line_bytes));

    let deadline = tokio::time::sleep(spec.timeout);
    tokio::pin!(deadline);
    let mut drain: Option<Pin<Box<tokio::time::Sleep>>> = None;
    // Armed while Codex says it is retrying its model connection; disarmed by anything else.
    let mut unreachable: Option<Pin<Box<tokio::time::Sleep>>> = None;
    let mut status: Option<ExitStatus> = None;

    let stop = loop {
        if stdout.is_none() && status.is_some() {
            break None;
        }
        tokio::select! {
            () = ctx.cancel.cancelled() => break Some(Stop::Cancelled),
            () = &mut deadline => break Some(Stop::TimedOut),
            line = next_line(&mut stdout), if stdout.is_some() => match line {
                Some(line) => {
                    fold.line(line);
                    match (fold.reconnecting(), unreachable.is_some()) {
                        (true, false) => {
                            unreachable = Some(Box::pin(tokio::time::sleep(config.model_unreachable)));
                        }
                        (false, true) => unreachable = None,
                        _ => {}
                    }
                }
                None => stdout = None,
            },
            exited = child.wait(), if status.is_none() => {
                status = exited.ok();
                if status.is_none() {
                    break None;
                }
                drain = Some(Box::pin(tokio::time::sleep(DRAIN_AFTER_EXIT)));
            },
            () = async { if let Some(d) = drain.as_mut() { d.await } }, if drain.is_some() => break None,
            () = async { if let Some(u) = unreachable.as_mut() { u.await } }, if unreachable.is_some() => {
                // Said while Codex is still alive: the probe sees the endpoint as Codex does.
                let reason = crate::model_endpoint::unreachable_reason(
                    &env,
                    config.model_unreachable,
                    fold.last_error(),
                )
                .await;
                break Some(Stop::ModelUnreachable(reason));
            },
        }
    };

    if stop.is_some() {
        status = terminate(&mut child, &group, config.kill_grace).await;
        // Keep what Codex flushed while dying; the group is dead, so EOF comes quickly.
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            while let Some(line) = next_line(&mut stdout).await {
                fold.line(line);
            }
        })
        .await;
    } else if status.is_none() {
        status = child.wait().await.ok();
    }
    // Codex is reaped; whatever it left behind in its group goes too.
    group.signal(Signal::SIGKILL);
    if let Some(task) = stdin_task {
        task.abort();
    }
    let (stderr, sandbox_refused) = match stderr_task {
        Some(task) => tokio::time::timeout(Duration::from_secs(1), task)
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default(),
        None => (String::new(), 0),
    };

    if config.supervisor.is_some()
        && status.and_then(|s| s.code()) == Some(i32::from(supervise::SPAWN_FAILED))
        && let Some(reason) = supervise::spawn_failure(&stderr)
    {
        // The supervisor started, Codex did not: the same error as a direct spawn.
        return Err(ToolError::Spawn {
            program: config.program.display().to_string(),
            source: std::io::Error::other(reason),
        });
    }
    Ok(fold.finish(Finish {
        status,
        stop,
        stderr: strip_backtraces(&stderr),
        sandbox_refused,
        argv: std::iter::once(config.program.as_os_str())
            .chain(argv.iter().map(|a| a.as_os_str()))
            .map(|a| a.to_string_lossy().into_owned())
            .collect(),
        duration: started.elapsed(),
        timeout: spec.timeout,
        view,
    }))
}

async fn next_line<R>(reader: &mut Option<LineReader<R>>) -> Option<Line>
where
    R: tokio::io::AsyncBufRead + Unpin,
{
    match reader {
        Some(r) => r.next_line().await.ok().flatten(),
        None => std::future::pending().await,
    }
}
