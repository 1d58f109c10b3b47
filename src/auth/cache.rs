//! Verdicts on JWTs, remembered until the token expires, so a client that sends the same
//! token on every request pays for one signature check, not one per request (an ES256
//! check costs far more than everything else on a `tools/list`).
//!
//! Only what cannot change while the token lives is remembered: who it names and when it
//! expires, for the key set it verified against. A changed key set (a JWKS refresh, a
//! rotated built-in key) forgets every verdict; revocation is not remembered here at all
//! (the grant check still runs on every request, against its own view). Entries are keyed
//! by the token's SHA-256, never the token, and the cache is bounded: at capacity the
//! least useful entries go and their tokens are simply verified again.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest as _, Sha256};

use crate::run::Principal;

/// How many verdicts are kept at most (about 200 bytes each).
pub const CAPACITY: u64 = 10_000;
/// The longest a verdict is kept, whatever the token's `exp` says.
pub const MAX_AGE: Duration = Duration::from_secs(3600);

/// A token that verified: who it names, its claims (for the grant check), and when the
/// verdict stops counting.
#[derive(Debug, Clone)]
pub struct Verdict {
    /// Who the token names.
    pub principal: Principal,
    /// Its payload, as the grant check reads it.
    pub claims: Arc<serde_json::Value>,
    /// Its `exp`, unix seconds.
    pub expires_at: u64,
    /// The generation of the key set it verified against.
    pub keys: u64,
}

/// The cache of verdicts.
#[derive(Debug, Clone)]
pub struct Verdicts {
    cache: moka::sync::Cache<[u8; 32], Arc<Verdict>>,
}

/// How long a verdict may stay: until its `exp`, at most [`MAX_AGE`]. Pure.
pub fn lifetime(expires_at: u64, now: u64) -> Option<Duration> {
    let left = expires_at.checked_sub(now).filter(|s| *s > 0)?;
    Some(Duration::from_secs(left).min(MAX_AGE))
}

struct UntilExp;

impl moka::Expiry<[u8; 32], Arc<Verdict>> for UntilExp {
    fn expire_after_create(
        &self,
        _key: &[u8; 32],
        value: &Arc<Verdict>,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        Some(lifetime(value.expires_at, unix_now()).unwrap_or(Duration::ZERO))
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn key_of(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Default for Verdicts {
    fn default() -> Self {
        Self::with_capacity(CAPACITY)
    }
}

impl Verdicts {
    /// A cache of at most `capacity` verdicts.
    pub fn with_capacity(capacity: u64) -> Self {
        Self {
            cache: moka::sync::Cache::builder()
                .max_capacity(capacity)
                .expire_after(UntilExp)
                .build(),
        }
    }

    /// The verdict on `token` if one is held for key-set generation `keys` and the token
    /// has not expired.
    pub fn get(&self, token: &str, keys: u64) -> Option<Arc<Verdict>> {
        let key = key_of(token);
        let verdict = self.cache.get(&key)?;
        if verdict.keys != keys || verdict.expires_at <= unix_now() {
            self.cache.invalidate(&key);
            return None;
        }
        Some(verdict)
    }

    /// Remember that `token` verified as `verdict`; a token without an `exp` in the
    /// future is not remembered.
    pub fn insert(&self, token: &str, verdict: Verdict) {
        if lifetime(verdict.expires_at, unix_now()).is_some() {
            self.cache.insert(key_of(token), Arc::new(verdict));
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use serde_json::json;

    use super::*;

    fn verdict(expires_at: u64, keys: u64) -> Verdict {
        Verdict {
            principal: Principal::Authenticated {
                issuer: None,
                subject: "alice".into(),
                scopes: vec![],
            },
            claims: Arc::new(json!({"sub": "alice"})),
            expires_at,
            keys,
        }
    }

    #[test]
    fn a_verdict_lives_until_the_token_expires_and_never_longer_than_an_hour() {
        let cases = [
            (1_000, 1_000, None),
            (999, 1_000, None),
            (1_001, 1_000, Some(Duration::from_secs(1))),
            (4_600, 1_000, Some(MAX_AGE)),
            (1_000 + 3_599, 1_000, Some(Duration::from_secs(3_599))),
        ];
        for (exp, now, want) in cases {
            assert_eq!(lifetime(exp, now), want, "exp {exp} now {now}");
        }
    }

    #[test]
    fn a_remembered_token_is_served_only_for_the_key_set_it_verified_against() {
        let cache = Verdicts::default();
        cache.insert("tok", verdict(unix_now() + 600, 3));
        assert!(cache.get("tok", 3).is_some());
        assert!(cache.get("other", 3).is_none());
        assert!(cache.get("tok", 4).is_none(), "a new key set forgets it");
        assert!(cache.get("tok", 3).is_none(), "and it stays forgotten");
    }

    #[test]
    fn an_expired_token_is_neither_remembered_nor_served() {
        let cache = Verdicts::default();
        cache.insert("old", verdict(unix_now().saturating_sub(1), 0));
        assert!(cache.get("old", 0).is_none());
        cache.insert("soon", verdict(unix_now() + 1, 0));
        std::thread::sleep(Duration::from_millis(2_100));
        assert!(cache.get("soon", 0).is_none());
    }

    #[test]
    fn the_cache_holds_no_more_than_its_capacity() {
        let cache = Verdicts::with_capacity(8);
        for i in 0..100 {
            cache.insert(&format!("tok-{i}"), verdict(unix_now() + 600, 0));
        }
        cache.cache.run_pending_tasks();
        assert!(
            cache.cache.entry_count() <= 8,
            "{}",
            cache.cache.entry_count()
        );
    }
}
