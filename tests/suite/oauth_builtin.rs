//! 2Bot as its own authorization server (TWOBOT_OAUTH_BUILTIN, issue 14 part 2), driven as
//! ChatGPT drives it: the real binary over loopback HTTP, discovery from the 401, DCR,
//! authorize with PKCE and `resource`, the operator's sign-in and consent pages, the token
//! endpoint, and MCP with the token it issued. Then what the operator relies on: state that
//! survives a restart, `oauth revoke` that ends grants at once, start-up refusals, and the
//! sign-in page in a real browser. (Attacks: `oauth_builtin_attacks.rs`.)

use anyhow::{Context, Result};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::oauth::*;
use crate::common::oauth_builtin::*;
use crate::common::programs::{APT_CHROMIUM, APT_NODE, NPM_CI, require};

/// Each field of the authorization server metadata the design promises, exactly.
fn assert_metadata(meta: &Value, base: &str) {
    let expected = json!({
        "issuer": base,
        "authorization_endpoint": format!("{base}/oauth/authorize"),
        "token_endpoint": format!("{base}/oauth/token"),
        "registration_endpoint": format!("{base}/oauth/register"),
        "revocation_endpoint": format!("{base}/oauth/revoke"),
        "jwks_uri": format!("{base}/oauth/jwks.json"),
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["none", "client_secret_post", "client_secret_basic"],
        "scopes_supported": ["codex:read", "codex:write"],
        "client_id_metadata_document_supported": true,
        "authorization_response_iss_parameter_supported": true,
    });
    for (field, value) in expected.as_object().into_iter().flatten() {
        assert_eq!(&meta[field], value, "{field} in {meta:#}");
    }
}

/// The JWKS key whose `kid` the token names, checked as a verifier would.
async fn verify_with_jwks(server: &Builtin, access: &str) -> Result<Value> {
    let jwks: Value = reqwest::get(server.url("/oauth/jwks.json"))
        .await?
        .json()
        .await?;
    let kid = jwt_part(access, 0)?["kid"].clone();
    let key = jwks["keys"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|k| k["kid"] == kid)
        .with_context(|| format!("kid {kid} not in {jwks}"))?;
    assert_eq!(
        (&key["kty"], &key["crv"], &key["alg"], &key["use"]),
        (
            &json!("EC"),
            &json!("P-256"),
            &json!("ES256"),
            &json!("sig")
        ),
        "{key}"
    );
    let decoding = DecodingKey::from_ec_components(
        key["x"].as_str().context("x")?,
        key["y"].as_str().context("y")?,
    )?;
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_audience(&[&server.resource]);
    validation.set_issuer(&[&server.base]);
    Ok(jsonwebtoken::decode::<Value>(access, &decoding, &validation)?.claims)
}

