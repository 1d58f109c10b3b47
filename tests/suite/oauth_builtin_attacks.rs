//! What an attacker tries against 2Bot's built-in authorization server, each through real
//! HTTP against the real binary (the SECURITY.md controls table cites these names): PKCE
//! left out or wrong, a redirect URI nobody registered, replayed codes and refresh tokens,
//! tokens for another audience, a client id document on loopback, password guessing, and
//! framing or forging the sign-in form.

use anyhow::{Context, Result};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use reqwest::header::{LOCATION, RETRY_AFTER};
use serde_json::{Value, json};

use crate::common::oauth::*;
use crate::common::oauth_builtin::*;

/// The authorize response for `ask` (no redirects followed).
async fn authorize(server: &Builtin, ask: &Ask) -> Result<reqwest::Response> {
    let mut browser = Browser::new()?;
    browser.send(browser.http.get(ask.url(server)?)).await
}

/// An authorize error is a redirect back to the client carrying `error`, `state` and `iss`.
async fn assert_redirected_error(server: &Builtin, ask: &Ask, error: &str) -> Result<()> {
    let response = authorize(server, ask).await?;
    assert!(
        response.status().is_redirection(),
        "{error}: {}",
        response.status()
    );
    let params = redirected_to(&response, &ask.redirect_uri)?;
    assert_eq!(
        params.get("error").map(String::as_str),
        Some(error),
        "{params:?}"
    );
    assert!(params.contains_key("error_description"), "{params:?}");
    assert_eq!(params.get("state"), Some(&ask.state), "{params:?}");
    assert_eq!(params.get("iss"), Some(&server.base), "{params:?}");
    assert!(!params.contains_key("code"), "{params:?}");
    Ok(())
}

/// A token endpoint error: status and `error`.
fn assert_token_error(got: &(StatusCode, Value), status: StatusCode, error: &str) {
    assert_eq!(
        (got.0, &got.1["error"]),
        (status, &json!(error)),
        "{}",
        got.1
    );
}

/// No code without PKCE S256, and a code is worth nothing without its verifier: a wrong or
/// missing verifier is refused, and the failed attempt uses the code up.
#[tokio::test]
async fn pkce_missing_or_wrong_is_refused() -> Result<()> {
    let server = Builtin::start(&[]).await?;
    let client = server.register_public("ChatGPT", REDIRECT_URI).await?;
    let mut ask = Ask::new(&client, REDIRECT_URI);
    ask.params.remove("code_challenge");
    assert_redirected_error(&server, &ask, "invalid_request").await?;
    let mut ask = Ask::new(&client, REDIRECT_URI);
    ask.params.insert("code_challenge_method", "plain".into());
    ask.params
        .insert("code_challenge", ask.pkce.verifier.clone());
    assert_redirected_error(&server, &ask, "invalid_request").await?;
    let mut ask = Ask::new(&client, REDIRECT_URI);
    ask.params.remove("code_challenge_method");
    assert_redirected_error(&server, &ask, "invalid_request").await?;

    // Each refused exchange uses its code up: the right verifier afterwards is too late.
    for verifier in [
        None,
        Some("a-verifier-long-enough-to-be-one-but-not-the-one-0123456789"),
    ] {
        let ask = Ask::new(&client, REDIRECT_URI);
        let code = server.code_for(&ask).await?;
        let mut pairs = vec![
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT_URI),
            ("client_id", client.as_str()),
            ("resource", server.resource.as_str()),
        ];
        pairs.extend(verifier.map(|v| ("code_verifier", v)));
        let refused = server.token(&pairs).await?;
        assert_token_error(&refused, StatusCode::BAD_REQUEST, "invalid_grant");
        assert!(
            refused.1["error_description"]
                .as_str()
                .unwrap_or_default()
                .contains("PKCE"),
            "{}",
            refused.1
        );
        let too_late = server.exchange(&ask, &code).await?;
        assert_token_error(&too_late, StatusCode::BAD_REQUEST, "invalid_grant");
    }
    Ok(())
}

