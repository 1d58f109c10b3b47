//! [`RunControl`]: the live line between a running Codex and the people around it.
//!
//! The app-server backend can ask before it runs a command or changes a file, and it can
//! take more instructions while a turn runs. Those requests start deep in the runner and
//! are answered far outside it (an MCP elicitation, the 2026-07-28 input round trip, the
//! run card, a timeout), so they meet here, in plain data below every transport: the
//! runner calls [`RunControl::ask`] and waits; a transport watches [`RunControl::changed`]
//! and answers with [`RunControl::answer`].
//!
//! Every request is answered exactly once: by a person, by the timeout, or at once when
//! nobody can be asked; never left to hang. An answer names its channel, and only the
//! transports call [`RunControl::answer`]: nothing Codex's model produces reaches it.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, oneshot, watch};

pub use super::approval::{
    Answer, ApprovalKind, ApprovalRecord, ApprovalRequest, Channel, Decision, Pending,
};

/// Why a control request could not be carried out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    /// No pending request has this id (never asked, or already answered).
    #[error("approval `{0}` is not pending (already answered, timed out, or never asked)")]
    NotPending(String),
    /// The run cannot take instructions (the exec backend, or a review run).
    #[error(
        "this run cannot be steered: steering needs TWOBOT_CODEX_BACKEND=app-server and a running turn"
    )]
    NotSteerable,
    /// The run already ended.
    #[error("the run has ended")]
    Ended,
    /// Codex refused the instructions (the app-server's message).
    #[error("Codex refused the message: {0}")]
    Refused(String),
    /// The run is being stopped: instructions would reach nobody.
    #[error("Codex refused the message: the run is stopping")]
    Stopping,
    /// No turn has started yet: there is nothing to steer.
    #[error("Codex refused the message: no turn is running yet; try again in a moment")]
    NoTurn,
}

/// Instructions for the running turn, with where to say whether Codex took them.
#[derive(Debug)]
pub struct Steer {
    /// The text to add to the turn.
    pub message: String,
    /// The runner's answer: `Ok` once Codex accepted it.
    pub done: oneshot::Sender<Result<(), ControlError>>,
}

/// How requests are answered when nobody does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControlConfig {
    /// How long a request waits for a person (`TWOBOT_APPROVAL_TIMEOUT_SEC`).
    pub approval_timeout: Duration,
    /// Whether any channel can reach a person; when not, requests are declined at once.
    pub reachable: bool,
}

impl Default for ControlConfig {
    fn default() -> Self {
        Self {
            approval_timeout: DEFAULT_APPROVAL_TIMEOUT,
            reachable: false,
        }
    }
}

/// Default of [`ControlConfig::approval_timeout`].
pub const DEFAULT_APPROVAL_TIMEOUT: Duration = Duration::from_secs(300);

/// Called once per answered request (the audit line and the metric).
pub type OnDecided = Arc<dyn Fn(&ApprovalRecord) + Send + Sync>;

/// The live line to one run. Shared (`Arc`) by the runner and every transport.
pub struct RunControl {
    config: Mutex<ControlConfig>,
    state: Mutex<State>,
    changed: watch::Sender<u64>,
    steer_tx: mpsc::Sender<Steer>,
    steer_rx: Mutex<Option<mpsc::Receiver<Steer>>>,
    on_decided: Mutex<Option<OnDecided>>,
}

#[derive(Default)]
struct State {
    next: u64,
    waiting: Vec<(Pending, oneshot::Sender<Answer>)>,
    decided: Vec<ApprovalRecord>,
    steerable: bool,
    ended: bool,
}

impl std::fmt::Debug for RunControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunControl")
            .field(
                "config",
                &*self.config.lock().unwrap_or_else(PoisonError::into_inner),
            )
            .finish_non_exhaustive()
    }
}

impl Default for RunControl {
    fn default() -> Self {
        Self::new(ControlConfig::default())
    }
}

impl RunControl {
    /// A control for one run.
    pub fn new(config: ControlConfig) -> Self {
        let (steer_tx, steer_rx) = mpsc::channel(4);
        Self {
            config: Mutex::new(config),
            state: Mutex::default(),
            changed: watch::channel(0).0,
            steer_tx,
            steer_rx: Mutex::new(Some(steer_rx)),
            on_decided: Mutex::new(None),
        }
    }

    /// Change how unanswered requests are handled (before the run starts).
    pub fn configure(&self, config: ControlConfig) {
        *self.config.lock().unwrap_or_else(PoisonError::into_inner) = config;
    }

