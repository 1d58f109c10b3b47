//! The SQLite [`RevocationWatch`]: `PRAGMA data_version` on a connection of its own,
//! which changes when any other connection (this process's store, `2bot-mcp oauth
//! revoke`, a stdio 2Bot beside the server) has committed to the file since it was last
//! read. It cannot say what changed, so a change is [`Changes::Anything`]; but it is
//! exact: a commit that returned before the read is seen by it.
//!
//! It is read on the async worker, without a hop to the blocking pool: with the WAL
//! journal an unchanged file costs two non-blocking `fcntl` calls on the `-shm` file
//! (the read mark taken and released) and no read at all; after a change, one 4 KiB
//! `pread` of the header page that was just written (in the page cache). The busy
//! timeout is zero, so a rare lock held during WAL recovery is not waited for: the
//! watch is [`Changes::Blind`] for that one look.

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use rusqlite::{Connection, OpenFlags};

use crate::state::StateError;
use crate::state::oauth::{Changes, RevocationWatch};

/// The change counter of one database file, as one connection sees it.
#[derive(Debug)]
pub struct DataVersion {
    /// The connection, and the counter it read last.
    read: Mutex<(Connection, i64)>,
    /// Whether the last look failed (logged once per streak).
    blind: AtomicBool,
}

fn version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.prepare_cached("PRAGMA data_version")?
        .query_row([], |r| r.get(0))
}

impl DataVersion {
    /// Watch the database at `path` (already created and in WAL mode by the store).
    pub fn open(path: &Path) -> Result<Self, StateError> {
        let failed = |e: rusqlite::Error| StateError::Connect(format!("{}: {e}", path.display()));
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(failed)?;
        conn.busy_timeout(std::time::Duration::ZERO)
            .map_err(failed)?;
        let seen = version(&conn).map_err(failed)?;
        Ok(Self {
            read: Mutex::new((conn, seen)),
            blind: AtomicBool::new(false),
        })
    }
}

impl RevocationWatch for DataVersion {
    fn changes(&self) -> Changes {
        let mut read = self
            .read
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (conn, seen) = &mut *read;
        match version(conn) {
            Ok(now) => {
                if self.blind.swap(false, Ordering::Relaxed) {
                    tracing::info!("the state file's change counter is readable again");
                }
                if now == *seen {
                    Changes::Nothing
                } else {
                    *seen = now;
                    Changes::Anything
                }
            }
            Err(e) => {
                if !self.blind.swap(true, Ordering::Relaxed) {
                    tracing::warn!(error = %e, "cannot read the state file's change counter; checking grants in the store on each request until it can");
                }
                Changes::Blind
            }
        }
    }
}
