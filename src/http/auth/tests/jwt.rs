//! JWTs: valid ones name their subject and scopes; broken, unattributable or
//! under-scoped ones are refused with a reason; one subject at two issuers is two owners.

use super::*;

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
        let response = crate::http::rescue::render(&reject(
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