/// A redirect URI that is not the client's registered one (even on an allowed host), an
/// unknown client, or a redirect URI on a host nobody allowed: a 400 page, never a
/// redirect, so the server cannot be used as an open redirector or to leak a code.
#[tokio::test]
async fn redirect_uri_not_registered_gets_an_error_page_not_a_redirect() -> Result<()> {
    let server = Builtin::start(&[]).await?;
    let client = server.register_public("ChatGPT", REDIRECT_URI).await?;
    for (client_id, redirect_uri) in [
        (client.as_str(), "https://evil.example.com/callback"),
        (client.as_str(), "https://claude.ai/api/mcp/auth_callback"),
        (
            client.as_str(),
            "https://chatgpt.com/connector_platform_oauth_redirect/../evil",
        ),
        ("c_nobodyregisteredthis0", REDIRECT_URI),
    ] {
        let ask = Ask::new(client_id, redirect_uri);
        let response = authorize(&server, &ask).await?;
        assert_eq!(
            response.status(),
            StatusCode::BAD_REQUEST,
            "{client_id} {redirect_uri}"
        );
        assert!(response.headers().get(LOCATION).is_none(), "{redirect_uri}");
        assert!(
            response.headers()["content-type"]
                .to_str()?
                .starts_with("text/html")
        );
        let page = response.text().await?.to_lowercase();
        assert!(
            !page.contains("http-equiv=\"refresh\"") && !page.contains("<script"),
            "{page}"
        );
    }
    let (status, body) = server
        .register(json!({"client_name": "Evil", "redirect_uris": ["https://evil.example.com/cb"], "token_endpoint_auth_method": "none"}))
        .await?;
    assert_eq!(
        (status, &body["error"]),
        (StatusCode::BAD_REQUEST, &json!("invalid_redirect_uri")),
        "{body}"
    );
    Ok(())
}

/// A code used twice means it leaked: the second exchange is refused and everything the
/// first one issued stops working (its refresh token, and its access token at once).
#[tokio::test]
async fn a_replayed_code_is_refused_and_revokes_what_it_issued() -> Result<()> {
    let server = Builtin::start(&[]).await?;
    let client = server.register_public("ChatGPT", REDIRECT_URI).await?;
    let ask = Ask::new(&client, REDIRECT_URI);
    let code = server.code_for(&ask).await?;
    let (status, body) = server.exchange(&ask, &code).await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    let tokens = Tokens::from(&body)?;
    assert_eq!(
        initialize_with(&server.server.url, &tokens.access).await?.0,
        200
    );

    let replay = server.exchange(&ask, &code).await?;
    assert_token_error(&replay, StatusCode::BAD_REQUEST, "invalid_grant");
    assert!(replay.1.get("access_token").is_none(), "{}", replay.1);
    let refresh = server.refresh(&client, &tokens.refresh).await?;
    assert_token_error(&refresh, StatusCode::BAD_REQUEST, "invalid_grant");
    let (status, challenge) = initialize_with(&server.server.url, &tokens.access).await?;
    assert_eq!(status, 401, "the first exchange's access token");
    assert!(challenge.contains("invalid_token"), "{challenge}");
    Ok(())
}

/// A refresh token used twice means it leaked: the replay is refused and the whole family
/// ends, including the token the legitimate rotation produced and its access token.
#[tokio::test]
async fn a_replayed_refresh_token_revokes_the_family() -> Result<()> {
    let server = Builtin::start(&[]).await?;
    let (ask, first) = server.tokens().await?;
    let (status, body) = server.refresh(&ask.client_id, &first.refresh).await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    let second = Tokens::from(&body)?;
    assert_eq!(
        initialize_with(&server.server.url, &second.access).await?.0,
        200
    );

    let replay = server.refresh(&ask.client_id, &first.refresh).await?;
    assert_token_error(&replay, StatusCode::BAD_REQUEST, "invalid_grant");
    let next = server.refresh(&ask.client_id, &second.refresh).await?;
    assert_token_error(&next, StatusCode::BAD_REQUEST, "invalid_grant");
    for access in [&first.access, &second.access] {
        assert_eq!(initialize_with(&server.server.url, access).await?.0, 401);
    }
    // Another client cannot use (or burn) someone's refresh token either.
    let (ask, tokens) = server.tokens().await?;
    let other = server.register_public("Other", REDIRECT_URI).await?;
    assert_eq!(
        server.refresh(&other, &tokens.refresh).await?.1["error"],
        "invalid_grant"
    );
    assert_eq!(
        server.refresh(&ask.client_id, &tokens.refresh).await?.0,
        StatusCode::OK
    );
    Ok(())
}

