//! [`OAuthStore`] for [`SqliteStore`]: the clients and signing keys here, the codes,
//! grants and refresh tokens in `oauth_tokens.rs`; each call one statement or one
//! IMMEDIATE transaction (the write lock taken before the read) on the blocking pool.

use std::sync::Arc;

use rusqlite::types::Type;
use rusqlite::{Connection, ErrorCode, OptionalExtension, Row, TransactionBehavior, params};

use super::SqliteStore;
use super::data_version::DataVersion;
use super::oauth_tokens as tokens;
use super::sign_ins;
use crate::state::StateError;
use crate::state::oauth::watch::NoOtherWriter;
use crate::state::oauth::{
    ACCESS_TTL_MAX_SEC, AuthMethod, Client, ClientKind, ClientListing, CodeRow, Exchange,
    GrantListing, NewCode, NewRefresh, OAuthStore, RevocationWatch, Rotation, SignInRow,
    SigningKeyRow,
};

const CLIENT_COLUMNS: &str = "id, kind, name, redirect_uris, auth_method, secret_hash, created_at";
const KEY_COLUMNS: &str = "kid, generation, private_pem, created_at, not_before, retire_at";

/// Rows changed, as the API's `u64` (a `usize` always fits).
pub(super) fn count(rows: usize) -> u64 {
    u64::try_from(rows).unwrap_or(u64::MAX)
}

fn bad(column: usize, why: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(column, Type::Text, why.into())
}

fn client_row(r: &Row<'_>) -> rusqlite::Result<Client> {
    let kind: String = r.get(1)?;
    let uris: String = r.get(3)?;
    let method: String = r.get(4)?;
    Ok(Client {
        id: r.get(0)?,
        kind: ClientKind::parse(&kind).ok_or_else(|| bad(1, format!("client kind {kind:?}")))?,
        name: r.get(2)?,
        redirect_uris: serde_json::from_str(&uris).map_err(|e| bad(3, e.to_string()))?,
        auth_method: AuthMethod::parse(&method)
            .ok_or_else(|| bad(4, format!("token endpoint auth method {method:?}")))?,
        secret_hash: r.get(5)?,
        created_at: r.get(6)?,
    })
}

fn key_row(r: &Row<'_>) -> rusqlite::Result<SigningKeyRow> {
    Ok(SigningKeyRow {
        kid: r.get(0)?,
        generation: r.get(1)?,
        private_pem: r.get(2)?,
        created_at: r.get(3)?,
        not_before: r.get(4)?,
        retire_at: r.get(5)?,
    })
}

fn redirect_json(uris: &[String]) -> Result<String, StateError> {
    serde_json::to_string(uris).map_err(|e| StateError::Query(format!("redirect URIs: {e}")))
}

