//! [`OAuthStore`] on PostgreSQL: the clients, the signing keys and the listing here;
//! codes, grants and refresh tokens in `oauth_tokens.rs`. Conflicts are settled by the
//! database: a taken client id or key generation is an `ON CONFLICT DO NOTHING` that
//! changed no row, and reads that decide a write lock their rows (`FOR UPDATE`).

use std::collections::HashMap;

use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::PostgresStore;
use super::migrate::query;
use super::oauth_tokens as tokens;
use super::sign_ins;
use crate::state::StateError;
use crate::state::oauth::watch::{CHANNEL, EVERY_GRANT};
use crate::state::oauth::{
    ACCESS_TTL_MAX_SEC, AuthMethod, Client, ClientKind, ClientListing, CodeRow, Exchange, Grant,
    GrantListing, NewCode, NewRefresh, OAuthStore, Rotation, SignInRow, SigningKeyRow,
};

const CLIENT_COLUMNS: &str = "id, kind, name, redirect_uris, auth_method, secret_hash, created_at";
const KEY_COLUMNS: &str = "kid, generation, private_pem, created_at, not_before, retire_at";

/// Parameters of a statement.
pub(super) type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

impl PostgresStore {
    /// Run one statement (prepared once per connection); the rows it changed.
    pub(super) async fn exec(&self, sql: &str, params: Params<'_>) -> Result<u64, StateError> {
        let client = self.client().await?;
        let stmt = client.prepare_cached(sql).await.map_err(query)?;
        client.execute(&stmt, params).await.map_err(query)
    }

    /// Run one query (prepared once per connection); its rows.
    pub(super) async fn rows(&self, sql: &str, params: Params<'_>) -> Result<Vec<Row>, StateError> {
        let client = self.client().await?;
        let stmt = client.prepare_cached(sql).await.map_err(query)?;
        client.query(&stmt, params).await.map_err(query)
    }
}

fn client_row(r: &Row) -> Result<Client, StateError> {
    let id: String = r.get(0);
    let kind: String = r.get(1);
    let uris: String = r.get(3);
    let method: String = r.get(4);
    let corrupt = |what: String| StateError::Corrupt(format!("client {id}: {what}"));
    Ok(Client {
        kind: ClientKind::parse(&kind).ok_or_else(|| corrupt(format!("kind {kind:?}")))?,
        name: r.get(2),
        redirect_uris: serde_json::from_str(&uris)
            .map_err(|e| corrupt(format!("redirect URIs: {e}")))?,
        auth_method: AuthMethod::parse(&method)
            .ok_or_else(|| corrupt(format!("auth method {method:?}")))?,
        secret_hash: r.get(5),
        created_at: r.get(6),
        id,
    })
}

/// A grant from the columns `id, client_id, scope, resource, created_at` (first five).
pub(super) fn grant_row(r: &Row) -> Grant {
    Grant {
        id: r.get(0),
        client_id: r.get(1),
        scope: r.get(2),
        resource: r.get(3),
        created_at: r.get(4),
    }
}

fn redirect_json(uris: &[String]) -> Result<String, StateError> {
    serde_json::to_string(uris).map_err(|e| StateError::Query(format!("redirect URIs: {e}")))
}

#[async_trait::async_trait]
impl OAuthStore for PostgresStore {
    async fn insert_client(&self, c: &Client) -> Result<bool, StateError> {
        let uris = redirect_json(&c.redirect_uris)?;
        let n = self
            .exec(
                "INSERT INTO oauth_clients (id, kind, name, redirect_uris, auth_method, secret_hash, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING",
                &[&c.id, &c.kind.as_str(), &c.name, &uris, &c.auth_method.as_str(), &c.secret_hash, &c.created_at],
            )
            .await?;
        Ok(n == 1)
    }

    async fn upsert_cimd_client(&self, c: &Client) -> Result<bool, StateError> {
        let uris = redirect_json(&c.redirect_uris)?;
        let n = self
            .exec(
                "INSERT INTO oauth_clients (id, kind, name, redirect_uris, auth_method, secret_hash, created_at, fetched_at)
                 VALUES ($1, 'cimd', $2, $3, $4, NULL, $5, $5)
                 ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, redirect_uris = EXCLUDED.redirect_uris,
                     auth_method = EXCLUDED.auth_method, fetched_at = EXCLUDED.fetched_at
                 WHERE oauth_clients.kind = 'cimd'",
                &[&c.id, &c.name, &uris, &c.auth_method.as_str(), &c.created_at],
            )
            .await?;
        Ok(n > 0)
    }

    async fn client(&self, id: &str) -> Result<Option<Client>, StateError> {
        let sql = format!("SELECT {CLIENT_COLUMNS} FROM oauth_clients WHERE id = $1");
        let rows = self.rows(&sql, &[&id]).await?;
        rows.first().map(client_row).transpose()
    }

