//! The signing key set, shared through the state store by every instance of a service,
//! so a token one instance signed is accepted by all.
//!
//! Each instance loads the set at start; if no key is current it adds one, and a key
//! older than `TWOBOT_OAUTH_KEY_ROTATION_DAYS` gets a successor. Two instances adding a
//! key at once cannot both succeed (its generation is unique in the store): the loser
//! reads the winner's. A successor is published [`LEAD`] before it signs, so every
//! instance has read it (they re-read every [`REREAD`], and at once, throttled, when a
//! token names a `kid` they do not hold) before a token signed with it arrives; the key
//! it succeeds stays accepted until every token it signed has expired (the longest
//! access-token life after the successor took over), then retires.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use serde::Serialize;

use super::signing::{PemError, SigningError, SigningKey};
use crate::auth::JwtKey;
use crate::state::oauth::{ACCESS_TTL_MAX_SEC, OAuthStore, SigningKeyRow};
use crate::state::{BackendKind, StateError, StateStore};

/// How often an instance re-reads the key set (and adds a successor when one is due).
pub const REREAD: Duration = Duration::from_secs(60);
/// How long before it signs a successor is published: longer than [`REREAD`], so every
/// instance knows it first.
pub const LEAD_SEC: i64 = 300;
/// Least time between two re-reads caused by an unknown `kid` (anyone can send one).
const UNKNOWN_KID_REREAD: Duration = Duration::from_secs(5);
/// Clock skew tolerated between instances, added to a retiring key's life.
const SKEW_SEC: i64 = 60;

/// Why the key set cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    /// The store did not answer.
    #[error("the signing keys: {0}")]
    Store(#[from] StateError),
    /// A key could not be made, read or used.
    #[error(transparent)]
    Signing(#[from] SigningError),
    /// A stored key is not a key.
    #[error("signing key {kid} in the state store: {reason}")]
    Corrupt {
        /// Its kid.
        kid: String,
        /// What the parser said.
        reason: PemError,
    },
}

/// When a key of the stored set was made and starts signing (what the decisions need).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Times {
    /// Its generation.
    pub generation: i64,
    /// Made at, unix seconds.
    pub created_at: i64,
    /// Signs from, unix seconds.
    pub not_before: i64,
}

/// Whether a new key must be added at `now`: none at all, or the newest is older than
/// `rotation`. Pure.
pub fn successor_due(keys: &[Times], now: i64, rotation: Duration) -> bool {
    let rotation = i64::try_from(rotation.as_secs()).unwrap_or(i64::MAX);
    keys.iter()
        .map(|k| k.created_at)
        .max()
        .is_none_or(|newest| now.saturating_sub(newest) >= rotation)
}

/// Which key signs at `now`: the newest generation that has started, else (only if
/// every key is yet to start: a clock gone back) the oldest. Pure.
pub fn signer(keys: &[Times], now: i64) -> Option<usize> {
    let started = keys
        .iter()
        .enumerate()
        .filter(|(_, k)| k.not_before <= now)
        .max_by_key(|(_, k)| k.generation)
        .map(|(i, _)| i);
    started.or_else(|| {
        keys.iter()
            .enumerate()
            .min_by_key(|(_, k)| k.generation)
            .map(|(i, _)| i)
    })
}

/// One reading of the set.
#[derive(Debug, Default)]
struct Set {
    keys: Vec<(SigningKey, Times)>,
    verify: Arc<Vec<JwtKey>>,
}

/// The key set as this instance holds it.
#[derive(Debug)]
pub struct KeyRing {
    store: Arc<dyn OAuthStore>,
    rotation: Duration,
    set: RwLock<Arc<Set>>,
    /// Bumped each time the set is replaced.
    generation: AtomicU64,
    /// Serialises re-reads; when the last unknown-kid re-read happened.
    last_unknown: tokio::sync::Mutex<Option<Instant>>,
}

impl KeyRing {
    /// The set in `store`, with a current key (added if due). On SQLite the key file an
    /// older 2Bot kept in `legacy_dir` is moved in first (then renamed `.migrated`), so
    /// the tokens it signed stay valid.
    pub async fn open(
        store: Arc<dyn StateStore>,
        rotation: Duration,
        legacy_dir: &std::path::Path,
    ) -> Result<Arc<Self>, KeysError> {
        if store.kind() == BackendKind::Sqlite {
            import_legacy(store.as_ref(), legacy_dir).await?;
        } else if [
            super::signing::KEY_FILE,
            crate::state::sqlite::LEGACY_OAUTH_FILE,
        ]
        .iter()
        .any(|f| legacy_dir.join(f).exists())
        {
            // Moving one host's state into the shared database is the operator's call.
            tracing::warn!(dir = %legacy_dir.display(), "an OAuth database or signing key of an earlier 2Bot is in TWOBOT_STATE_DIR; with TWOBOT_DATABASE_URL it is not used (its clients sign in again)");
        }
        let ring = Arc::new(Self {
            store,
            rotation,
            set: RwLock::new(Arc::default()),
            generation: AtomicU64::new(0),
            last_unknown: tokio::sync::Mutex::new(None),
        });
        ring.reread(super::now()).await?;
        Ok(ring)
    }

