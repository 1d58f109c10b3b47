//! Verification keys: which algorithms a PEM or a JWK admits, and how a token's `kid`
//! picks a fetched JWKS key or one of the built-in key set (an unknown kid asks for a
//! re-read).

use super::*;

#[test]
fn ec_keys_admit_only_es_algorithms() {
    let ec = JwtKey::public_pem(&key("ec-public.pem")).unwrap();
    assert_eq!(ec.algorithms, [Algorithm::ES256, Algorithm::ES384]);
    assert!(JwtKey::public_pem(b"not a key").is_err());
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
