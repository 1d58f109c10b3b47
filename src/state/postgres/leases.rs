//! Run leases in PostgreSQL ([`crate::state::leases`]). Taking one is a short
//! transaction holding an advisory lock for the quota key, so two instances admitting
//! the same principal's calls at once cannot both see room for the last one; other
//! principals' admissions do not wait.

use deadpool_postgres::Object;

use super::migrate::query;
use crate::state::leases::LEASE_LOCK_SEED;
use crate::state::{LeaseRow, StateError};

/// Insert `lease` if fewer than `limit` live leases hold its key.
pub async fn acquire(
    client: &mut Object,
    lease: &LeaseRow,
    limit: u64,
    now_ms: i64,
) -> Result<bool, StateError> {
    let tx = client.transaction().await.map_err(query)?;
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended($1, $2))",
        &[&lease.quota_key, &LEASE_LOCK_SEED],
    )
    .await
    .map_err(query)?;
    let live: i64 = tx
        .query_one(
            "SELECT COUNT(*) FROM run_leases WHERE quota_key = $1 AND expires_ms > $2",
            &[&lease.quota_key, &now_ms],
        )
        .await
        .map_err(query)?
        .get(0);
    if u64::try_from(live).unwrap_or(0) >= limit {
        return Ok(false);
    }
    tx.execute(
        "INSERT INTO run_leases (lease_id, quota_key, instance, expires_ms) VALUES ($1, $2, $3, $4)",
        &[&lease.lease_id, &lease.quota_key, &lease.instance, &lease.expires_ms],
    )
    .await
    .map_err(query)?;
    tx.commit().await.map_err(query)?;
    Ok(true)
}

/// Live leases of `quota_key`.
pub async fn live(client: &Object, quota_key: &str, now_ms: i64) -> Result<u64, StateError> {
    let stmt = client
        .prepare_cached("SELECT COUNT(*) FROM run_leases WHERE quota_key = $1 AND expires_ms > $2")
        .await
        .map_err(query)?;
    let n: i64 = client
        .query_one(&stmt, &[&quota_key, &now_ms])
        .await
        .map_err(query)?
        .get(0);
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Remove one lease.
pub async fn release(client: &Object, lease_id: &str) -> Result<(), StateError> {
    client
        .execute("DELETE FROM run_leases WHERE lease_id = $1", &[&lease_id])
        .await
        .map_err(query)?;
    Ok(())
}

/// Push `instance`'s leases to `expires_ms`, and forget everyone's expired ones.
pub async fn renew(
    client: &Object,
    instance: &str,
    expires_ms: i64,
    now_ms: i64,
) -> Result<u64, StateError> {
    let n = client
        .execute(
            "UPDATE run_leases SET expires_ms = $2 WHERE instance = $1",
            &[&instance, &expires_ms],
        )
        .await
        .map_err(query)?;
    client
        .execute("DELETE FROM run_leases WHERE expires_ms <= $1", &[&now_ms])
        .await
        .map_err(query)?;
    Ok(n)
}

/// Remove every lease of `instance` (it was reaped).
pub async fn drop_instance(client: &Object, instance: &str) -> Result<(), StateError> {
    client
        .execute("DELETE FROM run_leases WHERE instance = $1", &[&instance])
        .await
        .map_err(query)?;
    Ok(())
}
