//! Pending sign-ins and failed sign-in attempts on SQLite (see [`SignInRow`]): each call
//! one statement, or one IMMEDIATE transaction for the inserts that also bound their
//! tables.

use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};

use crate::state::StateError;
use crate::state::oauth::{MAX_ATTEMPT_ROWS, SignInRow, attempt_wait_ms};

const COLUMNS: &str = "id_hash, request, signed_in, created_at, expires_at";

fn row(r: &Row<'_>) -> rusqlite::Result<SignInRow> {
    Ok(SignInRow {
        id_hash: r.get(0)?,
        request: r.get(1)?,
        signed_in: r.get(2)?,
        created_at: r.get(3)?,
        expires_at: r.get(4)?,
    })
}

pub fn insert(conn: &mut Connection, s: &SignInRow, max_pending: u64) -> Result<(), StateError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute(
        "DELETE FROM oauth_sign_ins WHERE expires_at <= ?1",
        [s.created_at],
    )?;
    // Keep room for this one: the newest `max_pending - 1` stay.
    let keep = i64::try_from(max_pending.saturating_sub(1)).unwrap_or(i64::MAX);
    tx.execute(
        "DELETE FROM oauth_sign_ins WHERE id_hash IN (
             SELECT id_hash FROM oauth_sign_ins ORDER BY created_at DESC, id_hash LIMIT -1 OFFSET ?1)",
        [keep],
    )?;
    tx.execute(
        "INSERT INTO oauth_sign_ins (id_hash, request, signed_in, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            s.id_hash,
            s.request,
            s.signed_in,
            s.created_at,
            s.expires_at
        ],
    )?;
    tx.commit()?;
    Ok(())
}

pub fn get(conn: &Connection, id_hash: &str, now: i64) -> Result<Option<SignInRow>, StateError> {
    let sql =
        format!("SELECT {COLUMNS} FROM oauth_sign_ins WHERE id_hash = ?1 AND expires_at > ?2");
    Ok(conn
        .query_row(&sql, params![id_hash, now], row)
        .optional()?)
}

pub fn mark_signed_in(conn: &Connection, id_hash: &str, now: i64) -> Result<bool, StateError> {
    let changed = conn.execute(
        "UPDATE oauth_sign_ins SET signed_in = 1 WHERE id_hash = ?1 AND expires_at > ?2",
        params![id_hash, now],
    )?;
    Ok(changed == 1)
}

pub fn take(conn: &Connection, id_hash: &str, now: i64) -> Result<Option<SignInRow>, StateError> {
    let sql = format!(
        "DELETE FROM oauth_sign_ins WHERE id_hash = ?1 AND expires_at > ?2 RETURNING {COLUMNS}"
    );
    Ok(conn
        .query_row(&sql, params![id_hash, now], row)
        .optional()?)
}

/// Sign-ins past their expiry; how many went.
pub fn purge(conn: &Connection, now: i64) -> Result<usize, StateError> {
    Ok(conn.execute("DELETE FROM oauth_sign_ins WHERE expires_at <= ?1", [now])?)
}

/// See [`crate::state::oauth::OAuthStore::reserve_sign_in_attempt`]: one IMMEDIATE
/// transaction, so no other connection counts between this one's count and insert.
pub fn reserve_attempt(
    conn: &mut Connection,
    address: &str,
    now_ms: i64,
    window_ms: i64,
    max: u32,
) -> Result<Option<i64>, StateError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute(
        "DELETE FROM oauth_sign_in_attempts WHERE at_ms <= ?1",
        [now_ms - window_ms],
    )?;
    let (made, oldest): (i64, Option<i64>) = tx.query_row(
        "SELECT COUNT(*), MIN(at_ms) FROM oauth_sign_in_attempts WHERE address = ?1",
        [address],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    if made >= i64::from(max) {
        tx.commit()?;
        return Ok(Some(attempt_wait_ms(oldest, now_ms, window_ms)));
    }
    tx.execute(
        "DELETE FROM oauth_sign_in_attempts WHERE rowid IN (
             SELECT rowid FROM oauth_sign_in_attempts ORDER BY at_ms DESC LIMIT -1 OFFSET ?1)",
        [MAX_ATTEMPT_ROWS - 1],
    )?;
    tx.execute(
        "INSERT INTO oauth_sign_in_attempts (address, at_ms) VALUES (?1, ?2)",
        params![address, now_ms],
    )?;
    tx.commit()?;
    Ok(None)
}

pub fn clear_attempts(conn: &Connection, address: &str) -> Result<(), StateError> {
    conn.execute(
        "DELETE FROM oauth_sign_in_attempts WHERE address = ?1",
        [address],
    )?;
    Ok(())
}
