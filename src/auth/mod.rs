//! Who is calling, decided without HTTP: the bearer credentials 2Bot accepts (static
//! tokens, JWT keys, a JWKS, the built-in authorization server's key set and its grant
//! check), the pure verification of a token into a [`Principal`](crate::run::Principal),
//! the cache of verified tokens, and the client's network address behind trusted proxies.
//!
//! It sits below both `http` (whose auth layer asks it, then renders a refusal) and
//! `oauth` (which mints the tokens and answers the grant check), so neither of those two
//! needs the other: the binary wires the authorization server's [`GrantCheck`] into the
//! HTTP stack.
//!
//! JWT algorithms are pinned to the key type: an HMAC secret admits HS256/384/512 only,
//! an RSA key RS*/PS* only, an EC key ES256/384, an Ed25519 key EdDSA. `alg: none` and
//! HS-signed-with-the-public-key tokens therefore never verify. A JWT that verified is
//! remembered by its hash until it expires ([`Verdicts`]): one signature check per token.

mod cache;
pub mod client_addr;
mod jwks;
mod keys;
mod verify;

use std::sync::Arc;

use futures::future::BoxFuture;

pub use self::cache::{Verdict, Verdicts};
pub use self::client_addr::{TrustedProxies, client_ip};
pub use self::jwks::{Jwks, JwksError, validate_url};
pub use self::keys::{JwtKey, KeyError, StaticToken, parse_tokens};
pub use self::verify::{AuthConfig, AuthError, Authenticator, bearer};

/// Whether a verified JWT is one its issuer still stands behind (the built-in
/// authorization server: a live grant, a lifetime it would have issued). Asked after the
/// signature and claims verified, for every JWT when set: with the built-in server its key
/// is the only JWT key, and a token signed with it but not minted by it (the key read from
/// the state directory) must not pass; a revoked grant's tokens stop at their next use.
/// It may also hold keys of its own, changing while the server runs (the built-in
/// server's key set, rotated through the state store), tried like a JWKS's.
pub trait GrantCheck: Send + Sync + std::fmt::Debug {
    /// `true` when the token whose payload is `claims` may be honoured.
    fn live(&self, claims: serde_json::Value) -> BoxFuture<'static, bool>;

    /// The issuer's own verification keys now, with their generation.
    fn keys(&self) -> (u64, Arc<Vec<JwtKey>>) {
        (0, Arc::default())
    }

    /// A token named a `kid` not among [`Self::keys`] of generation `seen`: look again
    /// (throttled); `true` when the keys changed since.
    fn reread_keys(&self, _seen: u64) -> BoxFuture<'static, bool> {
        Box::pin(async { false })
    }
}
