//! Issue 19's hostile-caller findings against the built-in authorization server, each
//! replayed the way the reviewer did it: a token minted with the key read from the state
//! directory, a flood of client metadata URLs at the authorize endpoint, a burst of
//! concurrent wrong passwords.

use anyhow::{Context, Result};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::oauth::{Browser, initialize_with, jwt_part, post_form};
use crate::common::oauth_builtin::{Ask, Builtin, hidden, password_file, run_binary};

const REDIRECT_URI: &str = "https://chatgpt.com/connector_platform_oauth_redirect";

/// 28 wrong passwords sent at once from one address: the attempt is counted before the
/// Argon2 check, so at most five are checked (401) and the rest are refused (429).
#[tokio::test]
async fn concurrent_wrong_passwords_from_one_address_get_at_most_five_checks() -> Result<()> {
    let server = Builtin::start(&[]).await?;
    let client = server.register_public("ChatGPT", REDIRECT_URI).await?;
    let ask = Ask::new(&client, REDIRECT_URI);
    let mut browser = Browser::new()?;
    let page = browser
        .send(browser.http.get(ask.url(&server)?))
        .await?
        .text()
        .await?;
    let (request, csrf) = (hidden(&page, "request")?, hidden(&page, "csrf")?);
    let cookie = browser
        .cookies
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("; ");
    let url = server.url("/oauth/authorize/sign-in");
    let attempts = (0..28).map(|i| {
        let password = format!("guess {i}");
        let form = post_form(
            &browser.http,
            &url,
            &[
                ("request", &request),
                ("csrf", &csrf),
                ("password", &password),
            ],
        )
        .header(reqwest::header::COOKIE, cookie.clone());
        async move { form.send().await.map(|r| r.status()) }
    });
    let statuses = futures::future::join_all(attempts)
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()
        .context("sign-in")?;
    let checked = statuses
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED)
        .count();
    let locked = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    eprintln!("{checked} checked (401), {locked} refused (429)");
    assert!(checked <= 5, "{checked} checked: {statuses:?}");
    assert_eq!(checked + locked, 28, "{statuses:?}");
    Ok(())
}

/// An ES256 token signed with the key read from the state directory, as a same-user
/// Codex would: `claims` on top of an issuer, subject, audience and `codex:write`.
fn minted(server: &Builtin, claims: Value) -> Result<String> {
    let pem = server.signing_key_pem()?;
    let key = EncodingKey::from_ec_pem(&pem)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs() as i64;
    let mut all = json!({
        "iss": server.base,
        "sub": "operator",
        "aud": server.resource,
        "scope": "codex:read codex:write",
        "client_id": "attacker",
        "iat": now,
        "nbf": now,
        "exp": now + 3600,
    });
    for (k, v) in claims.as_object().context("claims")? {
        all[k] = if v == "now+1y" {
            json!(now + 31_536_000)
        } else {
            v.clone()
        };
    }
    Ok(jsonwebtoken::encode(
        &Header::new(Algorithm::ES256),
        &all,
        &key,
    )?)
}

