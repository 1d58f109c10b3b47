//! The built-in authorization server from the outside: what its operator sees (every
//! sign-in, consent, exchange and replay as an audit line, `"kind":"oauth"`, never a
//! secret, and as a `twobot_oauth_events_total{event}` count to alert on), what a
//! browser-based client may fetch (CORS), and an OAuth client 2Bot's authors did not
//! write (the official Python MCP SDK's) completing the flow on its own.

use anyhow::{Context, Result};
use reqwest::StatusCode;
use serde_json::Value;

use crate::common::file_when;
use crate::common::http::metrics_url;
use crate::common::oauth_builtin::{Builtin, PASSWORD};

/// `twobot_oauth_events_total{event="EVENT"}` in `exposition`.
fn count(exposition: &str, event: &str) -> Option<u64> {
    let prefix = format!("twobot_oauth_events_total{{event=\"{event}\"}} ");
    exposition
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
}

#[tokio::test]
async fn sign_ins_grants_and_replays_reach_the_audit_log_and_the_metrics_without_secrets()
-> Result<()> {
    let dir = tempfile::tempdir()?;
    let audit = dir.path().join("audit.log");
    let audit_var = audit.display().to_string();
    let server = Builtin::start(&[
        ("TWOBOT_AUDIT_LOG", &audit_var),
        ("TWOBOT_METRICS_ADDR", "127.0.0.1:0"),
    ])
    .await?;
    let (ask, tokens) = server.tokens().await?;
    let (status, rotated) = server.refresh(&ask.client_id, &tokens.refresh).await?;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let (status, replayed) = server.refresh(&ask.client_id, &tokens.refresh).await?;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{replayed}");

    let text = file_when(&audit, |text| text.contains("refresh_replayed")).await?;
    let lines: Vec<Value> = text
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    let events: Vec<&str> = lines
        .iter()
        .filter(|l| l["kind"] == "oauth")
        .filter_map(|l| l["event"].as_str())
        .collect();
    assert_eq!(
        events,
        [
            "client_registered",
            "sign_in_ok",
            "consent_allowed",
            "code_exchanged",
            "refresh_rotated",
            "refresh_replayed"
        ],
        "{text}"
    );
    let consent = lines
        .iter()
        .find(|l| l["event"] == "consent_allowed")
        .context("consent line")?;
    assert_eq!(consent["client_id"], ask.client_id.as_str());
    assert_eq!(consent["scope"], "codex:read codex:write");
    assert_eq!(consent["ip"], "127.0.0.1");
    let exchanged = lines
        .iter()
        .find(|l| l["event"] == "code_exchanged")
        .context("exchange line")?;
    assert!(
        exchanged["grant_id"]
            .as_str()
            .is_some_and(|g| g.starts_with("g_")),
        "{exchanged}"
    );
    let new_refresh = rotated["refresh_token"].as_str().context("refresh")?;
    let new_access = rotated["access_token"].as_str().context("access")?;
    for secret in [
        tokens.access.as_str(),
        tokens.refresh.as_str(),
        new_refresh,
        new_access,
        PASSWORD,
    ] {
        assert!(!text.contains(secret), "a secret in the audit log: {text}");
    }

    let url = metrics_url(&server.server.log).await?;
    let exposition = reqwest::get(&url).await?.text().await?;
    for (event, expected) in [
        ("client_registered", 1),
        ("sign_in_ok", 1),
        ("sign_in_failed", 0),
        ("consent_allowed", 1),
        ("code_exchanged", 1),
        ("refresh_rotated", 1),
        ("refresh_replayed", 1),
        ("token_refused", 1),
    ] {
        assert_eq!(count(&exposition, event), Some(expected), "{event}");
    }
    Ok(())
}

