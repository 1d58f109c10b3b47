//! Pending sign-ins on PostgreSQL (see [`SignInRow`]). Taking one is a single
//! `DELETE … RETURNING`, so of two consents posted to two instances exactly one finds
//! it. The bound on the table is kept by the insert's transaction; instances inserting
//! at the same moment may overshoot it by one each, which only delays the next trim.

use tokio_postgres::Row;

use super::PostgresStore;
use super::migrate::query;
use crate::state::StateError;
use crate::state::oauth::SignInRow;

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
