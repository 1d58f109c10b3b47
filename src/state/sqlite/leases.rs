//! Run leases in SQLite ([`crate::state::leases`]): one writer at a time, so an
//! immediate transaction makes "count, then insert" atomic.

use rusqlite::{Connection, TransactionBehavior, params};

use crate::state::{LeaseRow, StateError};

fn count(conn: &Connection, quota_key: &str, now_ms: i64) -> rusqlite::Result<u64> {
    let n: i64 = conn.query_row(
        "SELECT COUNT(*) FROM run_leases WHERE quota_key = ?1 AND expires_ms > ?2",
        params![quota_key, now_ms],
        |r| r.get(0),
    )?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Insert `lease` if fewer than `limit` live leases hold its key.
pub fn acquire(
    conn: &mut Connection,
    lease: &LeaseRow,
    limit: u64,
    now_ms: i64,
) -> Result<bool, StateError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if count(&tx, &lease.quota_key, now_ms)? >= limit {
        return Ok(false);
    }
    tx.execute(
        "INSERT INTO run_leases (lease_id, quota_key, instance, expires_ms) VALUES (?1, ?2, ?3, ?4)",
        params![lease.lease_id, lease.quota_key, lease.instance, lease.expires_ms],
    )?;
    tx.commit()?;
    Ok(true)
}

/// Live leases of `quota_key`.
pub fn live(conn: &Connection, quota_key: &str, now_ms: i64) -> Result<u64, StateError> {
    Ok(count(conn, quota_key, now_ms)?)
}

/// Remove one lease.
pub fn release(conn: &Connection, lease_id: &str) -> Result<(), StateError> {
    conn.execute("DELETE FROM run_leases WHERE lease_id = ?1", [lease_id])?;
    Ok(())
}

/// Push `instance`'s leases to `expires_ms`, and forget everyone's expired ones.
pub fn renew(
    conn: &Connection,
    instance: &str,
    expires_ms: i64,
    now_ms: i64,
) -> Result<u64, StateError> {
    let n = conn.execute(
        "UPDATE run_leases SET expires_ms = ?2 WHERE instance = ?1",
        params![instance, expires_ms],
    )?;
    conn.execute("DELETE FROM run_leases WHERE expires_ms <= ?1", [now_ms])?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Remove every lease of `instance` (it was reaped).
pub fn drop_instance(conn: &Connection, instance: &str) -> Result<(), StateError> {
    conn.execute("DELETE FROM run_leases WHERE instance = ?1", [instance])?;
    Ok(())
}
