//! Which JWTs signed with the built-in server's keys are honoured: only those it could
//! have minted itself. A valid signature is not enough, because the keys sit in the
//! state store, and whoever reads them (a same-user Codex) can sign any claims: no
//! grant id, `codex:write`, a year of life. So a token must also name a grant that exists
//! and is not revoked (which `oauth revoke` ends at once: see `grant_view.rs`), and carry an `iat`/`exp` pair
//! the server would have written: issued not in the future, living no longer than the
//! access-token lifetime. Refusals are the generic 401 of any bad token.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;

use super::grant_view::GrantView;
use super::keys::KeyRing;
use crate::auth::{GrantCheck, JwtKey};

/// Clock skew tolerated on `iat` (the verifier's own leeway is of the same size).
pub const SKEW_SEC: i64 = 60;

/// Why a verified token is still not one of ours. Pure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NotLive {
    /// No `gid` claim (or not a string).
    #[error("no grant id")]
    NoGrant,
    /// No `iat` or `exp` (or not integers).
    #[error("no iat or exp")]
    NoTimes,
    /// `iat` is in the future.
    #[error("issued in the future")]
    Future,
    /// `exp - iat` exceeds the access-token lifetime.
    #[error("lives longer than the access-token lifetime")]
    TooLong,
}

/// The grant id of `claims` if their shape is one the server mints with lifetime `ttl`
/// at `now` (unix seconds). Pure; the grant's state is the store's to say.
pub fn grant_of(claims: &serde_json::Value, now: i64, ttl: Duration) -> Result<&str, NotLive> {
    let gid = claims["gid"]
        .as_str()
        .filter(|g| !g.is_empty())
        .ok_or(NotLive::NoGrant)?;
    let (Some(iat), Some(exp)) = (claims["iat"].as_i64(), claims["exp"].as_i64()) else {
        return Err(NotLive::NoTimes);
    };
    if iat > now.saturating_add(SKEW_SEC) {
        return Err(NotLive::Future);
    }
    let ttl = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX);
    if exp.saturating_sub(iat) > ttl {
        return Err(NotLive::TooLong);
    }
    Ok(gid)
}

/// The check the MCP endpoint runs on every JWT: the shape above, then the grant in this
/// process's [`GrantView`] (unknown or revoked: refused; no query while it is confirmed
/// live and the store's watch saw nothing end); and the keys it verifies with, the set
/// in the store.
#[derive(Debug)]
pub struct StoreGrants {
    /// The grants.
    pub view: Arc<GrantView>,
    /// The signing key set.
    pub keys: Arc<KeyRing>,
    /// The access-token lifetime tokens are minted with.
    pub access_ttl: Duration,
}

impl GrantCheck for StoreGrants {
    fn live(&self, claims: serde_json::Value) -> BoxFuture<'static, bool> {
        let grant = match grant_of(&claims, super::now(), self.access_ttl) {
            Ok(grant) => grant.to_owned(),
            Err(why) => {
                tracing::info!(reason = %why, "a token signed with the built-in key that it never issued");
                return Box::pin(async { false });
            }
        };
        let view = self.view.clone();
        Box::pin(async move { view.live(&grant).await })
    }

    fn keys(&self) -> (u64, Arc<Vec<JwtKey>>) {
        self.keys.snapshot()
    }

    fn reread_keys(&self, seen: u64) -> BoxFuture<'static, bool> {
        self.keys.reread_for_unknown_kid(seen)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use serde_json::json;

    use super::*;

    #[test]
    fn only_a_token_shaped_as_the_server_mints_it_names_its_grant() {
        let now = 1_000_000;
        let hour = Duration::from_secs(3600);
        let cases = [
            (
                json!({"gid": "g1", "iat": now, "exp": now + 3600}),
                Ok("g1"),
            ),
            (
                json!({"gid": "g1", "iat": now - 10, "exp": now + 5}),
                Ok("g1"),
            ),
            (
                json!({"gid": "g1", "iat": now + 30, "exp": now + 3630}),
                Ok("g1"),
            ),
            (
                json!({"iat": now, "exp": now + 3600}),
                Err(NotLive::NoGrant),
            ),
            (
                json!({"gid": "", "iat": now, "exp": now + 60}),
                Err(NotLive::NoGrant),
            ),
            (
                json!({"gid": 7, "iat": now, "exp": now + 60}),
                Err(NotLive::NoGrant),
            ),
            (json!({"gid": "g1", "exp": now + 60}), Err(NotLive::NoTimes)),
            (json!({"gid": "g1", "iat": now}), Err(NotLive::NoTimes)),
            (
                json!({"gid": "g1", "iat": "now", "exp": now}),
                Err(NotLive::NoTimes),
            ),
            (
                json!({"gid": "g1", "iat": now + 3600, "exp": now + 7200}),
                Err(NotLive::Future),
            ),
            (
                json!({"gid": "g1", "iat": now, "exp": now + 3601}),
                Err(NotLive::TooLong),
            ),
            (
                json!({"gid": "g1", "iat": now, "exp": now + 31_536_000}),
                Err(NotLive::TooLong),
            ),
            (
                json!({"gid": "g1", "iat": i64::MIN, "exp": i64::MAX}),
                Err(NotLive::TooLong),
            ),
        ];
        for (claims, want) in cases {
            assert_eq!(grant_of(&claims, now, hour), want, "{claims}");
        }
    }
}
