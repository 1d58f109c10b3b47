//! The embedded database's schema, versioned in `schema_migrations` (one row per
//! applied migration), so a state directory written by one 2Bot opens in the next and a
//! newer one is refused rather than misread.

use rusqlite::{Connection, TransactionBehavior, params};

use crate::state::StateError;

/// The newest schema version this build migrates to.
pub const SCHEMA_VERSION: i64 = 4;

/// Version 1: thread owners, kept runs, live instances. Times are Unix milliseconds.
/// `runs(instance, state)` finds a dead instance's unfinished runs; `runs(expires_ms)`
/// finds the expired ones.
const V1: &str = "
CREATE TABLE threads (
    thread_id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    instance TEXT NOT NULL,
    codex_home TEXT NOT NULL,
    created_ms INTEGER NOT NULL
) STRICT;
CREATE TABLE runs (
    run_id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    quota_key TEXT NOT NULL,
    instance TEXT NOT NULL,
    state TEXT NOT NULL
        CHECK (state IN ('queued', 'running', 'completed', 'failed', 'cancelled', 'lost')),
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    ended_ms INTEGER,
    expires_ms INTEGER,
    snapshot TEXT
) STRICT;
CREATE INDEX runs_by_instance_state ON runs(instance, state);
CREATE INDEX runs_by_expiry ON runs(expires_ms);
CREATE TABLE instances (
    instance TEXT PRIMARY KEY,
    url TEXT,
    started_ms INTEGER NOT NULL,
    heartbeat_ms INTEGER NOT NULL
) STRICT;
";

/// Version 3: run leases (a principal's admitted runs, counted across instances).
const V3: &str = "
CREATE TABLE run_leases (
    lease_id TEXT PRIMARY KEY,
    quota_key TEXT NOT NULL,
    instance TEXT NOT NULL,
    expires_ms INTEGER NOT NULL
) STRICT;
CREATE INDEX run_leases_by_key ON run_leases(quota_key, expires_ms);
CREATE INDEX run_leases_by_instance ON run_leases(instance);
";

/// Version 4: the built-in authorization server's pending sign-ins (any instance may
/// serve a sign-in's next page).
const V4: &str = "
CREATE TABLE oauth_sign_ins (
    id_hash TEXT PRIMARY KEY,
    request TEXT NOT NULL,
    signed_in INTEGER NOT NULL CHECK (signed_in IN (0, 1)),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) STRICT;
CREATE INDEX oauth_sign_ins_by_created ON oauth_sign_ins(created_at);
CREATE TABLE oauth_sign_in_attempts (
    address TEXT NOT NULL,
    at_ms INTEGER NOT NULL
) STRICT;
CREATE INDEX oauth_sign_in_attempts_by_address ON oauth_sign_in_attempts(address, at_ms);
CREATE INDEX oauth_sign_in_attempts_by_time ON oauth_sign_in_attempts(at_ms);
";

/// Every migration, in order: version and SQL.
const MIGRATIONS: &[(i64, &str)] = &[(1, V1), (2, super::oauth_schema::V2), (3, V3), (4, V4)];

/// The version the database is at (0: nothing applied yet).
pub fn version(conn: &Connection) -> Result<i64, StateError> {
    Ok(conn.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
        [],
        |r| r.get(0),
    )?)
}

/// Apply the missing migrations in one transaction (a crash half-way leaves the old
/// version, whole); a database newer than [`SCHEMA_VERSION`] is refused.
pub fn migrate(conn: &mut Connection, now_ms: i64) -> Result<(), StateError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version INTEGER PRIMARY KEY,
            applied_ms INTEGER NOT NULL
        ) STRICT;",
    )?;
    let found = version(&tx)?;
    if found > SCHEMA_VERSION {
        return Err(StateError::SchemaTooNew {
            found,
            known: SCHEMA_VERSION,
        });
    }
    for (v, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > found) {
        tx.execute_batch(sql)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_ms) VALUES (?1, ?2)",
            params![v, now_ms],
        )?;
    }
    tx.commit()?;
    Ok(())
}
