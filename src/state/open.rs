//! Opening the store the operator configured, and this process's place in it.
//!
//! [`open`] picks the backend; [`Instance::start`] gives the process its identity (a
//! fresh UUID per start), calls the runs of instances that died `lost` (so no run reads
//! `running` forever), and keeps a heartbeat until shutdown.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::sqlite::liveness;
use super::{InstanceRow, PostgresStore, SqliteStore, StateError, StateStore, now_ms, redact_url};

/// How often a live instance says so (and reaps the silent ones).
pub const HEARTBEAT: Duration = Duration::from_secs(5);
/// An instance silent this long is dead: its runs become `lost` (four missed beats). A
/// death is seen at the first reap after this, so within `DEAD_AFTER + HEARTBEAT` = 25 s,
/// inside the 30 s operators are promised.
pub const DEAD_AFTER: Duration = Duration::from_secs(20);

/// Where the state lives, as the operator configured it.
#[derive(Clone, PartialEq, Eq)]
pub enum Location {
    /// `state.db` in this directory (`TWOBOT_STATE_DIR`).
    Dir(PathBuf),
    /// Nowhere lasting (no state directory known): an in-memory database.
    Memory,
    /// The PostgreSQL database at this URL (`TWOBOT_DATABASE_URL`), shared by every
    /// instance of the service.
    Postgres(String),
}

// By hand: the URL holds a password.
impl std::fmt::Debug for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Dir(dir) => f.debug_tuple("Dir").field(dir).finish(),
            Self::Memory => f.write_str("Memory"),
            Self::Postgres(url) => f.debug_tuple("Postgres").field(&redact_url(url)).finish(),
        }
    }
}

/// Open the store at `location`, its schema migrated.
pub async fn open(location: &Location) -> Result<Arc<dyn StateStore>, StateError> {
    if let Location::Postgres(url) = location {
        return Ok(Arc::new(PostgresStore::connect(url).await?));
    }
    let location = location.clone();
    // Opening creates files and migrates: blocking work, off the runtime's workers.
    let store = tokio::task::spawn_blocking(move || match location {
        Location::Dir(dir) => SqliteStore::open(&dir),
        Location::Memory | Location::Postgres(_) => SqliteStore::open_in_memory(),
    })
    .await
    .map_err(|e| StateError::Connect(format!("opening the state did not finish: {e}")))??;
    Ok(Arc::new(store))
}

/// This process as the store knows it.
#[derive(Debug)]
pub struct Instance {
    id: String,
    /// Held for the process's life (SQLite in a directory): see [`liveness`].
    _lock: Option<liveness::Lock>,
}

impl Instance {
    /// Register this process in `store`: earlier instances found dead have their queued
    /// and running runs marked `lost` (kept `ttl` for their owners to read), then a
    /// heartbeat every [`HEARTBEAT`] until `stop`, which also reaps instances silent for
    /// [`DEAD_AFTER`] and forgets expired runs.
    ///
    /// `host_dir` is the state directory of this host (`TWOBOT_STATE_DIR`), where the
    /// processes sharing it hold their [`liveness`] locks. With SQLite the store's own
    /// directory is that place and a lock is required. With PostgreSQL it is taken when
    /// a directory is known, on a best-effort basis: a process restarted on the same host
    /// then calls its killed predecessor's runs lost at once instead of after
    /// [`DEAD_AFTER`], and a host without a writable directory still starts (its dead
    /// neighbours are found by their silent heartbeats, as those on other hosts are).
    pub async fn start(
        store: Arc<dyn StateStore>,
        location: &Location,
        host_dir: Option<&Path>,
        ttl: Duration,
        url: Option<String>,
        stop: CancellationToken,
    ) -> Result<Instance, StateError> {
        let id = uuid::Uuid::new_v4().to_string();
        let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        let (lock_dir, required) = match location {
            Location::Dir(dir) => (Some(dir.clone()), true),
            Location::Postgres(_) => (host_dir.map(Path::to_path_buf), false),
            Location::Memory => (None, false),
        };
        let lock = match lock_dir {
            None => None,
            Some(dir) => match dead_neighbours(dir, id.clone()).await {
                Ok((lock, dead)) => {
                    for instance in dead {
                        let lost = store.mark_lost(&instance, now_ms(), ttl_ms).await?;
                        store.drop_leases(&instance).await?;
                        if lost > 0 {
                            tracing::warn!(%instance, runs = lost, "an earlier 2Bot process ended while these runs were unfinished: they are lost");
                        }
                    }
                    Some(lock)
                }
                Err(e) if required => return Err(e),
                Err(e) => {
                    tracing::warn!(error = %e, "no instance lock in the state directory: a restart's unfinished runs are called lost only when its heartbeat times out");
                    None
                }
            },
        };
        let row = InstanceRow {
            instance: id.clone(),
            url,
            started_ms: now_ms(),
            heartbeat_ms: now_ms(),
        };
        beat(store.as_ref(), &row, ttl_ms).await?;
        tokio::spawn(heartbeats(store, row, ttl_ms, stop));
        Ok(Instance { id, _lock: lock })
    }

