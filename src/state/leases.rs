//! Run leases: a principal's admitted runs (queued and running) counted across every
//! instance of one service, so its share of the service holds wherever its calls land.
//!
//! Each admitted run holds one [`LeaseRow`] naming its instance, with an expiry that the
//! instance's heartbeat pushes forward ([`super::DEAD_AFTER`] ahead). A run's lease is
//! removed when the run ends; a dead instance's leases stop counting when they expire
//! and are removed when it is reaped, so a crash never leaves a principal locked out.
//! Taking a lease is one race-free step in the store ("at most `limit` live leases for
//! this key"): PostgreSQL serialises it per key with a transaction-level advisory lock,
//! SQLite with its single writer.

use serde::{Deserialize, Serialize};

/// One admitted run's claim on its principal's share.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRow {
    /// Unique per admitted run.
    pub lease_id: String,
    /// The principal's quota key.
    pub quota_key: String,
    /// The instance holding the run (its heartbeat renews the lease).
    pub instance: String,
    /// When the lease stops counting unless renewed, ms since the Unix epoch.
    pub expires_ms: i64,
}

/// The advisory lock key space of leases ("lease" in ASCII), mixed with the quota key's
/// hash so two keys rarely share a lock.
pub const LEASE_LOCK_SEED: i64 = 0x6c_6561_7365;
