//! The authorization endpoint and the operator's sign-in: `GET /oauth/authorize` checks
//! the request and shows the password form; `POST …/sign-in` checks the password (after
//! the per-address guessing limit) and shows the consent form; `POST …/consent` issues a
//! code bound to the client, the redirect URI, the PKCE challenge and the resource.
//!
//! Until the redirect URI is known to belong to the client and to an allowed host, every
//! error is a page here, never a redirect (RFC 6749 §4.1.2.1): a forged request cannot
//! bounce the browser anywhere. After that, errors go back to the client, with `iss`.
//! A pending request lives in memory for ten minutes and is bound to the browser that
//! started it by a CSRF token held both in a SameSite=Strict cookie and in the form.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use axum::extract::{RawQuery, Request, State};
use axum::response::Response;
use http::header::{COOKIE, LOCATION};
use http::{HeaderMap, HeaderValue, StatusCode};
use subtle::ConstantTimeEq as _;

use super::pages::{self, ScopeLine};
use super::store::{AuthMethod, Client, ClientKind, NewCode};
use super::{AuthorizationServer, caller_ip, cimd, hash_secret, now, random_token, redirect};

/// How long a started sign-in stays valid.
const PENDING_TTL: Duration = Duration::from_secs(600);
/// Sign-ins pending at once; beyond, the oldest is dropped.
const MAX_PENDING: usize = 1000;
/// How long a code may wait for its exchange.
pub const CODE_TTL_SEC: i64 = 60;
/// Largest form body the sign-in pages read.
const MAX_FORM_BYTES: usize = 16 * 1024;

/// A checked authorization request waiting for the operator.
#[derive(Debug, Clone)]
pub struct Pending {
    client_id: String,
    client_name: String,
    redirect_uri: url::Url,
    state: Option<String>,
    challenge: String,
    resource: String,
    scopes: Vec<String>,
    csrf: String,
    created: Instant,
    signed_in: bool,
}

/// Where the code or the error goes: the redirect URI with `params` (and `iss`, RFC 9207).
fn back_to_client(
    server: &AuthorizationServer,
    uri: &url::Url,
    state: Option<&str>,
    params: &[(&str, &str)],
) -> Response {
    let mut uri = uri.clone();
    {
        let mut query = uri.query_pairs_mut();
        for (k, v) in params {
            query.append_pair(k, v);
        }
        if let Some(state) = state {
            query.append_pair("state", state);
        }
        query.append_pair("iss", &server.settings().issuer);
    }
    let mut response = Response::new(axum::body::Body::empty());
    *response.status_mut() = StatusCode::SEE_OTHER;
    if let Ok(v) = HeaderValue::from_str(uri.as_str()) {
        response.headers_mut().insert(LOCATION, v);
    }
    response.headers_mut().insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    response
}

/// The query's parameters; a repeated one is an error (RFC 6749 §3.1).
fn single_params(query: &str) -> Result<HashMap<String, String>, String> {
    let mut params = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        if params.insert(k.to_string(), v.to_string()).is_some() {
            return Err(format!("the parameter {k} is repeated"));
        }
    }
    Ok(params)
}

