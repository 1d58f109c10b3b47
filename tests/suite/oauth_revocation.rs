//! A revoked grant is refused at its next request though the servers keep live grants
//! in memory (no query per request): the real binaries, a real sign-in, and the
//! revocation made by someone else than the server that is asked. On SQLite the very
//! next request is refused; on PostgreSQL, another instance refuses once the revoking
//! transaction's `NOTIFY` reached it, polled here for at most
//! [`NOTIFY_BOUND`](crate::suite::oauth_revocation_watch::NOTIFY_BOUND).

use std::time::{Duration, Instant};

use anyhow::{Result, bail, ensure};
use reqwest::StatusCode;

use crate::common::oauth::{initialize_with, post_form};
use crate::common::oauth_builtin::{Builtin, run_binary};
use crate::common::postgres;
use crate::suite::oauth_instances::two_instances;
use crate::suite::oauth_revocation_watch::NOTIFY_BOUND;

/// A few requests with `access` on `mcp`, each served: its grant is now confirmed in the
/// server's memory.
async fn served(mcp: &str, access: &str) -> Result<()> {
    for _ in 0..3 {
        let (status, challenge) = initialize_with(mcp, access).await?;
        ensure!(status == 200, "{status} {challenge}");
    }
    Ok(())
}

/// Ask `mcp` with `access` until it refuses (at least once, for at most `bound`); how
/// long that took.
pub async fn refused_within(mcp: &str, access: &str, bound: Duration) -> Result<Duration> {
    let start = Instant::now();
    loop {
        let (status, challenge) = initialize_with(mcp, access).await?;
        if status == 401 {
            ensure!(challenge.contains("invalid_token"), "{challenge}");
            return Ok(start.elapsed());
        }
        if start.elapsed() >= bound {
            bail!("{mcp} still answers {status} after {:?}", start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// SQLite: `2bot-mcp oauth revoke <client>` against the server's state directory, and
/// the very next request is 401, with no wait.
#[tokio::test]
async fn the_request_right_after_oauth_revoke_is_refused() -> Result<()> {
    let server = Builtin::start(&[]).await?;
    let (ask, tokens) = server.tokens().await?;
    served(&server.server.url, &tokens.access).await?;

    let (code, out, err) = server.oauth_cli(&["revoke", &ask.client_id]).await?;
    assert_eq!(code, Some(0), "{out}{err}");
    refused_within(&server.server.url, &tokens.access, Duration::ZERO).await?;
    Ok(())
}

/// SQLite: `2bot-mcp oauth delete-client`, which leaves no revoked grant behind (the
/// rows are gone), and the very next request is 401.
#[tokio::test]
async fn the_request_right_after_oauth_delete_client_is_refused() -> Result<()> {
    let server = Builtin::start(&[]).await?;
    let (ask, tokens) = server.tokens().await?;
    served(&server.server.url, &tokens.access).await?;

    let (code, out, err) = server.oauth_cli(&["delete-client", &ask.client_id]).await?;
    assert_eq!(code, Some(0), "{out}{err}");
    refused_within(&server.server.url, &tokens.access, Duration::ZERO).await?;
    Ok(())
}

/// PostgreSQL, two instances: a token served by both; its client hands it to A's
/// revocation endpoint: A refuses it at the next request (it told its own view), B once
/// the notification arrived.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_revoked_at_one_instance_is_refused_by_the_other() -> Result<()> {
    let db = postgres::database();
    let (a, b) = two_instances(&db).await?;
    let (ask, tokens) = a.tokens().await?;
    served(&a.server.url, &tokens.access).await?;
    served(&b.server.url, &tokens.access).await?;

    let revoked = post_form(
        &reqwest::Client::new(),
        &a.url("/oauth/revoke"),
        &[
            ("token", tokens.access.as_str()),
            ("client_id", &ask.client_id),
        ],
    )
    .send()
    .await?;
    assert_eq!(revoked.status(), StatusCode::OK);
    refused_within(&a.server.url, &tokens.access, Duration::ZERO).await?;
    let took = refused_within(&b.server.url, &tokens.access, NOTIFY_BOUND).await?;
    eprintln!("B refused the revoked grant after {took:?}");
    Ok(())
}

/// PostgreSQL, two instances: `2bot-mcp oauth delete-client` with TWOBOT_DATABASE_URL
/// (no instance asked) and both refuse the client's token once notified.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_deleted_from_the_command_line_is_refused_by_every_instance() -> Result<()> {
    let db = postgres::database();
    let (a, b) = two_instances(&db).await?;
    let (ask, tokens) = a.tokens().await?;
    served(&a.server.url, &tokens.access).await?;
    served(&b.server.url, &tokens.access).await?;

    let env = vec![("TWOBOT_DATABASE_URL".to_owned(), db.url())];
    let (code, out, err) =
        run_binary(&["oauth", "delete-client", &ask.client_id], &env, "").await?;
    assert_eq!(code, Some(0), "{out}{err}");
    for server in [&a.server, &b.server] {
        let took = refused_within(&server.url, &tokens.access, NOTIFY_BOUND).await?;
        eprintln!(
            "{} refused the deleted client's grant after {took:?}",
            server.base
        );
    }
    Ok(())
}
