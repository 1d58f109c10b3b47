//! Instances of one service talking to each other: a live run's `get_codex_run`,
//! `cancel_codex_run`, `steer_codex_run` and the run card's `answer_codex_approval`
//! reach the instance that holds it.
//!
//! A run is a process on one host (see docs/scaling.md), so a follow-up that lands on
//! another instance (a load balancer without sticky sessions) is forwarded: the run's
//! row names its instance, that instance's row its internal address
//! (`TWOBOT_INSTANCE_URL`), and [`Peers::forward`] sends the tool's arguments there with
//! the caller's owner key, signed ([`sign`]) with the secret all instances share
//! (`TWOBOT_INSTANCE_SECRET`). The holder checks the signature, then the owner, exactly
//! as for its own callers; its answer is relayed unchanged.
//!
//! A resume of a thread whose Codex home is on another instance is forwarded the same
//! way ([`Action::Run`], with the caller's principal): the holder admits and runs it.
//!
//! The route is `POST /_2bot/internal/runs/{run_id}/{get|cancel|steer|answer|run}` on
//! the same listener as `/mcp`, outside the bearer-token layers (a caller's token is no
//! credential there) and refused without a valid signature (`http::internal`).

pub mod sign;

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::PeerSecret;
use crate::run::Principal;
use crate::state::{StateStore, now_ms};

/// Where the internal routes live.
pub const PREFIX: &str = "/_2bot/internal/runs";

/// What a forwarded call asks of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// `get_codex_run`.
    Get,
    /// `cancel_codex_run`.
    Cancel,
    /// `steer_codex_run`.
    Steer,
    /// `answer_codex_approval`: a person's click in the run card, which any instance
    /// behind the balancer may receive; the approval waits (with its token) where the
    /// run is.
    Answer,
    /// `run_codex_prompt` or `ask_codex` resuming a thread this instance holds.
    Run,
    /// `tasks/get` of a task held there: the task as the holder shows it (progress,
    /// approvals waiting for a person), not the last row in the store.
    Task,
}

impl Action {
    /// The path segment.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "get",
            Self::Cancel => "cancel",
            Self::Steer => "steer",
            Self::Answer => "answer",
            Self::Run => "run",
            Self::Task => "task",
        }
    }

    /// The action a path segment names.
    pub fn parse(segment: &str) -> Option<Self> {
        Some(match segment {
            "get" => Self::Get,
            "cancel" => Self::Cancel,
            "steer" => Self::Steer,
            "answer" => Self::Answer,
            "run" => Self::Run,
            "task" => Self::Task,
            _ => return None,
        })
    }

    /// Whether the call changes the run. Such a call is refused, naming the holder,
    /// when the holder cannot be reached: nothing else can do it, and saying it was
    /// done would be a lie. Only a read may fall back to what the store knows.
    pub fn changes_the_run(self) -> bool {
        !matches!(self, Self::Get | Self::Task)
    }
}

/// The body of a forwarded call.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Forwarded {
    /// The owner key of the caller the forwarding instance authenticated: the holder
    /// answers only if it owns the run.
    pub owner: String,
    /// The tool's arguments, as the caller sent them.
    pub arguments: serde_json::Map<String, serde_json::Value>,
    /// For [`Action::Run`]: who calls, as the forwarding instance authenticated them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller: Option<ForwardedCaller>,
    /// For [`Action::Answer`]: who answers, as the forwarding instance authenticated
    /// them (the run's record names them, as it does a person answering on the holder).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
}

/// The caller of a forwarded run: the holder admits the run for it (policy, thread
/// owner, quotas) as if it had called there.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ForwardedCaller {
    /// Who is calling.
    pub principal: Principal,
    /// Whose share of the service the run uses.
    pub quota: String,
    /// `run_codex_prompt` or `ask_codex`.
    pub tool: String,
    /// A background run (answered at once with its `run_id`) rather than a direct call
    /// (answered with the result when the run ends).
    pub background: bool,
    /// An MCP task (answered at once with its first snapshot, like a background run;
    /// kept as a task there, so the caller's `tasks/get` and `tasks/cancel` find it).
    #[serde(default)]
    pub task: bool,
}

/// Why a call could not be forwarded.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// This instance has no secret, so it cannot sign.
    #[error(
        "the run is on instance {instance}, and this instance cannot reach it: TWOBOT_INSTANCE_SECRET is not set"
    )]
    NoSecret {
        /// The holder.
        instance: String,
    },
    /// The holder is gone or never said where it listens.
    #[error(
        "the run is on instance {instance}, which has no TWOBOT_INSTANCE_URL in the store (or is gone)"
    )]
    NoAddress {
        /// The holder.
        instance: String,
    },
    /// The request failed on the way.
    #[error("the run is on instance {instance} ({url}), which did not answer: {reason}")]
    Unreachable {
        /// The holder.
        instance: String,
        /// Its address.
        url: String,
        /// What failed.
        reason: String,
    },
    /// The holder refused it (a signature problem, most likely a different secret).
    #[error(
        "the run is on instance {instance} ({url}), which refused the forwarded call ({status}): {body}"
    )]
    Refused {
        /// The holder.
        instance: String,
        /// Its address.
        url: String,
        /// Its status.
        status: u16,
        /// Its explanation.
        body: String,
    },
}

