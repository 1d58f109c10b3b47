//! Codes, grants and refresh tokens on PostgreSQL: each exchange and rotation is one
//! transaction that locks the code or token row (and its grant) with `SELECT … FOR
//! UPDATE` before deciding, so of two instances presenting one code at once the second
//! waits, then finds it used (and revokes what it issued, as a replay must). A
//! transaction that revokes notifies the revocation channel, so every instance drops
//! the grant from its memory once it commits.

use deadpool_postgres::{Object, Transaction};

use super::migrate::query;
use super::oauth::grant_row;
use crate::state::StateError;
use crate::state::oauth::watch::{CHANNEL, EVERY_GRANT};
use crate::state::oauth::{
    ACCESS_TTL_MAX_SEC, CODE_MEMORY_SEC, Exchange, Grant, NewRefresh, Rotation,
};

pub async fn exchange_code(
    client: &mut Object,
    code_hash: &str,
    now: i64,
    grant_id: &str,
    refresh: &NewRefresh,
) -> Result<Exchange, StateError> {
    let tx = client.transaction().await.map_err(query)?;
    let row = tx
        .query_opt(
            "SELECT client_id, scope, resource, expires_at, used_at, grant_id
             FROM oauth_codes WHERE code_hash = $1 FOR UPDATE",
            &[&code_hash],
        )
        .await
        .map_err(query)?;
    let Some(row) = row else {
        return Ok(Exchange::Unknown);
    };
    let (client_id, scope, resource): (String, String, String) =
        (row.get(0), row.get(1), row.get(2));
    let (expires_at, used_at, made): (i64, Option<i64>, Option<String>) =
        (row.get(3), row.get(4), row.get(5));
    if used_at.is_some() {
        if let Some(made) = made {
            revoke_grant(&tx, &made, "authorization code reuse", now).await?;
        }
        tx.commit().await.map_err(query)?;
        return Ok(Exchange::Reused);
    }
    if now >= expires_at {
        return Ok(Exchange::Expired);
    }
    tx.execute(
        "INSERT INTO oauth_grants (id, client_id, scope, resource, created_at, last_used_at)
         VALUES ($1, $2, $3, $4, $5, $5)",
        &[&grant_id, &client_id, &scope, &resource, &now],
    )
    .await
    .map_err(query)?;
    tx.execute(
        "UPDATE oauth_codes SET used_at = $2, grant_id = $3 WHERE code_hash = $1",
        &[&code_hash, &now, &grant_id],
    )
    .await
    .map_err(query)?;
    insert_refresh(&tx, grant_id, refresh).await?;
    tx.commit().await.map_err(query)?;
    Ok(Exchange::Issued(Grant {
        id: grant_id.to_owned(),
        client_id,
        scope,
        resource,
        created_at: now,
    }))
}

pub async fn rotate_refresh(
    client: &mut Object,
    old_hash: &str,
    client_id: &str,
    now: i64,
    next: &NewRefresh,
) -> Result<Rotation, StateError> {
    let tx = client.transaction().await.map_err(query)?;
    let Some(found) = refresh_with_grant(&tx, old_hash).await? else {
        return Ok(Rotation::Unknown);
    };
    if found.grant.client_id != client_id {
        return Ok(Rotation::WrongClient);
    }
    if found.revoked {
        return Ok(Rotation::Revoked);
    }
    if found.used {
        revoke_grant(&tx, &found.grant.id, "refresh token reuse", now).await?;
        tx.commit().await.map_err(query)?;
        return Ok(Rotation::Reused);
    }
    if now >= found.expires_at {
        return Ok(Rotation::Expired);
    }
    tx.execute(
        "UPDATE oauth_refresh_tokens SET used_at = $2 WHERE token_hash = $1",
        &[&old_hash, &now],
    )
    .await
    .map_err(query)?;
    insert_refresh(&tx, &found.grant.id, next).await?;
    tx.execute(
        "UPDATE oauth_grants SET last_used_at = $2 WHERE id = $1",
        &[&found.grant.id, &now],
    )
    .await
    .map_err(query)?;
    tx.commit().await.map_err(query)?;
    Ok(Rotation::Rotated(found.grant))
}

pub async fn revoke_refresh_family(
    client: &mut Object,
    refresh_hash: &str,
    client_id: Option<&str>,
    reason: &str,
    now: i64,
) -> Result<bool, StateError> {
    let tx = client.transaction().await.map_err(query)?;
    let Some(found) = refresh_with_grant(&tx, refresh_hash).await? else {
        return Ok(false);
    };
    if client_id.is_some_and(|c| c != found.grant.client_id) {
        return Ok(false);
    }
    let ended = revoke_grant(&tx, &found.grant.id, reason, now).await?;
    tx.commit().await.map_err(query)?;
    Ok(ended)
}