    /// Read the set again, adding a successor first when one is due.
    pub async fn reread(&self, now: i64) -> Result<(), KeysError> {
        let mut rows = self.store.signing_keys(now).await?;
        let held: Vec<Times> = rows.iter().map(times).collect();
        if successor_due(&held, now, self.rotation) {
            let (key, pem) = SigningKey::generate()?;
            let first = rows.is_empty();
            let row = SigningKeyRow {
                kid: key.kid().to_owned(),
                generation: rows.iter().map(|r| r.generation).max().unwrap_or(0) + 1,
                private_pem: pem,
                created_at: now,
                not_before: if first { now } else { now + LEAD_SEC },
                retire_at: None,
            };
            let retire_older_at = row.not_before + ACCESS_TTL_MAX_SEC + SKEW_SEC;
            if self.store.add_signing_key(&row, retire_older_at).await? {
                tracing::info!(kid = %row.kid, generation = row.generation, "added an OAuth signing key");
            }
            rows = self.store.signing_keys(now).await?;
        }
        let mut keys = Vec::with_capacity(rows.len());
        let mut verify = Vec::with_capacity(rows.len());
        for row in &rows {
            let corrupt = |reason: PemError| KeysError::Corrupt {
                kid: row.kid.clone(),
                reason,
            };
            let key = SigningKey::from_pem(&row.private_pem).map_err(corrupt)?;
            verify.push(key.verification_key().map_err(|e| corrupt(e.into()))?);
            keys.push((key, times(row)));
        }
        let set = Arc::new(Set {
            keys,
            verify: Arc::new(verify),
        });
        if let Ok(mut held) = self.set.write() {
            *held = set;
        }
        self.generation.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    fn current(&self) -> Arc<Set> {
        self.set.read().map(|s| Arc::clone(&s)).unwrap_or_default()
    }

    /// Sign `claims` with the key that signs now.
    pub fn sign(&self, claims: &impl Serialize) -> Result<String, SigningError> {
        let set = self.current();
        let times: Vec<Times> = set.keys.iter().map(|(_, t)| *t).collect();
        let Some((key, _)) = signer(&times, super::now()).and_then(|i| set.keys.get(i)) else {
            return Err(SigningError::NoKey);
        };
        key.sign(claims)
    }

    /// The claims of an access token one of the set's keys signed, expired or not (see
    /// [`SigningKey::own_claims`]).
    pub fn own_claims(&self, token: &str) -> Option<serde_json::Value> {
        self.current()
            .keys
            .iter()
            .find_map(|(key, _)| key.own_claims(token))
    }

    /// The JWKS document served at `jwks_uri`: every key not retired.
    pub fn jwks(&self) -> serde_json::Value {
        let set = self.current();
        let keys: Vec<_> = set.keys.iter().map(|(key, _)| key.jwk()).collect();
        serde_json::json!({ "keys": keys })
    }

    /// The keys the verifier accepts, with the set's generation.
    pub fn snapshot(&self) -> (u64, Arc<Vec<JwtKey>>) {
        let generation = self.generation.load(Ordering::Acquire);
        (generation, Arc::clone(&self.current().verify))
    }

    /// A token named a `kid` this instance does not hold (another instance may have
    /// just added it): re-read, at most once per [`UNKNOWN_KID_REREAD`]. `true` when the
    /// set was replaced since generation `seen`.
    pub fn reread_for_unknown_kid(self: &Arc<Self>, seen: u64) -> BoxFuture<'static, bool> {
        let ring = Arc::clone(self);
        Box::pin(async move {
            let mut last = ring.last_unknown.lock().await;
            if ring.generation.load(Ordering::Acquire) != seen {
                return true;
            }
            if last.is_some_and(|at| at.elapsed() < UNKNOWN_KID_REREAD) {
                return false;
            }
            *last = Some(Instant::now());
            if let Err(e) = ring.reread(super::now()).await {
                tracing::warn!(error = %e, "cannot re-read the OAuth signing keys");
            }
            ring.generation.load(Ordering::Acquire) != seen
        })
    }

    /// Re-read every [`REREAD`] (adding successors when due) until the runtime ends.
    pub fn spawn_rereads(self: &Arc<Self>) {
        let ring = Arc::clone(self);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(REREAD);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            every.tick().await;
            loop {
                every.tick().await;
                if let Err(e) = ring.reread(super::now()).await {
                    tracing::warn!(error = %e, "cannot re-read the OAuth signing keys; keeping the ones held");
                }
            }
        });
    }
}

fn times(row: &SigningKeyRow) -> Times {
    Times {
        generation: row.generation,
        created_at: row.created_at,
        not_before: row.not_before,
    }
}

/// Move the key file an older 2Bot kept in `dir` into the store (as the first key,
/// signing at once), then rename it `.migrated`.
async fn import_legacy(store: &dyn StateStore, dir: &std::path::Path) -> Result<(), KeysError> {
    let Some((path, pem)) = SigningKey::read_legacy(dir)? else {
        return Ok(());
    };
    let key = SigningKey::from_pem(&pem).map_err(SigningError::Key)?;
    let now = super::now();
    let generation = store
        .signing_keys(now)
        .await?
        .iter()
        .map(|r| r.generation)
        .max()
        .unwrap_or(0)
        + 1;
    let row = SigningKeyRow {
        kid: key.kid().to_owned(),
        generation,
        private_pem: pem,
        created_at: now,
        not_before: now,
        retire_at: None,
    };
    store
        .add_signing_key(&row, now + ACCESS_TTL_MAX_SEC + SKEW_SEC)
        .await?;
    let moved = path.with_file_name(format!("{}.migrated", super::signing::KEY_FILE));
    std::fs::rename(&path, &moved).map_err(|source| SigningError::Read { path, source })?;
    tracing::info!(kid = %row.kid, to = %moved.display(), "the OAuth signing key moved into the state store");
    Ok(())
}

#[cfg(test)]
#[path = "keys_tests.rs"]
mod tests;