/// This instance's side of forwarding.
#[derive(Debug, Clone)]
pub struct Peers {
    me: String,
    url: Option<String>,
    secret: Option<PeerSecret>,
    store: Arc<dyn StateStore>,
    client: reqwest::Client,
}

impl Peers {
    /// Forwarding from instance `me` (reached at `url`), finding the others in `store`.
    pub fn new(
        me: &str,
        url: Option<String>,
        secret: Option<PeerSecret>,
        store: Arc<dyn StateStore>,
    ) -> Self {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            // Internal addresses only; a redirect would re-send the signed body elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Self {
            me: me.to_owned(),
            url,
            secret,
            store,
            client,
        }
    }

    /// This instance's id.
    pub fn me(&self) -> &str {
        &self.me
    }

    /// This instance's internal address, if it has one.
    pub fn url(&self) -> Option<&str> {
        self.url.as_deref()
    }

    /// The secret requests to this instance must be signed with, if peering is on.
    pub fn secret(&self) -> Option<&PeerSecret> {
        self.secret.as_ref()
    }

    /// Send `action` on `run_id` to `instance`, which holds it; its `CallToolResult`
    /// JSON. `wait` is how long the holder may take (a `get_codex_run`'s `wait_sec`).
    pub async fn forward(
        &self,
        instance: &str,
        action: Action,
        run_id: &str,
        call: &Forwarded,
        wait: Duration,
    ) -> Result<serde_json::Value, PeerError> {
        let secret = self.secret.as_ref().ok_or_else(|| PeerError::NoSecret {
            instance: instance.to_owned(),
        })?;
        let no_address = || PeerError::NoAddress {
            instance: instance.to_owned(),
        };
        let url = match self.store.instance(instance).await {
            Ok(Some(row)) => row.url.ok_or_else(no_address)?,
            Ok(None) => return Err(no_address()),
            Err(e) => {
                tracing::warn!(error = %e, %instance, "the state store did not answer for an instance");
                return Err(no_address());
            }
        };
        let run = percent_encoding::utf8_percent_encode(run_id, percent_encoding::NON_ALPHANUMERIC);
        let path = format!("{PREFIX}/{run}/{}", action.as_str());
        let body = serde_json::to_vec(call).unwrap_or_default();
        let stamp = sign::Stamp {
            from: self.me.clone(),
            time_ms: now_ms(),
            nonce: uuid::Uuid::new_v4().to_string(),
        };
        let signature = sign::sign(secret.bytes(), "POST", &path, &stamp, &body);
        let unreachable = |reason: String| PeerError::Unreachable {
            instance: instance.to_owned(),
            url: url.clone(),
            reason,
        };
        let response = self
            .client
            .post(format!("{url}{path}"))
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(sign::H_PEER, &stamp.from)
            .header(sign::H_TIME, stamp.time_ms.to_string())
            .header(sign::H_NONCE, &stamp.nonce)
            .header(sign::H_SIGNATURE, signature)
            .timeout(wait + Duration::from_secs(15))
            .body(body)
            .send()
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        if !status.is_success() {
            return Err(PeerError::Refused {
                instance: instance.to_owned(),
                url,
                status: status.as_u16(),
                body: String::from_utf8_lossy(&bytes).chars().take(300).collect(),
            });
        }
        serde_json::from_slice(&bytes).map_err(|e| unreachable(format!("unreadable answer: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::Action;

    const ALL: [Action; 5] = [
        Action::Get,
        Action::Cancel,
        Action::Steer,
        Action::Answer,
        Action::Run,
    ];

    #[test]
    fn every_action_reads_back_from_its_path_segment() {
        for action in ALL {
            assert_eq!(Action::parse(action.as_str()), Some(action));
        }
        assert_eq!(Action::parse("approve"), None);
        assert_eq!(Action::parse(""), None);
    }

    #[test]
    fn only_a_get_may_be_answered_from_the_store_when_its_holder_is_unreachable() {
        let changing: Vec<Action> = ALL.into_iter().filter(|a| a.changes_the_run()).collect();
        assert_eq!(
            changing,
            [Action::Cancel, Action::Steer, Action::Answer, Action::Run]
        );
    }
}
