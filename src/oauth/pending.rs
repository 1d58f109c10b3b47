//! A started sign-in between its pages: the authorization request as `GET
//! /oauth/authorize` checked it, waiting for the operator's password and consent.
//!
//! It lives in the state store, not in this process: behind a round-robin balancer the
//! sign-in form and the consent form of one browser reach different instances, and each
//! must find the request. It is good for ten minutes, and bound to the browser that
//! started it by a CSRF token held both in a SameSite=Strict cookie and in the form; the
//! store keeps only the token's hash. The decision takes it out of the store in one
//! statement, so a consent posted twice (or to two instances) decides once.

use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq as _;

use super::{AuthorizationServer, Broken, now, random_token};
use crate::state::oauth::{AuthMethod, Client, ClientKind, SignInRow, sha256_hex};

/// How long a started sign-in stays valid, in seconds.
pub const PENDING_TTL_SEC: i64 = 600;
/// Sign-ins pending at once (the endpoint is open to anyone); beyond, the oldest go.
const MAX_PENDING: u64 = 1000;

/// A checked authorization request waiting for the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub(super) client_id: String,
    pub(super) client_name: String,
    pub(super) redirect_uri: url::Url,
    pub(super) state: Option<String>,
    pub(super) challenge: String,
    pub(super) resource: String,
    pub(super) scopes: Vec<String>,
    /// The CSRF token: made with the request, or presented by a form and found to match.
    pub(super) csrf: String,
    pub(super) signed_in: bool,
    /// A metadata-document client, fetched and checked but not stored: it is written
    /// to the clients only when the operator consents (so a flood of document URLs at
    /// this unauthenticated endpoint registers nothing).
    pub(super) cimd: Option<Client>,
}

/// Why a form cannot continue a sign-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No such sign-in, expired, or already decided.
    #[error("This sign-in has expired or was already used. Start again from the application.")]
    Gone,
    /// The form's or the cookie's token is not the request's.
    #[error(
        "This form was not sent by the page this browser opened (CSRF check failed). Start again from the application."
    )]
    Csrf,
    /// The stored request cannot be read back (another version wrote it, or damage).
    #[error("This sign-in cannot be read back. Start again from the application.")]
    Unreadable,
}

/// The stored form of a [`Pending`]: the CSRF token only as its hash.
#[derive(Debug, Serialize, Deserialize)]
struct Record {
    client_id: String,
    client_name: String,
    redirect_uri: String,
    state: Option<String>,
    challenge: String,
    resource: String,
    scopes: Vec<String>,
    csrf_hash: String,
    cimd: Option<CimdRecord>,
}

/// What a metadata document said, as the consent will store it.
#[derive(Debug, Serialize, Deserialize)]
struct CimdRecord {
    name: String,
    redirect_uris: Vec<String>,
    fetched_at: i64,
}

impl Pending {
    /// The row that remembers this request as `id`, from `now`.
    fn row(&self, id: &str, now: i64) -> Result<SignInRow, serde_json::Error> {
        let record = Record {
            client_id: self.client_id.clone(),
            client_name: self.client_name.clone(),
            redirect_uri: self.redirect_uri.to_string(),
            state: self.state.clone(),
            challenge: self.challenge.clone(),
            resource: self.resource.clone(),
            scopes: self.scopes.clone(),
            csrf_hash: sha256_hex(&self.csrf),
            cimd: self.cimd.as_ref().map(|c| CimdRecord {
                name: c.name.clone(),
                redirect_uris: c.redirect_uris.clone(),
                fetched_at: c.created_at,
            }),
        };
        Ok(SignInRow {
            id_hash: sha256_hex(id),
            request: serde_json::to_string(&record)?,
            signed_in: self.signed_in,
            created_at: now,
            expires_at: now + PENDING_TTL_SEC,
        })
    }
}

/// The sign-in a form continues: the stored `row`, if both the form's token and the
/// cookie's are the one it was made with.
pub fn continued(
    row: Option<SignInRow>,
    form_csrf: Option<&str>,
    cookie_csrf: Option<&str>,
) -> Result<Pending, Refusal> {
    let row = row.ok_or(Refusal::Gone)?;
    let record: Record = serde_json::from_str(&row.request).map_err(|_| Refusal::Unreadable)?;
    let matches = |given: Option<&str>| {
        given.is_some_and(|g| {
            bool::from(sha256_hex(g).as_bytes().ct_eq(record.csrf_hash.as_bytes()))
        })
    };
    let (Some(csrf), true) = (form_csrf, matches(form_csrf) && matches(cookie_csrf)) else {
        return Err(Refusal::Csrf);
    };
    let redirect_uri = url::Url::parse(&record.redirect_uri).map_err(|_| Refusal::Unreadable)?;
    let cimd = record.cimd.map(|c| Client {
        id: record.client_id.clone(),
        kind: ClientKind::Cimd,
        name: c.name,
        redirect_uris: c.redirect_uris,
        auth_method: AuthMethod::None_,
        secret_hash: None,
        created_at: c.fetched_at,
    });
    Ok(Pending {
        client_id: record.client_id,
        client_name: record.client_name,
        redirect_uri,
        state: record.state,
        challenge: record.challenge,
        resource: record.resource,
        scopes: record.scopes,
        csrf: csrf.to_owned(),
        signed_in: row.signed_in,
        cimd,
    })
}

