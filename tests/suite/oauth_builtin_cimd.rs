//! Clients that need no registration (Client ID Metadata Documents): the client id is an
//! HTTPS URL and 2Bot fetches the document there. Driven through the real binary against
//! a real HTTPS document server on loopback (tests/common/cimd.rs, its certificate from a
//! test CA that 2Bot trusts through `SSL_CERT_FILE`), so loopback fetches need
//! TWOBOT_OAUTH_CIMD_ALLOW_PRIVATE=true — and without it, the same document is refused.

use anyhow::Result;
use reqwest::StatusCode;
use reqwest::header::LOCATION;
use serde_json::json;

use crate::common::cimd::{CimdServer, cimd_server};
use crate::common::oauth::*;
use crate::common::oauth_builtin::*;

/// A native app's loopback callback (RFC 8252 §7.3).
const LOOPBACK_REDIRECT: &str = "http://127.0.0.1:7777/callback";
const CLIENT_NAME: &str = "CIMD Test Client";

async fn documents() -> Result<CimdServer> {
    cimd_server(&[(
        "/clients/app.json",
        json!({
            "client_id": "{base}/clients/app.json",
            "client_name": CLIENT_NAME,
            "redirect_uris": [LOOPBACK_REDIRECT],
            "token_endpoint_auth_method": "none",
        }),
    )])
    .await
}

/// GET authorize for `client_id` (a fresh browser): status, `Location`, page text.
async fn authorize(server: &Builtin, ask: &Ask) -> Result<(StatusCode, Option<String>, String)> {
    let mut browser = Browser::new()?;
    let response = browser.send(browser.http.get(ask.url(server)?)).await?;
    let location = response
        .headers()
        .get(LOCATION)
        .map(|l| l.to_str().unwrap_or_default().to_owned());
    Ok((
        response.status(),
        location,
        page_text(&response.text().await?),
    ))
}

/// A CIMD client (no DCR) goes from authorize to the tool: 2Bot fetches its document,
/// shows its name, sends the code to its loopback redirect (any port, RFC 8252), and the
/// token names the document's URL as the client. A link-local document is never fetched,
/// even with private addresses allowed.
#[tokio::test]
async fn a_cimd_client_completes_the_flow() -> Result<()> {
    let docs = documents().await?;
    let ca = docs.ca_file.display().to_string();
    let server = Builtin::start(&[
        ("TWOBOT_OAUTH_CIMD_ALLOW_PRIVATE", "true"),
        ("SSL_CERT_FILE", &ca),
    ])
    .await?;
    let client_id = docs.url("/clients/app.json");

    let (status, _, shown) = authorize(&server, &Ask::new(&client_id, LOOPBACK_REDIRECT)).await?;
    assert_eq!(status, StatusCode::OK, "{shown}");
    assert!(shown.contains(CLIENT_NAME), "{shown}");
    assert!(
        docs.requests()
            .contains(&"GET /clients/app.json".to_owned()),
        "{:?}",
        docs.requests()
    );
    let other_port = "http://127.0.0.1:49152/callback";
    let (status, _, shown) = authorize(&server, &Ask::new(&client_id, other_port)).await?;
    assert_eq!(
        status,
        StatusCode::OK,
        "a loopback port may differ: {shown}"
    );

    let ask = Ask::new(&client_id, LOOPBACK_REDIRECT);
    let code = server.code_for(&ask).await?;
    let (status, body) = server.exchange(&ask, &code).await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    let tokens = Tokens::from(&body)?;
    assert_eq!(jwt_part(&tokens.access, 1)?["client_id"], json!(client_id));
    use_the_tool(&server.server.url, &tokens.access).await?;
    let (status, body) = server.refresh(&client_id, &tokens.refresh).await?;
    assert_eq!(status, StatusCode::OK, "{body}");

    let metadata_service = "https://169.254.169.254/latest/client.json";
    let (status, location, shown) =
        authorize(&server, &Ask::new(metadata_service, LOOPBACK_REDIRECT)).await?;
    assert_eq!(
        (status, location),
        (StatusCode::BAD_REQUEST, None),
        "{shown}"
    );
    // The page does not say which kind of address (issue 19, point 6): the log does.
    assert!(shown.contains("cannot be fetched from"), "{shown}");
    Ok(())
}

/// Without TWOBOT_OAUTH_CIMD_ALLOW_PRIVATE, a client id on loopback (by address or by
/// name) is refused before any connection: an error page that says it cannot be fetched, no redirect, and
/// the document server never sees a request.
#[tokio::test]
async fn a_cimd_client_id_on_loopback_is_refused() -> Result<()> {
    let docs = documents().await?;
    let ca = docs.ca_file.display().to_string();
    let server = Builtin::start(&[("SSL_CERT_FILE", &ca)]).await?;
    let by_name = format!("https://localhost:{}/clients/app.json", docs.port);
    for client_id in [docs.url("/clients/app.json"), by_name] {
        let (status, location, shown) =
            authorize(&server, &Ask::new(&client_id, LOOPBACK_REDIRECT)).await?;
        assert_eq!(
            (status, location),
            (StatusCode::BAD_REQUEST, None),
            "{client_id}: {shown}"
        );
        assert!(
            shown.contains("cannot be fetched from"),
            "{client_id}: {shown}"
        );
    }
    assert_eq!(docs.requests(), Vec::<String>::new(), "nothing was fetched");
    let (code, listed, _) = server.oauth_cli(&["list"]).await?;
    assert_eq!(code, Some(0));
    assert!(!listed.contains("clients/app.json"), "not stored: {listed}");
    Ok(())
}