/// The whole connector flow against the built-in server: every step as the design says,
/// the consent page tells the operator who is asking and what each scope allows, the token
/// is an ES256 RFC 9068 JWT for this resource, it runs the tool, and refresh rotates.
#[tokio::test]
async fn chatgpt_s_flow_reaches_the_tool_with_the_built_in_server() -> Result<()> {
    let server = Builtin::start(&[]).await?;
    let found = discover(&server.server.url).await?;
    assert_eq!(found.authorization_servers, json!([server.base]));
    assert_eq!(found.scopes, ["codex:read", "codex:write"]);
    assert_metadata(&found.server, &server.base);

    let (status, registered) = server
        .register(json!({
            "client_name": "ChatGPT",
            "redirect_uris": [REDIRECT_URI],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
        }))
        .await?;
    assert_eq!(status, StatusCode::CREATED, "{registered}");
    let client_id = registered["client_id"].as_str().context("client_id")?;
    assert!(
        client_id.starts_with("c_") && client_id.len() == 24,
        "{registered}"
    );
    assert!(registered["client_id_issued_at"].is_i64(), "{registered}");
    assert!(
        registered.get("client_secret").is_none(),
        "a public client: {registered}"
    );
    assert_eq!(registered["redirect_uris"], json!([REDIRECT_URI]));

    let ask = Ask::new(client_id, REDIRECT_URI);
    let mut browser = Browser::new()?;
    let page = browser.send(browser.http.get(ask.url(&server)?)).await?;
    assert_eq!(page.status(), StatusCode::OK);
    assert!(
        browser.cookies.contains_key("twobot_oauth"),
        "{:?}",
        browser.cookies
    );
    let page = page.text().await?;
    assert!(
        inputs(&page).iter().any(|(name, _, _)| name == "password"),
        "{page}"
    );

    let consent = sign_in(&server, &mut browser, &page, PASSWORD).await?;
    assert_eq!(consent.status(), StatusCode::OK);
    let consent = consent.text().await?;
    let shown = page_text(&consent);
    assert!(shown.contains("ChatGPT"), "the client's name: {shown}");
    assert!(shown.contains("chatgpt.com"), "the redirect host: {shown}");
    for (scope, ceiling) in [
        ("codex:read", "read-only"),
        ("codex:write", "workspace-write"),
    ] {
        let after = shown
            .split(scope)
            .nth(1)
            .with_context(|| format!("{scope}: {shown}"))?;
        let next = after.find("codex:").unwrap_or(after.len());
        assert!(
            after[..next].contains(ceiling),
            "{scope} → {ceiling}: {shown}"
        );
    }
    let ticked: Vec<_> = inputs(&consent)
        .into_iter()
        .filter(|(name, _, checked)| name == "scope" && *checked)
        .map(|(_, value, _)| value)
        .collect();
    assert_eq!(
        ticked,
        ["codex:read", "codex:write"],
        "all requested scopes ticked"
    );

    let allowed = decide(&server, &mut browser, &consent, "allow", None).await?;
    assert_eq!(allowed.status(), StatusCode::SEE_OTHER);
    let params = redirected_to(&allowed, REDIRECT_URI)?;
    assert_eq!(params.get("state"), Some(&ask.state));
    assert_eq!(params.get("iss"), Some(&server.base), "RFC 9207");
    let code = params.get("code").context("code")?;

    let response = post_form(
        &reqwest::Client::new(),
        &server.url("/oauth/token"),
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT_URI),
            ("client_id", client_id),
            ("code_verifier", &ask.pkce.verifier),
            ("resource", &server.resource),
        ],
    )
    .send()
    .await?;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await?;
    assert_eq!(
        (&body["token_type"], &body["expires_in"], &body["scope"]),
        (&json!("Bearer"), &json!(3600), &json!(SCOPE)),
        "{body}"
    );
    let tokens = Tokens::from(&body)?;
    assert!(tokens.refresh.starts_with("rt_"), "{body}");

    let header = jwt_part(&tokens.access, 0)?;
    assert_eq!(
        (&header["alg"], &header["typ"]),
        (&json!("ES256"), &json!("at+jwt")),
        "{header}"
    );
    let claims = verify_with_jwks(&server, &tokens.access).await?;
    assert_eq!(claims["sub"], "operator", "{claims}");
    assert_eq!(claims["client_id"], client_id, "{claims}");
    assert_eq!(claims["scope"], SCOPE, "{claims}");
    assert!(
        claims["gid"].is_string() && claims["jti"].is_string(),
        "{claims}"
    );
    assert_eq!(
        claims["exp"]
            .as_i64()
            .zip(claims["iat"].as_i64())
            .map(|(e, i)| e - i),
        Some(3600)
    );
    use_the_tool(&server.server.url, &tokens.access).await?;

    let (status, body) = server.refresh(client_id, &tokens.refresh).await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    let refreshed = Tokens::from(&body)?;
    assert_ne!(refreshed.access, tokens.access);
    assert_ne!(refreshed.refresh, tokens.refresh, "rotated");
    assert_eq!(
        verify_with_jwks(&server, &refreshed.access).await?["gid"],
        claims["gid"],
        "same grant"
    );
    use_the_tool(&server.server.url, &refreshed.access).await?;
    Ok(())
}

