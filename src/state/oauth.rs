//! [`OAuthStore`]: the built-in authorization server's records (clients, authorization
//! codes, grants and their refresh tokens, pending sign-ins and failed sign-in attempts,
//! the signing key set), in the same store as
//! the rest of the state, so that with PostgreSQL every instance of a service knows every
//! client and grant, and a token one instance issued is accepted by all.
//!
//! Every decision that reads then writes (exchange a code, rotate a refresh token) is one
//! transaction that holds the row before reading it (SQLite: an IMMEDIATE transaction;
//! PostgreSQL: `SELECT … FOR UPDATE`), so two instances, or an instance and
//! `2bot-mcp oauth revoke`, can never both see a code unused or a refresh token unspent.
//! Secrets appear only as SHA-256 hex, except the signing keys' private halves, which the
//! database holds (SECURITY.md says so). Times here are unix seconds, as in the tokens.

mod rows;
pub mod watch;

pub use self::rows::{
    AuthMethod, Client, ClientKind, ClientListing, CodeRow, Exchange, Grant, GrantListing, NewCode,
    NewRefresh, Rotation, SignInRow, SigningKeyRow, sha256_hex,
};
pub use self::watch::{Changes, RevocationWatch};
use super::StateError;

/// The longest life `TWOBOT_OAUTH_ACCESS_TOKEN_TTL_SEC` allows: a grant that issued tokens
/// this recently may still have a valid access token, so it is still live (listed, and
/// worth revoking) after its refresh token expired; and a signing key stays accepted this
/// long after its successor started signing.
pub const ACCESS_TTL_MAX_SEC: i64 = 86_400;
/// Codes are kept this long past their expiry so that a late replay still revokes
/// the grant made from the code.
pub const CODE_MEMORY_SEC: i64 = 86_400;
/// Sign-in attempts kept at most, whatever their addresses: an attacker rotating
/// addresses fills the table no further (the oldest go, as the in-memory limit did).
pub const MAX_ATTEMPT_ROWS: i64 = 50_000;

/// How long a full window of sign-in attempts stays refused: until its oldest attempt
/// leaves the window (at least 1 ms, at most the window, whatever the clocks of the
/// instances that wrote the attempts said).
pub fn attempt_wait_ms(oldest: Option<i64>, now_ms: i64, window_ms: i64) -> i64 {
    oldest
        .map_or(window_ms, |t| window_ms - (now_ms - t))
        .clamp(1, window_ms.max(1))
}

/// The built-in authorization server's records. Each method is one statement or one
/// short transaction.
#[async_trait::async_trait]
pub trait OAuthStore: Send + Sync + std::fmt::Debug {
    // === clients ===

    /// Register a client (DCR); `false` when its id is taken (nothing changed).
    async fn insert_client(&self, c: &Client) -> Result<bool, StateError>;

    /// Remember a client from its metadata document (whatever `c.kind` says, it is stored
    /// as CIMD, without a secret): new, or its name, redirect URIs and fetch time
    /// (`c.created_at`) refreshed; its registration time and grants are kept. `false`
    /// when a dynamically registered client has this id (nothing changed).
    async fn upsert_cimd_client(&self, c: &Client) -> Result<bool, StateError>;

    /// The client with this id.
    async fn client(&self, id: &str) -> Result<Option<Client>, StateError>;

    /// How many clients dynamic registration made (the bound on open registration reads
    /// it). Metadata-document clients do not count: they are stored only when the
    /// operator consents, so strangers cannot fill the bound with them.
    async fn count_clients(&self) -> Result<u64, StateError>;

    /// Delete clients last registered or fetched before `registered_before` that have no
    /// grant; returns how many.
    async fn prune_unused_clients(&self, registered_before: i64) -> Result<u64, StateError>;

    /// Delete a client with its grants, codes and refresh tokens (its access tokens stop
    /// at their next use: their grant is gone); `false` if there was no such client.
    async fn delete_client(&self, id: &str) -> Result<bool, StateError>;

    /// Every client, oldest first, each with its live grants (see [`GrantListing`]).
    async fn listing(&self, now: i64) -> Result<Vec<ClientListing>, StateError>;

    // === codes ===

    /// Remember an authorization code (its client must exist).
    async fn insert_code(&self, code: &NewCode) -> Result<(), StateError>;

    /// The code with this hash, used or not.
    async fn code(&self, code_hash: &str) -> Result<Option<CodeRow>, StateError>;

    /// Exchange a code, once: unused and unexpired → it is used up, grant `grant_id` is
    /// created (the code's client, scope and resource) with `refresh` as its first
    /// refresh token → [`Exchange::Issued`]; used before → the grant made from it is
    /// revoked → [`Exchange::Reused`]; expired → [`Exchange::Expired`]; missing →
    /// [`Exchange::Unknown`].
    async fn exchange_code(
        &self,
        code_hash: &str,
        now: i64,
        grant_id: &str,
        refresh: &NewRefresh,
    ) -> Result<Exchange, StateError>;

    /// Use a code up without a grant (a failed exchange attempt: wrong verifier, wrong
    /// redirect URI…), so it cannot be tried again.
    async fn burn_code(&self, code_hash: &str, now: i64) -> Result<(), StateError>;

    // === refresh tokens and grants ===

