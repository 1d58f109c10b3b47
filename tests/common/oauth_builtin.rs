//! Harness for 2Bot as its own authorization server (TWOBOT_OAUTH_BUILTIN): the real binary
//! on a known loopback port (its base URL is the issuer, so the port is chosen first), a
//! password file made by `2bot-mcp oauth hash-password`, a state directory that outlives
//! restarts, and the operator's side of the sign-in and consent pages read the way a
//! browser would (hidden inputs, the `twobot_oauth` cookie).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use super::http::{HttpServer, loopback_listener, spawn_http, spawn_http_on};
use super::oauth::{Browser, Pkce, pkce, post_form, redirected_to};

/// The operator's password.
pub const PASSWORD: &str = "correct horse battery staple";
/// The policy's scope mapping the consent page must show (as in policies/trusted-team.toml,
/// without its roots, which are not this machine's).
pub const SCOPES_POLICY: &str =
    "[scopes]\n\"codex:read\" = \"read-only\"\n\"codex:write\" = \"workspace-write\"\n";
/// What a client asks for: every scope the metadata lists.
pub const SCOPE: &str = "codex:read codex:write";

/// Where the built-in authorization server answers: one instance, or a balancer in
/// front of several.
pub trait Site {
    /// `http://HOST:PORT`: the issuer.
    fn base(&self) -> &str;
    /// `{base}/mcp`: the audience of its tokens.
    fn resource(&self) -> &str;
    /// `{base}{path}`
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base())
    }
}

/// The authorization server at an address, with the flows a client goes through.
#[derive(Debug, Clone)]
pub struct Issuer {
    pub base: String,
    pub resource: String,
}

impl Site for Issuer {
    fn base(&self) -> &str {
        &self.base
    }
    fn resource(&self) -> &str {
        &self.resource
    }
}

impl Site for Builtin {
    fn base(&self) -> &str {
        &self.base
    }
    fn resource(&self) -> &str {
        &self.resource
    }
}

/// The environment that makes a 2Bot its own authorization server with issuer `base`
/// (the scopes policy and the operator's password under `dir`).
pub async fn builtin_env(base: &str, dir: &std::path::Path) -> Result<Vec<(String, String)>> {
    let policy = dir.join("policy.toml");
    std::fs::write(&policy, SCOPES_POLICY)?;
    Ok([
        ("TWOBOT_BASE_URL", base.to_owned()),
        ("TWOBOT_ENABLE_NO_AUTH", "false".into()),
        ("TWOBOT_OAUTH_BUILTIN", "true".into()),
        (
            "TWOBOT_OAUTH_PASSWORD_FILE",
            password_file(dir).await?.display().to_string(),
        ),
        ("TWOBOT_POLICY_FILE", policy.display().to_string()),
        // Tests run as root with no Codex user of its own: accept that by name (a
        // test that sets TWOBOT_CODEX_USER overrides it with `extra`).
        ("TWOBOT_OAUTH_ALLOW_SHARED_CODEX_USER", "true".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect())
}

impl Issuer {
    /// The server whose issuer is `base`.
    pub fn at(base: &str) -> Self {
        Self {
            base: base.to_owned(),
            resource: format!("{base}/mcp"),
        }
    }

    /// POST /oauth/register.
    pub async fn register(&self, body: Value) -> Result<(StatusCode, Value)> {
        let response = reqwest::Client::new()
            .post(self.url("/oauth/register"))
            .json(&body)
            .send()
            .await?;
        Ok((response.status(), response.json().await?))
    }

    /// A public client (no secret) registered by DCR, as ChatGPT registers itself.
    pub async fn register_public(&self, name: &str, redirect_uri: &str) -> Result<String> {
        let (status, body) = self
            .register(json!({
                "client_name": name,
                "redirect_uris": [redirect_uri],
                "grant_types": ["authorization_code", "refresh_token"],
                "response_types": ["code"],
                "token_endpoint_auth_method": "none",
            }))
            .await?;
        ensure!(status == StatusCode::CREATED, "DCR: {status} {body}");
        Ok(body["client_id"].as_str().context("client_id")?.to_owned())
    }

    /// POST /oauth/token with `pairs`: status and JSON body.
    pub async fn token(&self, pairs: &[(&str, &str)]) -> Result<(StatusCode, Value)> {
        let response = post_form(&reqwest::Client::new(), &self.url("/oauth/token"), pairs)
            .send()
            .await?;
        Ok((response.status(), response.json().await?))
    }

    /// Trade `ask`'s `code` for tokens.
    pub async fn exchange(&self, ask: &Ask, code: &str) -> Result<(StatusCode, Value)> {
        self.token(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", &ask.redirect_uri),
            ("client_id", &ask.client_id),
            ("code_verifier", &ask.pkce.verifier),
            ("resource", &self.resource),
        ])
        .await
    }

    /// Use `refresh_token` for `client_id`.
    pub async fn refresh(
        &self,
        client_id: &str,
        refresh_token: &str,
    ) -> Result<(StatusCode, Value)> {
        self.token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_id", client_id),
            ("resource", &self.resource),
        ])
        .await
    }

    /// The whole browser part for `ask`: authorize, sign in, allow every scope; the code.
    pub async fn browse(&self, ask: &Ask) -> Result<String> {
        let mut browser = Browser::new()?;
        let page = browser.send(browser.http.get(ask.url(self)?)).await?;
        ensure!(
            page.status() == StatusCode::OK,
            "authorize: {}",
            page.status()
        );
        let consent = sign_in(self, &mut browser, &page.text().await?, PASSWORD).await?;
        ensure!(
            consent.status() == StatusCode::OK,
            "sign-in: {}",
            consent.status()
        );
        let decided = decide(self, &mut browser, &consent.text().await?, "allow", None).await?;
        ensure!(
            decided.status() == StatusCode::SEE_OTHER,
            "consent: {}",
            decided.status()
        );
        let params = redirected_to(&decided, &ask.redirect_uri)?;
        ensure!(params.get("state") == Some(&ask.state), "state: {params:?}");
        ensure!(params.get("iss") == Some(&self.base), "iss: {params:?}");
        Ok(params
            .get("code")
            .with_context(|| format!("{params:?}"))?
            .clone())
    }

    /// A new public client's tokens, through the whole flow.
    pub async fn tokens(&self) -> Result<(Ask, Tokens)> {
        let client_id = self
            .register_public("ChatGPT", super::oauth::REDIRECT_URI)
            .await?;
        let ask = Ask::new(&client_id, super::oauth::REDIRECT_URI);
        let code = self.browse(&ask).await?;
        let (status, body) = self.exchange(&ask, &code).await?;
        ensure!(status == StatusCode::OK, "token: {status} {body}");
        Ok((ask, Tokens::from(&body)?))
    }
}

