//! Several instances of one service, each its own built-in authorization server, on one
//! PostgreSQL (`common::postgres`): the real binaries over loopback HTTP, sharing
//! `TWOBOT_BASE_URL` as instances behind a load balancer do. A token issued by one is
//! accepted by all (one client table, one grant table, one signing key set), a refresh
//! works anywhere, `2bot-mcp oauth revoke` against the database ends the grant on every
//! instance, and a key another instance added is picked up at the first token naming it.

use anyhow::{Context, Result, ensure};
use reqwest::StatusCode;
use serde_json::Value;

use crate::common::http::http_client;
use crate::common::oauth::{initialize_with, jwt_part, post_form};
use crate::common::oauth_builtin::{Builtin, Tokens, run_binary};
use crate::common::postgres;

/// Instance A on `db`, then instance B beside it: same database and public base URL
/// (A's), its own port.
pub(crate) async fn two_instances(db: &postgres::Database) -> Result<(Builtin, Builtin)> {
    let url = db.url();
    let a = Builtin::start(&[("TWOBOT_DATABASE_URL", &url)]).await?;
    let b = Builtin::start(&[("TWOBOT_DATABASE_URL", &url), ("TWOBOT_BASE_URL", &a.base)]).await?;
    Ok((a, b))
}

/// `POST {server}/oauth/token` refreshing `tokens` for `client_id`, for the resource of
/// the service (`a`'s).
async fn refresh_on(
    server: &str,
    a: &Builtin,
    client_id: &str,
    refresh: &str,
) -> Result<(StatusCode, Value)> {
    let response = post_form(
        &reqwest::Client::new(),
        &format!("{server}/oauth/token"),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh),
            ("client_id", client_id),
            ("resource", &a.resource),
        ],
    )
    .send()
    .await?;
    Ok((response.status(), response.json().await?))
}

/// tools/list on `mcp` with `access` (a real MCP client).
async fn tools_on(mcp: &str, access: &str) -> Result<Vec<String>> {
    let client = http_client(mcp, Some(access)).await?;
    let tools = client.list_all_tools().await?;
    client.cancel().await?;
    Ok(tools.into_iter().map(|t| t.name.to_string()).collect())
}

async fn jwks(server: &str) -> Result<Value> {
    Ok(reqwest::get(format!("{server}/oauth/jwks.json"))
        .await?
        .json()
        .await?)
}

/// Signed in on A: B serves tools/list with the token and refreshes it; the new token
/// works on A; `oauth list --database-url` shows the grant, and `oauth revoke all` with
/// TWOBOT_DATABASE_URL (no instance asked) makes both refuse the grant's access token
/// (once notified) and its refresh token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_from_one_instance_is_accepted_refreshed_and_revoked_on_all() -> Result<()> {
    let db = postgres::database();
    let (a, b) = two_instances(&db).await?;
    let (ask, tokens) = a.tokens().await?;
    assert_eq!(jwks(&a.server.base).await?, jwks(&b.server.base).await?);

    let tools = tools_on(&b.server.url, &tokens.access).await?;
    ensure!(tools.iter().any(|t| t == "run_codex_prompt"), "{tools:?}");

    let (status, body) = refresh_on(&b.server.base, &a, &ask.client_id, &tokens.refresh).await?;
    assert_eq!(status, StatusCode::OK, "refresh on B: {body}");
    let fresh = Tokens::from(&body)?;
    assert_eq!(initialize_with(&a.server.url, &fresh.access).await?.0, 200);
    assert_eq!(initialize_with(&b.server.url, &fresh.access).await?.0, 200);

    let url = db.url();
    let (code, out, err) = run_binary(&["--database-url", &url, "oauth", "list"], &[], "").await?;
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains(&ask.client_id) && out.contains("1 live grant(s)"),
        "{out}"
    );
    let env = vec![("TWOBOT_DATABASE_URL".to_owned(), url)];
    let (code, out, err) = run_binary(&["oauth", "revoke", "all"], &env, "").await?;
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.starts_with("revoked 1 grant(s) of all clients"),
        "{out}"
    );

    // Each instance hears of it through the revoking transaction's NOTIFY.
    for server in [&a.server, &b.server] {
        crate::suite::oauth_revocation::refused_within(
            &server.url,
            &fresh.access,
            crate::suite::oauth_revocation_watch::NOTIFY_BOUND,
        )
        .await?;
    }
    let (status, body) = refresh_on(&b.server.base, &a, &ask.client_id, &fresh.refresh).await?;
    assert_eq!(
        (status, &body["error"]),
        (StatusCode::BAD_REQUEST, &Value::from("invalid_grant")),
        "{body}"
    );
    Ok(())
}

/// A key added to the store after B started (as an instance that rotated would): A,
/// restarted, signs with it; B has never seen it, reads the set again at the first token
/// naming it, and accepts the token; the old key's tokens stay accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_another_instance_added_is_picked_up_at_its_first_token() -> Result<()> {
    let db = postgres::database();
    let (mut a, b) = two_instances(&db).await?;
    let (_, old) = a.tokens().await?;
    let (key, pem) = twobot::oauth::signing::SigningKey::generate()?;
    let (client, connection) = tokio_postgres::connect(&db.url(), tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    let now = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs(),
    )?;
    client
        .execute(
            "INSERT INTO oauth_signing_keys (kid, generation, private_pem, created_at, not_before)
             SELECT $1, MAX(generation) + 1, $2, $3, $3 FROM oauth_signing_keys",
            &[&key.kid(), &pem, &(now - 1)],
        )
        .await?;
    a.restart().await?;
    let (_, new) = a.tokens().await?;
    let kid = jwt_part(&new.access, 0)?["kid"].clone();
    assert_eq!(kid, key.kid(), "A signs with the newest key");
    let held = jwks(&b.server.base).await?;
    let known = held["keys"].as_array().context("keys")?;
    ensure!(
        !known.iter().any(|k| k["kid"] == kid),
        "B knew it already: {held}"
    );

    let tools = tools_on(&b.server.url, &new.access).await?;
    ensure!(tools.iter().any(|t| t == "run_codex_prompt"), "{tools:?}");
    let keys = jwks(&b.server.base).await?;
    assert_eq!(keys["keys"].as_array().map(Vec::len), Some(2), "{keys}");
    assert_eq!(initialize_with(&b.server.url, &old.access).await?.0, 200);
    Ok(())
}
