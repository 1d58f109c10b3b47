//! The operator's side of an authorization: `POST /oauth/authorize/sign-in` checks the
//! password (after the per-address guessing limit, two Argon2id checks at a time) and
//! shows the consent page; `POST /oauth/authorize/consent` issues the code, bound to the
//! client, the redirect URI, the PKCE challenge, the resource and the ticked scopes.
//! Both read only forms whose CSRF token matches the pending request's and its cookie's.

use std::net::IpAddr;

use axum::extract::{Request, State};
use axum::response::Response;
use http::header::COOKIE;
use http::{HeaderMap, StatusCode};

use super::Detail;
use super::authorize::{CODE_TTL_SEC, MAX_FORM_BYTES, View, back_to_client, view};
use super::errors::Code;
use super::pages::{self, ScopeLine};
use super::pending::{self, Pending, Refusal};
use super::{AuthorizationServer, caller_ip, limits, now, now_ms, random_token};
use crate::metrics::OAuthEvent;
use crate::state::oauth::{NewCode, SignInRow, sha256_hex};

/// A POSTed form: its fields (repeatable), its browser cookie and the caller's address.
struct Posted {
    fields: Vec<(String, String)>,
    cookie: Option<String>,
    ip: IpAddr,
}

impl Posted {
    /// The form of `request` and the pending request it continues (CSRF checked), or
    /// the error page to answer with.
    async fn continuing(
        server: &AuthorizationServer,
        request: Request,
    ) -> Result<(Self, String, Pending), Box<Response>> {
        let form = Self::read(server, request).await.map_err(Box::new)?;
        let id = form.field("request").unwrap_or_default().to_owned();
        let row = pending::find(server, &id).await.map_err(|_| unreadable())?;
        let pending = form.check(row)?;
        Ok((form, id, pending))
    }

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

    /// The pending request `row` is, if this form's CSRF token matches both the cookie
    /// and the request's own.
    fn check(&self, row: Option<SignInRow>) -> Result<Pending, Box<Response>> {
        pending::continued(row, self.field("csrf"), self.cookie.as_deref()).map_err(|refusal| {
            let status = match refusal {
                Refusal::Gone => StatusCode::BAD_REQUEST,
                Refusal::Csrf => StatusCode::FORBIDDEN,
                Refusal::Unreadable => StatusCode::INTERNAL_SERVER_ERROR,
            };
            Box::new(pages::error(status, &refusal.to_string()))
        })
    }
}

/// The page for a store that cannot be read.
fn unreadable() -> Box<Response> {
    Box::new(pages::error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "The server cannot read its state; see its log.",
    ))
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
    let (form, id, pending) = match Posted::continuing(&server, request).await {
        Ok(found) => found,
        Err(page) => return *page,
    };
    let view = view(&server, &id, &pending);
    // The attempt is counted before the password is checked, in one step with the
    // limit's check (in the store, under a lock on the address, so every instance shares
    // the count): a locked-out guesser learns nothing, not even from a right guess, and a
    // burst of concurrent guesses gets no more checks than the limit allows. Only a right
    // password forgives (below); nothing is released before the verdict.
    let address = limits::address_key(form.ip);
    let window_ms = i64::try_from(limits::SIGN_IN_WINDOW.as_millis()).unwrap_or(i64::MAX);
    let reserved = server.db().reserve_sign_in_attempt(
        &address,
        now_ms(),
        window_ms,
        limits::SIGN_IN_ATTEMPTS,
    );
    match server.store(reserved).await {
        Ok(None) => {}
        Ok(Some(wait_ms)) => {
            tracing::warn!(ip = %form.ip, "sign-in refused: too many failed attempts");
            server.note(OAuthEvent::sign_in_locked, detail(&pending, form.ip));
            return pages::locked(u64::try_from(wait_ms).unwrap_or(0).div_ceil(1000));
        }
        Err(_) => return *unreadable(),
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
        server.note(OAuthEvent::sign_in_failed, detail(&pending, form.ip));
        tracing::warn!(ip = %form.ip, client = %pending.client_id, "failed operator sign-in");
        return pages::sign_in(&view.request(&pending.csrf), true);
    }
    if server
        .store(server.db().clear_sign_in_attempts(&address))
        .await
        .is_err()
    {
        return *unreadable();
    }
    server.note(OAuthEvent::sign_in_ok, detail(&pending, form.ip));
    match pending::mark_signed_in(&server, &id).await {
        Ok(true) => {}
        Ok(false) => return pages::error(StatusCode::BAD_REQUEST, &Refusal::Gone.to_string()),
        Err(_) => return *unreadable(),
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
    let (form, id, pending) = match Posted::continuing(&server, request).await {
        Ok(found) => found,
        Err(page) => return *page,
    };
    if !pending.signed_in {
        return pages::error(StatusCode::FORBIDDEN, "Sign in first.");
    }
    // One decision per request: the first to take it out of the store decides; a
    // second POST, on any instance, finds nothing.
    let taken = match pending::take(&server, &id).await {
        Ok(taken) => taken,
        Err(_) => return *unreadable(),
    };
    let pending = match form.check(taken) {
        Ok(p) => p,
        Err(page) => return *page,
    };
    let state = pending.state.as_deref();
    if form.field("decision") != Some("allow") {
        tracing::info!(client = %pending.client_id, "operator denied access");
        server.note(OAuthEvent::consent_denied, detail(&pending, form.ip));
        return back_to_client(
            &server,
            &pending.redirect_uri,
            state,
            &[
                ("error", Code::AccessDenied.as_str()),
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
        code_hash: sha256_hex(&code),
        client_id: pending.client_id.clone(),
        redirect_uri: pending.redirect_uri.to_string(),
        code_challenge: pending.challenge.clone(),
        resource: pending.resource.clone(),
        scope: ticked.join(" "),
        expires_at: now() + CODE_TTL_SEC,
    };
    // A metadata-document client is stored now, when the operator has said yes to it.
    let cimd = pending.cimd.clone();
    let stored = server
        .store(async {
            let s = server.db();
            if let Some(client) = &cimd
                && !s.upsert_cimd_client(client).await?
            {
                // A dynamically registered client has this id: no code for it.
                return Ok(false);
            }
            s.insert_code(&row).await.map(|()| true)
        })
        .await;
    if !matches!(stored, Ok(true)) {
        return back_to_client(
            &server,
            &pending.redirect_uri,
            state,
            &[
                ("error", Code::ServerError.as_str()),
                ("error_description", "the server cannot store the grant"),
            ],
        );
    }
    tracing::info!(client = %pending.client_id, scope = %ticked.join(" "), "operator allowed access; code issued");
    let granted = ticked.join(" ");
    server.note(
        OAuthEvent::consent_allowed,
        Detail {
            scope: Some(&granted),
            ..detail(&pending, form.ip)
        },
    );
    back_to_client(&server, &pending.redirect_uri, state, &[("code", &code)])
}

/// The audit detail of a sign-in step.
fn detail(pending: &Pending, ip: IpAddr) -> Detail<'_> {
    Detail {
        ip: Some(ip),
        ..Detail::client(&pending.client_id)
    }
}