/// A running 2Bot that is its own authorization server.
pub struct Builtin {
    pub server: HttpServer,
    /// `http://127.0.0.1:PORT`: the issuer.
    pub base: String,
    /// `{base}/mcp`: the audience of its tokens.
    pub resource: String,
    pub dir: tempfile::TempDir,
    env: Vec<(String, String)>,
}

/// Run `2bot-mcp ARGS` with `env` and `stdin`; exit code, stdout, stderr. A binary that
/// is still running after 60 s (a server that started instead of refusing) is killed.
pub async fn run_binary(
    args: &[&str],
    env: &[(String, String)],
    stdin: &str,
) -> Result<(Option<i32>, String, String)> {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_2bot-mcp"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().map(|(k, v)| (k, v)))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let mut input = child.stdin.take().context("stdin")?;
    input.write_all(stdin.as_bytes()).await?;
    drop(input);
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .with_context(|| format!("2bot-mcp {args:?} still running after 60 s"))??;
    Ok((
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// `PASSWORD`'s hash from `2bot-mcp oauth hash-password` (stdin), written 0600 where
/// TWOBOT_OAUTH_PASSWORD_FILE will point, as the operator makes it.
pub async fn password_file(dir: &std::path::Path) -> Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    let (code, stdout, stderr) = run_binary(&["oauth", "hash-password"], &[], PASSWORD).await?;
    ensure!(code == Some(0), "oauth hash-password: {code:?} {stderr}");
    ensure!(stdout.starts_with("$argon2id$"), "{stdout}");
    let path = dir.join("password");
    std::fs::write(&path, stdout)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    Ok(path)
}

impl Builtin {
    /// Start with the scopes policy and `extra` on top of the built-in settings.
    pub async fn start(extra: &[(&str, &str)]) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        // Held from here until the server serves it (LISTEN_FDS): the issuer's address
        // is known before the start, and nobody else can take it in between. A restart
        // binds the same TWOBOT_PORT itself.
        let (listener, port) = loopback_listener()?;
        let base = format!("http://127.0.0.1:{port}");
        let mut env = builtin_env(&base, dir.path()).await?;
        env.extend([
            ("TWOBOT_PORT".to_owned(), port.to_string()),
            (
                "TWOBOT_STATE_DIR".to_owned(),
                dir.path().join("state").display().to_string(),
            ),
        ]);
        // On PostgreSQL (`both_stores!`), the operator's commands use it too.
        if let Some(url) = super::stores::database_url() {
            env.push(("TWOBOT_DATABASE_URL".to_owned(), url));
        }
        env.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let server = spawn_http_on(listener, &pairs).await?;
        Ok(Self {
            server,
            resource: format!("{base}/mcp"),
            base,
            dir,
            env,
        })
    }

    /// The private key that signs now (PKCS#8 PEM), read from `state.db` as a
    /// same-user process could.
    pub fn signing_key_pem(&self) -> Result<Vec<u8>> {
        let db = rusqlite::Connection::open(self.state_dir().join("state.db"))?;
        let pem: String = db.query_row(
            "SELECT private_pem FROM oauth_signing_keys ORDER BY generation DESC LIMIT 1",
            [],
            |r| r.get(0),
        )?;
        Ok(pem.into_bytes())
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// `{base}{path}`
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Stop the server (SIGKILL: no chance to flush anything) and start it again on the
    /// same port with the same state directory.
    pub async fn restart(&mut self) -> Result<()> {
        self.server.child.kill().await?;
        self.server = spawn(&self.env).await?;
        Ok(())
    }

    /// `2bot-mcp oauth ARGS` with the server's own settings.
    pub async fn oauth_cli(&self, args: &[&str]) -> Result<(Option<i32>, String, String)> {
        let args: Vec<&str> = ["oauth"].into_iter().chain(args.iter().copied()).collect();
        run_binary(&args, &self.env, "").await
    }

    /// The flows, at this server's address.
    pub fn issuer(&self) -> Issuer {
        Issuer::at(&self.base)
    }

    /// POST /oauth/register.
    pub async fn register(&self, body: Value) -> Result<(StatusCode, Value)> {
        self.issuer().register(body).await
    }

    /// A public client (no secret) registered by DCR, as ChatGPT registers itself.
    pub async fn register_public(&self, name: &str, redirect_uri: &str) -> Result<String> {
        self.issuer().register_public(name, redirect_uri).await
    }

    /// POST /oauth/token with `pairs`: status and JSON body.
    pub async fn token(&self, pairs: &[(&str, &str)]) -> Result<(StatusCode, Value)> {
        self.issuer().token(pairs).await
    }

    /// Trade `ask`'s `code` for tokens.
    pub async fn exchange(&self, ask: &Ask, code: &str) -> Result<(StatusCode, Value)> {
        self.issuer().exchange(ask, code).await
    }

    /// Use `refresh_token` for `client_id`.
    pub async fn refresh(
        &self,
        client_id: &str,
        refresh_token: &str,
    ) -> Result<(StatusCode, Value)> {
        self.issuer().refresh(client_id, refresh_token).await
    }

    /// The whole browser part for `ask`: authorize, sign in, allow every scope; the code.
    pub async fn code_for(&self, ask: &Ask) -> Result<String> {
        self.issuer().browse(ask).await.with_context(|| {
            let log = std::fs::read_to_string(&self.server.log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(15).collect();
            format!("server log, last lines first:\n{}", tail.join("\n"))
        })
    }

    /// A new public client's tokens, through the whole flow.
    pub async fn tokens(&self) -> Result<(Ask, Tokens)> {
        let client_id = self
            .register_public("ChatGPT", super::oauth::REDIRECT_URI)
            .await?;
        let ask = Ask::new(&client_id, super::oauth::REDIRECT_URI);
        let code = self.code_for(&ask).await?;
        let (status, body) = self.exchange(&ask, &code).await?;
        ensure!(status == StatusCode::OK, "token: {status} {body}");
        Ok((ask, Tokens::from(&body)?))
    }
}

async fn spawn(env: &[(String, String)]) -> Result<HttpServer> {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    spawn_http(&env).await
}

/// An access token and its refresh token.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub access: String,
    pub refresh: String,
}

impl Tokens {
    pub fn from(body: &Value) -> Result<Self> {
        Ok(Self {
            access: body["access_token"]
                .as_str()
                .with_context(|| format!("{body}"))?
                .to_owned(),
            refresh: body["refresh_token"]
                .as_str()
                .with_context(|| format!("{body}"))?
                .to_owned(),
        })
    }
}

/// One authorization request, as ChatGPT sends it.
pub struct Ask {
    pub client_id: String,
    pub redirect_uri: String,
    pub state: String,
    pub pkce: Pkce,
    /// Parameters as sent; a test may change or drop any.
    pub params: BTreeMap<&'static str, String>,
}

impl Ask {
    pub fn new(client_id: &str, redirect_uri: &str) -> Self {
        let pkce = pkce();
        let state = uuid::Uuid::new_v4().to_string();
        let params = BTreeMap::from([
            ("response_type", "code".to_owned()),
            ("client_id", client_id.to_owned()),
            ("redirect_uri", redirect_uri.to_owned()),
            ("code_challenge", pkce.challenge.clone()),
            ("code_challenge_method", "S256".to_owned()),
            ("state", state.clone()),
            ("scope", SCOPE.to_owned()),
        ]);
        Self {
            client_id: client_id.to_owned(),
            redirect_uri: redirect_uri.to_owned(),
            state,
            pkce,
            params,
        }
    }

    /// The authorize URL, with `resource` = the server's unless the test set one.
    pub fn url(&self, server: &impl Site) -> Result<String> {
        let mut url = url::Url::parse(&server.url("/oauth/authorize"))?;
        {
            let mut query = url.query_pairs_mut();
            for (k, v) in &self.params {
                query.append_pair(k, v);
            }
            if !self.params.contains_key("resource") {
                query.append_pair("resource", server.resource());
            }
        }
        Ok(url.to_string())
    }
}

/// Every `<input>` of `html` as (name, value, checked), entities decoded.
pub fn inputs(html: &str) -> Vec<(String, String, bool)> {
    html.split("<input")
        .skip(1)
        .filter_map(|rest| {
            let tag = rest.split('>').next()?;
            let attr = |name: &str| {
                let start = tag.find(&format!(" {name}=\""))? + name.len() + 3;
                let value = tag[start..].split('"').next()?;
                Some(
                    value
                        .replace("&quot;", "\"")
                        .replace("&#39;", "'")
                        .replace("&lt;", "<")
                        .replace("&gt;", ">")
                        .replace("&amp;", "&"),
                )
            };
            let checked = tag
                .split_whitespace()
                .any(|w| w.trim_end_matches('/') == "checked");
            Some((attr("name")?, attr("value").unwrap_or_default(), checked))
        })
        .collect()
}

/// The value of the input named `name` (`request`, `csrf`).
pub fn hidden(html: &str, name: &str) -> Result<String> {
    inputs(html)
        .into_iter()
        .find(|(n, _, _)| n == name)
        .map(|(_, v, _)| v)
        .with_context(|| format!("no input {name:?} in:\n{html}"))
}

/// A page's text without its markup, whitespace collapsed.
pub fn page_text(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                out.push(' ');
            }
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Submit the sign-in form of `page` with `password`.
pub async fn sign_in(
    server: &impl Site,
    browser: &mut Browser,
    page: &str,
    password: &str,
) -> Result<reqwest::Response> {
    let (request, csrf) = (hidden(page, "request")?, hidden(page, "csrf")?);
    let form = post_form(
        &browser.http,
        &server.url("/oauth/authorize/sign-in"),
        &[
            ("request", &request),
            ("csrf", &csrf),
            ("password", password),
        ],
    );
    browser.send(form).await
}

/// Submit the consent form of `page` with `decision`, ticking `scopes` (None: as the page ticks them).
pub async fn decide(
    server: &impl Site,
    browser: &mut Browser,
    page: &str,
    decision: &str,
    scopes: Option<&[&str]>,
) -> Result<reqwest::Response> {
    let (request, csrf) = (hidden(page, "request")?, hidden(page, "csrf")?);
    let ticked: Vec<String> = match scopes {
        Some(scopes) => scopes.iter().map(|s| (*s).to_owned()).collect(),
        None => inputs(page)
            .into_iter()
            .filter(|(n, _, checked)| n == "scope" && *checked)
            .map(|(_, v, _)| v)
            .collect(),
    };
    let mut pairs = vec![
        ("request", request.as_str()),
        ("csrf", csrf.as_str()),
        ("decision", decision),
    ];
    pairs.extend(ticked.iter().map(|s| ("scope", s.as_str())));
    let form = post_form(
        &browser.http,
        &server.url("/oauth/authorize/consent"),
        &pairs,
    );
    browser.send(form).await
}