fn listing(conn: &Connection, now: i64) -> Result<Vec<ClientListing>, StateError> {
    let sql = format!("SELECT {CLIENT_COLUMNS} FROM oauth_clients ORDER BY created_at, id");
    let clients = conn
        .prepare(&sql)?
        .query_map([], client_row)?
        .collect::<Result<Vec<_>, _>>()?;
    let mut grants = conn.prepare(
        "SELECT id, client_id, scope, resource, created_at, last_used_at, refresh_expires_at FROM (
             SELECT g.*, (SELECT MAX(t.expires_at) FROM oauth_refresh_tokens t
                 WHERE t.grant_id = g.id AND t.used_at IS NULL AND t.expires_at > ?2) AS refresh_expires_at
             FROM oauth_grants g WHERE g.client_id = ?1 AND g.revoked_at IS NULL)
         WHERE refresh_expires_at IS NOT NULL OR last_used_at > ?2 - ?3
         ORDER BY created_at, id",
    )?;
    clients
        .into_iter()
        .map(|client| {
            let grants = grants
                .query_map(params![client.id, now, ACCESS_TTL_MAX_SEC], |r| {
                    Ok(GrantListing {
                        grant: tokens::grant_row(r)?,
                        last_used_at: r.get(5)?,
                        refresh_expires_at: r.get(6)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(ClientListing { client, grants })
        })
        .collect()
}

#[async_trait::async_trait]
impl OAuthStore for SqliteStore {
    async fn insert_client(&self, c: &Client) -> Result<bool, StateError> {
        let (c, uris) = (c.clone(), redirect_json(&c.redirect_uris)?);
        self.call(move |conn| {
            let inserted = conn.execute(
                "INSERT INTO oauth_clients (id, kind, name, redirect_uris, auth_method, secret_hash, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![c.id, c.kind.as_str(), c.name, uris, c.auth_method.as_str(), c.secret_hash, c.created_at],
            );
            match inserted {
                Err(rusqlite::Error::SqliteFailure(e, _))
                    if e.code == ErrorCode::ConstraintViolation =>
                {
                    Ok(false)
                }
                other => Ok(other? == 1),
            }
        })
        .await
    }

    async fn upsert_cimd_client(&self, c: &Client) -> Result<bool, StateError> {
        let (c, uris) = (c.clone(), redirect_json(&c.redirect_uris)?);
        self.call(move |conn| {
            let changed = conn.execute(
                "INSERT INTO oauth_clients (id, kind, name, redirect_uris, auth_method, secret_hash, created_at, fetched_at)
                 VALUES (?1, 'cimd', ?2, ?3, ?4, NULL, ?5, ?5)
                 ON CONFLICT(id) DO UPDATE SET name = excluded.name, redirect_uris = excluded.redirect_uris,
                     auth_method = excluded.auth_method, fetched_at = excluded.fetched_at
                 WHERE oauth_clients.kind = 'cimd'",
                params![c.id, c.name, uris, c.auth_method.as_str(), c.created_at],
            )?;
            Ok(changed > 0)
        })
        .await
    }

    async fn client(&self, id: &str) -> Result<Option<Client>, StateError> {
        let id = id.to_owned();
        self.call(move |conn| {
            let sql = format!("SELECT {CLIENT_COLUMNS} FROM oauth_clients WHERE id = ?1");
            Ok(conn.query_row(&sql, [id], client_row).optional()?)
        })
        .await
    }

    async fn count_clients(&self) -> Result<u64, StateError> {
        self.call(|conn| {
            let n: i64 = conn.query_row(
                "SELECT COUNT(*) FROM oauth_clients WHERE kind = 'dcr'",
                [],
                |r| r.get(0),
            )?;
            Ok(u64::try_from(n).unwrap_or(0))
        })
        .await
    }

    async fn prune_unused_clients(&self, registered_before: i64) -> Result<u64, StateError> {
        self.call(move |conn| {
            Ok(count(conn.execute(
                "DELETE FROM oauth_clients WHERE COALESCE(fetched_at, created_at) < ?1
                 AND NOT EXISTS (SELECT 1 FROM oauth_grants g WHERE g.client_id = oauth_clients.id)",
                [registered_before],
            )?))
        })
        .await
    }

    async fn delete_client(&self, id: &str) -> Result<bool, StateError> {
        let id = id.to_owned();
        self.call(move |conn| {
            Ok(conn.execute("DELETE FROM oauth_clients WHERE id = ?1", [id])? > 0)
        })
        .await
    }

    async fn listing(&self, now: i64) -> Result<Vec<ClientListing>, StateError> {
        self.call(move |conn| listing(conn, now)).await
    }

    async fn insert_code(&self, code: &NewCode) -> Result<(), StateError> {
        let code = code.clone();
        self.call(move |conn| tokens::insert_code(conn, &code))
            .await
    }

    async fn code(&self, code_hash: &str) -> Result<Option<CodeRow>, StateError> {
        let hash = code_hash.to_owned();
        self.call(move |conn| tokens::code(conn, &hash)).await
    }

    async fn exchange_code(
        &self,
        code_hash: &str,
        now: i64,
        grant_id: &str,
        refresh: &NewRefresh,
    ) -> Result<Exchange, StateError> {
        let (hash, gid, refresh) = (code_hash.to_owned(), grant_id.to_owned(), refresh.clone());
        self.call(move |conn| tokens::exchange_code(conn, &hash, now, &gid, &refresh))
            .await
    }

    async fn burn_code(&self, code_hash: &str, now: i64) -> Result<(), StateError> {
        let hash = code_hash.to_owned();
        self.call(move |conn| {
            conn.execute(
                "UPDATE oauth_codes SET used_at = ?2 WHERE code_hash = ?1 AND used_at IS NULL",
                params![hash, now],
            )?;
            Ok(())
        })
        .await
    }

    async fn rotate_refresh(
        &self,
        old_hash: &str,
        client_id: &str,
        now: i64,
        next: &NewRefresh,
    ) -> Result<Rotation, StateError> {
        let (old, client, next) = (old_hash.to_owned(), client_id.to_owned(), next.clone());
        self.call(move |conn| tokens::rotate_refresh(conn, &old, &client, now, &next))
            .await
    }

    async fn revoke_refresh_family(
        &self,
        refresh_hash: &str,
        client_id: Option<&str>,
        reason: &str,
        now: i64,
    ) -> Result<bool, StateError> {
        let (hash, client) = (refresh_hash.to_owned(), client_id.map(str::to_owned));
        let reason = reason.to_owned();
        self.call(move |conn| {
            tokens::revoke_refresh_family(conn, &hash, client.as_deref(), &reason, now)
        })
        .await
    }

    async fn revoke_grant_of(
        &self,
        grant_id: &str,
        client_id: &str,
        reason: &str,
        now: i64,
    ) -> Result<bool, StateError> {
        let (gid, client, reason) = (grant_id.to_owned(), client_id.to_owned(), reason.to_owned());
        self.call(move |conn| tokens::revoke_grant_of(conn, &gid, &client, &reason, now))
            .await
    }

    async fn grant_revoked(&self, grant_id: &str) -> Result<bool, StateError> {
        let gid = grant_id.to_owned();
        self.call(move |conn| {
            let revoked: Option<bool> = conn
                .query_row(
                    "SELECT revoked_at IS NOT NULL FROM oauth_grants WHERE id = ?1",
                    [gid],
                    |r| r.get(0),
                )
                .optional()?;
            Ok(revoked.unwrap_or(true))
        })
        .await
    }

    async fn watch_revocations(&self) -> Result<Arc<dyn RevocationWatch>, StateError> {
        let Some(path) = self.path.clone() else {
            return Ok(Arc::new(NoOtherWriter));
        };
        let watch = tokio::task::spawn_blocking(move || DataVersion::open(&path))
            .await
            .map_err(|e| StateError::Connect(format!("the change counter: {e}")))??;
        Ok(Arc::new(watch))
    }

    async fn revoke_grants(
        &self,
        client_id: Option<&str>,
        reason: &str,
        now: i64,
    ) -> Result<u64, StateError> {
        let (client, reason) = (client_id.map(str::to_owned), reason.to_owned());
        self.call(move |conn| tokens::revoke_grants(conn, client.as_deref(), &reason, now))
            .await
    }

    async fn purge(&self, now: i64) -> Result<u64, StateError> {
        self.call(move |conn| tokens::purge(conn, now)).await
    }

    async fn insert_sign_in(&self, row: &SignInRow, max_pending: u64) -> Result<(), StateError> {
        let row = row.clone();
        self.call(move |conn| sign_ins::insert(conn, &row, max_pending))
            .await
    }

    async fn sign_in(&self, id_hash: &str, now: i64) -> Result<Option<SignInRow>, StateError> {
        let id = id_hash.to_owned();
        self.call(move |conn| sign_ins::get(conn, &id, now)).await
    }

    async fn mark_signed_in(&self, id_hash: &str, now: i64) -> Result<bool, StateError> {
        let id = id_hash.to_owned();
        self.call(move |conn| sign_ins::mark_signed_in(conn, &id, now))
            .await
    }

    async fn take_sign_in(&self, id_hash: &str, now: i64) -> Result<Option<SignInRow>, StateError> {
        let id = id_hash.to_owned();
        self.call(move |conn| sign_ins::take(conn, &id, now)).await
    }

    async fn reserve_sign_in_attempt(
        &self,
        address: &str,
        now_ms: i64,
        window_ms: i64,
        max: u32,
    ) -> Result<Option<i64>, StateError> {
        let address = address.to_owned();
        self.call(move |conn| sign_ins::reserve_attempt(conn, &address, now_ms, window_ms, max))
            .await
    }

    async fn clear_sign_in_attempts(&self, address: &str) -> Result<(), StateError> {
        let address = address.to_owned();
        self.call(move |conn| sign_ins::clear_attempts(conn, &address))
            .await
    }

    async fn signing_keys(&self, now: i64) -> Result<Vec<SigningKeyRow>, StateError> {
        self.call(move |conn| {
            let sql = format!(
                "SELECT {KEY_COLUMNS} FROM oauth_signing_keys
                 WHERE retire_at IS NULL OR retire_at > ?1 ORDER BY generation"
            );
            Ok(conn
                .prepare(&sql)?
                .query_map([now], key_row)?
                .collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn add_signing_key(
        &self,
        key: &SigningKeyRow,
        retire_older_at: i64,
    ) -> Result<bool, StateError> {
        let key = key.clone();
        self.call(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let added = tx.execute(
                &format!(
                    "INSERT INTO oauth_signing_keys ({KEY_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT DO NOTHING"
                ),
                params![
                    key.kid,
                    key.generation,
                    key.private_pem,
                    key.created_at,
                    key.not_before,
                    key.retire_at
                ],
            )? == 1;
            if added {
                tx.execute(
                    "UPDATE oauth_signing_keys SET retire_at = ?2
                     WHERE generation < ?1 AND retire_at IS NULL",
                    params![key.generation, retire_older_at],
                )?;
            }
            tx.commit()?;
            Ok(added)
        })
        .await
    }
}
