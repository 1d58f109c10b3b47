//! Runs that outlive the request that started them.
//!
//! Many MCP clients (ChatGPT among them) give up on a tool call after about a minute;
//! Codex runs take longer. Two front doors lead here, and this one registry serves both:
//! MCP tasks (a task-capable client's `tools/call` answered with a task, followed with
//! `tasks/get`, stopped with `tasks/cancel`) and, for clients without tasks, background
//! runs (`background=true`, then `get_codex_run` and `cancel_codex_run`).
//!
//! Each run belongs to an owner (the principal that started it, as the MCP layer names
//! it; anyone else is told it does not exist), the registry holds at most
//! `TWOBOT_MAX_RUNS` runs, at most `TWOBOT_MAX_RUNS_PER_PRINCIPAL` of them per principal
//! (so one principal cannot take every place), and a finished run is forgotten
//! `TWOBOT_TASK_TTL_SEC` after it ended. When there is no room, finished runs make room
//! before anyone is refused: the caller's own oldest first, then (registry full) the
//! oldest finished run of anyone; only running runs are never evicted ([`make_room`]). A run is a normal job-stack call (policy, run queue, runner), so it is tracked
//! for shutdown like any other.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use schemars::JsonSchema;
use serde::Serialize;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::job::{CallContext, Principal, QuotaKey, RunOutput, RunRequest, ToolCall};
use crate::tool::ToolService;

/// Progress messages kept per run (the latest ones).
const PROGRESS_KEPT: usize = 50;
/// How long `start` waits for an immediate answer (a policy refusal, "busy").
const IMMEDIATE: Duration = Duration::from_millis(250);

/// Operator settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegistryConfig {
    /// Whether clients may start background runs.
    pub background: bool,
    /// Whether task-capable clients get their calls run as MCP tasks.
    pub tasks: bool,
    /// How long a finished run stays fetchable.
    pub ttl: Duration,
    /// Runs kept at once.
    pub max_runs: usize,
    /// Runs kept at once per principal.
    pub max_runs_per_principal: usize,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            background: false,
            tasks: true,
            ttl: Duration::from_secs(6 * 3600),
            max_runs: 256,
            max_runs_per_principal: 64,
        }
    }
}

/// Where a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Codex is working (or the run waits for a slot).
    Working,
    /// Codex finished its turn (`result.ok` is true).
    Completed,
    /// The run ended without a completed turn (see `result.error` or `error`).
    Failed,
    /// Cancelled by the caller or the server.
    Cancelled,
}

/// What `get_codex_run` and `cancel_codex_run` return.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct RunSnapshot {
    /// The run's id.
    pub run_id: String,
    /// Where it stands.
    pub status: RunStatus,
    /// Milliseconds since the run started.
    pub elapsed_ms: u64,
    /// Start time, seconds since the Unix epoch.
    pub started_at: u64,
    /// The latest progress messages, oldest first.
    pub progress: Vec<String>,
    /// Why the run could not run at all (refused, busy, Codex not startable).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The full result, once finished: the same as a direct `run_codex_prompt` call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<RunOutput>,
}

/// Why a registry operation failed; the message is for the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// Background runs are off.
    #[error(
        "background runs are disabled on this server (TWOBOT_ENABLE_BACKGROUND_RUNS=false); call without background"
    )]
    Disabled,
    /// The registry is full.
    #[error(
        "too many runs: this server keeps at most {0} (TWOBOT_MAX_RUNS); fetch or cancel finished runs, or wait for them to expire"
    )]
    Full(usize),
    /// This principal keeps its maximum of running runs.
    #[error(
        "quota exceeded: this caller already keeps {0} running runs and tasks, its share of the server \
         (TWOBOT_MAX_RUNS_PER_PRINCIPAL); its finished runs were evicted first; wait for a run to end or cancel one"
    )]
    PrincipalFull(usize),
    /// Task-capable clients' calls run directly on this server.
    #[error("MCP tasks are disabled on this server (TWOBOT_ENABLE_TASKS=false)")]
    TasksDisabled,
    /// No such run for this caller (or it expired).
    #[error(
        "no run {0:?} for this caller; it may have expired (TWOBOT_TASK_TTL_SEC) or belong to someone else"
    )]
    NotFound(String),
}

#[derive(Debug, Clone)]
enum Outcome {
    Working,
    Done(Box<RunOutput>),
    Error(String),
}

#[derive(Debug)]
struct Entry {
    owner: String,
    quota_key: QuotaKey,
    started: Instant,
    started_at: u64,
    /// RFC 3339 creation and last-change times (MCP tasks report them).
    created_at: String,
    updated_at: Mutex<String>,
    cancel: CancellationToken,
    outcome: watch::Sender<Outcome>,
    progress: Mutex<VecDeque<String>>,
    finished: Mutex<Option<Instant>>,
    cancel_requested: std::sync::atomic::AtomicBool,
}

