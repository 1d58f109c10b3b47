//! Where every record that outlives a process lives: one trait, two backends.
//!
//! 2Bot's lasting state is small but must not be lost or split: who owns which Codex
//! thread (and which instance holds it), the background runs and tasks with their
//! results, and which instances are alive. One host keeps it embedded in SQLite under
//! `TWOBOT_STATE_DIR` (nothing to install); several hosts share one PostgreSQL
//! (`TWOBOT_DATABASE_URL`) and become one service. Both backends implement
//! [`StateStore`] with the same versioned migrations, and one conformance suite
//! (`tests/suite/state_conformance.rs`) runs against each, so callers never ask which one
//! they have.
//!
//! The rows are plain data: this module knows nothing of MCP, HTTP or Codex. Times are
//! milliseconds since the Unix epoch (`i64`, as both databases store them natively).
//!
//! - [`open()`] picks the backend for a [`Location`]; [`Instance`] is this process in the
//!   store (a UUID per start, a heartbeat, and the reaping of dead instances, whose
//!   queued and running runs become `lost`).
//! - [`sqlite`]: the embedded backend, [`SqliteStore`].
//! - [`postgres`]: the shared backend, [`PostgresStore`] (`TWOBOT_DATABASE_URL`; pooled,
//!   TLS per the URL's `sslmode`, migrations under an advisory lock).
//! - [`oauth`]: [`OAuthStore`], the built-in authorization server's clients, codes,
//!   grants, refresh tokens and signing keys, which every [`StateStore`] also keeps.

pub mod leases;
pub mod oauth;
mod open;
pub mod postgres;
pub mod sqlite;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use self::leases::LeaseRow;
pub use self::oauth::OAuthStore;
pub use self::open::{DEAD_AFTER, HEARTBEAT, Instance, Location, open};
pub use self::postgres::{PostgresStore, redact_url};
pub use self::sqlite::SqliteStore;

/// The store and the instance writing to it: what every writer of lasting records holds.
#[derive(Debug, Clone)]
pub struct Lasting {
    /// The store.
    pub store: std::sync::Arc<dyn StateStore>,
    /// This process in the store (it holds the process's liveness lock, so it lives as
    /// long as anything that writes).
    pub instance: std::sync::Arc<Instance>,
}

/// Now, in milliseconds since the Unix epoch (the unit of every time in the store).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Which database holds the state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BackendKind {
    /// Embedded, one file in `TWOBOT_STATE_DIR` (one instance).
    Sqlite,
    /// Shared by every instance (`TWOBOT_DATABASE_URL`).
    Postgres,
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        })
    }
}

/// Why the store could not answer.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The database could not be reached or refused the connection.
    #[error("cannot reach the state database: {0}")]
    Connect(String),
    /// A query failed.
    #[error("state database query failed: {0}")]
    Query(String),
    /// The schema is newer than this binary knows (a newer 2Bot migrated it).
    #[error(
        "the state schema is at version {found}, newer than this 2Bot knows ({known}); run the newer 2Bot or restore a backup"
    )]
    SchemaTooNew {
        /// Version found in the database.
        found: i64,
        /// Newest version this binary migrates to.
        known: i64,
    },
    /// A stored row could not be read back (a corrupt or hand-edited record).
    #[error("a stored record is unreadable: {0}")]
    Corrupt(String),
}

/// A Codex thread 2Bot started (resumable ones only: ephemeral threads are never stored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreadRow {
    /// Codex's thread id.
    pub thread_id: String,
    /// The owner key of who started it.
    pub owner: String,
    /// The instance whose Codex home holds the thread (a resume must run there).
    pub instance: String,
    /// That instance's `CODEX_HOME` (absolute path), as it started the thread.
    pub codex_home: String,
    /// When 2Bot first saw it.
    pub created_ms: i64,
}

/// Where a kept run stands in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    /// Admitted, waiting for a slot.
    Queued,
    /// Codex is running on `instance`.
    Running,
    /// Codex finished its turn.
    Completed,
    /// Ended without a completed turn.
    Failed,
    /// Cancelled by the caller or the server.
    Cancelled,
    /// Its instance died (or restarted) while it was queued or running.
    Lost,
}

