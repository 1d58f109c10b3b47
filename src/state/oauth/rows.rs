//! The plain rows of the built-in authorization server, and how its two enums are
//! spelled in the database (the same words as on the wire: `dcr`/`cimd`, RFC 7591 auth
//! method names). Times are unix seconds, as in the tokens themselves.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// How a client came to be known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientKind {
    /// Dynamic client registration (RFC 7591, `POST /oauth/register`).
    Dcr,
    /// A client ID metadata document (the client id is the document's HTTPS URL).
    Cimd,
}

impl ClientKind {
    /// `dcr` or `cimd`, as `oauth list` shows it and the database stores it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Dcr => "dcr",
            Self::Cimd => "cimd",
        }
    }

    /// The kind the database spells `name`.
    pub fn parse(name: &str) -> Option<Self> {
        [Self::Dcr, Self::Cimd]
            .into_iter()
            .find(|k| k.as_str() == name)
    }
}

/// How a client authenticates at the token endpoint (RFC 7591 `token_endpoint_auth_method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// A public client: PKCE is its only proof.
    None_,
    /// `client_secret` in the form body.
    ClientSecretPost,
    /// HTTP Basic with the client id and secret.
    ClientSecretBasic,
}

impl AuthMethod {
    /// The RFC 7591 name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None_ => "none",
            Self::ClientSecretPost => "client_secret_post",
            Self::ClientSecretBasic => "client_secret_basic",
        }
    }

    /// The method an RFC 7591 name denotes, if it is one 2Bot supports.
    pub fn parse(name: &str) -> Option<Self> {
        [Self::None_, Self::ClientSecretPost, Self::ClientSecretBasic]
            .into_iter()
            .find(|m| m.as_str() == name)
    }
}

/// A registered client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    /// `c_…` for DCR, the document URL for CIMD.
    pub id: String,
    /// DCR or CIMD.
    pub kind: ClientKind,
    /// `client_name` (shown on the consent page and by `oauth list`).
    pub name: String,
    /// The registered redirect URIs, each already checked by the redirect rules.
    pub redirect_uris: Vec<String>,
    /// Token endpoint authentication.
    pub auth_method: AuthMethod,
    /// [`sha256_hex`] of the client secret (secret methods only).
    pub secret_hash: Option<String>,
    /// Registered (DCR) or first fetched (CIMD), unix seconds.
    pub created_at: i64,
}

impl Client {
    /// Whether `presented` is this client's secret, compared in constant time. A client
    /// without a secret matches nothing.
    pub fn secret_matches(&self, presented: &str) -> bool {
        self.secret_hash.as_ref().is_some_and(|stored| {
            bool::from(sha256_hex(presented).as_bytes().ct_eq(stored.as_bytes()))
        })
    }
}

/// An authorization code to remember (only its hash is stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCode {
    /// [`sha256_hex`] of the code.
    pub code_hash: String,
    /// The client it was issued to.
    pub client_id: String,
    /// The redirect URI of the authorization request (the token request must repeat it).
    pub redirect_uri: String,
    /// The PKCE S256 challenge.
    pub code_challenge: String,
    /// The resource (RFC 8707) the tokens will be for.
    pub resource: String,
    /// The scopes granted, space-separated.
    pub scope: String,
    /// Unix seconds; the code is valid while `now < expires_at`.
    pub expires_at: i64,
}

/// A stored authorization code: what was remembered, and whether it was used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeRow {
    /// The code as it was issued.
    pub code: NewCode,
    /// When it was exchanged or burnt; `None` while unused.
    pub used_at: Option<i64>,
}

/// A refresh token to remember (only its hash is stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRefresh {
    /// [`sha256_hex`] of the token.
    pub token_hash: String,
    /// Unix seconds; valid while `now < expires_at`.
    pub expires_at: i64,
    /// Unix seconds.
    pub issued_at: i64,
}

