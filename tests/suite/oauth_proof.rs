//! OAuth proven end to end against a real authorization server: the pinned `oidc-provider`
//! (tests/oauth/provider.mjs, run with node from node_modules) on loopback, 2Bot's real
//! binary over HTTP, and a client that walks exactly ChatGPT's connector flow: 401 with
//! `resource_metadata` → protected-resource metadata → the authorization server's metadata
//! → dynamic client registration → authorize with PKCE S256 and `resource` → sign-in and
//! consent → code → token (with `resource`) → MCP. Then what an attacker would try with
//! real tokens from a real server: another resource's token, an expired one, another
//! issuer's; and refresh.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail, ensure};
use reqwest::header::LOCATION;
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt;

use crate::common::http::*;
use crate::common::oauth::*;
use crate::common::{call, only_run, text};

/// The test account of tests/oauth/provider.mjs.
const LOGIN: (&str, &str) = ("operator", "correct horse battery staple");
/// Its client name whose access tokens live 2 s.
const SHORT_LIVED: &str = "short-lived-test-client";

/// A running oidc-provider.
struct AuthServer {
    issuer: String,
    _child: tokio::process::Child,
}

/// Start tests/oauth/provider.mjs; `keys` shares a signing key between two instances.
async fn auth_server(keys: &Path) -> Result<AuthServer> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    ensure!(
        root.join("node_modules/oidc-provider/package.json")
            .exists(),
        "oidc-provider is not installed: run `npm ci` (package.json pins it)"
    );
    let mut child = tokio::process::Command::new("node")
        .arg(root.join("tests/oauth/provider.mjs"))
        .current_dir(root)
        .env("OAUTH_PORT", "0")
        .env("OAUTH_KEYS_FILE", keys)
        .env("OAUTH_SHORT_TTL_CLIENT", SHORT_LIVED)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .context("starting node (Node.js must be on PATH)")?;
    let stdout = child.stdout.take().context("stdout")?;
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .context("the authorization server printed no issuer line")??
        .context("the authorization server exited")?;
    let issuer = line
        .strip_prefix("issuer ")
        .context("issuer line")?
        .to_owned();
    // Keep its stdout drained (and shown) so the server never dies of a closed pipe.
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            eprintln!("oidc-provider: {line}");
        }
    });
    Ok(AuthServer {
        issuer,
        _child: child,
    })
}

/// 2Bot configured as an operator would for an external authorization server, plus `extra`.
async fn twobot_for(auth: &AuthServer, extra: &[(&str, &str)]) -> Result<HttpServer> {
    let (listener, port) = loopback_listener()?;
    let port = port.to_string();
    let base = format!("http://127.0.0.1:{port}");
    let resource = format!("{base}/mcp");
    let jwks = format!("{}/jwks", auth.issuer);
    let mut env = vec![
        ("TWOBOT_PORT", port.as_str()),
        ("TWOBOT_BASE_URL", &base),
        ("TWOBOT_ENABLE_NO_AUTH", "false"),
        ("TWOBOT_AUTH_SERVERS", &auth.issuer),
        ("TWOBOT_JWT_JWKS_URL", &jwks),
        ("TWOBOT_JWT_ISSUER", &auth.issuer),
        ("TWOBOT_JWT_AUDIENCE", &resource),
        ("TWOBOT_JWT_LEEWAY_SEC", "1"),
    ];
    env.extend_from_slice(extra);
    spawn_http_on(listener, &env).await
}

const READ_REQUIRED: &[(&str, &str)] = &[("TWOBOT_REQUIRED_SCOPES", "codex:read")];

/// Tokens from the token endpoint.
struct Tokens {
    access: String,
    refresh: Option<String>,
}

/// A client registered by DCR, as ChatGPT registers itself.
struct Client {
    id: String,
    discovered: Value,
}

async fn register(server: &Value, name: &str) -> Result<Client> {
    let endpoint = server["registration_endpoint"]
        .as_str()
        .context("registration_endpoint")?;
    let response = reqwest::Client::new()
        .post(endpoint)
        .json(&json!({
            "client_name": name,
            "redirect_uris": [REDIRECT_URI],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
        }))
        .send()
        .await?;
    ensure!(response.status() == 201, "DCR: {}", response.status());
    let registered: Value = response.json().await?;
    Ok(Client {
        id: registered["client_id"]
            .as_str()
            .context("client_id")?
            .to_owned(),
        discovered: server.clone(),
    })
}

