//! Unit tests of the bearer check, by behaviour: static tokens, a missing header, the
//! token list and the 401 challenge here; JWT claims in [`jwt`], keys (PEM, JWKS, the
//! built-in key set) and kids in [`keys`]. The fixtures (keys, config, token makers) are
//! here for all of them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod jwt;
mod keys;

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{EncodingKey, Header, encode};
use serde_json::json;

use http::header::WWW_AUTHENTICATE;
use http::{HeaderValue, StatusCode};
use jsonwebtoken::Algorithm;
use jsonwebtoken::jwk::Jwk;

use super::*;
use crate::auth::*;

const AUD: &str = "https://mcp.example.com/mcp";

fn key(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/keys")
            .join(name),
    )
    .unwrap()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn config() -> AuthConfig {
    AuthConfig {
        tokens: parse_tokens("alice:tok-alice, tok-bare"),
        jwt_keys: vec![
            JwtKey::secret(b"hs-secret"),
            JwtKey::public_pem(&key("rsa-public.pem")).unwrap(),
        ],
        issuer: Some("https://issuer.example.com".into()),
        audience: AUD.into(),
        leeway_sec: 0,
        jwks_url: None,
        jwks_min_refresh: std::time::Duration::from_secs(30),
        required_scopes: vec![],
        resource_metadata_url: "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"
            .into(),
        challenge_scopes: vec![],
    }
}

fn claims() -> serde_json::Value {
    json!({"sub": "bob", "aud": AUD, "iss": "https://issuer.example.com", "exp": now() + 600, "scope": "codex:read codex:write"})
}

fn hs(alg: Algorithm, claims: &serde_json::Value) -> String {
    encode(
        &Header::new(alg),
        claims,
        &EncodingKey::from_secret(b"hs-secret"),
    )
    .unwrap()
}

fn rs(claims: &serde_json::Value) -> String {
    encode(
        &Header::new(Algorithm::RS256),
        claims,
        &EncodingKey::from_rsa_pem(&key("rsa-private.pem")).unwrap(),
    )
    .unwrap()
}

fn verify(config: &AuthConfig, token: &str) -> Result<Principal, AuthError> {
    let header = HeaderValue::from_str(&format!("Bearer {token}")).unwrap();
    Authenticator::verify(config, &[], Some(&header))
}

#[test]
fn static_tokens_name_their_principal() {
    assert_eq!(
        verify(&config(), "tok-alice"),
        Ok(Principal::Token {
            name: "alice".into()
        })
    );
    assert_eq!(
        verify(&config(), "tok-bare"),
        Ok(Principal::Token {
            name: "token-2".into()
        })
    );
    assert!(matches!(
        verify(&config(), "tok-alicf"),
        Err(AuthError::Invalid(_))
    ));
}

#[test]
fn a_missing_or_non_bearer_header_is_missing() {
    assert_eq!(
        Authenticator::verify(&config(), &[], None),
        Err(AuthError::Missing)
    );
    let basic = HeaderValue::from_static("Basic dXNlcjpwYXNz");
    assert_eq!(
        Authenticator::verify(&config(), &[], Some(&basic)),
        Err(AuthError::Missing)
    );
    let empty = HeaderValue::from_static("Bearer ");
    assert_eq!(
        Authenticator::verify(&config(), &[], Some(&empty)),
        Err(AuthError::Missing)
    );
}

#[test]
fn token_lists_parse_names_comments_and_blank_entries() {
    let tokens = parse_tokens("# team\nalice:a1\n\nbob:b:2,  bare  ");
    let pairs: Vec<(&str, &str)> = tokens
        .iter()
        .map(|t| (t.name.as_str(), t.token.as_str()))
        .collect();
    assert_eq!(
        pairs,
        [("alice", "a1"), ("bob", "b:2"), ("token-3", "bare")]
    );
    assert!(
        !format!("{:?}", tokens[0]).contains("a1"),
        "Debug never prints a token"
    );
}
#[test]
fn the_401_challenge_names_the_scopes_a_client_should_ask_for() {
    let mut config = config();
    let challenge = |config: &AuthConfig, sent: bool| {
        crate::http::rescue::render(&reject(config, &AuthError::Missing, sent)).headers()
            [WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .to_owned()
    };
    // No scope known: no empty `scope=""` either.
    assert!(!challenge(&config, false).contains("scope="));
    config.challenge_scopes = vec!["codex:read".into(), "codex:write".into()];
    for sent in [false, true] {
        let c = challenge(&config, sent);
        assert!(c.contains(r#"scope="codex:read codex:write""#), "{c}");
        assert!(c.contains("resource_metadata="), "{c}");
    }
}