/// A PKCE S256 challenge: 43 base64url characters (a SHA-256).
fn valid_challenge(challenge: &str) -> bool {
    challenge.len() == 43
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `GET /oauth/authorize`.
pub async fn start(
    State(server): State<AuthorizationServer>,
    RawQuery(query): RawQuery,
) -> Response {
    let params = match single_params(query.as_deref().unwrap_or("")) {
        Ok(p) => p,
        Err(reason) => return pages::error(StatusCode::BAD_REQUEST, &reason),
    };
    let Some(client_id) = params.get("client_id").filter(|c| !c.is_empty()).cloned() else {
        return pages::error(StatusCode::BAD_REQUEST, "The request names no client_id.");
    };
    let client = match client(&server, &client_id).await {
        Ok(c) => c,
        Err(page) => return page,
    };
    let requested = params.get("redirect_uri").cloned();
    let redirect_uri = match requested {
        Some(r)
            if client
                .redirect_uris
                .iter()
                .any(|reg| redirect::redirect_matches(reg, &r)) =>
        {
            r
        }
        Some(r) => {
            return pages::error(
                StatusCode::BAD_REQUEST,
                &format!("The redirect_uri {r} is not registered for this client."),
            );
        }
        None if client.redirect_uris.len() == 1 => client.redirect_uris[0].clone(),
        None => {
            return pages::error(
                StatusCode::BAD_REQUEST,
                "The request names no redirect_uri, and the client registered several.",
            );
        }
    };
    let uri = match redirect::check_redirect_uri(&redirect_uri, &server.settings().redirect_hosts) {
        Ok(uri) => uri,
        Err(e) => {
            return pages::error(
                StatusCode::BAD_REQUEST,
                &format!("The redirect_uri {redirect_uri} is not allowed: {e}."),
            );
        }
    };
    // From here on the redirect URI is trusted: errors go back to the client.
    let state = params.get("state").cloned();
    let fail = |error: &str, description: &str| {
        back_to_client(
            &server,
            &uri,
            state.as_deref(),
            &[("error", error), ("error_description", description)],
        )
    };
    if params.get("response_type").map(String::as_str) != Some("code") {
        return fail("unsupported_response_type", "response_type must be code");
    }
    let Some(challenge) = params.get("code_challenge").cloned() else {
        return fail(
            "invalid_request",
            "PKCE is required: send code_challenge with code_challenge_method=S256",
        );
    };
    if params.get("code_challenge_method").map(String::as_str) != Some("S256") {
        return fail("invalid_request", "code_challenge_method must be S256");
    }
    if !valid_challenge(&challenge) {
        return fail(
            "invalid_request",
            "code_challenge must be the base64url SHA-256 of the verifier (43 characters)",
        );
    }
    let settings = server.settings();
    let resource = params
        .get("resource")
        .cloned()
        .unwrap_or_else(|| settings.resource.clone());
    if resource != settings.resource {
        return fail(
            "invalid_target",
            &format!("this server issues tokens for {} only", settings.resource),
        );
    }
    let scopes: Vec<String> = match params.get("scope") {
        Some(s) => s
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        None => settings.scopes.clone(),
    };
    if let Some(unknown) = scopes.iter().find(|s| !settings.scopes.contains(s)) {
        return fail(
            "invalid_scope",
            &format!(
                "unknown scope {unknown}; this server offers: {}",
                settings.scopes.join(" ")
            ),
        );
    }
    let pending = Pending {
        client_id: client.id.clone(),
        client_name: client.name,
        redirect_uri: uri,
        state,
        challenge,
        resource,
        scopes,
        csrf: random_token(32),
        created: Instant::now(),
        signed_in: false,
    };
    let id = random_token(16);
    let csrf = pending.csrf.clone();
    let view = view(&server, &id, &pending);
    {
        let mut all = server
            .inner
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        all.retain(|_, p| p.created.elapsed() < PENDING_TTL);
        if all.len() >= MAX_PENDING
            && let Some(oldest) = all
                .iter()
                .min_by_key(|(_, p)| p.created)
                .map(|(k, _)| k.clone())
        {
            all.remove(&oldest);
        }
        all.insert(id, pending);
    }
    let mut response = pages::sign_in(&view.request(&csrf), false);
    pages::set_cookie(&mut response, &csrf, server.settings().secure_cookies);
    response
}

/// The client `client_id` names: registered, or (an https URL) its metadata document.
async fn client(server: &AuthorizationServer, client_id: &str) -> Result<Client, Response> {
    let broken = || {
        pages::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "The server cannot read its state; see its log.",
        )
    };
    if cimd::is_cimd_client_id(client_id) {
        let document = server
            .inner
            .cimd
            .fetch(client_id, &server.settings().redirect_hosts)
            .await
            .map_err(|e| {
                pages::error(
                    StatusCode::BAD_REQUEST,
                    &format!("The client metadata document {client_id} cannot be used: {e}."),
                )
            })?;
        let client = Client {
            id: client_id.to_owned(),
            kind: ClientKind::Cimd,
            name: document.client_name.clone(),
            redirect_uris: document.redirect_uris.clone(),
            auth_method: AuthMethod::None_,
            secret_hash: None,
            created_at: now(),
        };
        let stored = client.clone();
        server
            .store(move |s| s.upsert_cimd_client(&stored))
            .await
            .map_err(|_| broken())?;
        return Ok(client);
    }
    let id = client_id.to_owned();
    match server.store(move |s| s.client(&id)).await {
        Ok(Some(client)) => Ok(client),
        Ok(None) => Err(pages::error(
            StatusCode::BAD_REQUEST,
            "This client_id is not registered here. The application should register again (dynamic client registration).",
        )),
        Err(_) => Err(broken()),
    }
}