/// Authorize with PKCE S256 and `resource`, sign in, consent, and trade the code.
async fn authorize(client: &Client, resource: &str, scopes: &[String]) -> Result<Tokens> {
    let server = &client.discovered;
    let issuer = server["issuer"].as_str().context("issuer")?;
    let Pkce {
        verifier,
        challenge,
    } = pkce();
    let state = uuid::Uuid::new_v4().to_string();
    let mut scope = scopes.to_vec();
    if server["scopes_supported"]
        .as_array()
        .is_some_and(|s| s.contains(&json!("offline_access")))
    {
        scope.push("offline_access".to_owned());
    }
    let mut url = reqwest::Url::parse(
        server["authorization_endpoint"]
            .as_str()
            .context("authorization_endpoint")?,
    )?;
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &client.id)
        .append_pair("redirect_uri", REDIRECT_URI)
        .append_pair("scope", &scope.join(" "))
        .append_pair("state", &state)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256")
        .append_pair("resource", resource)
        .append_pair("prompt", "consent");

    let mut browser = Browser::new()?;
    let mut next = url.to_string();
    let mut code = None;
    for _ in 0..12 {
        let response = browser.send(browser.http.get(&next)).await?;
        let Some(location) = response.headers().get(LOCATION) else {
            // An interaction page: sign in, or consent.
            ensure!(response.status() == 200, "{next}: {}", response.status());
            let page: Value = response.json().await?;
            let action = match page["prompt"].as_str() {
                Some("login") => "login",
                Some("consent") => "confirm",
                other => bail!("unexpected prompt {other:?} at {next}"),
            };
            let submit = post_form(
                &browser.http,
                &format!("{next}/{action}"),
                &[("login", LOGIN.0), ("password", LOGIN.1)],
            );
            let answered = browser.send(submit).await?;
            next = reqwest::Url::parse(&next)?
                .join(
                    answered
                        .headers()
                        .get(LOCATION)
                        .with_context(|| format!("{action}: {}", answered.status()))?
                        .to_str()?,
                )?
                .to_string();
            continue;
        };
        let target = reqwest::Url::parse(&next)?.join(location.to_str()?)?;
        if target.as_str().starts_with(REDIRECT_URI) {
            let params: BTreeMap<String, String> = target.query_pairs().into_owned().collect();
            ensure!(params.get("state") == Some(&state), "state: {params:?}");
            // RFC 9207: the response names its issuer (mix-up defence).
            ensure!(
                params.get("iss").map(String::as_str) == Some(issuer),
                "{params:?}"
            );
            code = Some(
                params
                    .get("code")
                    .with_context(|| format!("no code: {params:?}"))?
                    .clone(),
            );
            break;
        }
        next = target.to_string();
    }
    let code = code.context("no code after 12 redirects")?;
    token(
        server,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT_URI),
            ("client_id", &client.id),
            ("code_verifier", &verifier),
            ("resource", resource),
        ],
    )
    .await
}

async fn token(server: &Value, pairs: &[(&str, &str)]) -> Result<Tokens> {
    let endpoint = server["token_endpoint"]
        .as_str()
        .context("token_endpoint")?;
    let response = post_form(&reqwest::Client::new(), endpoint, pairs)
        .send()
        .await?;
    let status = response.status();
    let body: Value = response.json().await?;
    ensure!(status == 200, "token endpoint: {status} {body}");
    ensure!(body["token_type"] == "Bearer", "{body}");
    Ok(Tokens {
        access: body["access_token"]
            .as_str()
            .context("access_token")?
            .to_owned(),
        refresh: body["refresh_token"].as_str().map(str::to_owned),
    })
}

async fn refresh(client: &Client, refresh_token: &str, resource: &str) -> Result<Tokens> {
    token(
        &client.discovered,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_id", &client.id),
            ("resource", resource),
        ],
    )
    .await
}

/// ChatGPT's connector flow, step by step, against oidc-provider: every step succeeds, the
/// access token it ends with runs the tool, and a refreshed one does too.
#[tokio::test]
async fn chatgpt_s_oauth_flow_through_a_real_authorization_server_reaches_the_tool() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let auth = auth_server(&tmp.path().join("keys.json")).await?;
    let server = twobot_for(&auth, READ_REQUIRED).await?;

    let found = discover(&server.url).await?;
    assert_eq!(
        found.scopes,
        ["codex:read"],
        "scopes a client should request"
    );
    let client = register(&found.server, "ChatGPT").await?;
    let tokens = authorize(&client, &found.resource, &found.scopes).await?;

    // The access token is an RFC 9068 JWT for exactly this resource.
    let header = jwt_part(&tokens.access, 0)?;
    let claims = jwt_part(&tokens.access, 1)?;
    assert_eq!(header["typ"], "at+jwt", "{header}");
    assert_eq!(claims["aud"], json!(found.resource), "{claims}");
    assert_eq!(claims["iss"], json!(auth.issuer), "{claims}");
    assert_eq!(claims["sub"], "operator", "{claims}");
    use_the_tool(&server.url, &tokens.access).await?;

    // Refresh: a new access token (the refresh token rotates), accepted too.
    let first_refresh = tokens.refresh.context("no refresh token was issued")?;
    let refreshed = refresh(&client, &first_refresh, &found.resource).await?;
    assert_ne!(refreshed.access, tokens.access);
    assert_ne!(
        refreshed.refresh.as_deref(),
        Some(first_refresh.as_str()),
        "rotated"
    );
    use_the_tool(&server.url, &refreshed.access).await?;
    Ok(())
}