    async fn count_clients(&self) -> Result<u64, StateError> {
        let rows = self
            .rows("SELECT COUNT(*) FROM oauth_clients WHERE kind = 'dcr'", &[])
            .await?;
        let n: i64 = rows.first().map_or(0, |r| r.get(0));
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn prune_unused_clients(&self, registered_before: i64) -> Result<u64, StateError> {
        self.exec(
            "DELETE FROM oauth_clients c WHERE COALESCE(c.fetched_at, c.created_at) < $1
             AND NOT EXISTS (SELECT 1 FROM oauth_grants g WHERE g.client_id = c.id)",
            &[&registered_before],
        )
        .await
    }

    async fn delete_client(&self, id: &str) -> Result<bool, StateError> {
        // Its grants go with it, leaving no revoked row behind: every grant may have
        // ended, as far as the instances listening can tell.
        Ok(self
            .exec(
                "WITH gone AS (DELETE FROM oauth_clients WHERE id = $1 RETURNING id)
                 SELECT pg_notify($2, $3) FROM gone",
                &[&id, &CHANNEL, &EVERY_GRANT],
            )
            .await?
            > 0)
    }

    async fn listing(&self, now: i64) -> Result<Vec<ClientListing>, StateError> {
        let sql = format!("SELECT {CLIENT_COLUMNS} FROM oauth_clients ORDER BY created_at, id");
        let clients = self.rows(&sql, &[]).await?;
        let live = self
            .rows(
                "SELECT g.id, g.client_id, g.scope, g.resource, g.created_at, g.last_used_at, r.expires
                 FROM oauth_grants g LEFT JOIN LATERAL (
                     SELECT MAX(t.expires_at) AS expires FROM oauth_refresh_tokens t
                     WHERE t.grant_id = g.id AND t.used_at IS NULL AND t.expires_at > $1) r ON TRUE
                 WHERE g.revoked_at IS NULL
                   AND (r.expires IS NOT NULL OR g.last_used_at > $1::BIGINT - $2::BIGINT)
                 ORDER BY g.created_at, g.id",
                &[&now, &ACCESS_TTL_MAX_SEC],
            )
            .await?;
        let mut grants: HashMap<String, Vec<GrantListing>> = HashMap::new();
        for r in &live {
            let grant = grant_row(r);
            grants
                .entry(grant.client_id.clone())
                .or_default()
                .push(GrantListing {
                    grant,
                    last_used_at: r.get(5),
                    refresh_expires_at: r.get(6),
                });
        }
        clients
            .iter()
            .map(|r| {
                let client = client_row(r)?;
                let grants = grants.remove(&client.id).unwrap_or_default();
                Ok(ClientListing { client, grants })
            })
            .collect()
    }

    async fn insert_code(&self, code: &NewCode) -> Result<(), StateError> {
        self.exec(
            "INSERT INTO oauth_codes (code_hash, client_id, redirect_uri, code_challenge, resource, scope, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[&code.code_hash, &code.client_id, &code.redirect_uri, &code.code_challenge,
                &code.resource, &code.scope, &code.expires_at],
        )
        .await
        .map(drop)
    }

    async fn code(&self, code_hash: &str) -> Result<Option<CodeRow>, StateError> {
        let rows = self
            .rows(
                "SELECT code_hash, client_id, redirect_uri, code_challenge, resource, scope, expires_at, used_at
                 FROM oauth_codes WHERE code_hash = $1",
                &[&code_hash],
            )
            .await?;
        Ok(rows.first().map(|r| CodeRow {
            code: NewCode {
                code_hash: r.get(0),
                client_id: r.get(1),
                redirect_uri: r.get(2),
                code_challenge: r.get(3),
                resource: r.get(4),
                scope: r.get(5),
                expires_at: r.get(6),
            },
            used_at: r.get(7),
        }))
    }

    async fn exchange_code(
        &self,
        code_hash: &str,
        now: i64,
        grant_id: &str,
        refresh: &NewRefresh,
    ) -> Result<Exchange, StateError> {
        let mut client = self.client().await?;
        tokens::exchange_code(&mut client, code_hash, now, grant_id, refresh).await
    }

    async fn burn_code(&self, code_hash: &str, now: i64) -> Result<(), StateError> {
        self.exec(
            "UPDATE oauth_codes SET used_at = $2 WHERE code_hash = $1 AND used_at IS NULL",
            &[&code_hash, &now],
        )
        .await
        .map(drop)
    }

    async fn rotate_refresh(
        &self,
        old_hash: &str,
        client_id: &str,
        now: i64,
        next: &NewRefresh,
    ) -> Result<Rotation, StateError> {
        let mut client = self.client().await?;
        tokens::rotate_refresh(&mut client, old_hash, client_id, now, next).await
    }

