//! The run lifecycle as the binary assembles it from a validated [`Config`]: the state
//! store and this process's instance in it, the thread record (the old `threads.jsonl`
//! moved in), the peers of a shared store, the audit log and the metrics listener. Both
//! transports serve the same [`Runs`], so this is done once, here, rather than in
//! `main.rs`; each failure is one [`AssembleError`] that `main` prints and exits 2 on.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::{Interaction, Observer, Runs};
use crate::audit::{AuditLog, OpenError};
use crate::config::Config;
use crate::peer::Peers;
use crate::run_queue::{QueueLimits, RunQueue};
use crate::state::{Instance, Lasting, Location, StateError};
use crate::thread_owners::{MigrateError, ThreadOwners};

/// Why the run lifecycle cannot be assembled; one line on stderr, exit code 2.
#[derive(Debug, thiserror::Error)]
pub enum AssembleError {
    /// The state store (or this instance's place in it) cannot be opened.
    #[error("{var}: the state store cannot be opened: {source}")]
    State {
        /// The variable that names the store.
        var: &'static str,
        /// What failed.
        source: StateError,
    },
    /// The old `threads.jsonl` cannot be moved into the state store.
    #[error("TWOBOT_STATE_DIR: threads.jsonl cannot be moved into the state store: {0}")]
    Threads(#[source] MigrateError),
    /// The audit log cannot be opened (its error names the variable).
    #[error(transparent)]
    Audit(#[from] OpenError),
    /// The metrics listener cannot bind.
    #[error("TWOBOT_METRICS_ADDR: cannot listen on {addr}: {source}")]
    Metrics {
        /// The address asked for.
        addr: SocketAddr,
        /// Why it cannot be bound.
        source: std::io::Error,
    },
}

/// The run lifecycle both transports share, over `config`; the metrics listener and the
/// instance's heartbeat stop with `shutdown`.
pub async fn assemble(
    config: &Config,
    shutdown: &CancellationToken,
) -> Result<Runs, AssembleError> {
    let (lasting, threads) = lasting(config, shutdown).await?;
    // Only a shared store has other instances to reach.
    let peers = config.database_url.is_some().then(|| {
        let (me, store) = (lasting.instance.id(), lasting.store.clone());
        let url = config.peers.url.clone();
        Peers::new(me, url, config.peers.secret.clone(), store)
    });
    let audit = match &config.audit_log {
        Some(path) => {
            let log = Arc::new(AuditLog::open(
                path,
                config.audit_prompts,
                config.audit_limits,
                || {
                    crate::metrics::metrics().audit_write_failures.inc();
                },
            )?);
            log.reopen_on_sighup();
            Some(log)
        }
        None => None,
    };
    if let Some(addr) = config.metrics_addr {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| AssembleError::Metrics { addr, source })?;
        let local = listener.local_addr().unwrap_or(addr);
        tracing::info!(url = %format!("http://{local}/metrics"), "serving metrics");
        tokio::spawn(crate::metrics::serve(listener, shutdown.clone()));
    }
    Ok(Runs::new(
        config.policy.clone(),
        Arc::new(threads),
        lasting,
        RunQueue::new(QueueLimits::of(config.limits, config.per_principal)),
        config.runs,
        config.runner.clone(),
        Observer::new(audit),
    )
    .with_interaction(Interaction {
        approval_timeout: config.approval_timeout,
        ask_tool: config.enable_ask_tool,
    })
    .with_peers_if(peers))
}

/// The state store (PostgreSQL, SQLite in the state directory, else in memory), this
/// process's instance in it (earlier dead ones' runs marked lost), and the thread record,
/// with the old `threads.jsonl` moved in.
async fn lasting(
    config: &Config,
    shutdown: &CancellationToken,
) -> Result<(Lasting, ThreadOwners), AssembleError> {
    let location = match (&config.database_url, &config.state_dir) {
        (Some(url), _) => Location::Postgres(url.clone()),
        (None, Some(dir)) => Location::Dir(dir.clone()),
        (None, None) => {
            tracing::warn!(
                "no TWOBOT_STATE_DIR and no HOME: thread owners and finished runs are kept in memory only"
            );
            Location::Memory
        }
    };
    let var = match location {
        Location::Postgres(_) => "TWOBOT_DATABASE_URL",
        Location::Dir(_) | Location::Memory => "TWOBOT_STATE_DIR",
    };
    let failed = |source| AssembleError::State { var, source };
    let store = crate::state::open(&location).await.map_err(failed)?;
    let instance = Instance::start(
        store.clone(),
        &location,
        config.state_dir.as_deref(),
        config.runs.ttl,
        config.peers.url.clone(),
        shutdown.clone(),
    )
    .await
    .map_err(failed)?;
    let instance = Arc::new(instance);
    tracing::info!(instance = instance.id(), backend = %store.kind(), "state store open");
    let lasting = Lasting { store, instance };
    let env = crate::runner::env::child_env(std::env::vars_os(), &config.runner.env, None);
    let codex_home = crate::model_endpoint::codex_home(&env)
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let threads = ThreadOwners::new(lasting.clone(), codex_home);
    if let Some(dir) = &config.state_dir {
        threads.migrate(dir).await.map_err(AssembleError::Threads)?;
    }
    Ok((lasting, threads))
}
