//! The exec backend: one `codex exec --json -` per run. The prompt goes to stdin (then
//! EOF), the JSONL events on stdout are folded as they arrive ([`super::fold`]), and the
//! run ends when Codex exits, or is stopped (timeout, cancel, a model it cannot reach)
//! with its whole process group.

use std::pin::Pin;
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use tokio::io::{AsyncWriteExt, BufReader};

use super::fold::{Finish, Fold, Stop};
use super::group::{ProcessGroup, terminate};
use super::io::{Line, LineReader, strip_backtraces};
use super::prepare::{Prepared, prepare};
use super::{RunnerConfig, spawn};
use crate::codex::{exec_argv, exec_unsupported};
use crate::error::ToolError;
use crate::run::{Job, RunOutput};

/// After Codex exits, how long its stdout may stay open (held by a grandchild) before we stop reading.
pub(super) const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(2);

/// Run one job to the end. Only a failure to start Codex is an `Err`.
pub(super) async fn run(config: &Arc<RunnerConfig>, job: Job) -> Result<RunOutput, ToolError> {
    let Job { spec, ctx } = job;
    if let Some(refused) = exec_unsupported(&spec) {
        return Err(refused);
    }
    let Prepared {
        spec,
        workdir,
        view,
        isolation,
        schema_file,
        images: _images,
    } = prepare(config, spec, true).await?;
    let argv = exec_argv(&spec, schema_file.as_ref().map(|f| f.path()));
    let env = spawn::run_env(&config.env, ctx.request_id.as_deref());

    let started = Instant::now();
    let mut child = spawn::start_run(config, argv.clone(), workdir, isolation, &env).await?;
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
    let stderr_task = spawn::stderr_task(&mut child, config.stderr_tail_bytes);

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
    let (stderr, sandbox_refused) = spawn::stderr_of(stderr_task).await;
    if let Some(e) = spawn::supervised_spawn_failure(config, status, &stderr) {
        return Err(e);
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
        ..Finish::default()
    }))
}

pub(super) async fn next_line<R>(reader: &mut Option<LineReader<R>>) -> Option<Line>
where
    R: tokio::io::AsyncBufRead + Unpin,
{
    match reader {
        Some(r) => r.next_line().await.ok().flatten(),
        None => std::future::pending().await,
    }
}
