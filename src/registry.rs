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
//! `TWOBOT_MAX_RUNS` runs, and a finished run is forgotten `TWOBOT_TASK_TTL_SEC` after it
//! ended. A run is a normal job-stack call (policy, admission, runner), so it is tracked
//! for shutdown like any other.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use schemars::JsonSchema;
use serde::Serialize;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::job::{CallContext, Principal, RunOutput, RunRequest, ToolCall};
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
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            background: false,
            tasks: true,
            ttl: Duration::from_secs(6 * 3600),
            max_runs: 256,
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
        principal: Principal,
        owner: String,
        request_id: Option<String>,
        shutdown: &CancellationToken,
    ) -> Result<Result<RunSnapshot, String>, RegistryError> {
        self.prune();
        let id = uuid::Uuid::new_v4().to_string();
        let (outcome, mut watch_rx) = watch::channel(Outcome::Working);
        let created_at = now_rfc3339();
        let entry = Arc::new(Entry {
            owner,
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
        {
            let mut runs = self
                .runs
                .lock()
                .map_err(|_| RegistryError::Full(self.config.max_runs))?;
            if runs.len() >= self.config.max_runs {
                return Err(RegistryError::Full(self.config.max_runs));
            }
            runs.insert(id.clone(), entry.clone());
        }

        let (progress_tx, mut progress_rx) = tokio::sync::mpsc::channel::<String>(64);
        let call = ToolCall {
            request,
            ctx: CallContext {
                principal,
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
