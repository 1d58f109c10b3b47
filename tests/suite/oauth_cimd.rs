//! Client ID Metadata Documents fetched for real: `twobot::oauth::cimd::CimdFetcher` against
//! an HTTPS server on loopback (tests/oauth/cimd_server.mjs) that serves good documents and
//! misbehaves on purpose: a loopback address without permission, a server that never
//! answers, a 1 MiB body, a redirect, a document naming another client, a redirect URI on
//! a stranger's host, an unknown certificate authority. And the trust route the real binary
//! uses: `SSL_CERT_FILE` in a fresh process, with no extra roots in code.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use serde_json::{Value, json};
use twobot::oauth::cimd::{CimdError, CimdFetcher, ClientMetadata};

use crate::common::cimd::{CimdServer, cimd_server};

/// The redirect hosts the tests allow (the operator's TWOBOT_OAUTH_REDIRECT_HOSTS).
fn allowed() -> Vec<String> {
    vec!["chatgpt.com".to_owned()]
}

/// A document naming its own URL, as a real client's does.
fn document(path: &str, name: &str) -> Value {
    json!({
        "client_id": format!("{{base}}{path}"),
        "client_name": name,
        "redirect_uris": ["https://chatgpt.com/connector_platform_oauth_redirect", "http://127.0.0.1/cb"],
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
    })
}

async fn server() -> Result<CimdServer> {
    cimd_server(&[
        ("/doc", document("/doc", "ChatGPT test client")),
        (
            "/clients/nameless.json",
            json!({
                "client_id": "{base}/clients/nameless.json",
                "redirect_uris": ["https://chatgpt.com/cb"],
            }),
        ),
        ("/other", document("/doc", "Claims another id")),
        (
            "/evil-redirect",
            json!({
                "client_id": "{base}/evil-redirect",
                "redirect_uris": ["https://chatgpt.com/cb", "https://evil.example/steal"],
            }),
        ),
    ])
    .await
}

/// A fetcher that may reach loopback (the test server) and trusts the test CA.
fn fetcher(srv: &CimdServer) -> Result<CimdFetcher> {
    Ok(CimdFetcher::new(true).with_root_pem(&srv.ca_pem()?)?)
}

#[tokio::test]
async fn a_good_document_gives_the_clients_name_and_redirect_uris() -> Result<()> {
    let srv = server().await?;
    let got = fetcher(&srv)?.fetch(&srv.url("/doc"), &allowed()).await?;
    assert_eq!(
        got,
        ClientMetadata {
            client_id: srv.url("/doc"),
            client_name: "ChatGPT test client".into(),
            redirect_uris: vec![
                "https://chatgpt.com/connector_platform_oauth_redirect".into(),
                "http://127.0.0.1/cb".into(),
            ],
        }
    );
    Ok(())
}

#[tokio::test]
async fn a_document_is_fetched_by_host_name_and_one_without_a_name_is_named_after_its_host()
-> Result<()> {
    let srv = server().await?;
    let id = format!("https://localhost:{}/clients/nameless.json", srv.port);
    let got = fetcher(&srv)?.fetch(&id, &allowed()).await?;
    assert_eq!(got.client_id, id);
    assert_eq!(got.client_name, "localhost");
    Ok(())
}

#[tokio::test]
async fn a_document_on_a_loopback_address_is_refused_without_allow_private_and_never_requested()
-> Result<()> {
    let srv = server().await?;
    let strict = CimdFetcher::new(false).with_root_pem(&srv.ca_pem()?)?;
    let err = strict
        .fetch(&srv.url("/doc"), &allowed())
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "127.0.0.1 resolves to 127.0.0.1, a loopback address (TWOBOT_OAUTH_CIMD_ALLOW_PRIVATE=true allows it on a closed network)"
    );
    let by_name = format!("https://localhost:{}/doc", srv.port);
    let err = strict.fetch(&by_name, &allowed()).await.unwrap_err();
    assert!(
        err.to_string().starts_with("localhost resolves to "),
        "{err}"
    );
    assert!(err.to_string().contains("a loopback address"), "{err}");
    // Settle, then check the server never saw a request.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(srv.requests(), Vec::<String>::new());
    Ok(())
}

