//! The PostgreSQL schema and its versioned migrations.
//!
//! Several instances often start together (a deploy restarts them all), and each runs
//! the migrations at start. `CREATE TABLE IF NOT EXISTS` alone still races in
//! PostgreSQL's catalog, so all of it runs in one transaction holding a transaction-level
//! advisory lock: the first instance migrates, the others wait, then find the version
//! current and do nothing. A database migrated by a newer 2Bot is refused rather than
//! used with a schema this binary does not know.

use tokio_postgres::Client;

use crate::state::StateError;

/// The newest schema version this binary migrates to.
pub const SCHEMA_VERSION: i64 = 4;

/// The advisory lock key the migrations hold ("2botstat" in ASCII): any fixed number
/// works, as long as every 2Bot uses the same one.
const MIGRATION_LOCK: i64 = 0x3262_6f74_7374_6174;

/// Each migration, by the version it brings the schema to.
const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
    "CREATE TABLE threads (
        thread_id  TEXT PRIMARY KEY,
        owner      TEXT NOT NULL,
        instance   TEXT NOT NULL,
        codex_home TEXT NOT NULL,
        created_ms BIGINT NOT NULL
    );
    CREATE TABLE runs (
        run_id     TEXT PRIMARY KEY,
        owner      TEXT NOT NULL,
        quota_key  TEXT NOT NULL,
        instance   TEXT NOT NULL,
        state      TEXT NOT NULL CHECK (state IN ('queued', 'running', 'completed', 'failed', 'cancelled', 'lost')),
        created_ms BIGINT NOT NULL,
        updated_ms BIGINT NOT NULL,
        ended_ms   BIGINT,
        expires_ms BIGINT,
        snapshot   TEXT
    );
    CREATE INDEX runs_instance_state ON runs (instance, state);
    CREATE INDEX runs_expires ON runs (expires_ms);
    CREATE TABLE instances (
        instance     TEXT PRIMARY KEY,
        url          TEXT,
        started_ms   BIGINT NOT NULL,
        heartbeat_ms BIGINT NOT NULL
    );",
    ),
    (2, super::oauth_schema::V2),
    (
        3,
        "CREATE TABLE run_leases (
        lease_id   TEXT PRIMARY KEY,
        quota_key  TEXT NOT NULL,
        instance   TEXT NOT NULL,
        expires_ms BIGINT NOT NULL
    );
    CREATE INDEX run_leases_key ON run_leases (quota_key, expires_ms);
    CREATE INDEX run_leases_instance ON run_leases (instance);",
    ),
    (
        4,
        "CREATE TABLE oauth_sign_ins (
        id_hash    TEXT PRIMARY KEY,
        request    TEXT NOT NULL,
        signed_in  BOOLEAN NOT NULL,
        created_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL
    );
    CREATE INDEX oauth_sign_ins_created ON oauth_sign_ins (created_at);
    CREATE TABLE oauth_sign_in_attempts (
        address TEXT NOT NULL,
        at_ms   BIGINT NOT NULL
    );
    CREATE INDEX oauth_sign_in_attempts_address ON oauth_sign_in_attempts (address, at_ms);
    CREATE INDEX oauth_sign_in_attempts_time ON oauth_sign_in_attempts (at_ms);",
    ),
];

/// Bring the schema to [`SCHEMA_VERSION`]; returns the version it is at.
pub async fn migrate(client: &mut Client, now_ms: i64) -> Result<i64, StateError> {
    let tx = client.transaction().await.map_err(query)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(query)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version    BIGINT PRIMARY KEY,
            applied_ms BIGINT NOT NULL
        )",
    )
    .await
    .map_err(query)?;
    let found = current(&tx).await?;
    if found > SCHEMA_VERSION {
        return Err(StateError::SchemaTooNew {
            found,
            known: SCHEMA_VERSION,
        });
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > found) {
        tx.batch_execute(sql).await.map_err(query)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_ms) VALUES ($1, $2)",
            &[version, &now_ms],
        )
        .await
        .map_err(query)?;
    }
    tx.commit().await.map_err(query)?;
    Ok(SCHEMA_VERSION)
}

/// The version the database is at, without changing it: 0 when 2Bot never migrated it.
pub async fn version(client: &impl tokio_postgres::GenericClient) -> Result<i64, StateError> {
    let exists: bool = client
        .query_one("SELECT to_regclass('schema_migrations') IS NOT NULL", &[])
        .await
        .map_err(query)?
        .get(0);
    if !exists {
        return Ok(0);
    }
    current(client).await
}

async fn current(client: &impl tokio_postgres::GenericClient) -> Result<i64, StateError> {
    let row = client
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            &[],
        )
        .await
        .map_err(query)?;
    Ok(row.get(0))
}

/// A failed statement as the store reports it.
pub fn query(e: tokio_postgres::Error) -> StateError {
    StateError::Query(describe(&e))
}

/// tokio-postgres's message with the server's own (`db error: …` alone hides it).
pub fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(inner) = source {
                text = format!("{text}: {inner}");
                source = inner.source();
            }
            text
        }
    }
}
