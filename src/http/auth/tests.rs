#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{EncodingKey, Header, encode};
use serde_json::json;

use http::header::WWW_AUTHENTICATE;
use http::{HeaderValue, StatusCode};
use jsonwebtoken::Algorithm;
use jsonwebtoken::jwk::Jwk;

use super::*;

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
fn valid_hs_and_rs_jwts_yield_subject_and_scopes() {
    for token in [
        hs(Algorithm::HS256, &claims()),
        hs(Algorithm::HS512, &claims()),
        rs(&claims()),
    ] {
        assert_eq!(
            verify(&config(), &token),
            Ok(Principal::Authenticated {
                issuer: Some("https://issuer.example.com".into()),
                subject: "bob".into(),
                scopes: vec!["codex:read".into(), "codex:write".into()]
            })
        );
    }
}

#[test]
fn each_broken_jwt_is_refused() {
    let mut expired = claims();
    expired["exp"] = json!(now() - 60);
    let mut early = claims();
    early["nbf"] = json!(now() + 600);
    let mut wrong_aud = claims();
    wrong_aud["aud"] = json!("https://other.example.com/mcp");
    let mut wrong_iss = claims();
    wrong_iss["iss"] = json!("https://evil.example.com");
    let mut no_exp = claims();
    no_exp.as_object_mut().unwrap().remove("exp");

    let b64 = |v: serde_json::Value| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let alg_none = format!(
        "{}.{}.",
        b64(json!({"alg": "none", "typ": "JWT"})),
        b64(claims())
    );
    // The classic confusion: HS256 "signed" with the RSA public key as the HMAC secret.
    let confused = encode(
        &Header::new(Algorithm::HS256),
        &claims(),
        &EncodingKey::from_secret(&key("rsa-public.pem")),
    )
    .unwrap();
    let mut rsa_only = config();
    rsa_only.jwt_keys = vec![JwtKey::public_pem(&key("rsa-public.pem")).unwrap()];

    let wrong_secret = encode(
        &Header::new(Algorithm::HS256),
        &claims(),
        &EncodingKey::from_secret(b"other"),
    )
    .unwrap();
    let mut tampered = hs(Algorithm::HS256, &claims());
    tampered.push('x');

    for (name, config, token) in [
        ("expired", config(), hs(Algorithm::HS256, &expired)),
        ("not yet valid", config(), hs(Algorithm::HS256, &early)),
        ("wrong audience", config(), hs(Algorithm::HS256, &wrong_aud)),
        ("wrong issuer", config(), rs(&wrong_iss)),
        ("no exp", config(), hs(Algorithm::HS256, &no_exp)),
        ("alg none", config(), alg_none),
        ("hs256 with the rsa public key", rsa_only, confused),
        ("wrong secret", config(), wrong_secret),
        ("tampered", config(), tampered),
        ("garbage", config(), "not.a.jwt".into()),
    ] {
        assert!(
            matches!(verify(&config, &token), Err(AuthError::Invalid(_))),
            "{name}"
        );
    }
}