#[tokio::test]
async fn a_server_that_never_answers_times_out_after_5_s() -> Result<()> {
    let srv = server().await?;
    let started = Instant::now();
    let err = fetcher(&srv)?
        .fetch(&srv.url("/slow"), &allowed())
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert_eq!(
        err.to_string(),
        format!("fetching {} timed out after 5 s", srv.url("/slow"))
    );
    // The bound is the fetch's own; the upper limit only catches a hang on a busy machine.
    assert!(
        took >= Duration::from_millis(4900) && took < Duration::from_secs(60),
        "{took:?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_document_larger_than_64_kib_is_refused_whether_announced_or_streamed() -> Result<()> {
    let srv = server().await?;
    let fetcher = fetcher(&srv)?;
    for path in ["/huge", "/huge-chunked"] {
        let err = fetcher.fetch(&srv.url(path), &allowed()).await.unwrap_err();
        assert!(matches!(err, CimdError::TooLarge), "{path}: {err}");
        assert_eq!(
            err.to_string(),
            "the client metadata document is larger than 64 KiB"
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_redirect_is_refused_and_not_followed() -> Result<()> {
    let srv = server().await?;
    let err = fetcher(&srv)?
        .fetch(&srv.url("/redirect"), &allowed())
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{} redirected (not followed) with HTTP 302 to /doc",
            srv.url("/redirect")
        )
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(srv.requests(), ["GET /redirect"]);
    Ok(())
}

#[tokio::test]
async fn a_document_whose_client_id_differs_from_its_url_is_refused() -> Result<()> {
    let srv = server().await?;
    let err = fetcher(&srv)?
        .fetch(&srv.url("/other"), &allowed())
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "client_id in the document ({}) differs from its URL ({})",
            srv.url("/doc"),
            srv.url("/other")
        )
    );
    Ok(())
}

#[tokio::test]
async fn a_document_with_a_redirect_uri_on_a_host_not_allowed_is_refused() -> Result<()> {
    let srv = server().await?;
    let err = fetcher(&srv)?
        .fetch(&srv.url("/evil-redirect"), &allowed())
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "redirect URI https://evil.example/steal is refused: redirect URI host `evil.example` is not an allowed redirect host (TWOBOT_OAUTH_REDIRECT_HOSTS)"
    );
    Ok(())
}

#[tokio::test]
async fn a_missing_document_is_refused_with_its_status() -> Result<()> {
    let srv = server().await?;
    let err = fetcher(&srv)?
        .fetch(&srv.url("/nothing"), &allowed())
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("{} answered HTTP 404, not 200", srv.url("/nothing"))
    );
    Ok(())
}

#[tokio::test]
async fn a_certificate_from_an_unknown_authority_is_refused() -> Result<()> {
    let srv = server().await?;
    let err = CimdFetcher::new(true)
        .fetch(&srv.url("/doc"), &allowed())
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, CimdError::Request { .. }), "{text}");
    assert!(text.contains("UnknownIssuer"), "{text}");
    Ok(())
}

/// The route the real binary takes: no extra roots in code, only `SSL_CERT_FILE` in the
/// environment of a fresh process (this test binary, run again for the test below).
#[tokio::test]
async fn ssl_cert_file_in_a_fresh_process_makes_the_test_ca_trusted() -> Result<()> {
    let srv = server().await?;
    let exe = std::env::current_exe()?;
    let out = tokio::process::Command::new(exe)
        .args([
            CHILD_TEST,
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("SSL_CERT_FILE", &srv.ca_file)
        .env(CHILD_CLIENT_ID, srv.url("/doc"))
        .kill_on_drop(true)
        .output()
        .await
        .context("re-running this test binary")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success() && stdout.contains("1 passed"),
        "the child fetch failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("fetched ChatGPT test client"), "{stdout}");
    Ok(())
}

const CHILD_TEST: &str = "suite::oauth_cimd::fetch_with_only_the_environment_s_roots";
const CHILD_CLIENT_ID: &str = "TWOBOT_TEST_CIMD_CLIENT_ID";

/// Run only by the test above, in a child process whose `SSL_CERT_FILE` names the test CA.
#[tokio::test]
#[ignore = "run by ssl_cert_file_in_a_fresh_process_makes_the_test_ca_trusted in a child process"]
async fn fetch_with_only_the_environment_s_roots() -> Result<()> {
    let id = std::env::var(CHILD_CLIENT_ID)
        .with_context(|| format!("{CHILD_CLIENT_ID} is unset: this test runs only as a child"))?;
    let got = CimdFetcher::new(true).fetch(&id, &allowed()).await?;
    println!("fetched {}", got.client_name);
    Ok(())
}