impl Entry {
    fn snapshot(&self, id: &str) -> RunSnapshot {
        let outcome = self.outcome.borrow().clone();
        let cancelled = self
            .cancel_requested
            .load(std::sync::atomic::Ordering::Relaxed);
        let (status, error, result) = match outcome {
            Outcome::Working => (RunStatus::Working, None, None),
            Outcome::Error(e) => (RunStatus::Failed, Some(e), None),
            Outcome::Done(out) => {
                let status = if out.ok {
                    RunStatus::Completed
                } else if out.cancelled || cancelled {
                    RunStatus::Cancelled
                } else {
                    RunStatus::Failed
                };
                (status, None, Some(*out))
            }
        };
        RunSnapshot {
            run_id: id.to_owned(),
            status,
            elapsed_ms: u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX),
            started_at: self.started_at,
            progress: self
                .progress
                .lock()
                .map(|p| p.iter().cloned().collect())
                .unwrap_or_default(),
            error,
            result,
        }
    }

    fn request_cancel(&self) {
        self.cancel_requested
            .store(true, std::sync::atomic::Ordering::Relaxed);
        self.cancel.cancel();
        self.touch();
    }

    fn touch(&self) {
        if let Ok(mut at) = self.updated_at.lock() {
            *at = now_rfc3339();
        }
    }
}

/// A run as an MCP task sees it: the snapshot plus its RFC 3339 times.
#[derive(Debug, Clone)]
pub struct RunView {
    /// Status, progress and result.
    pub snapshot: RunSnapshot,
    /// When the run was created.
    pub created_at: String,
    /// When its status or progress last changed.
    pub updated_at: String,
}

fn now_rfc3339() -> String {
    rmcp::task_manager::current_timestamp()
}

/// The registry of background runs.
#[derive(Debug)]
pub struct RunRegistry {
    config: RegistryConfig,
    runs: Mutex<HashMap<String, Arc<Entry>>>,
}

impl RunRegistry {
    /// An empty registry.
    pub fn new(config: RegistryConfig) -> Self {
        Self {
            config,
            runs: Mutex::default(),
        }
    }

    /// The operator's settings.
    pub fn config(&self) -> RegistryConfig {
        self.config
    }

    /// Runs held now (after forgetting expired ones).
    pub fn len(&self) -> usize {
        self.prune();
        self.runs.lock().map(|r| r.len()).unwrap_or(0)
    }

