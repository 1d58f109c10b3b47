//! JWTs verified against a JWKS served on loopback: rotation and throttled refresh.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Result;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};

use crate::common::http::*;

fn private(name: &str, alg: Algorithm) -> EncodingKey {
    let pem = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/keys")
            .join(name),
    )
    .unwrap();
    match alg {
        Algorithm::ES256 => EncodingKey::from_ec_pem(&pem).unwrap(),
        _ => EncodingKey::from_rsa_pem(&pem).unwrap(),
    }
}

fn jwk(name: &str, alg: Algorithm, kid: &str) -> Jwk {
    let mut jwk = Jwk::from_encoding_key(&private(name, alg), alg).unwrap();
    jwk.common.key_id = Some(kid.to_owned());
    jwk
}

struct Idp {
    url: String,
    keys: Arc<Mutex<Vec<Jwk>>>,
    fetches: Arc<AtomicUsize>,
}

async fn idp(initial: Vec<Jwk>) -> Result<Idp> {
    let keys = Arc::new(Mutex::new(initial));
    let fetches = Arc::new(AtomicUsize::new(0));
    let (k, f) = (keys.clone(), fetches.clone());
    let app = axum::Router::new().route(
        "/jwks.json",
        axum::routing::get(move || {
            let (k, f) = (k.clone(), f.clone());
            async move {
                f.fetch_add(1, Ordering::SeqCst);
                let set = JwkSet {
                    keys: k.lock().unwrap().clone(),
                };
                axum::Json(serde_json::to_value(set).unwrap())
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(Idp {
        url: format!("http://{addr}/jwks.json"),
        keys,
        fetches,
    })
}

fn token(name: &str, alg: Algorithm, kid: &str, aud: &str) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut header = Header::new(alg);
    header.kid = Some(kid.to_owned());
    let claims = json!({"sub": "carol", "aud": aud, "exp": now + 600});
    encode(&header, &claims, &private(name, alg)).unwrap()
}

async fn status(url: &str, token: &str) -> Result<u16> {
    let body: Value = initialize_body();
    Ok(post(url, &body)
        .bearer_auth(token)
        .send()
        .await?
        .status()
        .as_u16())
}

#[tokio::test]
async fn jwks_keys_verify_tokens_rotate_on_an_unknown_kid_and_refresh_is_throttled() -> Result<()> {
    let idp = idp(vec![jwk("rsa-private.pem", Algorithm::RS256, "k1")]).await?;
    let server = spawn_http(&[
        ("TWOBOT_ENABLE_NO_AUTH", "false"),
        ("TWOBOT_JWT_JWKS_URL", &idp.url),
        ("TWOBOT_JWT_JWKS_MIN_REFRESH_SEC", "2"),
    ])
    .await?;
    let aud = server.url.clone();

    assert_eq!(
        status(
            &server.url,
            &token("rsa-private.pem", Algorithm::RS256, "k1", &aud)
        )
        .await?,
        200
    );
    assert_eq!(
        idp.fetches.load(Ordering::SeqCst),
        1,
        "fetched once at start"
    );

    // The IdP rotates to an EC key; the first token naming it triggers a refresh.
    *idp.keys.lock().unwrap() = vec![jwk("ec-private.pem", Algorithm::ES256, "k2")];
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let rotated = token("ec-private.pem", Algorithm::ES256, "k2", &aud);
    assert_eq!(status(&server.url, &rotated).await?, 200);
    assert_eq!(idp.fetches.load(Ordering::SeqCst), 2);
    // The old key is gone with the rotation.
    assert_eq!(
        status(
            &server.url,
            &token("rsa-private.pem", Algorithm::RS256, "k1", &aud)
        )
        .await?,
        401
    );

    // A flood of made-up kids costs at most one fetch per interval (2 s). The tokens are
    // signed first (RSA in a debug build is slow on a busy machine), and the flood's own
    // length sets how many intervals it spanned.
    let forged: Vec<String> = (0..20)
        .map(|i| {
            token(
                "rsa-private.pem",
                Algorithm::RS256,
                &format!("made-up-{i}"),
                &aud,
            )
        })
        .collect();
    let before = idp.fetches.load(Ordering::SeqCst);
    let flood = std::time::Instant::now();
    for forged in &forged {
        assert_eq!(status(&server.url, forged).await?, 401);
    }
    let intervals = 1 + usize::try_from(flood.elapsed().as_secs() / 2)?;
    let after = idp.fetches.load(Ordering::SeqCst);
    assert!(
        after - before <= intervals,
        "{} fetches for 20 unknown kids in {intervals} interval(s)",
        after - before
    );

    // Wrong audience with a valid key is still refused.
    assert_eq!(
        status(
            &server.url,
            &token("ec-private.pem", Algorithm::ES256, "k2", "https://other")
        )
        .await?,
        401
    );
    Ok(())
}

#[tokio::test]
async fn a_jwks_url_over_plain_http_to_a_remote_host_refuses_to_start() -> Result<()> {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_2bot-mcp"))
        .env_clear()
        .env("TWOBOT_TRANSPORT", "http")
        .env("TWOBOT_PORT", "0")
        .env("TWOBOT_ENABLE_NO_AUTH", "false")
        .env("TWOBOT_JWT_JWKS_URL", "http://idp.example.com/jwks.json")
        .stdin(std::process::Stdio::null())
        .output()
        .await?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("TWOBOT_JWT_JWKS_URL") && stderr.contains("https"),
        "{stderr}"
    );
    Ok(())
}
