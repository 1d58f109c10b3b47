//! The app-server backend: one `codex app-server` per run (one server is one tenant),
//! started like exec ([`super::spawn`]: supervisor, namespaces, Codex user, env policy,
//! process group), spoken to over newline-delimited JSON-RPC on its stdin and stdout
//! ([`rpc`], [`protocol`]). [`params`] says the run in the protocol; [`fold`] turns what
//! the server says into the exec fold's events; [`ask`] turns its requests into questions
//! for a person or immediate answers.
//!
//! The driver: `initialize` → `thread/start|resume|fork` → `turn/start` (or
//! `review/start`) → pump until `turn/completed`, then close stdin and reap; the group is
//! always killed at the end. Approval requests are asked of a person through
//! `RunControl::ask` CONCURRENTLY with the pump, so a waiting approval never stops the
//! timeout, the cancel or the reading. Steering goes to `turn/steer`. Cancel and timeout
//! interrupt the turn first (`turn/interrupt`), wait up to `kill_grace` for it to end
//! (its partial output kept), then terminate the group as exec does.

pub mod ask;
pub mod fold;
mod outgoing;
pub mod params;
pub mod protocol;
pub mod rpc;

use std::collections::HashMap;
use std::pin::Pin;
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use nix::sys::signal::Signal;
use serde_json::json;
use tokio::io::BufReader;

use self::ask::Ask;
use self::fold::Translate;
use self::protocol::{Incoming, ThreadResponse};
use super::exec::next_line;
use super::fold::{Finish, Fold, Stop, stderr_reason};
use super::group::{ProcessGroup, terminate};
use super::io::{LineReader, strip_backtraces};
use super::prepare::{Prepared, prepare};
use super::{RunnerConfig, spawn};
use crate::error::ToolError;
use crate::run::control::{ControlError, Steer};
use crate::run::{Job, RunOutput};

/// What one of our requests was for.
enum Purpose {
    Initialize,
    Thread,
    Turn,
    Steer(tokio::sync::oneshot::Sender<Result<(), ControlError>>),
    Interrupt,
}

