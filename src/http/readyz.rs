//! `/readyz`: whether Codex can be started at all, for load balancers and orchestrators.
//! The probe starts Codex exactly as a run does and its answer is cached, so probes
//! cannot fork-bomb the host.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::response::{IntoResponse, Json};
use http::StatusCode;
use serde_json::json;

/// `/readyz`: the Codex binary answers `--version`; cached so probes cannot fork-bomb us.
/// Started exactly as a run starts Codex (`runner::spawn`): supervisor, Codex user,
/// scrubbed environment.
pub(super) struct Readiness {
    runner: Arc<crate::runner::RunnerConfig>,
    cache: tokio::sync::Mutex<Option<(Instant, Result<String, NotReady>)>>,
}

/// Why Codex is not ready; `/readyz` gives it as `reason`.
#[derive(Debug, Clone, thiserror::Error)]
enum NotReady {
    /// It ran and failed: a broken install, a wrapper script gone wrong.
    #[error("codex --version exited with {0}")]
    Exit(std::process::ExitStatus),
    /// It did not start (the supervisor's or the system's reason).
    #[error("codex not found: {0}")]
    NotFound(String),
    /// It hung; killed after the probe's 10 s.
    #[error("codex --version timed out")]
    Timeout,
}

impl Readiness {
    pub(super) fn new(runner: Arc<crate::runner::RunnerConfig>) -> Self {
        Self {
            runner,
            cache: tokio::sync::Mutex::new(None),
        }
    }

    async fn check(&self) -> Result<String, NotReady> {
        let mut cache = self.cache.lock().await;
        if let Some((at, result)) = cache.as_ref()
            && at.elapsed() < Duration::from_secs(30)
        {
            return result.clone();
        }
        let run = crate::runner::spawn::probe(
            &self.runner,
            &["--version"],
            std::path::Path::new("/"),
            Duration::from_secs(10),
        );
        let result = match run.await {
            Ok(out) if out.status.success() => {
                Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
            }
            Ok(out) => Err(NotReady::Exit(out.status)),
            Err(crate::runner::spawn::ProbeError::Start { reason, .. }) => {
                Err(NotReady::NotFound(reason))
            }
            Err(crate::runner::spawn::ProbeError::Timeout(..)) => Err(NotReady::Timeout),
        };
        *cache = Some((Instant::now(), result.clone()));
        result
    }
}

pub(super) async fn readyz(State(ready): State<Arc<Readiness>>) -> impl IntoResponse {
    match ready.check().await {
        Ok(version) => (
            StatusCode::OK,
            Json(json!({"status": "ready", "codex": version})),
        ),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "not ready", "reason": reason.to_string()})),
        ),
    }
}
