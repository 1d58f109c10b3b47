//! The token endpoint's pure decisions: PKCE and client credentials.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use super::*;
use crate::oauth::client_auth::basic;
use base64::engine::general_purpose::STANDARD;
use http::HeaderMap;
use http::header::AUTHORIZATION;

#[test]
fn pkce_s256_matches_an_independently_computed_challenge_and_nothing_else() {
    // The challenge computed apart from this code (Python's hashlib and base64).
    let verifier = "dBjftJeZ4CK-fNopIJQvNuGRkuPeL2gSXZ0mMcXUsOE";
    let challenge = "uLn5tqd2B7LK2klU-x21BEeohRWnsSDT6Pq9gTImobs";
    for (v, c, ok) in [
        (verifier, challenge, true),
        (
            "dBjftJeZ4CK-fNopIJQvNuGRkuPeL2gSXZ0mMcXUsOF",
            challenge,
            false,
        ),
        (challenge, challenge, false),
        (
            "short",
            "Gc9hGUYPeDvSdLWkNjzrVRBoGkEZbJdS_wtMydT4zq0",
            false,
        ),
        ("", challenge, false),
    ] {
        assert_eq!(pkce_matches(v, c), ok, "{v}");
    }
}

#[test]
fn basic_credentials_are_form_decoded_inside_the_base64() {
    let mut headers = HeaderMap::new();
    let value = format!("Basic {}", STANDARD.encode("c%3A1:s%2B%2F"));
    headers.insert(AUTHORIZATION, value.parse().unwrap());
    assert_eq!(basic(&headers), Some(("c:1".to_owned(), "s+/".to_owned())));
    headers.insert(AUTHORIZATION, "Bearer x".parse().unwrap());
    assert_eq!(basic(&headers), None);
}