    /// The instance id (a UUID, new at every start).
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// Take this process's lock in `dir` and name the processes of that directory that are
/// gone (blocking file work, off the runtime's workers).
async fn dead_neighbours(
    dir: PathBuf,
    me: String,
) -> Result<(liveness::Lock, Vec<String>), StateError> {
    tokio::task::spawn_blocking(move || {
        let lock = liveness::hold(&dir, &me)?;
        Ok::<_, StateError>((lock, liveness::dead(&dir, &me)?))
    })
    .await
    .map_err(|e| StateError::Connect(format!("instance lock: {e}")))?
}

/// One heartbeat: say this instance lives, reap the silent ones, forget expired runs.
async fn beat(store: &dyn StateStore, row: &InstanceRow, ttl_ms: i64) -> Result<(), StateError> {
    let now = now_ms();
    let row = InstanceRow {
        heartbeat_ms: now,
        ..row.clone()
    };
    store.heartbeat(&row).await?;
    let dead_after = i64::try_from(DEAD_AFTER.as_millis()).unwrap_or(i64::MAX);
    for instance in store
        .reap_dead_instances(now - dead_after, now, ttl_ms)
        .await?
    {
        tracing::warn!(%instance, "a 2Bot instance stopped answering: its unfinished runs are lost");
        store.drop_leases(&instance).await?;
    }
    // This instance's runs keep their share of their principals' quotas one more period.
    store
        .renew_leases(&row.instance, now + dead_after, now)
        .await?;
    store.delete_expired_runs(now).await?;
    Ok(())
}

async fn heartbeats(
    store: Arc<dyn StateStore>,
    row: InstanceRow,
    ttl_ms: i64,
    stop: CancellationToken,
) {
    let mut every = tokio::time::interval(HEARTBEAT);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    every.tick().await;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = every.tick() => {}
        }
        if let Err(e) = beat(store.as_ref(), &row, ttl_ms).await {
            tracing::warn!(error = %e, "state heartbeat failed; retrying");
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::state::{RunRow, RunState};

    fn running(id: &str, instance: &str) -> RunRow {
        RunRow {
            run_id: id.into(),
            owner: "local".into(),
            quota_key: "local".into(),
            instance: instance.into(),
            state: RunState::Running,
            created_ms: 1,
            updated_ms: 1,
            ended_ms: None,
            expires_ms: None,
            snapshot: None,
        }
    }

    /// A process that died (its lock free) loses its runs at the next start at once; a
    /// live neighbour on the same directory (its lock held) keeps them.
    #[tokio::test]
    async fn a_start_loses_the_runs_of_dead_processes_only() {
        let dir = tempfile::tempdir().unwrap();
        let location = Location::Dir(dir.path().to_owned());
        let store = open(&location).await.unwrap();
        drop(liveness::hold(dir.path(), "dead").unwrap());
        let _alive = liveness::hold(dir.path(), "alive").unwrap();
        for (run, instance) in [("r-dead", "dead"), ("r-alive", "alive")] {
            store.upsert_run(&running(run, instance)).await.unwrap();
        }
        let stop = CancellationToken::new();
        let me = Instance::start(
            store.clone(),
            &location,
            None,
            Duration::from_secs(60),
            None,
            stop.clone(),
        )
        .await
        .unwrap();
        let state = |r: Option<RunRow>| r.unwrap().state;
        assert_eq!(state(store.run("r-dead", 0).await.unwrap()), RunState::Lost);
        assert_eq!(
            state(store.run("r-alive", 0).await.unwrap()),
            RunState::Running
        );
        let row = store.instance(me.id()).await.unwrap().unwrap();
        assert!(row.heartbeat_ms > 0);
        stop.cancel();
    }

    #[tokio::test]
    async fn without_a_directory_the_state_is_in_memory() {
        let store = open(&Location::Memory).await.unwrap();
        assert_eq!(store.kind(), crate::state::BackendKind::Sqlite);
        let me = Instance::start(
            store.clone(),
            &Location::Memory,
            None,
            Duration::from_secs(1),
            None,
            CancellationToken::new(),
        )
        .await
        .unwrap();
        assert!(store.instance(me.id()).await.unwrap().is_some());
    }
}
