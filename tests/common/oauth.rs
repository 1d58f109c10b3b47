//! What every OAuth test does as ChatGPT does it, whichever authorization server is behind
//! 2Bot (oidc-provider in `suite::oauth_proof`, 2Bot's own in `suite::oauth_builtin*`):
//! discovery from the 401, a browser-ish client that keeps cookies and never follows a
//! redirect (so each `Location` can be checked), PKCE, JWT inspection and MCP calls.

use std::collections::BTreeMap;

use anyhow::{Context, Result, ensure};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE, WWW_AUTHENTICATE};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::http::{http_client, initialize_body, post};
use super::{call, text};

/// ChatGPT's connector callback; registered, never visited (the code is read off the redirect).
pub const REDIRECT_URI: &str = "https://chatgpt.com/connector_platform_oauth_redirect";

/// What a client learns from the 401 and the two metadata documents.
pub struct Discovered {
    pub resource: String,
    pub scopes: Vec<String>,
    /// The authorization servers the protected-resource metadata names.
    pub authorization_servers: Value,
    /// The authorization server's metadata (RFC 8414 or OIDC discovery).
    pub server: Value,
}

/// A browser-ish HTTP client: no automatic redirects, a cookie jar for the AS's session.
pub struct Browser {
    pub http: reqwest::Client,
    pub cookies: BTreeMap<String, String>,
}

impl Browser {
    pub fn new() -> Result<Self> {
        Ok(Self {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()?,
            cookies: BTreeMap::new(),
        })
    }

    pub async fn send(&mut self, request: reqwest::RequestBuilder) -> Result<reqwest::Response> {
        let jar = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let request = if jar.is_empty() {
            request
        } else {
            request.header(COOKIE, jar)
        };
        let response = request.send().await?;
        for cookie in response.headers().get_all(SET_COOKIE) {
            let pair = cookie.to_str()?.split(';').next().unwrap_or_default();
            if let Some((name, value)) = pair.split_once('=') {
                if value.is_empty() {
                    self.cookies.remove(name);
                } else {
                    self.cookies.insert(name.to_owned(), value.to_owned());
                }
            }
        }
        Ok(response)
    }
}

pub fn form(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

pub fn post_form(
    http: &reqwest::Client,
    url: &str,
    pairs: &[(&str, &str)],
) -> reqwest::RequestBuilder {
    http.post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(pairs))
}

/// A PKCE verifier and its S256 challenge.
pub struct Pkce {
    pub verifier: String,
    pub challenge: String,
}

pub fn pkce() -> Pkce {
    let verifier = format!("{}{}", uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    Pkce {
        verifier,
        challenge,
    }
}

/// The query of a redirect's `Location` that starts with `redirect_uri`.
pub fn redirected_to(
    response: &reqwest::Response,
    redirect_uri: &str,
) -> Result<BTreeMap<String, String>> {
    let location = response
        .headers()
        .get(LOCATION)
        .with_context(|| format!("no redirect: {}", response.status()))?
        .to_str()?;
    ensure!(
        location.starts_with(redirect_uri),
        "redirected to {location}, not {redirect_uri}"
    );
    Ok(reqwest::Url::parse(location)?
        .query_pairs()
        .into_owned()
        .collect())
}

/// The first three steps of ChatGPT's flow: the 401, then both metadata documents.
pub async fn discover(mcp_url: &str) -> Result<Discovered> {
    let http = reqwest::Client::new();
    let unauthenticated = post(mcp_url, &initialize_body()).send().await?;
    ensure!(
        unauthenticated.status() == StatusCode::UNAUTHORIZED,
        "POST /mcp without a token: {}",
        unauthenticated.status()
    );
    let challenge = unauthenticated
        .headers()
        .get(WWW_AUTHENTICATE)
        .context("401 without WWW-Authenticate")?
        .to_str()?
        .to_owned();
    let metadata_url = challenge
        .split("resource_metadata=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .with_context(|| format!("no resource_metadata in {challenge:?}"))?;
    let resource_metadata: Value = http.get(metadata_url).send().await?.json().await?;
    let resource = resource_metadata["resource"]
        .as_str()
        .context("resource")?
        .to_owned();
    // A client must check that the metadata is about the server it is talking to.
    ensure!(resource == mcp_url, "resource {resource} for {mcp_url}");
    let issuer = resource_metadata["authorization_servers"][0]
        .as_str()
        .context("authorization_servers")?;
    let scopes = resource_metadata["scopes_supported"]
        .as_array()
        .context("scopes_supported")?
        .iter()
        .filter_map(|s| s.as_str().map(str::to_owned))
        .collect();
    // RFC 8414 first, then OpenID Connect discovery, as ChatGPT does.
    let mut server = Value::Null;
    for well_known in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ] {
        let response = http.get(format!("{issuer}{well_known}")).send().await?;
        if response.status().is_success() {
            server = response.json().await?;
            break;
        }
    }
    ensure!(server["issuer"] == issuer, "AS metadata: {server}");
    ensure!(
        server["code_challenge_methods_supported"]
            .as_array()
            .is_some_and(|m| m.contains(&json!("S256"))),
        "the AS must support PKCE S256: {server}"
    );
    Ok(Discovered {
        resource,
        scopes,
        authorization_servers: resource_metadata["authorization_servers"].clone(),
        server,
    })
}

/// A JWT's header (0) or claims (1), unverified.
pub fn jwt_part(token: &str, index: usize) -> Result<Value> {
    let part = token.split('.').nth(index).context("not a JWT")?;
    Ok(serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part)?)?)
}

/// The status of `POST /mcp initialize` with `token`, and its `WWW-Authenticate`.
pub async fn initialize_with(url: &str, token: &str) -> Result<(u16, String)> {
    let response = post(url, &initialize_body())
        .bearer_auth(token)
        .send()
        .await?;
    let challenge = response
        .headers()
        .get(WWW_AUTHENTICATE)
        .map(|v| v.to_str().unwrap_or_default().to_owned())
        .unwrap_or_default();
    Ok((response.status().as_u16(), challenge))
}

/// The MCP calls ChatGPT makes once connected: initialize, tools/list, tools/call.
pub async fn use_the_tool(url: &str, access: &str) -> Result<()> {
    let client = http_client(url, Some(access)).await?;
    let tools = client.list_all_tools().await?;
    ensure!(
        tools.iter().any(|t| t.name == "run_codex_prompt"),
        "{tools:?}"
    );
    let result = call(&client, json!({"prompt": "scenario:ok"})).await?;
    ensure!(text(&result) == "fake answer", "{result:?}");
    client.cancel().await?;
    Ok(())
}
