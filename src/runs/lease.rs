//! A run's share of its principal's quota across the service: with a shared store
//! (several instances), admission takes a lease there ([`crate::state::leases`]) beside
//! the local queue ticket, and the run gives it back when it ends. One instance on
//! SQLite skips this: its own run queue already sees every run.
//!
//! If the store cannot answer, admission goes on with the local limits only (logged):
//! a database hiccup must not stop every run, and each instance's own caps still hold.

use std::sync::Arc;

use super::RunRefusal;
use crate::config::PrincipalLimits;
use crate::run::QuotaKey;
use crate::run_queue::QueueLimits;
use crate::state::{DEAD_AFTER, Lasting, LeaseRow, StateStore, now_ms};

/// A lease held for one admitted run; dropping it gives it back (in the background).
#[derive(Debug)]
pub(crate) struct Lease {
    store: Arc<dyn StateStore>,
    id: String,
}

/// Runs a principal may have admitted at once across the service, from the shares this
/// instance's queue applies ([`PrincipalLimits::across_service`] says why).
pub fn service_limit(limits: QueueLimits) -> usize {
    PrincipalLimits::across_service(limits.running_per_principal, limits.queued_per_principal)
}

/// A lease for one more run of `quota`, or the refusal when the principal already holds
/// `limit` across the service.
pub(crate) async fn take(
    lasting: &Lasting,
    quota: &QuotaKey,
    limit: usize,
) -> Result<Option<Lease>, RunRefusal> {
    let now = now_ms();
    let row = LeaseRow {
        lease_id: uuid::Uuid::new_v4().to_string(),
        quota_key: quota.0.clone(),
        instance: lasting.instance.id().to_owned(),
        expires_ms: now + i64::try_from(DEAD_AFTER.as_millis()).unwrap_or(i64::MAX),
    };
    let cap = u64::try_from(limit).unwrap_or(u64::MAX);
    match lasting.store.acquire_lease(&row, cap, now).await {
        Ok(true) => Ok(Some(Lease {
            store: lasting.store.clone(),
            id: row.lease_id,
        })),
        Ok(false) => Err(RunRefusal::ServiceQuota { limit }),
        Err(e) => {
            tracing::warn!(error = %e, quota_key = %quota.0, "the state store cannot count this principal's runs across instances; admitting on this instance's limits");
            Ok(None)
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let (store, id) = (self.store.clone(), std::mem::take(&mut self.id));
        // Off the run's path. The heartbeat renews every lease of this instance, so a
        // lease must really go: retried until the store answers (a shutdown in between
        // leaves it to expire, or to the reaping of this instance).
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let mut pause = std::time::Duration::from_secs(1);
                while let Err(e) = store.release_lease(&id).await {
                    tracing::warn!(error = %e, lease = %id, "cannot give a run's lease back; retrying");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(std::time::Duration::from_secs(30));
                }
            });
        }
    }
}