/// The key is readable (Codex as 2Bot's user, accepted here by the opt-in), but a token
/// minted with it passes only if it names a live grant with the server's own lifetime: no
/// grant id with a year of life, a forged grant id, or a real grant id with a year of
/// life are 401, and after `oauth revoke all` the real grant id is 401 too.
#[tokio::test]
async fn a_token_minted_with_the_stolen_signing_key_needs_a_live_grant_and_a_short_life()
-> Result<()> {
    let server = Builtin::start(&[]).await?;
    let (_, tokens) = server.tokens().await?;
    let real = jwt_part(&tokens.access, 1)?["gid"]
        .as_str()
        .context("gid")?
        .to_owned();
    let url = &server.server.url;
    let cases = [
        ("no grant id, a year", json!({"exp": "now+1y"})),
        ("no grant id, an hour", json!({})),
        ("a forged grant id", json!({"gid": "g_forged"})),
        (
            "the real grant id, a year",
            json!({"gid": real, "exp": "now+1y"}),
        ),
    ];
    for (what, claims) in cases {
        let (status, challenge) = initialize_with(url, &minted(&server, claims)?).await?;
        assert_eq!(status, 401, "{what}");
        assert!(challenge.contains("invalid_token"), "{what}: {challenge}");
    }
    let shaped = minted(&server, json!({"gid": real}))?;
    assert_eq!(
        initialize_with(url, &shaped).await?.0,
        200,
        "the server's own shape, a live grant"
    );
    let (code, stdout, stderr) = server.oauth_cli(&["revoke", "all"]).await?;
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let after = minted(&server, json!({"gid": real}))?;
    assert_eq!(
        initialize_with(url, &after).await?.0,
        401,
        "after revoke all"
    );
    assert_eq!(initialize_with(url, &tokens.access).await?.0, 401);
    Ok(())
}

/// Without a Codex user of its own (Codex as 2Bot's user, who can read the signing key)
/// and without the opt-in, the built-in server does not start: exit 2, one line naming
/// TWOBOT_CODEX_USER and TWOBOT_OAUTH_ALLOW_SHARED_CODEX_USER, no state written. A
/// separate user locked out of the state directory starts without the opt-in; the same
/// user with a state directory it can enter does not.
#[tokio::test]
async fn the_built_in_server_starts_only_if_codex_cannot_read_its_state() -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir()?;
    // Where `nobody` can reach the state directory's parent, so only its own mode counts.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
    let password = password_file(dir.path()).await?.display().to_string();
    let state = dir.path().join("state");
    let roots = dir.path().join("root");
    std::fs::create_dir(&roots)?;
    let env = |extra: &[(&str, &str)]| -> Vec<(String, String)> {
        [
            ("TWOBOT_TRANSPORT", "http"),
            ("TWOBOT_PORT", "0"),
            ("TWOBOT_ENABLE_NO_AUTH", "false"),
            ("TWOBOT_OAUTH_BUILTIN", "true"),
            ("TWOBOT_BASE_URL", "https://2bot.example.com"),
            ("TWOBOT_OAUTH_PASSWORD_FILE", &password),
            ("TWOBOT_STATE_DIR", &state.display().to_string()),
            ("CODEX_ALLOWED_ROOTS", &roots.display().to_string()),
            (
                "CODEX_BIN",
                &crate::common::fake_codex().display().to_string(),
            ),
        ]
        .iter()
        .chain(extra)
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
    };
    let (code, _, stderr) = run_binary(&[], &env(&[]), "").await?;
    assert_eq!(code, Some(2), "{stderr}");
    let said: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.starts_with(|c: char| c.is_ascii_digit()))
        .collect();
    assert_eq!(said.len(), 1, "{stderr}");
    assert!(
        said[0].contains("TWOBOT_CODEX_USER")
            && said[0].contains("TWOBOT_OAUTH_ALLOW_SHARED_CODEX_USER=true")
            && said[0].contains("TWOBOT_STATE_DIR"),
        "{stderr}"
    );
    assert!(!state.exists(), "a refused start wrote state");

    // `nobody` cannot enter a 0700 directory of root's: the server starts.
    std::fs::create_dir(&state)?;
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700))?;
    let apart: Vec<(String, String)> = env(&[("TWOBOT_CODEX_USER", "nobody")]);
    let pairs: Vec<(&str, &str)> = apart
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let server = crate::common::http::spawn_http(&pairs).await?;
    assert!(
        state.join("state.db").exists(),
        "the server started without making its state"
    );
    drop(server);

    // The same user, a state directory anyone may enter: refused, naming the mode.
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o755))?;
    let (code, _, stderr) = run_binary(&[], &apart, "").await?;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("TWOBOT_STATE_DIR (mode 755"), "{stderr}");
    Ok(())
}

