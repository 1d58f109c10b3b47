//! [`SqliteStore`]: the embedded backend, one file (`state.db`) in `TWOBOT_STATE_DIR`.
//!
//! One host needs nothing installed: the state is a SQLite database (bundled, WAL, so
//! readers never wait for the writer) created 0600 beside the OAuth database. SQLite's
//! calls block, so every query runs on tokio's blocking pool (`SqliteStore::call`),
//! never on a worker that serves requests. One connection behind a mutex is enough: every
//! method is one short statement or transaction, and the busy timeout covers a second
//! 2Bot process (a stdio session beside the HTTP server) on the same file.

mod data_version;
mod leases;
pub mod liveness;
mod oauth;
mod oauth_schema;
mod oauth_tokens;
mod queries;
mod schema;
mod sign_ins;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rusqlite::Connection;

pub use self::oauth_schema::LEGACY_FILE as LEGACY_OAUTH_FILE;
pub use self::schema::SCHEMA_VERSION;
use super::StateError;

/// The database's file name in the state directory.
pub const DB_FILE: &str = "state.db";

/// How long a statement waits for another process's write before it fails.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The embedded state store.
#[derive(Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    path: Option<PathBuf>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// Query failures are [`StateError::Query`]; opening maps its own to `Connect`.
impl From<rusqlite::Error> for StateError {
    fn from(e: rusqlite::Error) -> Self {
        StateError::Query(e.to_string())
    }
}

impl SqliteStore {
    /// Open (or create) `state.db` in `state_dir` and bring its schema up to date. A
    /// missing directory is created 0700, a new file 0600; a file other users may write
    /// is refused (whoever writes it decides who owns which thread).
    pub fn open(state_dir: &Path) -> Result<SqliteStore, StateError> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
        let connect = |what: &Path| {
            let what = what.display().to_string();
            move |e: std::io::Error| StateError::Connect(format!("{what}: {e}"))
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(state_dir)
            .map_err(connect(state_dir))?;
        let path = state_dir.join(DB_FILE);
        // Created here with 0600 so SQLite never creates it with the umask's mode; its
        // -wal and -shm files take the database's mode.
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&path)
            .map_err(connect(&path))?;
        let mode = std::fs::metadata(&path)
            .map_err(connect(&path))?
            .permissions()
            .mode()
            & 0o777;
        if mode & 0o022 != 0 {
            return Err(StateError::Connect(format!(
                "{}: mode {mode:03o} lets other users write it; chmod 600 it",
                path.display()
            )));
        }
        let conn = Connection::open(&path)
            .map_err(|e| StateError::Connect(format!("{}: {e}", path.display())))?;
        let store = Self::configure(conn, Some(path))?;
        {
            let mut conn = store.conn.lock().unwrap_or_else(PoisonError::into_inner);
            oauth_schema::import_legacy(&mut conn, state_dir)?;
        }
        Ok(store)
    }

    /// A database that lives as long as this value: the state when no directory is
    /// known, and tests.
    pub fn open_in_memory() -> Result<SqliteStore, StateError> {
        let conn = Connection::open_in_memory().map_err(|e| StateError::Connect(e.to_string()))?;
        Self::configure(conn, None)
    }

    /// The schema version of `state.db` in `state_dir`, read without creating or
    /// migrating anything (for `doctor`): `None` when there is no file yet, and
    /// [`StateError::SchemaTooNew`] when a newer 2Bot wrote it.
    pub fn inspect(state_dir: &Path) -> Result<Option<i64>, StateError> {
        let path = state_dir.join(DB_FILE);
        if !path.exists() {
            return Ok(None);
        }
        let conn = Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| StateError::Connect(format!("{}: {e}", path.display())))?;
        let found = conn
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE name = 'schema_migrations'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map_err(|e| StateError::Connect(format!("{}: {e}", path.display())))?;
        let version = if found == 0 {
            0
        } else {
            schema::version(&conn)?
        };
        if version > SCHEMA_VERSION {
            return Err(StateError::SchemaTooNew {
                found: version,
                known: SCHEMA_VERSION,
            });
        }
        Ok(Some(version))
    }

    /// The database file (`None` in memory).
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    fn configure(mut conn: Connection, path: Option<PathBuf>) -> Result<SqliteStore, StateError> {
        conn.busy_timeout(BUSY_TIMEOUT)?;
        // WAL: readers never wait for the writer. FULL: a refresh-token rotation that was
        // answered is on disk, so a power cut cannot bring back a token already spent.
        let _mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        // The OAuth tables cascade: a deleted client takes its grants and tokens along.
        conn.pragma_update(None, "foreign_keys", true)?;
        schema::migrate(&mut conn, super::now_ms())?;
        Ok(SqliteStore {
            conn: Arc::new(Mutex::new(conn)),
            path,
        })
    }

    /// Run `f` on the connection on tokio's blocking pool, so a slow disk or another
    /// process's lock never stalls a worker. A panic in `f` rolled its transaction back
    /// (the `Transaction` dropped), so a poisoned lock is still sound.
    async fn call<T, F>(&self, f: F) -> Result<T, StateError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StateError> + Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = conn.lock().unwrap_or_else(PoisonError::into_inner);
            f(&mut conn)
        })
        .await
        .map_err(|e| StateError::Query(format!("the state query did not finish: {e}")))?
    }
}

#[cfg(test)]
#[path = "sqlite/tests.rs"]
mod tests;