crate::both_stores!(state_survives_a_restart);
/// A restart (even a kill) loses nothing: the signing key, the client, the grant. The old
/// access token still runs the tool, the refresh token still rotates, and the client can
/// authorize again without registering.
async fn state_survives_a_restart() -> Result<()> {
    let mut server = Builtin::start(&[]).await?;
    let (ask, tokens) = server.tokens().await?;
    let jwks_before: Value = reqwest::get(server.url("/oauth/jwks.json"))
        .await?
        .json()
        .await?;

    server.restart().await?;
    let jwks_after: Value = reqwest::get(server.url("/oauth/jwks.json"))
        .await?
        .json()
        .await?;
    assert_eq!(jwks_after, jwks_before, "the same signing key");
    use_the_tool(&server.server.url, &tokens.access).await?;
    let (status, body) = server.refresh(&ask.client_id, &tokens.refresh).await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    use_the_tool(&server.server.url, &Tokens::from(&body)?.access).await?;

    let again = Ask::new(&ask.client_id, REDIRECT_URI);
    let code = server.code_for(&again).await?;
    let (status, body) = server.exchange(&again, &code).await?;
    assert_eq!(status, StatusCode::OK, "the client is still known: {body}");
    Ok(())
}

crate::both_stores!(revoked_grants_stop_refresh_and_access_tokens);
/// `2bot-mcp oauth revoke all`, run by the operator against the live server's state
/// directory, ends every grant at once: the refresh token is refused on its next use and
/// so is the access token (the revocation list), before its hour is up.
async fn revoked_grants_stop_refresh_and_access_tokens() -> Result<()> {
    let server = Builtin::start(&[]).await?;
    let (ask, tokens) = server.tokens().await?;
    assert_eq!(
        initialize_with(&server.server.url, &tokens.access).await?.0,
        200
    );

    let (code, listed, stderr) = server.oauth_cli(&["list"]).await?;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        listed.contains(&ask.client_id) && listed.contains("ChatGPT"),
        "{listed}"
    );

    let (code, stdout, stderr) = server.oauth_cli(&["revoke", "all"]).await?;
    assert_eq!(code, Some(0), "{stdout}{stderr}");

    let (status, body) = server.refresh(&ask.client_id, &tokens.refresh).await?;
    assert_eq!(
        (status, &body["error"]),
        (StatusCode::BAD_REQUEST, &json!("invalid_grant")),
        "{body}"
    );
    let (status, challenge) = initialize_with(&server.server.url, &tokens.access).await?;
    assert_eq!(status, 401, "a revoked grant's access token");
    assert!(challenge.contains("invalid_token"), "{challenge}");
    Ok(())
}

/// Built-in mode without what it needs, or with an external issuer configured too, stops
/// at start-up: exit 2 and one line that names the variable to fix.
#[tokio::test]
async fn the_built_in_server_refuses_to_start_without_its_settings() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let password = password_file(dir.path()).await?.display().to_string();
    let good: Vec<(&str, &str)> = vec![
        ("TWOBOT_TRANSPORT", "http"),
        ("TWOBOT_PORT", "0"),
        ("TWOBOT_ENABLE_NO_AUTH", "false"),
        ("TWOBOT_OAUTH_BUILTIN", "true"),
        // https: a loopback http base would add its warning line to the refusal.
        ("TWOBOT_BASE_URL", "https://2bot.example.com"),
        ("TWOBOT_OAUTH_PASSWORD_FILE", &password),
        // Codex runs as root here, like the server (tests run as root).
        ("TWOBOT_OAUTH_ALLOW_SHARED_CODEX_USER", "true"),
    ];
    let state = dir.path().join("state").display().to_string();
    let roots = dir.path().display().to_string();
    let cases = [
        ("TWOBOT_BASE_URL", None),
        ("TWOBOT_BASE_URL", Some("http://example.com")),
        ("TWOBOT_BASE_URL", Some("https://example.com/2bot")),
        ("TWOBOT_OAUTH_REDIRECT_HOSTS", Some("https://chatgpt.com")),
        ("TWOBOT_OAUTH_PASSWORD_FILE", None),
        ("TWOBOT_OAUTH_PASSWORD_FILE", Some("/nonexistent/password")),
        ("TWOBOT_JWT_ISSUER", Some("https://issuer.example.com")),
        ("TWOBOT_ENABLE_NO_AUTH", Some("true")),
        ("TWOBOT_OAUTH_ALLOW_SHARED_CODEX_USER", None),
    ];
    for (variable, value) in cases {
        let mut env: Vec<(String, String)> = good
            .iter()
            .filter(|(k, _)| *k != variable)
            .chain(&[
                ("TWOBOT_STATE_DIR", state.as_str()),
                ("CODEX_ALLOWED_ROOTS", &roots),
            ])
            .chain(value.as_ref().map(|v| (variable, *v)).as_ref())
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        env.push((
            "CODEX_BIN".into(),
            crate::common::fake_codex().display().to_string(),
        ));
        let (code, _, stderr) = run_binary(&[], &env, "").await?;
        assert_eq!(code, Some(2), "{variable}={value:?}: {stderr}");
        // Log lines (timestamped) may come first; the refusal itself is one line.
        let said: Vec<&str> = stderr
            .lines()
            .filter(|l| !l.starts_with(|c: char| c.is_ascii_digit()))
            .collect();
        assert_eq!(said.len(), 1, "{variable}={value:?}: {stderr}");
        assert!(said[0].contains(variable), "{variable}={value:?}: {stderr}");
    }
    Ok(())
}