/// What one sign-in and consent granted: the family of every token issued from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The grant id (`gid` in access tokens).
    pub id: String,
    /// The client it was granted to.
    pub client_id: String,
    /// The scopes granted, space-separated.
    pub scope: String,
    /// The resource its tokens are for.
    pub resource: String,
    /// Unix seconds.
    pub created_at: i64,
}

/// The outcome of [`super::OAuthStore::exchange_code`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exchange {
    /// The code was good: this grant now exists, with the first refresh token.
    Issued(Grant),
    /// The code had been used: the grant made from it (if any) is now revoked.
    Reused,
    /// The code is past its expiry.
    Expired,
    /// No such code.
    Unknown,
}

/// The outcome of [`super::OAuthStore::rotate_refresh`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    /// The old token is used up and the new one stored, in this grant.
    Rotated(Grant),
    /// The token had been used: its whole grant is now revoked.
    Reused,
    /// The token's grant was revoked.
    Revoked,
    /// The token is past its expiry.
    Expired,
    /// The token belongs to another client (nothing changed).
    WrongClient,
    /// No such token.
    Unknown,
}

/// A client and its live grants, for `oauth list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientListing {
    /// The client.
    pub client: Client,
    /// Its live grants, oldest first.
    pub grants: Vec<GrantListing>,
}

/// A live grant: not revoked, and with a refresh token still valid or an access token
/// that may still be (it issued one within [`super::ACCESS_TTL_MAX_SEC`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantListing {
    /// The grant.
    pub grant: Grant,
    /// When it last issued tokens (its creation or its last refresh), unix seconds.
    pub last_used_at: i64,
    /// When its current refresh token expires; `None` when that has already happened.
    pub refresh_expires_at: Option<i64>,
}

/// Lower-case hex SHA-256 of a secret. Codes, refresh tokens and client secrets are 32
/// random bytes, so nobody can guess one from its hash: a fast hash is right here (a slow
/// password hash would only cost every token request time).
pub fn sha256_hex(secret: &str) -> String {
    Sha256::digest(secret.as_bytes())
        .iter()
        .fold(String::with_capacity(64), |mut s, b| {
            s.push_str(&format!("{b:02x}"));
            s
        })
}

/// One key of the signing key set (ES256, PKCS#8 PEM). Every instance of a service reads
/// the same set: tokens are signed with the newest key whose `not_before` has come, and
/// verified with any key not yet retired.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKeyRow {
    /// The key id (RFC 7638 thumbprint), the `kid` of the tokens it signs.
    pub kid: String,
    /// Its place in the set: a successor is `generation + 1`, which exactly one instance
    /// manages to insert (the column is unique), however many try at once.
    pub generation: i64,
    /// The private key, PKCS#8 PEM: whoever reads it can mint tokens.
    pub private_pem: String,
    /// When it was made, unix seconds.
    pub created_at: i64,
    /// When it starts signing (published before, so every instance knows it first).
    pub not_before: i64,
    /// When it stops being accepted (its successor's start plus the longest access-token
    /// life); `None` while it is the newest.
    pub retire_at: Option<i64>,
}

// By hand: the private key never reaches a log.
impl std::fmt::Debug for SigningKeyRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeyRow")
            .field("kid", &self.kid)
            .field("generation", &self.generation)
            .field("created_at", &self.created_at)
            .field("not_before", &self.not_before)
            .field("retire_at", &self.retire_at)
            .finish_non_exhaustive()
    }
}

/// A started sign-in waiting for the operator: the authorization request as the
/// authorization endpoint checked it. It lives in the store, not in one process, so the
/// browser's next form may reach any instance behind a balancer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignInRow {
    /// [`sha256_hex`] of the id the pages carry in a hidden field.
    pub id_hash: String,
    /// The checked request, in the authorization server's own JSON (the store keeps it
    /// opaque). It holds the CSRF token's hash, never the token.
    pub request: String,
    /// Whether the operator has given the password for it.
    pub signed_in: bool,
    /// Unix seconds; the oldest go first when too many are pending.
    pub created_at: i64,
    /// Unix seconds; the sign-in is usable while `now < expires_at`.
    pub expires_at: i64,
}
