//! The built-in authorization server's tables in `state.db` (schema version 2), and the
//! one-time move of the database it used to keep apart (`oauth.sqlite3`, same tables
//! without the prefix) into them.

use std::path::Path;

use rusqlite::{Connection, TransactionBehavior};

use crate::state::StateError;

/// The old database's file name in the state directory.
pub const LEGACY_FILE: &str = "oauth.sqlite3";

/// The newest `user_version` of the old database (its one schema).
const LEGACY_VERSION: i64 = 1;

/// Version 2: clients, grants, codes, refresh tokens (secrets as SHA-256 hex only) and
/// the signing key set. Grants are never deleted when revoked (only by `purge` once no
/// token of theirs can be valid), so a revoked grant's access tokens keep being refused;
/// a deleted one counts as revoked anyway. Times are unix seconds.
pub const V2: &str = "
CREATE TABLE oauth_clients (
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
CREATE TABLE oauth_grants (
    id TEXT PRIMARY KEY,
    client_id TEXT NOT NULL REFERENCES oauth_clients(id) ON DELETE CASCADE,
    scope TEXT NOT NULL,
    resource TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    last_used_at INTEGER NOT NULL,
    revoked_at INTEGER,
    revoked_reason TEXT
) STRICT;
CREATE INDEX oauth_grants_by_client ON oauth_grants(client_id);
CREATE TABLE oauth_codes (
    code_hash TEXT PRIMARY KEY,
    client_id TEXT NOT NULL REFERENCES oauth_clients(id) ON DELETE CASCADE,
    redirect_uri TEXT NOT NULL,
    code_challenge TEXT NOT NULL,
    resource TEXT NOT NULL,
    scope TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at INTEGER,
    grant_id TEXT REFERENCES oauth_grants(id) ON DELETE SET NULL
) STRICT;
CREATE INDEX oauth_codes_by_client ON oauth_codes(client_id);
CREATE INDEX oauth_codes_by_grant ON oauth_codes(grant_id);
CREATE TABLE oauth_refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    grant_id TEXT NOT NULL REFERENCES oauth_grants(id) ON DELETE CASCADE,
    issued_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at INTEGER
) STRICT;
CREATE INDEX oauth_refresh_by_grant ON oauth_refresh_tokens(grant_id);
CREATE TABLE oauth_signing_keys (
    kid TEXT PRIMARY KEY,
    generation INTEGER NOT NULL UNIQUE,
    private_pem TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    not_before INTEGER NOT NULL,
    retire_at INTEGER
) STRICT;
";

/// Copy `oauth.sqlite3` in `state_dir` into the `oauth_*` tables, once, then rename it
/// `oauth.sqlite3.migrated` (kept for the operator, never read again). Rows the store
/// already has are kept as they are. One transaction: a crash leaves the old file whole
/// and the copy is redone at the next start. Returns whether a file was moved in.
pub fn import_legacy(conn: &mut Connection, state_dir: &Path) -> Result<bool, StateError> {
    let path = state_dir.join(LEGACY_FILE);
    if !path.exists() {
        return Ok(false);
    }
    let failed = |e: rusqlite::Error| StateError::Query(format!("{}: {e}", path.display()));
    let name = path
        .to_str()
        .ok_or_else(|| StateError::Connect(format!("{}: not UTF-8", path.display())))?;
    conn.execute("ATTACH DATABASE ?1 AS legacy", [name])
        .map_err(failed)?;
    let copied =
        copy_legacy(conn).map_err(|e| StateError::Query(format!("{}: {e}", path.display())));
    conn.execute_batch("DETACH DATABASE legacy")
        .map_err(failed)?;
    let rows = copied?;
    let moved = path.with_file_name(format!("{LEGACY_FILE}.migrated"));
    std::fs::rename(&path, &moved)
        .map_err(|e| StateError::Connect(format!("{}: {e}", path.display())))?;
    for suffix in ["-wal", "-shm"] {
        // Checkpointed and closed by the DETACH; a stale one is of no use to anyone.
        let _ = std::fs::remove_file(state_dir.join(format!("{LEGACY_FILE}{suffix}")));
    }
    tracing::info!(rows, from = %path.display(), to = %moved.display(), "the OAuth database moved into the state store");
    Ok(true)
}

fn copy_legacy(conn: &mut Connection) -> Result<usize, StateError> {
    let version: i64 = conn.query_row("PRAGMA legacy.user_version", [], |r| r.get(0))?;
    if version > LEGACY_VERSION {
        return Err(StateError::SchemaTooNew {
            found: version,
            known: LEGACY_VERSION,
        });
    }
    if version < 1 {
        // Created but never migrated: nothing in it.
        return Ok(0);
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut rows = 0;
    for (table, columns) in [
        (
            "clients",
            "id, kind, name, redirect_uris, auth_method, secret_hash, created_at, fetched_at",
        ),
        (
            "grants",
            "id, client_id, scope, resource, created_at, last_used_at, revoked_at, revoked_reason",
        ),
        (
            "codes",
            "code_hash, client_id, redirect_uri, code_challenge, resource, scope, expires_at, used_at, grant_id",
        ),
        (
            "refresh_tokens",
            "token_hash, grant_id, issued_at, expires_at, used_at",
        ),
    ] {
        rows += tx.execute(
            &format!(
                "INSERT OR IGNORE INTO oauth_{table} ({columns}) SELECT {columns} FROM legacy.{table}"
            ),
            [],
        )?;
    }
    tx.commit()?;
    Ok(rows)
}