/// A token whose signature verifies is still refused, with a reason, when it cannot name
/// one principal: no `iss` while an issuer is required, no (or an empty) `sub`, or a `crit`
/// extension nobody here understands (RFC 7515 §4.1.11).
#[test]
fn a_signed_token_without_iss_or_sub_or_with_crit_is_refused_with_a_reason() {
    let without = |claim: &str| {
        let mut c = claims();
        c.as_object_mut().unwrap().remove(claim);
        c
    };
    let mut empty_sub = claims();
    empty_sub["sub"] = json!("");
    let with_crit = |crit: Vec<&str>| {
        let mut header = Header::new(Algorithm::HS256);
        header.crit = Some(crit.into_iter().map(str::to_owned).collect());
        encode(&header, &claims(), &EncodingKey::from_secret(b"hs-secret")).unwrap()
    };
    let mut no_issuer_required = config();
    no_issuer_required.issuer = None;
    let cases: [(&str, AuthConfig, String, &str); 6] = [
        (
            "no iss",
            config(),
            hs(Algorithm::HS256, &without("iss")),
            "no iss claim",
        ),
        (
            "no iss (rsa)",
            config(),
            rs(&without("iss")),
            "no iss claim",
        ),
        (
            "no sub",
            config(),
            hs(Algorithm::HS256, &without("sub")),
            "no sub claim",
        ),
        (
            "empty sub",
            config(),
            hs(Algorithm::HS256, &empty_sub),
            "no sub claim",
        ),
        ("unknown crit", config(), with_crit(vec!["exp-v2"]), "crit"),
        (
            "crit without an issuer configured",
            no_issuer_required,
            with_crit(vec!["b64"]),
            "crit",
        ),
    ];
    for (name, config, token, reason) in cases {
        match verify(&config, &token) {
            Err(AuthError::Unacceptable(r)) => assert!(r.contains(reason), "{name}: {r}"),
            other => panic!("{name}: {other:?}"),
        }
        let response = crate::http::rescue::render(&Authenticator::reject(
            &config,
            &verify(&config, &token).unwrap_err(),
            true,
        ));
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{name}");
        let challenge = response.headers()[WWW_AUTHENTICATE].to_str().unwrap();
        assert!(
            challenge.starts_with("Bearer error=\"invalid_token\", error_description=\""),
            "{name}: {challenge}"
        );
    }

    // Without a required issuer, a token without `iss` is still one principal: issuer none.
    let mut open = config();
    open.issuer = None;
    assert_eq!(
        verify(&open, &hs(Algorithm::HS256, &without("iss"))),
        Ok(Principal::Authenticated {
            issuer: None,
            subject: "bob".into(),
            scopes: vec!["codex:read".into(), "codex:write".into()]
        })
    );
}

#[test]
fn the_same_subject_from_two_issuers_is_two_owners() {
    let from = |issuer: Option<&str>, subject: &str| Principal::Authenticated {
        issuer: issuer.map(str::to_owned),
        subject: subject.into(),
        scopes: vec![],
    };
    let a = from(Some("https://a.example"), "bob");
    let b = from(Some("https://b.example"), "bob");
    assert_ne!(a.owner_key(), b.owner_key());
    assert_ne!(a.owner_key(), from(None, "bob").owner_key());
    // No issuer/subject split can forge another pair's key.
    assert_ne!(
        from(Some("x\",\"y"), "z").owner_key(),
        from(Some("x"), "y\",\"z").owner_key()
    );
    // Records written by earlier versions (`jwt:<sub>`) never match a JWT caller.
    assert_ne!(a.owner_key(), "jwt:bob");
    assert_eq!(a.owner_key(), r#"jwt-iss-sub:["https://a.example","bob"]"#);
}

#[test]
fn a_missing_required_scope_is_insufficient_scope() {
    let mut config = config();
    config.required_scopes = vec!["codex:admin".into()];
    assert_eq!(
        verify(&config, &hs(Algorithm::HS256, &claims())),
        Err(AuthError::InsufficientScope("codex:admin".into()))
    );
    let mut scp = claims();
    scp.as_object_mut().unwrap().remove("scope");
    scp["scp"] = json!(["codex:admin"]);
    assert!(verify(&config, &hs(Algorithm::HS256, &scp)).is_ok());
}

#[test]
fn ec_keys_admit_only_es_algorithms() {
    let ec = JwtKey::public_pem(&key("ec-public.pem")).unwrap();
    assert_eq!(ec.algorithms, [Algorithm::ES256, Algorithm::ES384]);
    assert!(JwtKey::public_pem(b"not a key").is_err());
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

fn jwks_key(kid: &str) -> JwtKey {
    let private = EncodingKey::from_rsa_pem(&key("rsa-private.pem")).unwrap();
    let mut jwk = Jwk::from_encoding_key(&private, Algorithm::RS256).unwrap();
    jwk.common.key_id = Some(kid.to_owned());
    JwtKey::from_jwk(&jwk).unwrap()
}

fn rs_with_kid(kid: &str) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.to_owned());
    encode(
        &header,
        &claims(),
        &EncodingKey::from_rsa_pem(&key("rsa-private.pem")).unwrap(),
    )
    .unwrap()
}

