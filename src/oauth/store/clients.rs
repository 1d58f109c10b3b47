//! Clients: registered by DCR or remembered from their metadata documents, listed with
//! their live grants for `oauth list`, and pruned when nobody ever signed in for them.

use rusqlite::{ErrorCode, OptionalExtension, Row};

use super::tokens::grant_row;
use super::{ACCESS_TTL_MAX_SEC, Client, ClientListing, GrantListing, Store, StoreError, count};

impl Store {
    // === clients ===

    /// Register a client (DCR); its id must be new.
    pub fn insert_client(&self, c: &Client) -> Result<(), StoreError> {
        let uris = redirect_json(&c.redirect_uris)?;
        let inserted = self.conn().execute(
            "INSERT INTO clients (id, kind, name, redirect_uris, auth_method, secret_hash, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            rusqlite::params![c.id, c.kind, c.name, uris, c.auth_method, c.secret_hash, c.created_at],
        );
        match inserted {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == ErrorCode::ConstraintViolation =>
            {
                Err(StoreError::ClientExists(c.id.clone()))
            }
            other => other.map(drop).map_err(StoreError::from),
        }
    }

    /// Remember a client from its metadata document (whatever `c.kind` says, it is stored
    /// as CIMD, without a secret): new, or its name, redirect URIs and fetch time
    /// (`c.created_at`) refreshed; its registration time and grants are kept.
    pub fn upsert_cimd_client(&self, c: &Client) -> Result<(), StoreError> {
        let uris = redirect_json(&c.redirect_uris)?;
        let changed = self.conn().execute(
            "INSERT INTO clients (id, kind, name, redirect_uris, auth_method, secret_hash, created_at, fetched_at)
             VALUES (?1, 'cimd', ?2, ?3, ?4, NULL, ?5, ?5)
             ON CONFLICT(id) DO UPDATE SET name = excluded.name, redirect_uris = excluded.redirect_uris,
                 auth_method = excluded.auth_method, fetched_at = excluded.fetched_at
             WHERE clients.kind = 'cimd'",
            rusqlite::params![c.id, c.name, uris, c.auth_method, c.created_at],
        )?;
        if changed == 0 {
            return Err(StoreError::NotCimd(c.id.clone()));
        }
        Ok(())
    }

    /// The client with this id.
    pub fn client(&self, id: &str) -> Result<Option<Client>, StoreError> {
        let sql = format!("SELECT {CLIENT_COLUMNS} FROM clients WHERE id = ?1");
        Ok(self.conn().query_row(&sql, [id], client_row).optional()?)
    }

    /// How many clients dynamic registration made (the bound on open registration reads
    /// it). Metadata-document clients do not count: they are stored only when the operator
    /// consents, so strangers cannot fill the bound with them.
    pub fn count_clients(&self) -> Result<u64, StoreError> {
        let n: i64 =
            self.conn()
                .query_row("SELECT COUNT(*) FROM clients WHERE kind = 'dcr'", [], |r| {
                    r.get(0)
                })?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Delete clients last registered or fetched before `registered_before` that have no
    /// grant (registrations nobody signed in for, documents whose code was never traded);
    /// returns how many.
    pub fn prune_unused_clients(&self, registered_before: i64) -> Result<u64, StoreError> {
        let deleted = self.conn().execute(
            "DELETE FROM clients WHERE COALESCE(fetched_at, created_at) < ?1
             AND NOT EXISTS (SELECT 1 FROM grants WHERE grants.client_id = clients.id)",
            [registered_before],
        )?;
        Ok(count(deleted))
    }

    /// Delete a client with its grants, codes and refresh tokens (its access tokens stop
    /// at their next use: their grant is gone); `false` if there was no such client.
    pub fn delete_client(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self
            .conn()
            .execute("DELETE FROM clients WHERE id = ?1", [id])?
            > 0)
    }

    /// Every client, oldest first, each with its live grants (see [`GrantListing`]).
    pub fn listing(&self, now: i64) -> Result<Vec<ClientListing>, StoreError> {
        let conn = self.conn();
        let sql = format!("SELECT {CLIENT_COLUMNS} FROM clients ORDER BY created_at, id");
        let clients = conn
            .prepare(&sql)?
            .query_map([], client_row)?
            .collect::<Result<Vec<_>, _>>()?;
        let mut grants = conn.prepare(
            "SELECT id, client_id, scope, resource, created_at, last_used_at, refresh_expires_at FROM (
                 SELECT g.*, (SELECT MAX(t.expires_at) FROM refresh_tokens t
                     WHERE t.grant_id = g.id AND t.used_at IS NULL AND t.expires_at > ?2) AS refresh_expires_at
                 FROM grants g WHERE g.client_id = ?1 AND g.revoked_at IS NULL)
             WHERE refresh_expires_at IS NOT NULL OR last_used_at > ?2 - ?3
             ORDER BY created_at, id",
        )?;
        clients
            .into_iter()
            .map(|client| {
                let grants = grants
                    .query_map(rusqlite::params![client.id, now, ACCESS_TTL_MAX_SEC], |r| {
                        Ok(GrantListing {
                            grant: grant_row(r)?,
                            last_used_at: r.get(5)?,
                            refresh_expires_at: r.get(6)?,
                        })
                    })?
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(ClientListing { client, grants })
            })
            .collect()
    }
}

const CLIENT_COLUMNS: &str = "id, kind, name, redirect_uris, auth_method, secret_hash, created_at";

fn client_row(r: &Row<'_>) -> rusqlite::Result<Client> {
    let uris: String = r.get(3)?;
    let redirect_uris = serde_json::from_str(&uris).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(3, rusqlite::types::Type::Text, Box::new(e))
    })?;
    Ok(Client {
        id: r.get(0)?,
        kind: r.get(1)?,
        name: r.get(2)?,
        redirect_uris,
        auth_method: r.get(4)?,
        secret_hash: r.get(5)?,
        created_at: r.get(6)?,
    })
}

fn redirect_json(uris: &[String]) -> Result<String, StoreError> {
    serde_json::to_string(uris)
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)).into())
}
