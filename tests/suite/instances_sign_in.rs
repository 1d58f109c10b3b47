//! Signing in to the built-in authorization server through a round-robin balancer
//! (issue 21): the authorize page, the password, the consent and the code exchange each
//! land on whichever of three instances nginx picks, so the pending sign-in must live
//! in the shared store, not in one process. Then the token works on every instance,
//! refresh rotations are seen everywhere, and a replayed refresh token revokes the grant
//! on all of them. A guesser's failed passwords are counted in the store too: spread
//! over the instances by round robin, the sixth is still refused.

use anyhow::{Context, Result, ensure};
use serde_json::json;

use crate::common::cluster::{Balancer, Cluster, Sdk, TokenSource};
use crate::common::http::loopback_listener;
use crate::common::oauth::Browser;
use crate::common::oauth_builtin::{Ask, Issuer, Tokens, builtin_env, inputs, sign_in};

/// The built-in authorization server as the service's: its issuer is the balancer's
/// address, so every page and token request of a sign-in may land on another instance.
struct BuiltinIssuer(Vec<(String, String)>);

impl TokenSource for BuiltinIssuer {
    fn server_env(&self) -> Vec<(String, String)> {
        self.0.clone()
    }

    fn token(&self, who: &str) -> Result<String> {
        anyhow::bail!("{who} signs in through the authorization server, not with a fixed token")
    }
}

/// A tools/list with `token` straight to `mcp`, bypassing the balancer: its status.
async fn tools_list_status(mcp: &str, token: &str) -> Result<reqwest::StatusCode> {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "test", "version": "0"}
    }}});
    let response = reqwest::Client::new()
        .post(mcp)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/list")
        .bearer_auth(token)
        .json(&body)
        .send()
        .await?;
    Ok(response.status())
}

/// A person signs in once through the balancer (registration, the authorize page, the
/// password, the consent and the code exchange each land wherever round robin sends
/// them); every instance then honours the token through the official SDK; a refresh on
/// one instance is honoured by the others; and replaying the spent refresh token, which
/// revokes the grant, makes every instance refuse the grant's access token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_in_through_the_balancer_gives_a_token_every_instance_honours() -> Result<()> {
    let sdk = Sdk::new()?;
    let dir = tempfile::tempdir()?;
    let (cluster, _balancer, base) = builtin_service(dir.path()).await?;

    let issuer = Issuer::at(&base);
    let (ask, tokens) = issuer.tokens().await.context("the sign-in through nginx")?;
    for (m, member) in cluster.members.iter().enumerate() {
        let r = sdk
            .call(
                &member.mcp(),
                &tokens.access,
                "run_codex_prompt",
                json!({"prompt": format!("hello from member {m}")}),
            )
            .await?;
        ensure!(r["isError"] != true, "member {m} refused the token: {r}");
    }

    // Two refreshes through the balancer: each rotation is seen by the next instance.
    let (status, body) = issuer.refresh(&ask.client_id, &tokens.refresh).await?;
    ensure!(
        status == reqwest::StatusCode::OK,
        "refresh: {status} {body}"
    );
    let second = Tokens::from(&body)?;
    let (status, body) = issuer.refresh(&ask.client_id, &second.refresh).await?;
    ensure!(
        status == reqwest::StatusCode::OK,
        "refresh: {status} {body}"
    );
    let third = Tokens::from(&body)?;
    for member in &cluster.members {
        let status = tools_list_status(&member.mcp(), &third.access).await?;
        ensure!(
            status == reqwest::StatusCode::OK,
            "{}: {status}",
            member.mcp()
        );
    }

    // A replayed refresh token (the first one, spent) revokes the grant everywhere.
    let (status, body) = issuer.refresh(&ask.client_id, &tokens.refresh).await?;
    ensure!(
        status == reqwest::StatusCode::BAD_REQUEST && body["error"] == "invalid_grant",
        "the replay: {status} {body}"
    );
    for member in &cluster.members {
        let status = tools_list_status(&member.mcp(), &third.access).await?;
        ensure!(
            status == reqwest::StatusCode::UNAUTHORIZED,
            "{} still honours a revoked grant's token: {status}",
            member.mcp()
        );
    }
    Ok(())
}

/// Three instances behind round-robin nginx, the built-in authorization server on each;
/// the balancer's base URL.
async fn builtin_service(dir: &std::path::Path) -> Result<(Cluster, Balancer, String)> {
    // Held from now on: the issuer's address is the balancer's, known before it starts.
    let (lb_listener, lb_port) = loopback_listener()?;
    let base = format!("http://127.0.0.1:{lb_port}");
    let mut env = builtin_env(&base, dir).await?;
    // One host: the instances share a state directory (their liveness locks).
    env.push((
        "TWOBOT_STATE_DIR".into(),
        dir.join("state").display().to_string(),
    ));
    let cluster = Cluster::start(3, &BuiltinIssuer(env), &[]).await?;
    let ports: Vec<u16> = cluster.members.iter().map(|m| m.port).collect();
    let balancer = Balancer::start_on(lb_listener, &ports).await?;
    Ok((cluster, balancer, base))
}

/// Five wrong passwords through the balancer land on all three instances (round robin),
/// yet the sixth attempt, even with the right password, is refused with 429: the count
/// is the service's, not each instance's (which would allow fifteen).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_sign_ins_spread_over_the_instances_lock_the_address_out_on_all() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (_cluster, _balancer, base) = builtin_service(dir.path()).await?;
    let issuer = Issuer::at(&base);
    let client = issuer
        .register_public("ChatGPT", crate::common::oauth::REDIRECT_URI)
        .await?;
    let ask = Ask::new(&client, crate::common::oauth::REDIRECT_URI);
    let mut browser = Browser::new()?;
    let page = browser.send(browser.http.get(ask.url(&issuer)?)).await?;
    ensure!(
        page.status() == reqwest::StatusCode::OK,
        "authorize: {}",
        page.status()
    );
    let mut page = page.text().await?;
    for attempt in 1..=5 {
        let response = sign_in(&issuer, &mut browser, &page, &format!("guess {attempt}")).await?;
        ensure!(
            response.status() == reqwest::StatusCode::UNAUTHORIZED,
            "attempt {attempt}: {}",
            response.status()
        );
        let body = response.text().await?;
        if inputs(&body).iter().any(|(name, _, _)| name == "request") {
            page = body;
        }
    }
    for password in ["guess 6", crate::common::oauth_builtin::PASSWORD, "guess 7"] {
        let response = sign_in(&issuer, &mut browser, &page, password).await?;
        ensure!(
            response.status() == reqwest::StatusCode::TOO_MANY_REQUESTS,
            "{password}: {}",
            response.status()
        );
    }
    Ok(())
}
