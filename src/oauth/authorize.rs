//! The authorization endpoint: `GET /oauth/authorize` checks the request and shows the
//! password form (`sign_in.rs` takes it from there), and how a decision goes back to the
//! client.
//!
//! Until the redirect URI is known to belong to the client and to an allowed host, every
//! error is a page here, never a redirect (RFC 6749 §4.1.2.1): a forged request cannot
//! bounce the browser anywhere. After that, errors go back to the client, with `iss`.
//! The checked request waits in the state store for the operator (`pending.rs`).

use std::collections::HashMap;

use axum::extract::{RawQuery, State};
use axum::response::Response;
use http::header::LOCATION;
use http::{HeaderValue, StatusCode};

use super::errors::Code;
use super::pages;
use super::pending::{self, Pending};
use super::{AuthorizationServer, now, random_token, redirect};
use crate::state::oauth::{AuthMethod, Client, ClientKind};

/// How long a code may wait for its exchange.
pub const CODE_TTL_SEC: i64 = 60;
/// Largest form body the sign-in pages read.
pub(super) const MAX_FORM_BYTES: usize = 16 * 1024;

/// Where the code or the error goes: the redirect URI with `params` (and `iss`, RFC 9207).
pub(super) fn back_to_client(
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
    let fail = |error: Code, description: &str| {
        back_to_client(
            &server,
            &uri,
            state.as_deref(),
            &[
                ("error", error.as_str()),
                ("error_description", description),
            ],
        )
    };
    if params.get("response_type").map(String::as_str) != Some("code") {
        return fail(Code::UnsupportedResponseType, "response_type must be code");
    }
    let Some(challenge) = params.get("code_challenge").cloned() else {
        return fail(
            Code::InvalidRequest,
            "PKCE is required: send code_challenge with code_challenge_method=S256",
        );
    };
    if params.get("code_challenge_method").map(String::as_str) != Some("S256") {
        return fail(Code::InvalidRequest, "code_challenge_method must be S256");
    }
    if !valid_challenge(&challenge) {
        return fail(
            Code::InvalidRequest,
            "code_challenge must be the base64url SHA-256 of the verifier (43 characters)",
        );
    }
    let settings = server.settings();
    // The resource is the MCP endpoint's URL; a trailing slash is the same resource.
    if params
        .get("resource")
        .is_some_and(|r| r.trim_end_matches('/') != settings.resource)
    {
        return fail(
            Code::InvalidTarget,
            &format!("this server issues tokens for {} only", settings.resource),
        );
    }
    let resource = settings.resource.clone();
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
            Code::InvalidScope,
            &format!(
                "unknown scope {unknown}; this server offers: {}",
                settings.scopes.join(" ")
            ),
        );
    }
    let cimd = (client.kind == ClientKind::Cimd).then(|| client.clone());
    let pending = Pending {
        client_id: client.id.clone(),
        client_name: client.name,
        redirect_uri: uri,
        state,
        challenge,
        resource,
        scopes,
        csrf: random_token(32),
        signed_in: false,
        cimd,
    };
    let Ok(id) = pending::begin(&server, &pending).await else {
        return pages::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "The server cannot write down this sign-in; see its log.",
        );
    };
    let csrf = pending.csrf.clone();
    let view = view(&server, &id, &pending);
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
    // An https client id is a metadata document URL (registered ids are `c_…`): fetched,
    // or refused with the rule it breaks, never looked up as something else. Nothing is
    // stored here: the consent does that.
    if client_id.starts_with("https://") {
        let document = server
            .inner
            .cimd
            .fetch(client_id, &server.settings().redirect_hosts)
            .await
            .map_err(|e| {
                tracing::info!(client = %client_id, error = %e, "client metadata document refused");
                pages::error(
                    StatusCode::BAD_REQUEST,
                    &format!(
                        "The client metadata document {client_id} cannot be used: {}.",
                        e.page_reason()
                    ),
                )
            })?;
        return Ok(Client {
            id: client_id.to_owned(),
            kind: ClientKind::Cimd,
            name: document.client_name.clone(),
            redirect_uris: document.redirect_uris,
            auth_method: AuthMethod::None_,
            secret_hash: None,
            created_at: now(),
        });
    }
    let id = client_id.to_owned();
    match server.store(server.db().client(&id)).await {
        Ok(Some(client)) => Ok(client),
        Ok(None) => Err(pages::error(
            StatusCode::BAD_REQUEST,
            "This client_id is not registered here. The application should register again (dynamic client registration).",
        )),
        Err(_) => Err(broken()),
    }
}

/// What the pages show of a pending request.
pub(super) struct View {
    id: String,
    client_name: String,
    client_id: String,
    redirect_host: String,
    prefix: String,
}

impl View {
    pub(super) fn request<'a>(&'a self, csrf: &'a str) -> pages::Request<'a> {
        pages::Request {
            id: &self.id,
            csrf,
            client_name: &self.client_name,
            client_id: &self.client_id,
            redirect_host: &self.redirect_host,
            prefix: &self.prefix,
        }
    }
}

pub(super) fn view(server: &AuthorizationServer, id: &str, pending: &Pending) -> View {
    let prefix = url::Url::parse(&server.settings().issuer)
        .map(|u| u.path().trim_end_matches('/').to_owned())
        .unwrap_or_default();
    View {
        id: id.to_owned(),
        client_name: pending.client_name.clone(),
        client_id: pending.client_id.clone(),
        redirect_host: pending
            .redirect_uri
            .host_str()
            .unwrap_or_default()
            .to_owned(),
        prefix,
    }
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