/// Real tokens 2Bot must refuse: minted for another resource, expired, or by another issuer
/// that signs with the very same key. Each is a 401 that names the metadata again.
#[tokio::test]
async fn tokens_for_another_resource_expired_or_from_another_issuer_get_401() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let keys = tmp.path().join("keys.json");
    let auth = auth_server(&keys).await?;
    // Same signing key (same kid), different issuer: only the `iss` check can refuse it.
    let other_issuer = auth_server(&keys).await?;
    let server = twobot_for(&auth, READ_REQUIRED).await?;
    let found = discover(&server.url).await?;
    let metadata = format!(
        "resource_metadata=\"{}/.well-known/oauth-protected-resource/mcp\"",
        server.base
    );

    // Another resource on the same authorization server.
    let client = register(&found.server, "ChatGPT").await?;
    let other = authorize(&client, "https://other.example.com/mcp", &found.scopes).await?;
    assert_eq!(
        jwt_part(&other.access, 1)?["aud"],
        "https://other.example.com/mcp"
    );
    let (status, challenge) = initialize_with(&server.url, &other.access).await?;
    assert_eq!(status, 401, "another resource's token");
    assert!(challenge.contains(&metadata), "{challenge}");

    // Expired: this client's tokens live 2 s; wait past `exp` plus 2Bot's leeway (1 s).
    let short = register(&found.server, SHORT_LIVED).await?;
    let expiring = authorize(&short, &found.resource, &found.scopes).await?;
    let (status, _) = initialize_with(&server.url, &expiring.access).await?;
    assert_eq!(status, 200, "valid before it expires");
    let exp = jwt_part(&expiring.access, 1)?["exp"]
        .as_u64()
        .context("exp")?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    tokio::time::sleep(Duration::from_secs(exp.saturating_sub(now) + 3)).await;
    let (status, challenge) = initialize_with(&server.url, &expiring.access).await?;
    assert_eq!(status, 401, "an expired token");
    assert!(challenge.contains(&metadata), "{challenge}");
    // `invalid_token` is what tells a client to refresh (RFC 6750 §3.1).
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");

    // Another issuer, same key, same resource.
    let foreign_meta: Value = reqwest::get(format!(
        "{}/.well-known/openid-configuration",
        other_issuer.issuer
    ))
    .await?
    .json()
    .await?;
    let foreign_client = register(&foreign_meta, "ChatGPT").await?;
    let foreign = authorize(&foreign_client, &found.resource, &found.scopes).await?;
    assert_eq!(
        jwt_part(&foreign.access, 0)?["kid"],
        jwt_part(&other.access, 0)?["kid"],
        "both issuers sign with one key"
    );
    assert_eq!(jwt_part(&foreign.access, 1)?["aud"], json!(found.resource));
    let (status, challenge) = initialize_with(&server.url, &foreign.access).await?;
    assert_eq!(status, 401, "another issuer's token");
    assert!(challenge.contains(&metadata), "{challenge}");
    Ok(())
}

/// An operator who maps scopes to sandboxes in the policy (`[scopes]`) and requires none:
/// the metadata lists those scopes, so a client that requests what it lists (as ChatGPT
/// does) is granted `codex:write` and may run in workspace-write.
#[tokio::test]
async fn the_policy_s_scopes_are_advertised_so_a_chatgpt_client_obtains_write_access() -> Result<()>
{
    let tmp = tempfile::tempdir()?;
    let policy = tmp.path().join("policy.toml");
    std::fs::write(
        &policy,
        "[scopes]\n\"codex:read\" = \"read-only\"\n\"codex:write\" = \"workspace-write\"\n",
    )?;
    let auth = auth_server(&tmp.path().join("keys.json")).await?;
    let server = twobot_for(
        &auth,
        &[("TWOBOT_POLICY_FILE", &policy.display().to_string())],
    )
    .await?;

    let found = discover(&server.url).await?;
    assert_eq!(found.scopes, ["codex:read", "codex:write"]);
    let client = register(&found.server, "ChatGPT").await?;
    let tokens = authorize(&client, &found.resource, &found.scopes).await?;
    let granted = jwt_part(&tokens.access, 1)?["scope"].clone();
    assert_eq!(granted, "codex:read codex:write", "granted scopes");

    let mcp = http_client(&server.url, Some(&tokens.access)).await?;
    let result = call(
        &mcp,
        json!({"prompt": "scenario:ok", "sandbox": "workspace-write", "allow_edits": true}),
    )
    .await?;
    assert_eq!(result.is_error, Some(false), "{}", text(&result));
    mcp.cancel().await?;
    let run = only_run(&server.record)?;
    assert!(
        run.argv.iter().any(|a| a.contains("workspace-write")),
        "{:?}",
        run.argv
    );
    Ok(())
}
