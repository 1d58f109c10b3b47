//! Codes, grants and refresh tokens in SQLite: the exchanges and rotations, each one
//! IMMEDIATE transaction (the write lock is taken before the read, so two processes
//! cannot both see a code unused), and the revocations. Blocking; called through
//! `SqliteStore::call`.

use rusqlite::{Connection, OptionalExtension, Row, Transaction, TransactionBehavior, params};

use super::oauth::count;
use crate::state::StateError;
use crate::state::oauth::{
    ACCESS_TTL_MAX_SEC, CODE_MEMORY_SEC, CodeRow, Exchange, Grant, NewCode, NewRefresh, Rotation,
};

pub fn insert_code(conn: &Connection, code: &NewCode) -> Result<(), StateError> {
    conn.execute(
        "INSERT INTO oauth_codes (code_hash, client_id, redirect_uri, code_challenge, resource, scope, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![code.code_hash, code.client_id, code.redirect_uri, code.code_challenge,
            code.resource, code.scope, code.expires_at],
    )?;
    Ok(())
}

pub fn code(conn: &Connection, code_hash: &str) -> Result<Option<CodeRow>, StateError> {
    Ok(conn
        .query_row(
            "SELECT code_hash, client_id, redirect_uri, code_challenge, resource, scope, expires_at, used_at
             FROM oauth_codes WHERE code_hash = ?1",
            [code_hash],
            |r| {
                Ok(CodeRow {
                    code: NewCode {
                        code_hash: r.get(0)?,
                        client_id: r.get(1)?,
                        redirect_uri: r.get(2)?,
                        code_challenge: r.get(3)?,
                        resource: r.get(4)?,
                        scope: r.get(5)?,
                        expires_at: r.get(6)?,
                    },
                    used_at: r.get(7)?,
                })
            },
        )
        .optional()?)
}

pub fn exchange_code(
    conn: &mut Connection,
    code_hash: &str,
    now: i64,
    grant_id: &str,
    refresh: &NewRefresh,
) -> Result<Exchange, StateError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    type Found = (String, String, String, i64, Option<i64>, Option<String>);
    let row: Option<Found> = tx
        .query_row(
            "SELECT client_id, scope, resource, expires_at, used_at, grant_id
             FROM oauth_codes WHERE code_hash = ?1",
            [code_hash],
            |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            },
        )
        .optional()?;
    let Some((client_id, scope, resource, expires_at, used_at, made)) = row else {
        return Ok(Exchange::Unknown);
    };
    if used_at.is_some() {
        if let Some(made) = made {
            revoke_grant(&tx, &made, "authorization code reuse", now)?;
        }
        tx.commit()?;
        return Ok(Exchange::Reused);
    }
    if now >= expires_at {
        return Ok(Exchange::Expired);
    }
    tx.execute(
        "INSERT INTO oauth_grants (id, client_id, scope, resource, created_at, last_used_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
        params![grant_id, client_id, scope, resource, now],
    )?;
    tx.execute(
        "UPDATE oauth_codes SET used_at = ?2, grant_id = ?3 WHERE code_hash = ?1",
        params![code_hash, now, grant_id],
    )?;
    insert_refresh(&tx, grant_id, refresh)?;
    tx.commit()?;
    Ok(Exchange::Issued(Grant {
        id: grant_id.to_owned(),
        client_id,
        scope,
        resource,
        created_at: now,
    }))
}

pub fn rotate_refresh(
    conn: &mut Connection,
    old_hash: &str,
    client_id: &str,
    now: i64,
    next: &NewRefresh,
) -> Result<Rotation, StateError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let Some(found) = refresh_with_grant(&tx, old_hash)? else {
        return Ok(Rotation::Unknown);
    };
    if found.grant.client_id != client_id {
        return Ok(Rotation::WrongClient);
    }
    if found.revoked {
        return Ok(Rotation::Revoked);
    }
    if found.used {
        revoke_grant(&tx, &found.grant.id, "refresh token reuse", now)?;
        tx.commit()?;
        return Ok(Rotation::Reused);
    }
    if now >= found.expires_at {
        return Ok(Rotation::Expired);
    }
    tx.execute(
        "UPDATE oauth_refresh_tokens SET used_at = ?2 WHERE token_hash = ?1",
        params![old_hash, now],
    )?;
    insert_refresh(&tx, &found.grant.id, next)?;
    tx.execute(
        "UPDATE oauth_grants SET last_used_at = ?2 WHERE id = ?1",
        params![found.grant.id, now],
    )?;
    tx.commit()?;
    Ok(Rotation::Rotated(found.grant))
}

