//! [`GrantView`]: which grants the built-in server's tokens may name, kept in memory so
//! that a request costs no query, and kept exact by the store's [`RevocationWatch`].
//!
//! The design rests on two facts of the store. A grant id is random and never reused, and
//! a revoked (or deleted, or never issued) grant never becomes live again: so a refusal,
//! once learnt, is true forever and is simply remembered (bounded, oldest dropped first).
//! Only "live" can go stale, so the view drops every remembered live grant whenever the
//! watch says something may have ended a grant it cannot name (SQLite's change counter,
//! a bulk revocation, a deleted client, a reconnected listener). That covers deletions
//! too, which leave no revoked row a re-read of recent revocations would find; the cost
//! is one indexed query per grant in use after each change, and changes are writes.
//!
//! A store answer that was asked before a change and arrives after it is not remembered
//! as live ([`Memory`]'s epoch), so a revocation cannot be undone by a slow query.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use crate::state::oauth::{ACCESS_TTL_MAX_SEC, Changes, RevocationWatch};
use crate::state::{OAuthStore, StateError};

/// Grants remembered live at most (beyond, the set starts over: a query each).
pub const LIVE_MAX: usize = 10_000;
/// Grants remembered refused at most.
pub const REFUSED_MAX: usize = 10_000;
/// How long a refusal is worth keeping: after this, no token naming the grant is
/// unexpired (the longest access-token life, plus the skew tolerated on `iat`).
pub const REFUSAL_USEFUL_SEC: i64 = ACCESS_TTL_MAX_SEC + super::live::SKEW_SEC;

/// What the view says of a grant, before any query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Confirmed live, and nothing since could have ended it.
    Live,
    /// Revoked, deleted or never issued.
    Refused,
    /// Not known (or the watch is blind): ask the store, then [`Memory::learn`] the
    /// answer with this epoch.
    Ask {
        /// The epoch the question was asked in.
        epoch: u64,
    },
}

/// What the view remembers. Pure: the clock and the store are the caller's.
#[derive(Debug, Default)]
pub struct Memory {
    /// Moves on whenever a grant remembered live may have ended: a store answer from an
    /// older epoch is not remembered as live.
    epoch: u64,
    /// Grants the store confirmed live since the last change.
    live: HashSet<String>,
    /// Grants known refused, each with when remembering it stops being useful.
    refused: HashMap<String, i64>,
    /// Whether the watch could not tell the last time it was asked.
    blind: bool,
}

impl Memory {
    /// Take in what the watch saw since it was last asked.
    pub fn apply(&mut self, changes: Changes, now: i64) {
        self.blind = matches!(changes, Changes::Blind);
        match changes {
            Changes::Nothing | Changes::Blind => {}
            Changes::Revoked(grants) => {
                for grant in grants {
                    self.refuse(&grant, now);
                }
            }
            Changes::Anything => self.forget_live(),
        }
    }

    /// What to say of `grant` now.
    pub fn decide(&self, grant: &str) -> Decision {
        if self.refused.contains_key(grant) {
            Decision::Refused
        } else if !self.blind && self.live.contains(grant) {
            Decision::Live
        } else {
            Decision::Ask { epoch: self.epoch }
        }
    }

    /// The store's answer for `grant`, asked in `epoch`.
    pub fn learn(&mut self, grant: &str, epoch: u64, revoked: bool, now: i64) {
        if revoked {
            self.refuse(grant, now);
        } else if epoch == self.epoch && !self.refused.contains_key(grant) {
            if self.live.len() >= LIVE_MAX {
                // Dropping a live grant is always safe: it is asked for again.
                self.live.clear();
            }
            self.live.insert(grant.to_owned());
        }
    }

    /// `grant` ended (or never was).
    pub fn refuse(&mut self, grant: &str, now: i64) {
        self.live.remove(grant);
        if self.refused.len() >= REFUSED_MAX && !self.refused.contains_key(grant) {
            self.refused.retain(|_, until| *until > now);
            if self.refused.len() >= REFUSED_MAX {
                self.refused.clear();
            }
            // A refusal forgotten no longer stops an answer already on its way.
            self.epoch += 1;
        }
        self.refused
            .insert(grant.to_owned(), now + REFUSAL_USEFUL_SEC);
    }

    /// Any grant may have ended: confirm each again.
    pub fn forget_live(&mut self) {
        self.live.clear();
        self.epoch += 1;
    }
}

/// The view of one process: its memory, the store's watch, and the store for what it
/// does not know.
#[derive(Debug)]
pub struct GrantView {
    store: Arc<dyn OAuthStore>,
    watch: Arc<dyn RevocationWatch>,
    memory: Mutex<Memory>,
}

impl GrantView {
    /// A view of `store`'s grants, watching it for revocations from now on.
    pub async fn open(store: Arc<dyn OAuthStore>) -> Result<Self, StateError> {
        let watch = store.watch_revocations().await?;
        Ok(Self::new(store, watch))
    }

    /// A view of `store`'s grants told of revocations by `watch`.
    pub fn new(store: Arc<dyn OAuthStore>, watch: Arc<dyn RevocationWatch>) -> Self {
        Self {
            store,
            watch,
            memory: Mutex::new(Memory::default()),
        }
    }

    fn memory(&self) -> std::sync::MutexGuard<'_, Memory> {
        self.memory.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether tokens naming `grant` may be honoured now. The watch is asked with the
    /// memory locked, so no request can decide from memory a change has made stale.
    pub async fn live(&self, grant: &str) -> bool {
        let now = super::now();
        let decision = {
            let mut memory = self.memory();
            memory.apply(self.watch.changes(), now);
            memory.decide(grant)
        };
        let epoch = match decision {
            Decision::Live => return true,
            Decision::Refused => return false,
            Decision::Ask { epoch } => epoch,
        };
        match self.store.grant_revoked(grant).await {
            Ok(revoked) => {
                self.memory().learn(grant, epoch, revoked, now);
                !revoked
            }
            Err(e) => {
                // Fail closed: a token whose grant cannot be checked is not honoured.
                tracing::error!(error = %e, "cannot read the grant's state; refusing the token");
                false
            }
        }
    }

    /// This process revoked `grant` (told before the revoking call returns).
    pub fn revoked(&self, grant: &str) {
        self.memory().refuse(grant, super::now());
    }

    /// This process ended grants it cannot name (a client's, a replayed token's).
    pub fn ended_some(&self) {
        self.memory().forget_live();
    }
}

#[cfg(test)]
#[path = "grant_view_tests.rs"]
mod tests;