/// Tokens are for this resource only: asking for another resource is refused at
/// authorize and at the token endpoint, and a token signed with 2Bot's own key (read from
/// its state directory) for another audience gets 401, while the same claims for this
/// audience pass (so it is the audience that is refused).
#[tokio::test]
async fn a_token_for_another_audience_is_refused() -> Result<()> {
    const OTHER: &str = "https://other.example.com/mcp";
    let server = Builtin::start(&[]).await?;
    let client = server.register_public("ChatGPT", REDIRECT_URI).await?;
    let mut ask = Ask::new(&client, REDIRECT_URI);
    ask.params.insert("resource", OTHER.into());
    assert_redirected_error(&server, &ask, "invalid_target").await?;

    let ask = Ask::new(&client, REDIRECT_URI);
    let code = server.code_for(&ask).await?;
    let other = server
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT_URI),
            ("client_id", &client),
            ("code_verifier", &ask.pkce.verifier),
            ("resource", OTHER),
        ])
        .await?;
    assert_token_error(&other, StatusCode::BAD_REQUEST, "invalid_target");

    let (_, tokens) = server.tokens().await?;
    let pem = server.signing_key_pem()?;
    let key = EncodingKey::from_ec_pem(&pem)?;
    let mut header = Header::new(Algorithm::ES256);
    header.typ = Some("at+jwt".into());
    header.kid = jwt_part(&tokens.access, 0)?["kid"]
        .as_str()
        .map(str::to_owned);
    let mut claims = jwt_part(&tokens.access, 1)?;
    let same = jsonwebtoken::encode(&header, &claims, &key)?;
    assert_eq!(
        initialize_with(&server.server.url, &same).await?.0,
        200,
        "re-signed, same claims"
    );
    claims["aud"] = json!(OTHER);
    let forged = jsonwebtoken::encode(&header, &claims, &key)?;
    let (status, challenge) = initialize_with(&server.server.url, &forged).await?;
    assert_eq!(status, 401, "another audience");
    assert!(challenge.contains("resource_metadata"), "{challenge}");
    Ok(())
}

/// Five wrong passwords from one address lock sign-in for that address: the sixth try is
/// 429 with Retry-After, and so is the right password while the lock lasts.
#[tokio::test]
async fn brute_force_sign_in_gets_429_after_five_failures() -> Result<()> {
    let server = Builtin::start(&[]).await?;
    let client = server.register_public("ChatGPT", REDIRECT_URI).await?;
    let ask = Ask::new(&client, REDIRECT_URI);
    let mut browser = Browser::new()?;
    let mut page = authorize_page(&server, &mut browser, &ask).await?;
    for attempt in 1..=5 {
        let response = sign_in(&server, &mut browser, &page, &format!("guess {attempt}")).await?;
        assert_eq!(
            response.status(),
            StatusCode::UNAUTHORIZED,
            "attempt {attempt}"
        );
        let body = response.text().await?;
        assert!(body.to_lowercase().contains("wrong password"), "{body}");
        if inputs(&body).iter().any(|(name, _, _)| name == "request") {
            page = body;
        }
    }
    for password in ["guess 6", PASSWORD] {
        let response = sign_in(&server, &mut browser, &page, password).await?;
        assert_eq!(
            response.status(),
            StatusCode::TOO_MANY_REQUESTS,
            "{password}"
        );
        let retry: u64 = response
            .headers()
            .get(RETRY_AFTER)
            .context("Retry-After")?
            .to_str()?
            .parse()?;
        assert!((1..=900).contains(&retry), "Retry-After {retry}");
    }
    Ok(())
}