pub fn revoke_refresh_family(
    conn: &mut Connection,
    refresh_hash: &str,
    client_id: Option<&str>,
    reason: &str,
    now: i64,
) -> Result<bool, StateError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let Some(found) = refresh_with_grant(&tx, refresh_hash)? else {
        return Ok(false);
    };
    if client_id.is_some_and(|c| c != found.grant.client_id) {
        return Ok(false);
    }
    let ended = revoke_grant(&tx, &found.grant.id, reason, now)?;
    tx.commit()?;
    Ok(ended)
}

pub fn revoke_grant_of(
    conn: &mut Connection,
    grant_id: &str,
    client_id: &str,
    reason: &str,
    now: i64,
) -> Result<bool, StateError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let owner: Option<String> = tx
        .query_row(
            "SELECT client_id FROM oauth_grants WHERE id = ?1",
            [grant_id],
            |r| r.get(0),
        )
        .optional()?;
    if owner.as_deref() != Some(client_id) {
        return Ok(false);
    }
    let ended = revoke_grant(&tx, grant_id, reason, now)?;
    tx.commit()?;
    Ok(ended)
}

pub fn revoke_grants(
    conn: &mut Connection,
    client_id: Option<&str>,
    reason: &str,
    now: i64,
) -> Result<u64, StateError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let ended = tx.execute(
        "UPDATE oauth_grants SET revoked_at = ?2, revoked_reason = ?3
         WHERE revoked_at IS NULL AND (?1 IS NULL OR client_id = ?1)",
        params![client_id, now, reason],
    )?;
    tx.execute(
        "UPDATE oauth_codes SET used_at = ?2 WHERE used_at IS NULL AND (?1 IS NULL OR client_id = ?1)",
        params![client_id, now],
    )?;
    tx.commit()?;
    Ok(count(ended))
}

pub fn purge(conn: &mut Connection, now: i64) -> Result<u64, StateError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let codes = tx.execute(
        "DELETE FROM oauth_codes WHERE expires_at < ?1",
        [now - CODE_MEMORY_SEC],
    )?;
    let tokens = tx.execute(
        "DELETE FROM oauth_refresh_tokens WHERE expires_at <= ?1",
        [now],
    )?;
    let grants = tx.execute(
        "DELETE FROM oauth_grants WHERE last_used_at <= ?1 - ?2
         AND NOT EXISTS (SELECT 1 FROM oauth_refresh_tokens t WHERE t.grant_id = oauth_grants.id)",
        params![now, ACCESS_TTL_MAX_SEC],
    )?;
    let keys = tx.execute(
        "DELETE FROM oauth_signing_keys WHERE retire_at <= ?1",
        [now],
    )?;
    let sign_ins = super::sign_ins::purge(&tx, now)?;
    tx.commit()?;
    Ok(count(codes + tokens + grants + keys + sign_ins))
}

/// A grant from the columns `id, client_id, scope, resource, created_at` (first five).
pub fn grant_row(r: &Row<'_>) -> rusqlite::Result<Grant> {
    Ok(Grant {
        id: r.get(0)?,
        client_id: r.get(1)?,
        scope: r.get(2)?,
        resource: r.get(3)?,
        created_at: r.get(4)?,
    })
}

/// A refresh token and the state of its grant.
struct FoundRefresh {
    grant: Grant,
    revoked: bool,
    used: bool,
    expires_at: i64,
}

fn refresh_with_grant(tx: &Transaction<'_>, hash: &str) -> rusqlite::Result<Option<FoundRefresh>> {
    tx.query_row(
        "SELECT g.id, g.client_id, g.scope, g.resource, g.created_at,
                g.revoked_at IS NOT NULL, t.used_at IS NOT NULL, t.expires_at
         FROM oauth_refresh_tokens t JOIN oauth_grants g ON g.id = t.grant_id
         WHERE t.token_hash = ?1",
        [hash],
        |r| {
            Ok(FoundRefresh {
                grant: grant_row(r)?,
                revoked: r.get(5)?,
                used: r.get(6)?,
                expires_at: r.get(7)?,
            })
        },
    )
    .optional()
}

fn insert_refresh(tx: &Transaction<'_>, grant_id: &str, t: &NewRefresh) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO oauth_refresh_tokens (token_hash, grant_id, issued_at, expires_at)
         VALUES (?1, ?2, ?3, ?4)",
        params![t.token_hash, grant_id, t.issued_at, t.expires_at],
    )
    .map(drop)
}

/// Revoke a grant unless it already is; returns whether it was live.
fn revoke_grant(
    tx: &Transaction<'_>,
    grant_id: &str,
    reason: &str,
    now: i64,
) -> rusqlite::Result<bool> {
    let changed = tx.execute(
        "UPDATE oauth_grants SET revoked_at = ?2, revoked_reason = ?3
         WHERE id = ?1 AND revoked_at IS NULL",
        params![grant_id, now, reason],
    )?;
    Ok(changed > 0)
}