/// 1 000 unauthenticated authorize requests, each naming a different (valid) client
/// metadata document and a redirect URI it does not list, all 400: nothing is stored (a
/// document client is written only at consent, and never counts against the 1 000-client
/// registration bound), so dynamic registration still works afterwards. The per-address
/// rate limit is raised, as an attacker with many addresses would have it.
#[tokio::test]
async fn a_flood_of_metadata_document_client_ids_leaves_registration_working() -> Result<()> {
    use futures::StreamExt as _;
    const FLOOD: usize = 1_000;
    let docs: Vec<(String, Value)> = (0..FLOOD)
        .map(|i| {
            (
                format!("/flood/{i}.json"),
                json!({
                    "client_id": format!("{{base}}/flood/{i}.json"),
                    "client_name": format!("Flood {i}"),
                    "redirect_uris": ["http://127.0.0.1:7777/callback"],
                    "token_endpoint_auth_method": "none",
                }),
            )
        })
        .collect();
    let pairs: Vec<(&str, Value)> = docs.iter().map(|(p, d)| (p.as_str(), d.clone())).collect();
    let documents = crate::common::cimd::cimd_server(&pairs).await?;
    let ca = documents.ca_file.display().to_string();
    let server = Builtin::start(&[
        ("TWOBOT_OAUTH_CIMD_ALLOW_PRIVATE", "true"),
        ("SSL_CERT_FILE", &ca),
        ("TWOBOT_RATE_LIMIT_PER_MINUTE", "1000000"),
        ("TWOBOT_RATE_LIMIT_BURST", "100000"),
        // One loopback address plays the whole crowd: its own limit is not the point here.
        ("TWOBOT_ADDRESS_RATE_PER_MINUTE", "1000000"),
        ("TWOBOT_ADDRESS_RATE_BURST", "100000"),
    ])
    .await?;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let urls: Vec<String> = (0..FLOOD)
        .map(|i| {
            Ask::new(
                &documents.url(&format!("/flood/{i}.json")),
                "http://evil.example/callback",
            )
            .url(&server)
        })
        .collect::<Result<_>>()?;
    let statuses: Vec<StatusCode> = futures::stream::iter(urls)
        .map(|url| {
            let http = http.clone();
            async move { http.get(url).send().await.map(|r| r.status()) }
        })
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::BAD_REQUEST)
        .count();
    assert_eq!(refused, FLOOD, "every request is a 400, as in the report");
    assert!(
        documents.requests().len() >= FLOOD,
        "every document was fetched"
    );
    server
        .register_public("ChatGPT", REDIRECT_URI)
        .await
        .context("registration after the flood")?;
    let (_, listed, _) = server.oauth_cli(&["list"]).await?;
    assert!(!listed.contains("/flood/"), "stored: {listed}");
    Ok(())
}

/// A metadata document URL whose host name resolves to a loopback address (refused
/// without TWOBOT_OAUTH_CIMD_ALLOW_PRIVATE): the error page says the host cannot be
/// fetched from, and never what the name resolves to or which kind of address that is.
#[tokio::test]
async fn the_cimd_error_page_does_not_say_what_a_host_name_resolves_to() -> Result<()> {
    let server = Builtin::start(&[]).await?;
    let client_id = "https://localhost:9/clients/app.json";
    let ask = Ask::new(client_id, "http://127.0.0.1:7777/callback");
    let response = reqwest::Client::new().get(ask.url(&server)?).send().await?;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let page = crate::common::oauth_builtin::page_text(&response.text().await?);
    assert!(page.contains("cannot be fetched from"), "{page}");
    for leak in [
        "127.0.0.1",
        "::1",
        "loopback",
        "resolves to",
        "ALLOW_PRIVATE",
    ] {
        assert!(!page.contains(leak), "{leak} on the page: {page}");
    }
    Ok(())
}