/// The sign-in and consent pages in headless Chromium (tests/oauth/signin.mjs): the
/// operator types the password, keeps the ticked scopes and clicks Allow; the browser
/// lands on the client's redirect with a code the client can trade. The pages load
/// nothing off this server and the browser reports no CSP violation (form-action lets the
/// consent form's 303 reach the client) and no error.
#[tokio::test]
async fn the_sign_in_page_works_in_a_real_browser() -> Result<()> {
    let chromium = require(&["chromium", "/usr/bin/chromium"], "chromium", APT_CHROMIUM)?;
    let node = require(&["node"], "node", APT_NODE)?;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    require(
        &[&root
            .join("node_modules/playwright-core")
            .display()
            .to_string()],
        "playwright-core",
        NPM_CI,
    )?;
    let server = Builtin::start(&[]).await?;
    let client = server.register_public("ChatGPT", REDIRECT_URI).await?;
    let ask = Ask::new(&client, REDIRECT_URI);
    let mut cmd = tokio::process::Command::new(node);
    cmd.arg(root.join("tests/oauth/signin.mjs"))
        .current_dir(root)
        .env("AUTHORIZE_URL", ask.url(&server)?)
        .env("PASSWORD", PASSWORD)
        .env("REDIRECT_URI", REDIRECT_URI)
        .env("CHROMIUM", &chromium)
        .kill_on_drop(true);
    let out = tokio::time::timeout(std::time::Duration::from_secs(180), cmd.output())
        .await
        .context("the browser did not finish in 180 s")??;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: Value = stdout
        .lines()
        .find_map(|l| serde_json::from_str(l).ok())
        .with_context(|| {
            format!(
                "no report: {stdout}{}",
                String::from_utf8_lossy(&out.stderr)
            )
        })?;
    assert!(out.status.success(), "{report:#}");
    assert_eq!(report["offLoopback"], json!([]), "{report:#}");
    assert_eq!(report["pageErrors"], json!([]), "{report:#}");
    assert_eq!(
        report["console"],
        json!([]),
        "CSP violations or errors: {report:#}"
    );
    assert_eq!(
        report["scopes"],
        json!([{"scope": "codex:read", "checked": true}, {"scope": "codex:write", "checked": true}])
    );
    let query = &report["query"];
    assert_eq!(
        (&query["state"], &query["iss"]),
        (&json!(ask.state), &json!(server.base))
    );
    let code = query["code"]
        .as_str()
        .with_context(|| format!("{report:#}"))?;
    let exchanged = server.exchange(&ask, code).await;
    let log = std::fs::read_to_string(&server.server.log).unwrap_or_default();
    let (status, body) = exchanged.with_context(|| format!("server log:\n{log}"))?;
    assert_eq!(status, StatusCode::OK, "{body} {report:#}");
    let access = Tokens::from(&body)?.access;
    assert_eq!(initialize_with(&server.server.url, &access).await?.0, 200);
    Ok(())
}