#[tokio::test]
async fn a_browser_based_client_may_fetch_the_oauth_endpoints_but_not_the_sign_in_pages()
-> Result<()> {
    let server = Builtin::start(&[]).await?;
    let http = reqwest::Client::new();
    let origin = "http://localhost:6274";
    for path in [
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-authorization-server",
        "/oauth/register",
        "/oauth/token",
        "/oauth/revoke",
        "/oauth/jwks.json",
    ] {
        let preflight = http
            .request(reqwest::Method::OPTIONS, server.url(path))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
            .await?;
        let headers = preflight.headers();
        assert_eq!(
            headers
                .get("access-control-allow-origin")
                .map(|v| v.to_str().unwrap_or_default()),
            Some("*"),
            "{path}: {headers:?}"
        );
        assert!(
            headers.get("access-control-allow-credentials").is_none(),
            "{path}: never with credentials"
        );
    }
    let metadata = http
        .get(server.url("/.well-known/oauth-authorization-server"))
        .header("origin", origin)
        .send()
        .await?;
    assert_eq!(metadata.headers()["access-control-allow-origin"], "*");
    for path in [
        "/oauth/authorize",
        "/oauth/authorize/sign-in",
        "/oauth/authorize/consent",
    ] {
        let preflight = http
            .request(reqwest::Method::OPTIONS, server.url(path))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .send()
            .await?;
        assert!(
            preflight
                .headers()
                .get("access-control-allow-origin")
                .is_none(),
            "{path} must stay same-origin"
        );
    }
    Ok(())
}

/// An OAuth client 2Bot's authors did not write: the official Python MCP SDK's
/// `OAuthClientProvider` finds the authorization server from the 401, registers, sends
/// PKCE and `resource`, checks `iss`, exchanges the code and puts the bearer on every
/// MCP request by itself; the script only plays the operator on the sign-in page.
#[tokio::test]
async fn the_official_python_sdk_s_own_oauth_client_signs_in_and_runs_the_tool() -> Result<()> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = crate::common::programs::python_sdk()?;
    // httpx reuses pooled connections for POSTs without retrying: on a loaded 2-core CI
    // machine a pause past the 10 s idle close raced a request into a dropped socket.
    let server = Builtin::start(&[("TWOBOT_HEADER_READ_TIMEOUT_SEC", "60")]).await?;
    let out = tokio::process::Command::new(&python)
        .arg(root.join("tests/clients/python_oauth_client.py"))
        .arg(&server.resource)
        .arg(PASSWORD)
        .arg("scenario:ok")
        .stdin(std::process::Stdio::null())
        .output()
        .await?;
    let report = crate::common::programs::python_report(&out)?;
    assert_eq!(report["tools"], serde_json::json!(["run_codex_prompt"]));
    assert_eq!(report["text"], serde_json::json!(["fake answer"]));
    assert_eq!(report["isError"], false);
    // The SDK asked for what the 401 challenge named: every scope of the policy.
    assert_eq!(report["scope"], "codex:read codex:write");
    assert_eq!(report["has_refresh_token"], true);
    assert_eq!(report["consent_client_name"], "Python SDK client");
    let (code, listing, _) = server.oauth_cli(&["list"]).await?;
    assert_eq!(code, Some(0));
    let client_id = report["client_id"].as_str().context("client_id")?;
    assert!(listing.contains(client_id), "{listing}");
    Ok(())
}

/// RFC 7009 for both token kinds: a client that hands its access token to
/// `/oauth/revoke` ends its grant (the access token is refused at its next use, the
/// refresh token at once); another client handing over the same token ends nothing.
#[tokio::test]
async fn a_client_revoking_its_access_token_ends_the_grant_and_another_client_cannot() -> Result<()>
{
    use crate::common::oauth::{initialize_with, post_form};
    let server = Builtin::start(&[]).await?;
    let (ask, tokens) = server.tokens().await?;
    let http = reqwest::Client::new();
    let stranger = server
        .register_public("Someone else", crate::common::oauth::REDIRECT_URI)
        .await?;
    let revoke = |client: &str| {
        post_form(
            &http,
            &server.url("/oauth/revoke"),
            &[("token", tokens.access.as_str()), ("client_id", client)],
        )
        .send()
    };
    assert_eq!(revoke(&stranger).await?.status(), StatusCode::OK);
    assert_eq!(
        initialize_with(&server.server.url, &tokens.access).await?.0,
        200,
        "another client's revocation ends nothing"
    );
    assert_eq!(revoke(&ask.client_id).await?.status(), StatusCode::OK);
    let (status, challenge) = initialize_with(&server.server.url, &tokens.access).await?;
    assert_eq!(status, 401, "the revoked access token");
    assert!(challenge.contains("invalid_token"), "{challenge}");
    let (status, body) = server.refresh(&ask.client_id, &tokens.refresh).await?;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant")),
        "its refresh token ends with the grant: {body}"
    );
    Ok(())
}