/// Remember `pending` in the store; the id its pages carry.
pub async fn begin(server: &AuthorizationServer, pending: &Pending) -> Result<String, Broken> {
    let id = random_token(16);
    let row = pending.row(&id, now()).map_err(|e| {
        tracing::error!(error = %e, "a pending sign-in cannot be written down");
        Broken
    })?;
    server
        .store(server.db().insert_sign_in(&row, MAX_PENDING))
        .await?;
    Ok(id)
}

/// The unexpired sign-in `id` as stored (its CSRF not yet checked).
pub async fn find(server: &AuthorizationServer, id: &str) -> Result<Option<SignInRow>, Broken> {
    server
        .store(server.db().sign_in(&sha256_hex(id), now()))
        .await
}

/// Record that the operator signed in to `id`; `false` when it is gone meanwhile.
pub async fn mark_signed_in(server: &AuthorizationServer, id: &str) -> Result<bool, Broken> {
    server
        .store(server.db().mark_signed_in(&sha256_hex(id), now()))
        .await
}

/// Take `id` out of the store for its decision: `None` when another decision took it.
pub async fn take(server: &AuthorizationServer, id: &str) -> Result<Option<SignInRow>, Broken> {
    server
        .store(server.db().take_sign_in(&sha256_hex(id), now()))
        .await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn pending(cimd: bool) -> Pending {
        let client_id = if cimd {
            "https://app.example/client.json"
        } else {
            "c_1"
        };
        Pending {
            client_id: client_id.into(),
            client_name: "App".into(),
            redirect_uri: url::Url::parse("https://app.example/cb?x=1").unwrap(),
            state: Some("st".into()),
            challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into(),
            resource: "https://mcp.example/mcp".into(),
            scopes: vec!["codex:read".into(), "codex:write".into()],
            csrf: "token".into(),
            signed_in: false,
            cimd: cimd.then(|| Client {
                id: client_id.into(),
                kind: ClientKind::Cimd,
                name: "App".into(),
                redirect_uris: vec!["https://app.example/cb?x=1".into()],
                auth_method: AuthMethod::None_,
                secret_hash: None,
                created_at: 1_700_000_000,
            }),
        }
    }

    #[test]
    fn a_stored_sign_in_reads_back_whole_and_keeps_only_the_csrf_token_s_hash() {
        for cimd in [false, true] {
            let p = pending(cimd);
            let row = p.row("the-id", 100).unwrap();
            assert_eq!(row.id_hash, sha256_hex("the-id"));
            assert_eq!(
                (row.created_at, row.expires_at),
                (100, 100 + PENDING_TTL_SEC)
            );
            assert!(!row.request.contains("\"token\""), "{}", row.request);
            assert_eq!(continued(Some(row), Some("token"), Some("token")), Ok(p));
        }
    }

    #[test]
    fn a_form_continues_only_with_the_token_in_both_the_form_and_the_cookie() {
        let row = || Some(pending(false).row("id", 1).unwrap());
        for (form, cookie, outcome) in [
            (Some("token"), Some("token"), None),
            (Some("token"), Some("other"), Some(Refusal::Csrf)),
            (Some("other"), Some("token"), Some(Refusal::Csrf)),
            (None, Some("token"), Some(Refusal::Csrf)),
            (Some("token"), None, Some(Refusal::Csrf)),
            (None, None, Some(Refusal::Csrf)),
        ] {
            assert_eq!(
                continued(row(), form, cookie).err(),
                outcome,
                "{form:?} {cookie:?}"
            );
        }
    }

    #[test]
    fn a_missing_or_unreadable_sign_in_is_refused_as_such() {
        assert_eq!(
            continued(None, Some("token"), Some("token")),
            Err(Refusal::Gone)
        );
        let mut row = pending(false).row("id", 1).unwrap();
        row.request = "{not json".into();
        assert_eq!(
            continued(Some(row), Some("token"), Some("token")),
            Err(Refusal::Unreadable)
        );
    }

    #[test]
    fn the_signed_in_mark_comes_from_the_row() {
        let mut row = pending(false).row("id", 1).unwrap();
        row.signed_in = true;
        assert!(
            continued(Some(row), Some("token"), Some("token"))
                .unwrap()
                .signed_in
        );
    }
}