    async fn revoke_refresh_family(
        &self,
        refresh_hash: &str,
        client_id: Option<&str>,
        reason: &str,
        now: i64,
    ) -> Result<bool, StateError> {
        let mut client = self.client().await?;
        tokens::revoke_refresh_family(&mut client, refresh_hash, client_id, reason, now).await
    }

    async fn revoke_grant_of(
        &self,
        grant_id: &str,
        client_id: &str,
        reason: &str,
        now: i64,
    ) -> Result<bool, StateError> {
        // One conditional UPDATE: the grant ends only if it is this client's and live;
        // the instances listening hear of it when it commits.
        Ok(self
            .exec(
                "WITH ended AS (UPDATE oauth_grants SET revoked_at = $3, revoked_reason = $4
                     WHERE id = $1 AND client_id = $2 AND revoked_at IS NULL RETURNING id)
                 SELECT pg_notify($5, id) FROM ended",
                &[&grant_id, &client_id, &now, &reason, &CHANNEL],
            )
            .await?
            > 0)
    }

    async fn grant_revoked(&self, grant_id: &str) -> Result<bool, StateError> {
        let rows = self
            .rows(
                "SELECT revoked_at IS NOT NULL FROM oauth_grants WHERE id = $1",
                &[&grant_id],
            )
            .await?;
        Ok(rows.first().is_none_or(|r| r.get(0)))
    }

    async fn watch_revocations(
        &self,
    ) -> Result<std::sync::Arc<dyn crate::state::oauth::RevocationWatch>, StateError> {
        Ok(super::listen::start(&self.url).await?)
    }

    async fn revoke_grants(
        &self,
        client_id: Option<&str>,
        reason: &str,
        now: i64,
    ) -> Result<u64, StateError> {
        let mut client = self.client().await?;
        tokens::revoke_grants(&mut client, client_id, reason, now).await
    }

    async fn purge(&self, now: i64) -> Result<u64, StateError> {
        let mut client = self.client().await?;
        tokens::purge(&mut client, now).await
    }

    async fn insert_sign_in(&self, row: &SignInRow, max_pending: u64) -> Result<(), StateError> {
        sign_ins::insert(self, row, max_pending).await
    }

    async fn sign_in(&self, id_hash: &str, now: i64) -> Result<Option<SignInRow>, StateError> {
        sign_ins::get(self, id_hash, now).await
    }

    async fn mark_signed_in(&self, id_hash: &str, now: i64) -> Result<bool, StateError> {
        sign_ins::mark_signed_in(self, id_hash, now).await
    }

    async fn take_sign_in(&self, id_hash: &str, now: i64) -> Result<Option<SignInRow>, StateError> {
        sign_ins::take(self, id_hash, now).await
    }

    async fn reserve_sign_in_attempt(
        &self,
        address: &str,
        now_ms: i64,
        window_ms: i64,
        max: u32,
    ) -> Result<Option<i64>, StateError> {
        sign_ins::reserve_attempt(self, address, now_ms, window_ms, max).await
    }

    async fn clear_sign_in_attempts(&self, address: &str) -> Result<(), StateError> {
        sign_ins::clear_attempts(self, address).await
    }

    async fn signing_keys(&self, now: i64) -> Result<Vec<SigningKeyRow>, StateError> {
        let sql = format!(
            "SELECT {KEY_COLUMNS} FROM oauth_signing_keys
             WHERE retire_at IS NULL OR retire_at > $1 ORDER BY generation"
        );
        Ok(self
            .rows(&sql, &[&now])
            .await?
            .iter()
            .map(|r| SigningKeyRow {
                kid: r.get(0),
                generation: r.get(1),
                private_pem: r.get(2),
                created_at: r.get(3),
                not_before: r.get(4),
                retire_at: r.get(5),
            })
            .collect())
    }

    async fn add_signing_key(
        &self,
        key: &SigningKeyRow,
        retire_older_at: i64,
    ) -> Result<bool, StateError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(query)?;
        let added = tx
            .execute(
                &format!(
                    "INSERT INTO oauth_signing_keys ({KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)
                     ON CONFLICT DO NOTHING"
                ),
                &[
                    &key.kid,
                    &key.generation,
                    &key.private_pem,
                    &key.created_at,
                    &key.not_before,
                    &key.retire_at,
                ],
            )
            .await
            .map_err(query)?
            == 1;
        if added {
            tx.execute(
                "UPDATE oauth_signing_keys SET retire_at = $2
                 WHERE generation < $1 AND retire_at IS NULL",
                &[&key.generation, &retire_older_at],
            )
            .await
            .map_err(query)?;
        }
        tx.commit().await.map_err(query)?;
        Ok(added)
    }
}