    /// Rotate a refresh token: see [`Rotation`] for each outcome. Only
    /// [`Rotation::Rotated`] stores `next` (same grant); [`Rotation::Reused`] revokes the
    /// grant with the reason "refresh token reuse".
    async fn rotate_refresh(
        &self,
        old_hash: &str,
        client_id: &str,
        now: i64,
        next: &NewRefresh,
    ) -> Result<Rotation, StateError>;

    /// Revoke the grant of a refresh token (RFC 7009). With `client_id`, only a token of
    /// that client counts. Returns whether a live grant ended.
    async fn revoke_refresh_family(
        &self,
        refresh_hash: &str,
        client_id: Option<&str>,
        reason: &str,
        now: i64,
    ) -> Result<bool, StateError>;

    /// Revoke grant `grant_id` if it belongs to `client_id` (an access token handed to
    /// the revocation endpoint by its own client). Returns whether a live grant ended.
    async fn revoke_grant_of(
        &self,
        grant_id: &str,
        client_id: &str,
        reason: &str,
        now: i64,
    ) -> Result<bool, StateError>;

    /// Whether tokens of this grant must be refused: it was revoked, or it is unknown.
    async fn grant_revoked(&self, grant_id: &str) -> Result<bool, StateError>;

    /// A watch on grants revoked or deleted through other connections from now on (see
    /// [`RevocationWatch`]), for a view of live grants kept in memory. PostgreSQL: a
    /// dedicated `LISTEN` connection, reconnected while the process lives.
    async fn watch_revocations(&self) -> Result<std::sync::Arc<dyn RevocationWatch>, StateError>;

    /// End every grant of a client (every client with `None`), and use up its pending
    /// codes (a code issued just before cannot start a new grant); returns how many
    /// grants ended.
    async fn revoke_grants(
        &self,
        client_id: Option<&str>,
        reason: &str,
        now: i64,
    ) -> Result<u64, StateError>;

    /// Forget what can no longer matter, to bound the tables: codes a day past their
    /// expiry, expired refresh tokens, grants with no token that can still be valid
    /// (revoked or not: an unknown grant counts as revoked), retired signing keys and
    /// expired pending sign-ins.
    /// Returns the rows deleted.
    async fn purge(&self, now: i64) -> Result<u64, StateError>;

    // === pending sign-ins ===

    /// Remember a started sign-in. Expired ones are deleted on the way, and beyond
    /// `max_pending` unexpired ones the oldest go (the authorization endpoint is open to
    /// anyone: this is what bounds the table).
    async fn insert_sign_in(&self, row: &SignInRow, max_pending: u64) -> Result<(), StateError>;

    /// The unexpired pending sign-in with this id hash.
    async fn sign_in(&self, id_hash: &str, now: i64) -> Result<Option<SignInRow>, StateError>;

    /// Record that the operator gave the password; `false` when the sign-in has expired
    /// or was already decided.
    async fn mark_signed_in(&self, id_hash: &str, now: i64) -> Result<bool, StateError>;

    /// Delete and return an unexpired pending sign-in, in one statement: of two
    /// decisions on one sign-in, on any instances, exactly one finds it.
    async fn take_sign_in(&self, id_hash: &str, now: i64) -> Result<Option<SignInRow>, StateError>;

    // === sign-in attempts ===

    /// Count one sign-in attempt from `address` at `now_ms` unless it already made `max`
    /// in the `window_ms` before: `None` when counted, `Some(wait_ms)` when refused until
    /// its oldest attempt leaves the window. One transaction per address (a lock on it),
    /// so racing attempts on any instances never all take the last place. Attempts older
    /// than the window go on the way, and beyond [`MAX_ATTEMPT_ROWS`] the oldest.
    async fn reserve_sign_in_attempt(
        &self,
        address: &str,
        now_ms: i64,
        window_ms: i64,
        max: u32,
    ) -> Result<Option<i64>, StateError>;

    /// Forget `address`'s attempts (a right password).
    async fn clear_sign_in_attempts(&self, address: &str) -> Result<(), StateError>;

    // === signing keys ===

    /// The signing keys not retired at `now`, oldest generation first.
    async fn signing_keys(&self, now: i64) -> Result<Vec<SigningKeyRow>, StateError>;

    /// Add `key` unless its generation or kid is taken (another instance added that
    /// generation first: `false`, nothing changed). When added, every older key not yet
    /// retiring is set to retire at `retire_older_at`, in the same transaction.
    async fn add_signing_key(
        &self,
        key: &SigningKeyRow,
        retire_older_at: i64,
    ) -> Result<bool, StateError>;
}

#[cfg(test)]
mod tests {
    use super::attempt_wait_ms;

    #[test]
    fn a_full_window_waits_for_its_oldest_attempt_within_bounds() {
        let window = 900_000;
        let cases = [
            (Some(1_000), 1_000, window),           // just made: the whole window
            (Some(1_000), 11_000, window - 10_000), // ten seconds on
            (Some(1_000), 1_000 + window, 1),       // leaving now: never zero
            (Some(50_000), 1_000, window),          // a clock ahead: never more than the window
            (None, 1_000, window),                  // nothing seen: the whole window
        ];
        for (oldest, now, wait) in cases {
            assert_eq!(
                attempt_wait_ms(oldest, now, window),
                wait,
                "{oldest:?} at {now}"
            );
        }
    }
}