/// GET authorize in `browser`: the sign-in page.
async fn authorize_page(server: &Builtin, browser: &mut Browser, ask: &Ask) -> Result<String> {
    let response = browser.send(browser.http.get(ask.url(server)?)).await?;
    anyhow::ensure!(
        response.status() == StatusCode::OK,
        "authorize: {}",
        response.status()
    );
    Ok(response.text().await?)
}

/// The sign-in page refuses to be framed or cached and runs nothing, its cookie is
/// HttpOnly/SameSite=Strict on /oauth, and a form post without the matching CSRF token and
/// cookie is 403 (sign-in and consent alike).
#[tokio::test]
async fn the_sign_in_page_cannot_be_framed_and_needs_its_csrf_token() -> Result<()> {
    let server = Builtin::start(&[]).await?;
    let client = server.register_public("ChatGPT", REDIRECT_URI).await?;
    let ask = Ask::new(&client, REDIRECT_URI);
    let mut browser = Browser::new()?;
    let response = browser.send(browser.http.get(ask.url(&server)?)).await?;
    let headers = response.headers().clone();
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let csp = header("content-security-policy");
    for directive in [
        "default-src 'none'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "form-action 'self'",
    ] {
        assert!(csp.contains(directive), "{directive}: {csp}");
    }
    assert_eq!(header("x-frame-options"), "DENY");
    assert_eq!(header("cache-control"), "no-store");
    assert_eq!(header("referrer-policy"), "no-referrer");
    assert_eq!(header("x-content-type-options"), "nosniff");
    let cookie = header("set-cookie");
    for part in ["twobot_oauth=", "HttpOnly", "SameSite=Strict"] {
        assert!(cookie.contains(part), "{part}: {cookie}");
    }
    // Sent to /oauth only: no Path (the default is the authorize URL's directory) or /oauth.
    assert!(
        !cookie.contains("Path=") || cookie.contains("Path=/oauth"),
        "{cookie}"
    );
    let page = response.text().await?;
    assert!(
        !page.contains("<script") && !page.contains("src=\"http"),
        "{page}"
    );

    let (request, csrf) = (hidden(&page, "request")?, hidden(&page, "csrf")?);
    let sign_in_url = server.url("/oauth/authorize/sign-in");
    let attempts: [(&str, bool); 3] = [(csrf.as_str(), false), ("forged", true), ("", true)];
    for (token, with_cookie) in attempts {
        let mut stranger = Browser::new()?;
        if with_cookie {
            stranger.cookies = browser.cookies.clone();
        }
        let form = [
            ("request", request.as_str()),
            ("csrf", token),
            ("password", PASSWORD),
        ];
        let response = stranger
            .send(post_form(&stranger.http, &sign_in_url, &form))
            .await?;
        assert_eq!(
            response.status(),
            StatusCode::FORBIDDEN,
            "csrf {token:?} cookie {with_cookie}"
        );
    }
    let consent = sign_in(&server, &mut browser, &page, PASSWORD).await?;
    assert_eq!(
        consent.status(),
        StatusCode::OK,
        "the real form still works"
    );
    let consent = consent.text().await?;
    let forged = [
        ("request", hidden(&consent, "request")?),
        ("csrf", "forged".into()),
        ("decision", "allow".into()),
    ];
    let response = browser
        .send(post_form(
            &browser.http,
            &server.url("/oauth/authorize/consent"),
            &forged
                .iter()
                .map(|(k, v)| (*k, v.as_str()))
                .collect::<Vec<_>>(),
        ))
        .await?;
    assert_eq!(
        response.status(),
        StatusCode::FORBIDDEN,
        "consent with a forged csrf"
    );
    assert!(response.headers().get(LOCATION).is_none());
    Ok(())
}