/// What the pages show of a pending request.
struct View {
    id: String,
    client_name: String,
    redirect_host: String,
    prefix: String,
}

impl View {
    fn request<'a>(&'a self, csrf: &'a str) -> pages::Request<'a> {
        pages::Request {
            id: &self.id,
            csrf,
            client_name: &self.client_name,
            redirect_host: &self.redirect_host,
            prefix: &self.prefix,
        }
    }
}

fn view(server: &AuthorizationServer, id: &str, pending: &Pending) -> View {
    let prefix = url::Url::parse(&server.settings().issuer)
        .map(|u| u.path().trim_end_matches('/').to_owned())
        .unwrap_or_default();
    View {
        id: id.to_owned(),
        client_name: pending.client_name.clone(),
        redirect_host: pending
            .redirect_uri
            .host_str()
            .unwrap_or_default()
            .to_owned(),
        prefix,
    }
}

/// A POSTed form: its fields (repeatable), its browser cookie and the caller's address.
struct Posted {
    fields: Vec<(String, String)>,
    cookie: Option<String>,
    ip: IpAddr,
}

impl Posted {
    async fn read(server: &AuthorizationServer, request: Request) -> Result<Self, Response> {
        let ip = caller_ip(server, &request);
        let cookie = cookie(request.headers());
        let body = axum::body::to_bytes(request.into_body(), MAX_FORM_BYTES)
            .await
            .map_err(|_| pages::error(StatusCode::PAYLOAD_TOO_LARGE, "The form is too large."))?;
        let fields = url::form_urlencoded::parse(&body)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        Ok(Self { fields, cookie, ip })
    }

    fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The pending request this form continues, if its CSRF token matches both the
    /// cookie and the request's own.
    fn pending(&self, server: &AuthorizationServer) -> Result<(String, Pending), Box<Response>> {
        let id = self.field("request").unwrap_or_default().to_owned();
        let pending = {
            let all = server
                .inner
                .pending
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            all.get(&id)
                .filter(|p| p.created.elapsed() < PENDING_TTL)
                .cloned()
        };
        let Some(pending) = pending else {
            return Err(Box::new(pages::error(
                StatusCode::BAD_REQUEST,
                "This sign-in has expired or was already used. Start again from the application.",
            )));
        };
        let same = |given: Option<&str>| {
            given.is_some_and(|g| bool::from(g.as_bytes().ct_eq(pending.csrf.as_bytes())))
        };
        if !same(self.field("csrf")) || !same(self.cookie.as_deref()) {
            return Err(Box::new(pages::error(
                StatusCode::FORBIDDEN,
                "This form was not sent by the page this browser opened (CSRF check failed). Start again from the application.",
            )));
        }
        Ok((id, pending))
    }
}

fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == pages::COOKIE)
        .map(|(_, value)| value.to_owned())
}

/// `POST /oauth/authorize/sign-in`.
pub async fn sign_in(State(server): State<AuthorizationServer>, request: Request) -> Response {
    let form = match Posted::read(&server, request).await {
        Ok(f) => f,
        Err(page) => return page,
    };
    let (id, pending) = match form.pending(&server) {
        Ok(p) => p,
        Err(page) => return *page,
    };
    let view = view(&server, &id, &pending);
    // The limit is checked before the password: a locked-out guesser learns nothing,
    // not even from a right guess.
    if let Err(wait) = server.inner.sign_ins.check(form.ip, Instant::now()) {
        tracing::warn!(ip = %form.ip, "sign-in refused: too many failed attempts");
        return pages::locked(wait.as_secs());
    }
    let password = form.field("password").unwrap_or_default().to_owned();
    let right = {
        let Ok(_permit) = server.inner.verifying.acquire().await else {
            return pages::error(
                StatusCode::SERVICE_UNAVAILABLE,
                "The server is shutting down.",
            );
        };
        let check = server.inner.password.clone();
        tokio::task::spawn_blocking(move || check.verify(&password))
            .await
            .unwrap_or(false)
    };
    if !right {
        server.inner.sign_ins.record(form.ip, Instant::now());
        tracing::warn!(ip = %form.ip, client = %pending.client_id, "failed operator sign-in");
        return pages::sign_in(&view.request(&pending.csrf), true);
    }
    server.inner.sign_ins.clear(form.ip);
    {
        let mut all = server
            .inner
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(p) = all.get_mut(&id) {
            p.signed_in = true;
        }
    }
    tracing::info!(client = %pending.client_id, "operator signed in");
    consent_page(&server, &view, &pending)
}