impl RunState {
    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            Self::Lost => "lost",
        }
    }

    /// The state named `name` in the database.
    pub fn parse(name: &str) -> Result<Self, StateError> {
        Ok(match name {
            "queued" => Self::Queued,
            "running" => Self::Running,
            "completed" => Self::Completed,
            "failed" => Self::Failed,
            "cancelled" => Self::Cancelled,
            "lost" => Self::Lost,
            other => return Err(StateError::Corrupt(format!("unknown run state {other:?}"))),
        })
    }

    /// Whether the run is over (nothing will change it again).
    pub fn is_final(self) -> bool {
        !matches!(self, Self::Queued | Self::Running)
    }
}

/// A kept run (a background run or an MCP task).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRow {
    /// The run id callers use.
    pub run_id: String,
    /// The owner key: only this caller may see or cancel it.
    pub owner: String,
    /// Whose share of the server it counts against (the principal's quota key).
    pub quota_key: String,
    /// The instance that admitted and runs it.
    pub instance: String,
    /// Where it stands.
    pub state: RunState,
    /// When it was admitted.
    pub created_ms: i64,
    /// Last change (state or snapshot).
    pub updated_ms: i64,
    /// When it ended, once final.
    pub ended_ms: Option<i64>,
    /// When a final run is forgotten (`ended_ms` + `TWOBOT_TASK_TTL_SEC`).
    pub expires_ms: Option<i64>,
    /// What `get_codex_run` returns for it, as JSON (the final snapshot once ended).
    pub snapshot: Option<serde_json::Value>,
}

/// A live 2Bot instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceRow {
    /// Its id (stable for the process's life; a restart is a new id).
    pub instance: String,
    /// Its internal address for other instances (`TWOBOT_INSTANCE_URL`), if any.
    pub url: Option<String>,
    /// When it started.
    pub started_ms: i64,
    /// Its latest heartbeat.
    pub heartbeat_ms: i64,
}

/// The one interface to lasting state. Every method is one short transaction. The
/// built-in authorization server's records are its [`OAuthStore`] half.
#[async_trait::async_trait]
pub trait StateStore: OAuthStore + Send + Sync + fmt::Debug {
    /// Which backend this is.
    fn kind(&self) -> BackendKind;

    /// The schema version the database is at (after this binary's migrations ran).
    async fn schema_version(&self) -> Result<i64, StateError>;

    /// The record of a resumable thread.
    async fn thread(&self, thread_id: &str) -> Result<Option<ThreadRow>, StateError>;

    /// Remember a thread; the first owner wins (returns false if it was known already).
    async fn insert_thread(&self, row: &ThreadRow) -> Result<bool, StateError>;

    /// Create or replace a kept run's record.
    async fn upsert_run(&self, row: &RunRow) -> Result<(), StateError>;

    /// A kept run's record (expired ones are absent).
    async fn run(&self, run_id: &str, now_ms: i64) -> Result<Option<RunRow>, StateError>;

    /// Forget final runs whose expiry is past; returns how many.
    async fn delete_expired_runs(&self, now_ms: i64) -> Result<u64, StateError>;

    /// Mark `instance`'s queued and running runs `lost` (it restarted or died).
    async fn mark_lost(&self, instance: &str, now_ms: i64, ttl_ms: i64) -> Result<u64, StateError>;

    /// Record `row` as alive now.
    async fn heartbeat(&self, row: &InstanceRow) -> Result<(), StateError>;

    /// A live instance's record.
    async fn instance(&self, instance: &str) -> Result<Option<InstanceRow>, StateError>;

    /// Instances whose heartbeat is older than `stale_before_ms`: their runs become
    /// `lost` and they are removed. Returns their ids.
    async fn reap_dead_instances(
        &self,
        stale_before_ms: i64,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<Vec<String>, StateError>;

    /// Take a lease for one admitted run if fewer than `limit` unexpired leases hold
    /// its quota key; false at the limit ([`leases`]: race-free across instances).
    async fn acquire_lease(
        &self,
        lease: &LeaseRow,
        limit: u64,
        now_ms: i64,
    ) -> Result<bool, StateError>;

    /// Unexpired leases of `quota_key`.
    async fn live_leases(&self, quota_key: &str, now_ms: i64) -> Result<u64, StateError>;

    /// Give a lease back (its run ended).
    async fn release_lease(&self, lease_id: &str) -> Result<(), StateError>;

    /// Renew `instance`'s leases until `expires_ms` and forget expired ones (heartbeat).
    async fn renew_leases(
        &self,
        instance: &str,
        expires_ms: i64,
        now_ms: i64,
    ) -> Result<u64, StateError>;

    /// Remove a reaped instance's leases.
    async fn drop_leases(&self, instance: &str) -> Result<(), StateError>;
}