    /// How unanswered requests are handled (for the seconds a request has left).
    pub fn config(&self) -> ControlConfig {
        *self.config.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Call `hook` for every answered request.
    pub fn on_decided(&self, hook: OnDecided) {
        *self
            .on_decided
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(hook);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn bump(&self) {
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Fires (the value changes) whenever a request is asked or answered, or the run ends.
    pub fn changed(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Requests waiting now, oldest first.
    pub fn pending(&self) -> Vec<Pending> {
        self.lock().waiting.iter().map(|(p, _)| p.clone()).collect()
    }

    /// Requests answered so far, in order.
    pub fn decided(&self) -> Vec<ApprovalRecord> {
        self.lock().decided.clone()
    }

    /// Ask a person. Resolves with the answer, the timeout's decline, or at once with a
    /// decline when nobody can be reached. Runner side.
    pub async fn ask(&self, request: ApprovalRequest) -> ApprovalRecord {
        let config = *self.config.lock().unwrap_or_else(PoisonError::into_inner);
        let asked = std::time::Instant::now();
        let (tx, rx) = oneshot::channel();
        let (id, ended) = {
            let mut state = self.lock();
            state.next += 1;
            let id = format!("a{}", state.next);
            if !state.ended && config.reachable {
                state.waiting.push((
                    Pending {
                        id: id.clone(),
                        request: request.clone(),
                        asked_at_ms: now_ms(),
                        token: token(),
                    },
                    tx,
                ));
            }
            (id, state.ended)
        };
        if ended || !config.reachable {
            let (channel, note) = if ended {
                (Channel::RunEnded, "declined: the run has ended")
            } else {
                (
                    Channel::Unreachable,
                    "declined: the client offers no way to ask a person (no elicitation, no input round trip, no run card, not a background run)",
                )
            };
            let answer = Answer {
                decision: Decision::Decline,
                channel,
                by: None,
                note: None,
            };
            return self.record(id, request, answer, Some(note.to_owned()), asked.elapsed());
        }
        self.bump();
        let guard = Withdraw {
            control: self,
            id: id.clone(),
        };
        let answer = tokio::time::timeout(config.approval_timeout, rx).await;
        drop(guard);
        let (answer, note) = match answer {
            Ok(Ok(answer)) => {
                let note = answer.note.clone();
                (answer, note)
            }
            Ok(Err(_)) => (
                Answer {
                    decision: Decision::Decline,
                    channel: Channel::RunEnded,
                    by: None,
                    note: None,
                },
                Some("declined: the run ended before anyone answered".to_owned()),
            ),
            Err(_) => (
                Answer {
                    decision: Decision::Decline,
                    channel: Channel::Timeout,
                    by: None,
                    note: None,
                },
                Some(format!(
                    "declined: nobody answered within {} s (TWOBOT_APPROVAL_TIMEOUT_SEC)",
                    config.approval_timeout.as_secs()
                )),
            ),
        };
        self.record(id, request, answer, note, asked.elapsed())
    }

    /// Decline `request` without asking anyone (the policy forbids what it would do);
    /// recorded, audited and counted like every answer. Runner side.
    pub fn refuse(&self, request: ApprovalRequest, note: String) -> ApprovalRecord {
        let id = {
            let mut state = self.lock();
            state.next += 1;
            format!("a{}", state.next)
        };
        let answer = Answer {
            decision: Decision::Decline,
            channel: Channel::Policy,
            by: None,
            note: None,
        };
        self.record(id, request, answer, Some(note), Duration::ZERO)
    }

    fn record(
        &self,
        id: String,
        request: ApprovalRequest,
        answer: Answer,
        note: Option<String>,
        waited: Duration,
    ) -> ApprovalRecord {
        let record = ApprovalRecord {
            id,
            request: request.kind,
            reason: request.reason,
            decision: answer.decision,
            channel: answer.channel,
            answered_by: answer.by,
            note,
            waited_ms: u64::try_from(waited.as_millis()).unwrap_or(u64::MAX),
        };
        self.lock().decided.push(record.clone());
        let hook = self
            .on_decided
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some(hook) = hook {
            hook(&record);
        }
        self.bump();
        record
    }

    /// Answer the pending request `id`. Transport side.
    pub fn answer(&self, id: &str, answer: Answer) -> Result<(), ControlError> {
        let tx = {
            let mut state = self.lock();
            let at = state
                .waiting
                .iter()
                .position(|(p, _)| p.id == id)
                .ok_or_else(|| ControlError::NotPending(id.to_owned()))?;
            state.waiting.remove(at).1
        };
        // The asker may have timed out in between: then the timeout's decline stands.
        tx.send(answer)
            .map_err(|_| ControlError::NotPending(id.to_owned()))
    }

    /// The runner takes the steering messages (once); a run whose runner never does
    /// cannot be steered.
    pub fn take_steering(&self) -> Option<mpsc::Receiver<Steer>> {
        let rx = self
            .steer_rx
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if rx.is_some() {
            self.lock().steerable = true;
        }
        rx
    }

    /// Add instructions to the running turn; resolves once Codex took (or refused) them.
    pub async fn steer(&self, message: String) -> Result<(), ControlError> {
        {
            let state = self.lock();
            if state.ended {
                return Err(ControlError::Ended);
            }
            if !state.steerable {
                return Err(ControlError::NotSteerable);
            }
        }
        let (done, rx) = oneshot::channel();
        self.steer_tx
            .send(Steer { message, done })
            .await
            .map_err(|_| ControlError::Ended)?;
        rx.await.map_err(|_| ControlError::Ended)?
    }

    /// The run ended: every waiting request is declined, and later ones are too.
    pub fn end(&self) {
        let waiting = {
            let mut state = self.lock();
            state.ended = true;
            state.steerable = false;
            std::mem::take(&mut state.waiting)
        };
        drop(waiting);
        self.bump();
    }
}

/// Takes a request out of the waiting list when its asker stops waiting (answered, timed
/// out, or dropped with its run).
struct Withdraw<'a> {
    control: &'a RunControl,
    id: String,
}

impl Drop for Withdraw<'_> {
    fn drop(&mut self) {
        let mut state = self.control.lock();
        state.waiting.retain(|(p, _)| p.id != self.id);
        drop(state);
        self.control.bump();
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// 128 random bits, hex; empty when the system has no randomness to give, and an empty
/// token is never accepted (the card then cannot answer; the other channels still can).
fn token() -> String {
    let mut bytes = [0u8; 16];
    match getrandom::fill(&mut bytes) {
        Ok(()) => bytes.iter().map(|b| format!("{b:02x}")).collect(),
        Err(_) => String::new(),
    }
}

#[cfg(test)]
#[path = "control_tests.rs"]
mod tests;
