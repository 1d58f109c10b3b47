//! The database's schema and its migrations, versioned by `PRAGMA user_version`, so a
//! state directory written by one 2Bot release opens in the next (and a newer one is
//! refused rather than misread).

use rusqlite::{Connection, TransactionBehavior};

use super::StoreError;

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = 1;

/// Version 1. Secrets appear only as SHA-256 hex. Grants are never deleted when revoked
/// (only by [`super::Store::purge`] once no token of theirs can be valid), so a revoked
/// grant's access tokens keep being refused; a deleted one counts as revoked anyway.
const V1: &str = "
CREATE TABLE clients (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('dcr', 'cimd')),
    name TEXT NOT NULL,
    redirect_uris TEXT NOT NULL,
    auth_method TEXT NOT NULL
        CHECK (auth_method IN ('none', 'client_secret_post', 'client_secret_basic')),
    secret_hash TEXT,
    created_at INTEGER NOT NULL,
    fetched_at INTEGER
) STRICT;
CREATE TABLE grants (
    id TEXT PRIMARY KEY,
    client_id TEXT NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    scope TEXT NOT NULL,
    resource TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    last_used_at INTEGER NOT NULL,
    revoked_at INTEGER,
    revoked_reason TEXT
) STRICT;
CREATE INDEX grants_by_client ON grants(client_id);
CREATE TABLE codes (
    code_hash TEXT PRIMARY KEY,
    client_id TEXT NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    redirect_uri TEXT NOT NULL,
    code_challenge TEXT NOT NULL,
    resource TEXT NOT NULL,
    scope TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at INTEGER,
    grant_id TEXT REFERENCES grants(id) ON DELETE SET NULL
) STRICT;
CREATE INDEX codes_by_client ON codes(client_id);
CREATE INDEX codes_by_grant ON codes(grant_id);
CREATE TABLE refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    grant_id TEXT NOT NULL REFERENCES grants(id) ON DELETE CASCADE,
    issued_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at INTEGER
) STRICT;
CREATE INDEX refresh_by_grant ON refresh_tokens(grant_id);
";

/// Bring the database to [`SCHEMA_VERSION`] in one transaction (a crash half-way leaves
/// the old version, whole).
pub fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let found: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    if found < 1 {
        tx.execute_batch(V1)?;
    }
    // A version 2 goes here: `if found < 2 { tx.execute_batch(V2)?; }`.
    if found != SCHEMA_VERSION {
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    }
    tx.commit()?;
    Ok(())
}