#[test]
fn fetched_keys_are_matched_by_kid_and_an_unknown_kid_asks_for_a_refresh() {
    let mut config = config();
    config.jwt_keys.clear();
    config.jwks_url = Some("https://idp.example.com/jwks".into());
    let fetched = [jwks_key("k1")];
    let check = |token: &str, keys: &[JwtKey]| {
        let header = HeaderValue::from_str(&format!("Bearer {token}")).unwrap();
        Authenticator::verify(&config, keys, Some(&header))
    };
    assert!(check(&rs_with_kid("k1"), &fetched).is_ok());
    assert_eq!(
        check(&rs_with_kid("k2"), &fetched),
        Err(AuthError::UnknownKid("k2".into()))
    );
    assert!(matches!(
        check(&rs_with_kid(&"x".repeat(300)), &fetched),
        Err(AuthError::Invalid(_))
    ));
    // Without a kid, every key admitting the algorithm is tried.
    assert!(check(&rs(&claims()), &fetched).is_ok());
    // An HS token with kid k1 never meets the RSA key's material.
    let mut hs_header = Header::new(Algorithm::HS256);
    hs_header.kid = Some("k1".into());
    let forged = encode(&hs_header, &claims(), &EncodingKey::from_secret(b"x")).unwrap();
    assert!(check(&forged, &fetched).is_err());
}

/// The built-in server's key set arrives like a JWKS's keys (no URL): a kid outside it may
/// be a key another instance just added, so it asks for a re-read too.
#[test]
fn the_built_in_key_set_is_matched_by_kid_and_an_unknown_kid_asks_for_a_reread() {
    let mut config = config();
    config.jwt_keys.clear();
    let held = [jwks_key("k1")];
    let check = |token: &str, keys: &[JwtKey]| {
        let header = HeaderValue::from_str(&format!("Bearer {token}")).unwrap();
        Authenticator::verify(&config, keys, Some(&header))
    };
    assert!(check(&rs_with_kid("k1"), &held).is_ok());
    let unknown = check(&rs_with_kid("k2"), &held);
    assert_eq!(unknown, Err(AuthError::UnknownKid("k2".into())));
    assert!(matches!(
        check(&rs_with_kid("k1"), &[]),
        Err(AuthError::Invalid(_))
    ));
}

#[test]
fn a_jwk_naming_its_algorithm_admits_only_that_one() {
    let private = EncodingKey::from_rsa_pem(&key("rsa-private.pem")).unwrap();
    let jwk = Jwk::from_encoding_key(&private, Algorithm::PS384).unwrap();
    assert_eq!(
        JwtKey::from_jwk(&jwk).unwrap().algorithms,
        [Algorithm::PS384]
    );
    let mut wrong = jwk.clone();
    wrong.common.key_algorithm = Some(jsonwebtoken::jwk::KeyAlgorithm::ES256);
    assert!(JwtKey::from_jwk(&wrong).is_err());
    let mut hmac = jwk;
    hmac.common.key_algorithm = Some(jsonwebtoken::jwk::KeyAlgorithm::HS256);
    assert!(JwtKey::from_jwk(&hmac).is_err());
}

#[test]
fn the_401_challenge_names_the_scopes_a_client_should_ask_for() {
    let mut config = config();
    let challenge = |config: &AuthConfig, sent: bool| {
        crate::http::rescue::render(&Authenticator::reject(config, &AuthError::Missing, sent))
            .headers()[WWW_AUTHENTICATE]
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
