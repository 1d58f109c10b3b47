//! Pending sign-ins and failed sign-in attempts on PostgreSQL (see [`SignInRow`]).
//! Taking a sign-in is a single `DELETE … RETURNING`, so of two consents posted to two
//! instances exactly one finds it. The bound on the table is kept by the insert's transaction; instances inserting
//! at the same moment may overshoot it by one each, which only delays the next trim.

use tokio_postgres::Row;

use super::PostgresStore;
use super::migrate::query;
use crate::state::StateError;
use crate::state::oauth::{MAX_ATTEMPT_ROWS, SignInRow, attempt_wait_ms};

const COLUMNS: &str = "id_hash, request, signed_in, created_at, expires_at";

fn row(r: &Row) -> SignInRow {
    SignInRow {
        id_hash: r.get(0),
        request: r.get(1),
        signed_in: r.get(2),
        created_at: r.get(3),
        expires_at: r.get(4),
    }
}

pub async fn insert(
    store: &PostgresStore,
    s: &SignInRow,
    max_pending: u64,
) -> Result<(), StateError> {
    let mut client = store.client().await?;
    let tx = client.transaction().await.map_err(query)?;
    tx.execute(
        "DELETE FROM oauth_sign_ins WHERE expires_at <= $1",
        &[&s.created_at],
    )
    .await
    .map_err(query)?;
    // Keep room for this one: the newest `max_pending - 1` stay.
    let keep = i64::try_from(max_pending.saturating_sub(1)).unwrap_or(i64::MAX);
    tx.execute(
        "DELETE FROM oauth_sign_ins WHERE id_hash IN (
             SELECT id_hash FROM oauth_sign_ins ORDER BY created_at DESC, id_hash OFFSET $1)",
        &[&keep],
    )
    .await
    .map_err(query)?;
    tx.execute(
        "INSERT INTO oauth_sign_ins (id_hash, request, signed_in, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5)",
        &[
            &s.id_hash,
            &s.request,
            &s.signed_in,
            &s.created_at,
            &s.expires_at,
        ],
    )
    .await
    .map_err(query)?;
    tx.commit().await.map_err(query)
}

pub async fn get(
    store: &PostgresStore,
    id_hash: &str,
    now: i64,
) -> Result<Option<SignInRow>, StateError> {
    let sql =
        format!("SELECT {COLUMNS} FROM oauth_sign_ins WHERE id_hash = $1 AND expires_at > $2");
    Ok(store.rows(&sql, &[&id_hash, &now]).await?.first().map(row))
}

pub async fn mark_signed_in(
    store: &PostgresStore,
    id_hash: &str,
    now: i64,
) -> Result<bool, StateError> {
    let changed = store
        .exec(
            "UPDATE oauth_sign_ins SET signed_in = TRUE WHERE id_hash = $1 AND expires_at > $2",
            &[&id_hash, &now],
        )
        .await?;
    Ok(changed == 1)
}

pub async fn take(
    store: &PostgresStore,
    id_hash: &str,
    now: i64,
) -> Result<Option<SignInRow>, StateError> {
    let sql = format!(
        "DELETE FROM oauth_sign_ins WHERE id_hash = $1 AND expires_at > $2 RETURNING {COLUMNS}"
    );
    Ok(store.rows(&sql, &[&id_hash, &now]).await?.first().map(row))
}

/// The seed of the advisory lock an address's attempts are counted under (any fixed
/// number, distinct from the leases' seed, so the two never wait on each other).
const ATTEMPT_LOCK_SEED: i64 = 0x7369_676e_696e; // "signin"

/// See [`crate::state::oauth::OAuthStore::reserve_sign_in_attempt`]: one transaction
/// holding an advisory lock for the address, so two instances counting the same
/// address's attempts at once cannot both see room for the last one.
pub async fn reserve_attempt(
    store: &PostgresStore,
    address: &str,
    now_ms: i64,
    window_ms: i64,
    max: u32,
) -> Result<Option<i64>, StateError> {
    let mut client = store.client().await?;
    let tx = client.transaction().await.map_err(query)?;
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended($1, $2))",
        &[&address, &ATTEMPT_LOCK_SEED],
    )
    .await
    .map_err(query)?;
    tx.execute(
        "DELETE FROM oauth_sign_in_attempts WHERE at_ms <= $1",
        &[&(now_ms - window_ms)],
    )
    .await
    .map_err(query)?;
    let counted = tx
        .query_one(
            "SELECT COUNT(*), MIN(at_ms) FROM oauth_sign_in_attempts WHERE address = $1",
            &[&address],
        )
        .await
        .map_err(query)?;
    let (made, oldest): (i64, Option<i64>) = (counted.get(0), counted.get(1));
    if made >= i64::from(max) {
        tx.commit().await.map_err(query)?;
        return Ok(Some(attempt_wait_ms(oldest, now_ms, window_ms)));
    }
    tx.execute(
        "DELETE FROM oauth_sign_in_attempts WHERE ctid IN (
             SELECT ctid FROM oauth_sign_in_attempts ORDER BY at_ms DESC OFFSET $1)",
        &[&(MAX_ATTEMPT_ROWS - 1)],
    )
    .await
    .map_err(query)?;
    tx.execute(
        "INSERT INTO oauth_sign_in_attempts (address, at_ms) VALUES ($1, $2)",
        &[&address, &now_ms],
    )
    .await
    .map_err(query)?;
    tx.commit().await.map_err(query)?;
    Ok(None)
}

pub async fn clear_attempts(store: &PostgresStore, address: &str) -> Result<(), StateError> {
    store
        .exec(
            "DELETE FROM oauth_sign_in_attempts WHERE address = $1",
            &[&address],
        )
        .await?;
    Ok(())
}