pub async fn revoke_grants(
    client: &mut Object,
    client_id: Option<&str>,
    reason: &str,
    now: i64,
) -> Result<u64, StateError> {
    let tx = client.transaction().await.map_err(query)?;
    let ended = tx
        .execute(
            "UPDATE oauth_grants SET revoked_at = $2, revoked_reason = $3
             WHERE revoked_at IS NULL AND ($1::TEXT IS NULL OR client_id = $1::TEXT)",
            &[&client_id, &now, &reason],
        )
        .await
        .map_err(query)?;
    tx.execute(
        "UPDATE oauth_codes SET used_at = $2
         WHERE used_at IS NULL AND ($1::TEXT IS NULL OR client_id = $1::TEXT)",
        &[&client_id, &now],
    )
    .await
    .map_err(query)?;
    if ended > 0 {
        notify(&tx, EVERY_GRANT).await?;
    }
    tx.commit().await.map_err(query)?;
    Ok(ended)
}

pub async fn purge(client: &mut Object, now: i64) -> Result<u64, StateError> {
    let tx = client.transaction().await.map_err(query)?;
    let mut deleted = 0;
    for (sql, at) in [
        (
            "DELETE FROM oauth_codes WHERE expires_at < $1",
            now - CODE_MEMORY_SEC,
        ),
        (
            "DELETE FROM oauth_refresh_tokens WHERE expires_at <= $1",
            now,
        ),
        (
            "DELETE FROM oauth_grants g WHERE g.last_used_at <= $1
             AND NOT EXISTS (SELECT 1 FROM oauth_refresh_tokens t WHERE t.grant_id = g.id)",
            now - ACCESS_TTL_MAX_SEC,
        ),
        ("DELETE FROM oauth_signing_keys WHERE retire_at <= $1", now),
        ("DELETE FROM oauth_sign_ins WHERE expires_at <= $1", now),
    ] {
        deleted += tx.execute(sql, &[&at]).await.map_err(query)?;
    }
    tx.commit().await.map_err(query)?;
    Ok(deleted)
}

/// A refresh token and the state of its grant.
struct FoundRefresh {
    grant: Grant,
    revoked: bool,
    used: bool,
    expires_at: i64,
}

/// The token and its grant, both locked until the transaction ends.
async fn refresh_with_grant(
    tx: &Transaction<'_>,
    hash: &str,
) -> Result<Option<FoundRefresh>, StateError> {
    let row = tx
        .query_opt(
            "SELECT g.id, g.client_id, g.scope, g.resource, g.created_at,
                    g.revoked_at IS NOT NULL, t.used_at IS NOT NULL, t.expires_at
             FROM oauth_refresh_tokens t JOIN oauth_grants g ON g.id = t.grant_id
             WHERE t.token_hash = $1 FOR UPDATE",
            &[&hash],
        )
        .await
        .map_err(query)?;
    Ok(row.map(|r| FoundRefresh {
        grant: grant_row(&r),
        revoked: r.get(5),
        used: r.get(6),
        expires_at: r.get(7),
    }))
}

async fn insert_refresh(
    tx: &Transaction<'_>,
    grant_id: &str,
    t: &NewRefresh,
) -> Result<(), StateError> {
    tx.execute(
        "INSERT INTO oauth_refresh_tokens (token_hash, grant_id, issued_at, expires_at)
         VALUES ($1, $2, $3, $4)",
        &[&t.token_hash, &grant_id, &t.issued_at, &t.expires_at],
    )
    .await
    .map_err(query)
    .map(drop)
}

/// Revoke a grant unless it already is; returns whether it was live.
async fn revoke_grant(
    tx: &Transaction<'_>,
    grant_id: &str,
    reason: &str,
    now: i64,
) -> Result<bool, StateError> {
    let changed = tx
        .execute(
            "UPDATE oauth_grants SET revoked_at = $2, revoked_reason = $3
             WHERE id = $1 AND revoked_at IS NULL",
            &[&grant_id, &now, &reason],
        )
        .await
        .map_err(query)?;
    if changed > 0 {
        notify(tx, grant_id).await?;
    }
    Ok(changed > 0)
}

/// Tell every instance listening that `payload` (a grant id, or [`EVERY_GRANT`]) ended;
/// delivered when, and only if, the transaction commits.
async fn notify(tx: &Transaction<'_>, payload: &str) -> Result<(), StateError> {
    tx.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &payload])
        .await
        .map_err(query)
        .map(drop)
}