    /// Whether no run is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn prune(&self) {
        let ttl = self.config.ttl;
        if let Ok(mut runs) = self.runs.lock() {
            runs.retain(|_, e| {
                e.finished
                    .lock()
                    .ok()
                    .and_then(|f| *f)
                    .is_none_or(|at| at.elapsed() < ttl)
            });
        }
    }

    /// Register `entry` as `id`, evicting finished runs to make room (see [`make_room`]).
    fn insert(&self, id: String, entry: Arc<Entry>) -> Result<(), RegistryError> {
        let full = RegistryError::Full(self.config.max_runs);
        let mut runs = self.runs.lock().map_err(|_| full.clone())?;
        let kept: Vec<Kept<'_>> = runs
            .iter()
            .map(|(id, e)| Kept {
                id: id.as_str(),
                quota_key: &e.quota_key,
                finished: e.finished.lock().ok().and_then(|f| *f),
            })
            .collect();
        let evict = make_room(
            &kept,
            &entry.quota_key,
            self.config.max_runs,
            self.config.max_runs_per_principal,
        )?;
        let evict: Vec<String> = evict.into_iter().map(str::to_owned).collect();
        for old in &evict {
            runs.remove(old);
        }
        if !evict.is_empty() {
            tracing::info!(evicted = evict.len(), quota_key = %entry.quota_key, "finished runs evicted to make room");
        }
        runs.insert(id, entry);
        Ok(())
    }

    fn get(&self, id: &str, owner: &str) -> Result<Arc<Entry>, RegistryError> {
        self.prune();
        self.runs
            .lock()
            .ok()
            .and_then(|r| r.get(id).cloned())
            .filter(|e| e.owner == owner)
            .ok_or_else(|| RegistryError::NotFound(id.to_owned()))
    }

    /// Start `request` through `tools` in the background, owned by `owner`. An immediate
    /// refusal (policy, busy) comes back as `Err(reason)` inside `Ok`, and registers nothing.
    pub async fn start(
        self: &Arc<Self>,
        tools: ToolService,
        request: RunRequest,
        caller: RunCaller,
        shutdown: &CancellationToken,
    ) -> Result<Result<RunSnapshot, String>, RegistryError> {
        let RunCaller {
            principal,
            quota_key,
            owner,
            request_id,
        } = caller;
        self.prune();
        let id = uuid::Uuid::new_v4().to_string();
        let (outcome, mut watch_rx) = watch::channel(Outcome::Working);
        let created_at = now_rfc3339();
        let entry = Arc::new(Entry {
            owner,
            quota_key: quota_key.clone(),
            started: Instant::now(),
            updated_at: Mutex::new(created_at.clone()),
            created_at,
            started_at: SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            cancel: shutdown.child_token(),
            outcome,
            progress: Mutex::default(),
            finished: Mutex::new(None),
            cancel_requested: std::sync::atomic::AtomicBool::new(false),
        });
        self.insert(id.clone(), entry.clone())?;

        let (progress_tx, mut progress_rx) = tokio::sync::mpsc::channel::<String>(64);
        let call = ToolCall {
            request,
            ctx: CallContext {
                principal,
                quota_key,
                request_id,
                cancel: entry.cancel.clone(),
                progress: Some(progress_tx),
            },
        };
        let runner_entry = entry.clone();
        tokio::spawn(async move {
            let collect = {
                let entry = runner_entry.clone();
                async move {
                    while let Some(message) = progress_rx.recv().await {
                        if let Ok(mut p) = entry.progress.lock() {
                            if p.len() == PROGRESS_KEPT {
                                p.pop_front();
                            }
                            p.push_back(message);
                        }
                        entry.touch();
                    }
                }
            };
            let (result, ()) = tokio::join!(tools.oneshot(call), collect);
            let outcome = match result {
                Ok(out) => Outcome::Done(Box::new(out)),
                Err(e) => Outcome::Error(e.to_string()),
            };
            if let Ok(mut f) = runner_entry.finished.lock() {
                *f = Some(Instant::now());
            }
            runner_entry.touch();
            runner_entry.outcome.send_replace(outcome);
        });

        // Refusals and "busy" are ready at once: answer them as a direct call would.
        if tokio::time::timeout(
            IMMEDIATE,
            watch_rx.wait_for(|o| !matches!(o, Outcome::Working)),
        )
        .await
        .is_ok()
            && let Outcome::Error(_) = &*watch_rx.borrow()
        {
            if let Ok(mut runs) = self.runs.lock() {
                runs.remove(&id);
            }
            return Ok(Err(entry.snapshot(&id).error.unwrap_or_default()));
        }
        Ok(Ok(entry.snapshot(&id)))
    }

    /// The run's state, waiting up to `wait` for it to finish.
    pub async fn wait(
        &self,
        id: &str,
        owner: &str,
        wait: Duration,
        cancel: &CancellationToken,
    ) -> Result<RunSnapshot, RegistryError> {
        let entry = self.get(id, owner)?;
        let mut rx = entry.outcome.subscribe();
        tokio::select! {
            _ = tokio::time::timeout(wait, rx.wait_for(|o| !matches!(o, Outcome::Working))) => {}
            () = cancel.cancelled() => {}
        }
        Ok(entry.snapshot(id))
    }

    /// The run's state now, with its times.
    pub fn view(&self, id: &str, owner: &str) -> Result<RunView, RegistryError> {
        let entry = self.get(id, owner)?;
        Ok(RunView {
            snapshot: entry.snapshot(id),
            created_at: entry.created_at.clone(),
            updated_at: entry
                .updated_at
                .lock()
                .map(|at| at.clone())
                .unwrap_or_default(),
        })
    }

    /// Ask the run to stop (its whole process group is killed) without waiting for it.
    pub fn request_cancel(&self, id: &str, owner: &str) -> Result<(), RegistryError> {
        self.get(id, owner)?.request_cancel();
        Ok(())
    }

    /// Cancel the run (its whole process group is killed) and wait briefly for it to end.
    pub async fn cancel(&self, id: &str, owner: &str) -> Result<RunSnapshot, RegistryError> {
        let entry = self.get(id, owner)?;
        entry.request_cancel();
        let mut rx = entry.outcome.subscribe();
        let _ = tokio::time::timeout(
            Duration::from_secs(10),
            rx.wait_for(|o| !matches!(o, Outcome::Working)),
        )
        .await;
        Ok(entry.snapshot(id))
    }
}

/// Who starts a run: the principal, whose share it takes, who may see it, and the request.
#[derive(Debug, Clone)]
pub struct RunCaller {
    /// Who asked.
    pub principal: Principal,
    /// Whose share of the registry and the queue it takes.
    pub quota_key: QuotaKey,
    /// Who may follow and cancel it.
    pub owner: String,
    /// The HTTP request id, if any.
    pub request_id: Option<String>,
}