fn consent_page(server: &AuthorizationServer, view: &View, pending: &Pending) -> Response {
    let settings = server.settings();
    let lines: Vec<ScopeLine<'_>> = pending
        .scopes
        .iter()
        .map(|s| ScopeLine {
            scope: s,
            ceiling: settings.ceiling(std::slice::from_ref(s)),
            required: settings.required_scopes.contains(s),
        })
        .collect();
    let origin = pending.redirect_uri.origin().ascii_serialization();
    pages::consent(
        &view.request(&pending.csrf),
        &lines,
        settings.ceiling(&pending.scopes),
        &origin,
    )
}

/// `POST /oauth/authorize/consent`.
pub async fn consent(State(server): State<AuthorizationServer>, request: Request) -> Response {
    let form = match Posted::read(&server, request).await {
        Ok(f) => f,
        Err(page) => return page,
    };
    let (id, pending) = match form.pending(&server) {
        Ok(p) => p,
        Err(page) => return *page,
    };
    if !pending.signed_in {
        return pages::error(StatusCode::FORBIDDEN, "Sign in first.");
    }
    // One decision per request: a second POST finds nothing.
    server
        .inner
        .pending
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&id);
    let state = pending.state.as_deref();
    if form.field("decision") != Some("allow") {
        tracing::info!(client = %pending.client_id, "operator denied access");
        return back_to_client(
            &server,
            &pending.redirect_uri,
            state,
            &[
                ("error", "access_denied"),
                ("error_description", "the operator denied access"),
            ],
        );
    }
    let settings = server.settings();
    // Ticked scopes among those requested; required scopes always (a disabled box is not sent).
    let ticked: Vec<String> = pending
        .scopes
        .iter()
        .filter(|s| {
            settings.required_scopes.contains(s)
                || form.fields.iter().any(|(k, v)| k == "scope" && v == *s)
        })
        .cloned()
        .collect();
    let code = random_token(32);
    let row = NewCode {
        code_hash: hash_secret(&code),
        client_id: pending.client_id.clone(),
        redirect_uri: pending.redirect_uri.to_string(),
        code_challenge: pending.challenge.clone(),
        resource: pending.resource.clone(),
        scope: ticked.join(" "),
        expires_at: now() + CODE_TTL_SEC,
    };
    if server.store(move |s| s.insert_code(&row)).await.is_err() {
        return back_to_client(
            &server,
            &pending.redirect_uri,
            state,
            &[
                ("error", "server_error"),
                ("error_description", "the server cannot store the grant"),
            ],
        );
    }
    tracing::info!(client = %pending.client_id, scope = %ticked.join(" "), "operator allowed access; code issued");
    back_to_client(&server, &pending.redirect_uri, state, &[("code", &code)])
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn a_repeated_parameter_is_refused_and_single_ones_are_decoded() {
        assert!(
            single_params("a=1&a=2")
                .unwrap_err()
                .contains("a is repeated")
        );
        let p = single_params("scope=codex%3Aread+codex%3Awrite&state=x").unwrap();
        assert_eq!(p["scope"], "codex:read codex:write");
    }

    #[test]
    fn only_a_sha256_sized_base64url_challenge_is_a_challenge() {
        for (challenge, ok) in [
            ("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", true),
            ("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-c", false),
            ("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw+cM", false),
            ("", false),
        ] {
            assert_eq!(valid_challenge(challenge), ok, "{challenge}");
        }
    }
}
