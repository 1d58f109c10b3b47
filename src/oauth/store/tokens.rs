//! Codes, grants and refresh tokens: the exchanges and rotations, each one IMMEDIATE
//! transaction, and the revocations.

use rusqlite::{OptionalExtension, Row, Transaction, TransactionBehavior};

use super::{
    ACCESS_TTL_MAX_SEC, CODE_MEMORY_SEC, CodeRow, Exchange, Grant, NewCode, NewRefresh, Rotation,
    Store, StoreError, count,
};

impl Store {
    // === codes ===

    /// Remember an authorization code (its client must exist).
    pub fn insert_code(&self, code: &NewCode) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO codes (code_hash, client_id, redirect_uri, code_challenge, resource, scope, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            rusqlite::params![code.code_hash, code.client_id, code.redirect_uri, code.code_challenge,
                code.resource, code.scope, code.expires_at],
        )?;
        Ok(())
    }

    /// The code with this hash, used or not.
    pub fn code(&self, code_hash: &str) -> Result<Option<CodeRow>, StoreError> {
        let row = self.conn().query_row(
            "SELECT code_hash, client_id, redirect_uri, code_challenge, resource, scope, expires_at, used_at
             FROM codes WHERE code_hash = ?1",
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
        );
        Ok(row.optional()?)
    }

    /// Exchange a code, once: unused and unexpired → it is used up, grant `grant_id` is
    /// created (the code's client, scope and resource) with `refresh` as its first refresh
    /// token → [`Exchange::Issued`]; used before → the grant made from it is revoked →
    /// [`Exchange::Reused`]; expired → [`Exchange::Expired`]; missing → [`Exchange::Unknown`].
    pub fn exchange_code(
        &self,
        code_hash: &str,
        now: i64,
        grant_id: &str,
        refresh: &NewRefresh,
    ) -> Result<Exchange, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let row = tx
            .query_row(
                "SELECT client_id, scope, resource, expires_at, used_at, grant_id FROM codes WHERE code_hash = ?1",
                [code_hash],
                |r| {
                    let row: (String, String, String, i64, Option<i64>, Option<String>) =
                        (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?);
                    Ok(row)
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
            "INSERT INTO grants (id, client_id, scope, resource, created_at, last_used_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
            rusqlite::params![grant_id, client_id, scope, resource, now],
        )?;
        tx.execute(
            "UPDATE codes SET used_at = ?2, grant_id = ?3 WHERE code_hash = ?1",
            rusqlite::params![code_hash, now, grant_id],
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

    /// Use a code up without a grant (a failed exchange attempt: wrong verifier, wrong
    /// redirect URI…), so it cannot be tried again.
    pub fn burn_code(&self, code_hash: &str, now: i64) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE codes SET used_at = ?2 WHERE code_hash = ?1 AND used_at IS NULL",
            rusqlite::params![code_hash, now],
        )?;
        Ok(())
    }

    // === refresh tokens ===

    /// Rotate a refresh token: see [`Rotation`] for each outcome. Only
    /// [`Rotation::Rotated`] stores `next` (same grant); [`Rotation::Reused`] revokes the
    /// grant with the reason "refresh token reuse".
    pub fn rotate_refresh(
        &self,
        old_hash: &str,
        client_id: &str,
        now: i64,
        next: &NewRefresh,
    ) -> Result<Rotation, StoreError> {
        let mut conn = self.conn();
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
            "UPDATE refresh_tokens SET used_at = ?2 WHERE token_hash = ?1",
            rusqlite::params![old_hash, now],
        )?;
        insert_refresh(&tx, &found.grant.id, next)?;
        tx.execute(
            "UPDATE grants SET last_used_at = ?2 WHERE id = ?1",
            rusqlite::params![found.grant.id, now],
        )?;
        tx.commit()?;
        Ok(Rotation::Rotated(found.grant))
    }

    /// Revoke the grant of a refresh token (RFC 7009). With `client_id`, only a token of
    /// that client counts. Returns whether a live grant ended.
    pub fn revoke_refresh_family(
        &self,
        refresh_hash: &str,
        client_id: Option<&str>,
        reason: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut conn = self.conn();
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

    // === grants ===

    /// Revoke grant `grant_id` if it belongs to `client_id` (an access token handed to
    /// the revocation endpoint by its own client). Returns whether a live grant ended.
    pub fn revoke_grant_of(
        &self,
        grant_id: &str,
        client_id: &str,
        reason: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let owner: Option<String> = tx
            .query_row(
                "SELECT client_id FROM grants WHERE id = ?1",
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

    /// Whether tokens of this grant must be refused: it was revoked, or it is unknown.
    pub fn grant_revoked(&self, grant_id: &str) -> Result<bool, StoreError> {
        let revoked: Option<bool> = self
            .conn()
            .query_row(
                "SELECT revoked_at IS NOT NULL FROM grants WHERE id = ?1",
                [grant_id],
                |r| r.get(0),
            )
            .optional()?;
        Ok(revoked.unwrap_or(true))
    }

    /// End every grant of a client, and use up its pending codes (a code issued just
    /// before cannot start a new grant); returns how many grants ended.
    pub fn revoke_client(
        &self,
        client_id: &str,
        reason: &str,
        now: i64,
    ) -> Result<u64, StoreError> {
        self.revoke_where(Some(client_id), reason, now)
    }

    /// End every grant of every client, and use up every pending code; returns how many
    /// grants ended.
    pub fn revoke_all(&self, reason: &str, now: i64) -> Result<u64, StoreError> {
        self.revoke_where(None, reason, now)
    }

    fn revoke_where(
        &self,
        client_id: Option<&str>,
        reason: &str,
        now: i64,
    ) -> Result<u64, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let ended = tx.execute(
            "UPDATE grants SET revoked_at = ?2, revoked_reason = ?3
             WHERE revoked_at IS NULL AND (?1 IS NULL OR client_id = ?1)",
            rusqlite::params![client_id, now, reason],
        )?;
        tx.execute(
            "UPDATE codes SET used_at = ?2 WHERE used_at IS NULL AND (?1 IS NULL OR client_id = ?1)",
            rusqlite::params![client_id, now],
        )?;
        tx.commit()?;
        Ok(count(ended))
    }

    /// Forget what can no longer matter, to bound the file: codes a day past their expiry,
    /// expired refresh tokens, and grants with no token that can still be valid (revoked
    /// or not: an unknown grant counts as revoked). Returns the rows deleted.
    pub fn purge(&self, now: i64) -> Result<u64, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let codes = tx.execute(
            "DELETE FROM codes WHERE expires_at < ?1",
            [now - CODE_MEMORY_SEC],
        )?;
        let tokens = tx.execute("DELETE FROM refresh_tokens WHERE expires_at <= ?1", [now])?;
        let grants = tx.execute(
            "DELETE FROM grants WHERE last_used_at <= ?1 - ?2
             AND NOT EXISTS (SELECT 1 FROM refresh_tokens t WHERE t.grant_id = grants.id)",
            rusqlite::params![now, ACCESS_TTL_MAX_SEC],
        )?;
        tx.commit()?;
        Ok(count(codes + tokens + grants))
    }
}

/// A grant from the columns `id, client_id, scope, resource, created_at` (first five).
pub(super) fn grant_row(r: &Row<'_>) -> rusqlite::Result<Grant> {
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
         FROM refresh_tokens t JOIN grants g ON g.id = t.grant_id WHERE t.token_hash = ?1",
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
        "INSERT INTO refresh_tokens (token_hash, grant_id, issued_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
        rusqlite::params![t.token_hash, grant_id, t.issued_at, t.expires_at],
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
        "UPDATE grants SET revoked_at = ?2, revoked_reason = ?3 WHERE id = ?1 AND revoked_at IS NULL",
        rusqlite::params![grant_id, now, reason],
    )?;
    Ok(changed > 0)
}
