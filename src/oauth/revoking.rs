//! [`Revoking`]: the store as the authorization server's handlers hold it. Every call
//! goes to the store unchanged; whatever a call revoked is told to this process's
//! [`GrantView`] before the call returns, so a grant ended here (the revocation endpoint,
//! a replayed code or refresh token) is refused at the very next request on this
//! instance, whatever the store's watch delivers and when. Holding this instead of the
//! bare store is what makes "anything that revokes through the oauth module" include
//! calls nobody has written yet.

use std::sync::Arc;

use super::grant_view::GrantView;
use crate::state::oauth::{
    Client, ClientListing, CodeRow, Exchange, NewCode, NewRefresh, RevocationWatch, Rotation,
    SignInRow, SigningKeyRow,
};
use crate::state::{OAuthStore, StateError};

/// The store, with revocations reported to the view.
#[derive(Debug)]
pub struct Revoking {
    /// The store itself.
    pub store: Arc<dyn OAuthStore>,
    /// This process's view of live grants.
    pub view: Arc<GrantView>,
}

impl Revoking {
    /// `result`, after telling the view that grants it cannot name may have ended when
    /// `ended` says so, or when the call failed (it may have committed before failing).
    fn ended_if<T>(
        &self,
        result: Result<T, StateError>,
        ended: impl FnOnce(&T) -> bool,
    ) -> Result<T, StateError> {
        if result.as_ref().map_or(true, ended) {
            self.view.ended_some();
        }
        result
    }
}

#[async_trait::async_trait]
impl OAuthStore for Revoking {
    async fn insert_client(&self, c: &Client) -> Result<bool, StateError> {
        self.store.insert_client(c).await
    }

    async fn insert_sign_in(&self, row: &SignInRow, max_pending: u64) -> Result<(), StateError> {
        self.store.insert_sign_in(row, max_pending).await
    }

    async fn sign_in(&self, id_hash: &str, now: i64) -> Result<Option<SignInRow>, StateError> {
        self.store.sign_in(id_hash, now).await
    }

    async fn mark_signed_in(&self, id_hash: &str, now: i64) -> Result<bool, StateError> {
        self.store.mark_signed_in(id_hash, now).await
    }

    async fn take_sign_in(&self, id_hash: &str, now: i64) -> Result<Option<SignInRow>, StateError> {
        self.store.take_sign_in(id_hash, now).await
    }

    async fn reserve_sign_in_attempt(
        &self,
        address: &str,
        now_ms: i64,
        window_ms: i64,
        max: u32,
    ) -> Result<Option<i64>, StateError> {
        self.store
            .reserve_sign_in_attempt(address, now_ms, window_ms, max)
            .await
    }

    async fn clear_sign_in_attempts(&self, address: &str) -> Result<(), StateError> {
        self.store.clear_sign_in_attempts(address).await
    }

    async fn upsert_cimd_client(&self, c: &Client) -> Result<bool, StateError> {
        self.store.upsert_cimd_client(c).await
    }

    async fn client(&self, id: &str) -> Result<Option<Client>, StateError> {
        self.store.client(id).await
    }

    async fn count_clients(&self) -> Result<u64, StateError> {
        self.store.count_clients().await
    }

    async fn prune_unused_clients(&self, registered_before: i64) -> Result<u64, StateError> {
        // Only clients without a grant: no token can name one of theirs.
        self.store.prune_unused_clients(registered_before).await
    }

    async fn delete_client(&self, id: &str) -> Result<bool, StateError> {
        let deleted = self.store.delete_client(id).await;
        self.ended_if(deleted, |deleted| *deleted)
    }

    async fn listing(&self, now: i64) -> Result<Vec<ClientListing>, StateError> {
        self.store.listing(now).await
    }

    async fn insert_code(&self, code: &NewCode) -> Result<(), StateError> {
        self.store.insert_code(code).await
    }

    async fn code(&self, code_hash: &str) -> Result<Option<CodeRow>, StateError> {
        self.store.code(code_hash).await
    }

    async fn exchange_code(
        &self,
        code_hash: &str,
        now: i64,
        grant_id: &str,
        refresh: &NewRefresh,
    ) -> Result<Exchange, StateError> {
        let exchange = self
            .store
            .exchange_code(code_hash, now, grant_id, refresh)
            .await;
        // A replay ended the grant made from the code; the outcome does not name it.
        self.ended_if(exchange, |e| *e == Exchange::Reused)
    }

    async fn burn_code(&self, code_hash: &str, now: i64) -> Result<(), StateError> {
        self.store.burn_code(code_hash, now).await
    }

    async fn rotate_refresh(
        &self,
        old_hash: &str,
        client_id: &str,
        now: i64,
        next: &NewRefresh,
    ) -> Result<Rotation, StateError> {
        let rotation = self
            .store
            .rotate_refresh(old_hash, client_id, now, next)
            .await;
        self.ended_if(rotation, |r| *r == Rotation::Reused)
    }

    async fn revoke_refresh_family(
        &self,
        refresh_hash: &str,
        client_id: Option<&str>,
        reason: &str,
        now: i64,
    ) -> Result<bool, StateError> {
        let ended = self
            .store
            .revoke_refresh_family(refresh_hash, client_id, reason, now)
            .await;
        self.ended_if(ended, |ended| *ended)
    }

    async fn revoke_grant_of(
        &self,
        grant_id: &str,
        client_id: &str,
        reason: &str,
        now: i64,
    ) -> Result<bool, StateError> {
        let ended = self
            .store
            .revoke_grant_of(grant_id, client_id, reason, now)
            .await;
        if let Ok(true) = ended {
            self.view.revoked(grant_id);
        }
        self.ended_if(ended, |_| false)
    }

    async fn grant_revoked(&self, grant_id: &str) -> Result<bool, StateError> {
        self.store.grant_revoked(grant_id).await
    }

    async fn watch_revocations(&self) -> Result<Arc<dyn RevocationWatch>, StateError> {
        self.store.watch_revocations().await
    }

    async fn revoke_grants(
        &self,
        client_id: Option<&str>,
        reason: &str,
        now: i64,
    ) -> Result<u64, StateError> {
        let ended = self.store.revoke_grants(client_id, reason, now).await;
        self.ended_if(ended, |ended| *ended > 0)
    }

    async fn purge(&self, now: i64) -> Result<u64, StateError> {
        // Only grants no unexpired token can name: nothing the view needs to hear.
        self.store.purge(now).await
    }

    async fn signing_keys(&self, now: i64) -> Result<Vec<SigningKeyRow>, StateError> {
        self.store.signing_keys(now).await
    }

    async fn add_signing_key(
        &self,
        key: &SigningKeyRow,
        retire_older_at: i64,
    ) -> Result<bool, StateError> {
        self.store.add_signing_key(key, retire_older_at).await
    }
}
