//! The built-in authorization server's state: clients, authorization codes, grants and
//! their refresh tokens, in SQLite (`$TWOBOT_STATE_DIR/oauth.sqlite3`), so sign-ins and
//! revocations survive restarts and crashes, and `2bot-mcp oauth list|revoke` can act on
//! them while the server runs.
//!
//! Every decision that reads then writes (exchange a code, rotate a refresh token) is one
//! IMMEDIATE transaction: the write lock is taken before the read, so two servers, or a
//! server and `oauth revoke`, cannot both see a code unused. Calls are synchronous; async
//! callers use `tokio::task::spawn_blocking`.
//!
//! Here: opening the file and its errors; `types.rs` the rows, `schema.rs` the schema and
//! its migrations, `clients.rs` and `tokens.rs` the operations.

mod clients;
mod schema;
mod tokens;
mod types;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rusqlite::Connection;

pub use self::schema::SCHEMA_VERSION;
pub use self::types::{
    AuthMethod, Client, ClientKind, ClientListing, CodeRow, Exchange, Grant, GrantListing, NewCode,
    NewRefresh, Rotation, sha256_hex,
};

/// The database's file name in the state directory.
pub const DB_FILE: &str = "oauth.sqlite3";
/// How long a call waits for another connection's write lock before it fails.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest life `TWOBOT_OAUTH_ACCESS_TOKEN_TTL_SEC` allows: a grant that issued tokens
/// this recently may still have a valid access token, so it is still live (listed, and
/// worth revoking) after its refresh token expired.
pub const ACCESS_TTL_MAX_SEC: i64 = 86_400;
/// Codes are kept this long past their expiry so that a late replay still revokes
/// the grant made from the code.
const CODE_MEMORY_SEC: i64 = 86_400;

/// Why the store could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The state directory or the database file cannot be created or inspected.
    #[error("{path}: {source}")]
    Io {
        /// The directory or file.
        path: String,
        /// What the system said.
        source: std::io::Error,
    },
    /// Other users could change the database (and so grant themselves tokens).
    #[error("{path}: writable by group or others (mode {mode:03o}); run `chmod 600 {path}`")]
    Insecure {
        /// The database file.
        path: String,
        /// Its permission bits.
        mode: u32,
    },
    /// Written by a newer 2Bot.
    #[error(
        "schema version {found} is newer than this 2Bot knows ({supported}); run the newer 2bot-mcp"
    )]
    SchemaTooNew {
        /// `PRAGMA user_version` of the file.
        found: i64,
        /// [`SCHEMA_VERSION`].
        supported: i64,
    },
    /// [`Store::insert_client`] with an id already taken.
    #[error("client {0:?} is already registered")]
    ClientExists(String),
    /// [`Store::upsert_cimd_client`] with the id of a DCR client.
    #[error("client {0:?} was registered dynamically, not by a metadata document")]
    NotCimd(String),
    /// SQLite failed (a busy lock beyond the timeout, a full disk, a corrupt file…).
    #[error("the OAuth database: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

/// The state, shared by every handler (one connection behind a mutex: the calls are a
/// few microseconds each and SQLite allows one writer anyway).
#[derive(Clone)]
pub struct Store {
    conn: Arc<Mutex<Connection>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Store")
    }
}

/// `$state_dir/oauth.sqlite3`.
pub fn db_path(state_dir: &Path) -> PathBuf {
    state_dir.join(DB_FILE)
}

impl Store {
    /// Open (or create) the database in `state_dir`: a missing directory is created
    /// 0700 (an existing one is left as the operator made it), a new file 0600, and a
    /// file other users may write is refused.
    pub fn open(state_dir: &Path) -> Result<Store, StoreError> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
        let io = |path: &Path| {
            let path = path.display().to_string();
            move |source| StoreError::Io { path, source }
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(state_dir)
            .map_err(io(state_dir))?;
        let path = db_path(state_dir);
        // Created here with 0600 so SQLite never creates it with the umask's mode; its
        // -wal and -shm files take the database's mode.
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&path)
            .map_err(io(&path))?;
        let mode = std::fs::metadata(&path)
            .map_err(io(&path))?
            .permissions()
            .mode()
            & 0o777;
        if mode & 0o022 != 0 {
            return Err(StoreError::Insecure {
                path: path.display().to_string(),
                mode,
            });
        }
        if mode & 0o044 != 0 {
            tracing::warn!(path = %path.display(), mode = format!("{mode:03o}"), "the OAuth database is readable by other users (it holds no secrets, but names the clients); chmod 600 it");
        }
        Self::configure(Connection::open(&path)?)
    }

    /// A database that lives as long as this value (tests, and nothing else).
    pub fn open_in_memory() -> Result<Store, StoreError> {
        Self::configure(Connection::open_in_memory()?)
    }

    fn configure(mut conn: Connection) -> Result<Store, StoreError> {
        conn.busy_timeout(BUSY_TIMEOUT)?;
        // WAL: readers never wait for the writer. FULL: a rotation that was answered is on
        // disk, so a power cut cannot bring back a refresh token the client already spent.
        let _mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", true)?;
        schema::migrate(&mut conn)?;
        Ok(Store {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// The connection. A panic while it was held rolled its transaction back (the
    /// `Transaction` dropped), so the connection is sound and poisoning is ignored.
    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Rows changed, as the API's `u64` (a `usize` always fits).
fn count(rows: usize) -> u64 {
    u64::try_from(rows).unwrap_or(u64::MAX)
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "store_file_tests.rs"]
mod file_tests;