/// A kept run as [`make_room`] sees it.
#[derive(Debug, Clone, Copy)]
pub struct Kept<'a> {
    /// The run's id.
    pub id: &'a str,
    /// Whose share it counts against.
    pub quota_key: &'a QuotaKey,
    /// When it finished (`None`: still running).
    pub finished: Option<Instant>,
}

/// Which kept runs to evict so that `caller` may start one more, or why it may not.
///
/// Only finished runs are ever evicted, oldest first. The caller's own go first: over its
/// quota it can only make room from its own; when the whole registry is full, its own
/// go first and then anyone's, because refusing a caller while results nobody fetched
/// sit there would let one principal's finished runs lock everyone else out.
pub fn make_room<'a>(
    kept: &[Kept<'a>],
    caller: &QuotaKey,
    max_runs: usize,
    max_per_principal: usize,
) -> Result<Vec<&'a str>, RegistryError> {
    let mut finished: Vec<&Kept<'a>> = kept.iter().filter(|k| k.finished.is_some()).collect();
    finished.sort_by_key(|k| k.finished);
    let (mine, others): (Vec<&Kept<'a>>, Vec<&Kept<'a>>) =
        finished.into_iter().partition(|k| k.quota_key == caller);
    let mut evict: Vec<&'a str> = Vec::new();

    let held = kept.iter().filter(|k| k.quota_key == caller).count();
    let over_quota = (held + 1).saturating_sub(max_per_principal);
    if over_quota > mine.len() {
        return Err(RegistryError::PrincipalFull(max_per_principal));
    }
    evict.extend(mine.iter().take(over_quota).map(|k| k.id));

    let total = kept.len() - evict.len();
    let over_total = (total + 1).saturating_sub(max_runs);
    let candidates = mine.iter().skip(over_quota).chain(others.iter());
    let more: Vec<&'a str> = candidates.take(over_total).map(|k| k.id).collect();
    if more.len() < over_total {
        return Err(RegistryError::Full(max_runs));
    }
    evict.extend(more);
    Ok(evict)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn finished_runs_make_room_the_callers_own_first_and_running_runs_never() {
        let t0 = Instant::now();
        let at = |s: u64| Some(t0 + Duration::from_secs(s));
        let a = QuotaKey("a".into());
        let b = QuotaKey("b".into());
        let run = |id: &'static str, key: &'static QuotaKey, finished| Kept {
            id,
            quota_key: key,
            finished,
        };
        // Leaked for 'static keys in the table.
        let a: &'static QuotaKey = Box::leak(Box::new(a));
        let b: &'static QuotaKey = Box::leak(Box::new(b));
        type Want = Result<Vec<&'static str>, RegistryError>;
        type Case = (
            &'static str,
            Vec<Kept<'static>>,
            &'static QuotaKey,
            usize,
            usize,
            Want,
        );
        let table: Vec<Case> = vec![
            (
                "room: nothing evicted",
                vec![run("a1", a, None)],
                a,
                4,
                2,
                Ok(vec![]),
            ),
            (
                "over its quota, the caller's oldest finished run goes",
                vec![
                    run("a1", a, at(5)),
                    run("a2", a, at(1)),
                    run("b1", b, at(0)),
                ],
                a,
                10,
                2,
                Ok(vec!["a2"]),
            ),
            (
                "over its quota with only running runs: refused with the quota",
                vec![run("a1", a, None), run("a2", a, None), run("b1", b, at(0))],
                a,
                10,
                2,
                Err(RegistryError::PrincipalFull(2)),
            ),
            (
                "registry full: the caller's own finished run goes before anyone else's",
                vec![run("a1", a, at(9)), run("b1", b, at(1)), run("b2", b, None)],
                a,
                3,
                3,
                Ok(vec!["a1"]),
            ),
            (
                "registry full, caller has none finished: the oldest finished run goes",
                vec![run("a1", a, None), run("b1", b, at(7)), run("b2", b, at(3))],
                b,
                3,
                3,
                Ok(vec!["b2"]),
            ),
            (
                "registry full of another principal's finished runs: one goes, the newcomer is served",
                vec![run("a1", a, at(7)), run("a2", a, at(3))],
                b,
                2,
                2,
                Ok(vec!["a2"]),
            ),
            (
                "registry full of running runs: refused as full",
                vec![run("a1", a, None), run("b1", b, None)],
                b,
                2,
                2,
                Err(RegistryError::Full(2)),
            ),
        ];
        for (name, kept, caller, max, per, want) in table {
            assert_eq!(make_room(&kept, caller, max, per), want, "{name}");
        }
    }
}