/// Run one job on `codex app-server`. Only a failure to start Codex is an `Err`.
pub(super) async fn run(config: &Arc<RunnerConfig>, job: Job) -> Result<RunOutput, ToolError> {
    let Job { spec, ctx } = job;
    // The run's real directories, before `prepare` gives Codex their private names: an
    // approval may only concern what the policy lets this caller have.
    let ceiling = spec.ceiling;
    let dirs: Vec<std::path::PathBuf> = std::iter::once(spec.cwd.clone())
        .chain(spec.add_dirs.iter().cloned())
        .collect();
    let Prepared {
        spec,
        workdir,
        view,
        isolation,
        schema_file: _,
        images: _images,
    } = prepare(config, spec, false).await?;
    let plan = params::plan(&spec)?;
    let env = spawn::run_env(&config.env, ctx.request_id.as_deref());
    let started = Instant::now();
    let mut child = spawn::start_run(config, plan.args.clone(), workdir, isolation, &env).await?;
    let group = ProcessGroup::of(&child);
    tracing::debug!(pid = child.id(), "codex app-server started");
    let mut writer = rpc::Writer::new(child.stdin.take());
    let stderr_task = spawn::stderr_task(&mut child, config.stderr_tail_bytes);
    let mut stdout = child
        .stdout
        .take()
        .map(|out| LineReader::new(BufReader::new(out), config.max_line_bytes));
    let mut fold = Fold::new(config, spec.include_event_log, ctx.progress.clone());
    let mut tr = Translate::default();
    let mut steering = (!plan.turn.is_review())
        .then(|| ctx.control.take_steering())
        .flatten();
    let mut waiting: HashMap<i64, Purpose> = HashMap::new();
    let mut asks = FuturesUnordered::new();
    let mut approvals = Vec::new();
    let mut warnings: Vec<String> = Vec::new();
    let mut incomplete: Option<String> = None;

    let id = writer.request("initialize", plan.initialize.clone()).await;
    waiting.insert(id, Purpose::Initialize);

    let deadline = tokio::time::sleep(spec.timeout);
    tokio::pin!(deadline);
    let mut unreachable: Option<Pin<Box<tokio::time::Sleep>>> = None;
    let mut grace: Option<Pin<Box<tokio::time::Sleep>>> = None;
    let mut stop: Option<Stop> = None;
    let mut status: Option<ExitStatus> = None;

    loop {
        if tr.ended.is_some() || (stdout.is_none() && status.is_some()) {
            break;
        }
        let stopping = stop.is_none();
        tokio::select! {
            () = ctx.cancel.cancelled(), if stopping => {
                stop = Some(Stop::Cancelled);
            },
            () = &mut deadline, if stopping => {
                stop = Some(Stop::TimedOut);
            },
            () = async { if let Some(u) = unreachable.as_mut() { u.await } }, if unreachable.is_some() && stopping => {
                let reason = crate::model_endpoint::unreachable_reason(&env, config.model_unreachable, fold.last_error()).await;
                unreachable = None;
                stop = Some(Stop::ModelUnreachable(reason));
            },
            () = async { if let Some(g) = grace.as_mut() { g.await } }, if grace.is_some() => break,
            line = next_line(&mut stdout), if stdout.is_some() => {
                let Some(line) = line else {
                    stdout = None;
                    continue;
                };
                if line.truncated() {
                    fold.line(line);
                    continue;
                }
                let Some(message) = Incoming::parse(&line.bytes) else {
                    if !line.bytes.iter().all(u8::is_ascii_whitespace) {
                        fold.unparsed(&line);
                    }
                    continue;
                };
                match message {
                    Incoming::Notification { method, params } => {
                        fold.keep_raw(&line);
                        for event in tr.notification(&method, &params) {
                            fold.event(&event);
                        }
                        match (fold.reconnecting(), unreachable.is_some()) {
                            (true, false) => unreachable = Some(Box::pin(tokio::time::sleep(config.model_unreachable))),
                            (false, true) => unreachable = None,
                            _ => {}
                        }
                    }
                    Incoming::Request { id, method, params } => {
                        fold.keep_raw(&line);
                        match tr.request(&method, &params, view.as_ref()) {
                            Ask::Person(request, shape) => {
                                let control = ctx.control.clone();
                                let verdict = crate::policy::approvals::approvable(&request.kind, ceiling, &dirs);
                                asks.push(Box::pin(async move {
                                    let record = match verdict {
                                        Ok(()) => control.ask(request).await,
                                        Err(note) => control.refuse(request, note.to_string()),
                                    };
                                    (id, shape, record)
                                }));
                            }
                            Ask::Now(result, warning) => {
                                warnings.extend(warning);
                                writer.reply(id, result).await;
                            }
                            Ask::Refuse(message) => writer.refuse(id, &message).await,
                        }
                    }
                    Incoming::Response { id, result } => {
                        let purpose = id.as_i64().and_then(|id| waiting.remove(&id));
                        match (purpose, result) {
                            (Some(Purpose::Initialize), Ok(_)) => {
                                writer.notify("initialized").await;
                                let id = writer.request(plan.thread_method, json!(plan.thread)).await;
                                waiting.insert(id, Purpose::Thread);
                            }
                            (Some(Purpose::Thread), Ok(value)) => {
                                let thread = serde_json::from_value::<ThreadResponse>(value)
                                    .map(|r| r.thread.id)
                                    .unwrap_or_default();
                                for event in tr.thread(&thread) {
                                    fold.event(&event);
                                }
                                let (method, params) = plan.turn.request(&thread);
                                let id = writer.request(method, params).await;
                                waiting.insert(id, Purpose::Turn);
                            }
                            (Some(Purpose::Turn), Ok(value)) => {
                                for event in tr.turn(&value, true) {
                                    fold.event(&event);
                                }
                            }
                            (Some(Purpose::Initialize | Purpose::Thread | Purpose::Turn), Err(e)) => {
                                incomplete = Some(format!("Codex's app-server refused the run: {e}"));
                                break;
                            }
                            (Some(Purpose::Steer(done)), result) => {
                                let _ = done.send(result.map(|_| ()).map_err(|e| ControlError::Refused(e.0)));
                            }
                            (Some(Purpose::Interrupt) | None, _) => {}
                        }
                    }
                }
            },
            Some((id, shape, record)) = asks.next(), if !asks.is_empty() => {
                writer.reply(id, ask::reply(&shape, record.decision)).await;
                approvals.push(record);
            },
            steer = next_steer(&mut steering), if steering.is_some() => {
                let Some(Steer { message, done }) = steer else {
                    steering = None;
                    continue;
                };
                match (&tr.thread_id, &tr.turn_id, stop.is_some()) {
                    (Some(thread), Some(turn), false) => {
                        let id = writer.request("turn/steer", json!({
                            "threadId": thread, "expectedTurnId": turn,
                            "input": [{"type": "text", "text": message}],
                        })).await;
                        waiting.insert(id, Purpose::Steer(done));
                    }
                    (_, _, true) => { let _ = done.send(Err(ControlError::Stopping)); }
                    _ => { let _ = done.send(Err(ControlError::NoTurn)); }
                }
            },
            exited = child.wait(), if status.is_none() => {
                status = exited.ok();
                if status.is_none() { break; }
                // What the server flushed before it went is read for a moment more; a
                // grandchild holding its stdout does not keep the run open.
                if grace.is_none() {
                    grace = Some(Box::pin(tokio::time::sleep(super::exec::DRAIN_AFTER_EXIT)));
                }
            },
        }
        // A stop asked for just now: interrupt the turn, give it `kill_grace` to end.
        if stop.is_some() && grace.is_none() {
            match (&tr.thread_id, &tr.turn_id) {
                (Some(thread), Some(turn)) => {
                    let id = writer
                        .request(
                            "turn/interrupt",
                            json!({"threadId": thread, "turnId": turn}),
                        )
                        .await;
                    waiting.insert(id, Purpose::Interrupt);
                    grace = Some(Box::pin(tokio::time::sleep(config.kill_grace)));
                }
                _ => break,
            }
        }
    }
    drop(asks);
    // Done: the server ends once stdin closes; whatever is left is terminated.
    writer.close();
    if status.is_none() {
        status = match tokio::time::timeout(config.kill_grace, child.wait()).await {
            Ok(s) => s.ok(),
            Err(_) => terminate(&mut child, &group, config.kill_grace).await,
        };
    }
    group.signal(Signal::SIGKILL);
    let (stderr, sandbox_refused) = spawn::stderr_of(stderr_task).await;
    if let Some(e) = spawn::supervised_spawn_failure(config, status, &stderr) {
        return Err(e);
    }
    let stderr = strip_backtraces(&stderr);
    for warning in warnings {
        fold.event(&crate::codex::ThreadEvent::ItemCompleted {
            item: crate::codex::ThreadItem {
                id: String::new(),
                details: crate::codex::events::ItemDetails::Error { message: warning },
            },
        });
    }
    let incomplete = incomplete.or_else(|| {
        Some(match tr.ended.as_deref() {
            Some("interrupted") => "the turn was interrupted (an approval answered `cancel`, or Codex stopped it); partial output is kept".to_owned(),
            Some(other) => format!("the turn ended `{other}`"),
            None => format!(
                "Codex's app-server ended before the turn completed ({}): {}",
                status.map_or_else(|| "exit status unknown".to_owned(), |s| s.to_string()),
                stderr_reason(&stderr, &[])
            ),
        })
    });
    Ok(fold.finish(Finish {
        status,
        stop,
        stderr,
        sandbox_refused,
        argv: std::iter::once(config.program.as_os_str())
            .chain(plan.args.iter().map(|a| a.as_os_str()))
            .map(|a| a.to_string_lossy().into_owned())
            .collect(),
        duration: started.elapsed(),
        timeout: spec.timeout,
        view,
        diff: tr.diff.take(),
        approvals,
        incomplete,
    }))
}

async fn next_steer(rx: &mut Option<tokio::sync::mpsc::Receiver<Steer>>) -> Option<Steer> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}
