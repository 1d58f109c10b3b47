//! What a client reads and does before the operator signs in: the authorization
//! server's metadata (RFC 8414), its public key (JWKS), and dynamic client registration
//! (RFC 7591). Registration is open, as ChatGPT needs, so it is bounded: registrations
//! per address and per hour, a cap on clients (unused ones are pruned after a day), and
//! every redirect URI checked against the allowed hosts before anything is stored.

use std::time::Instant;

use axum::Json;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::header::{CACHE_CONTROL, RETRY_AFTER};
use http::{HeaderValue, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::Detail;
use super::errors::{Code, Refused, refused};
use super::{AuthorizationServer, caller_ip, now, random_token, redirect};
use crate::metrics::OAuthEvent;
use crate::state::oauth::{AuthMethod, Client, ClientKind, sha256_hex};

/// Clients kept at most; beyond, registration is refused until unused ones are pruned.
const MAX_CLIENTS: u64 = 1000;
/// A client that never completed a sign-in is pruned after this long.
pub(super) const UNUSED_CLIENT_SEC: i64 = 24 * 3600;
/// Largest registration request.
const MAX_REGISTRATION_BYTES: usize = 16 * 1024;
/// Longest client name kept (it is shown on the consent page).
const MAX_NAME_CHARS: usize = 80;

/// `GET /.well-known/oauth-authorization-server`.
pub async fn metadata(State(server): State<AuthorizationServer>) -> Json<Value> {
    let s = server.settings();
    Json(json!({
        "issuer": s.issuer,
        "authorization_endpoint": s.url("/oauth/authorize"),
        "token_endpoint": s.url("/oauth/token"),
        "registration_endpoint": s.url("/oauth/register"),
        "revocation_endpoint": s.url("/oauth/revoke"),
        "jwks_uri": s.url("/oauth/jwks.json"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["none", "client_secret_post", "client_secret_basic"],
        "revocation_endpoint_auth_methods_supported": ["none", "client_secret_post", "client_secret_basic"],
        "scopes_supported": s.scopes,
        "client_id_metadata_document_supported": true,
        "authorization_response_iss_parameter_supported": true,
    }))
}

/// `GET /oauth/jwks.json`.
pub async fn jwks(State(server): State<AuthorizationServer>) -> Response {
    let mut response = Json(server.inner.keys.jwks()).into_response();
    response.headers_mut().insert(
        CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    response
}

/// The registration request fields 2Bot reads (others are ignored, RFC 7591 §2).
#[derive(Debug, Deserialize)]
struct Registration {
    redirect_uris: Option<Vec<String>>,
    client_name: Option<String>,
    token_endpoint_auth_method: Option<String>,
    grant_types: Option<Vec<String>>,
    response_types: Option<Vec<String>>,
}

fn refuse(refusal: Refused) -> Response {
    tracing::info!(error = refusal.code.as_str(), reason = %refusal.description, "client registration refused");
    refusal.into_response()
}

/// `POST /oauth/register`.
pub async fn register(State(server): State<AuthorizationServer>, request: Request) -> Response {
    let ip = caller_ip(&server, &request);
    if let Err(wait) = server.inner.registrations.check(ip, Instant::now()) {
        let mut response = refuse(refused(
            Code::TooManyRequests,
            "too many client registrations from this address; try again later",
        ));
        if let Ok(v) = HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
            response.headers_mut().insert(RETRY_AFTER, v);
        }
        return response;
    }
    let Ok(body) = axum::body::to_bytes(request.into_body(), MAX_REGISTRATION_BYTES).await else {
        return refuse(
            refused(
                Code::InvalidClientMetadata,
                "the registration request is larger than 16 KiB",
            )
            .with_status(StatusCode::PAYLOAD_TOO_LARGE),
        );
    };
    let registration: Registration = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return refuse(refused(
                Code::InvalidClientMetadata,
                format!("not a registration request: {e}"),
            ));
        }
    };
    let client = match checked(&server, registration) {
        Ok(c) => c,
        Err(response) => return *response,
    };
    let (client, secret) = client;
    let stored = client.clone();
    let cutoff = now() - UNUSED_CLIENT_SEC;
    let outcome = server
        .store(async {
            let s = server.db();
            if s.count_clients().await? >= MAX_CLIENTS {
                s.prune_unused_clients(cutoff).await?;
                if s.count_clients().await? >= MAX_CLIENTS {
                    return Ok(Some(false));
                }
            }
            // A taken id (32 random bytes: never in practice) stores nothing: refused.
            Ok(s.insert_client(&stored).await?.then_some(true))
        })
        .await;
    match outcome {
        Ok(Some(true)) => {}
        Ok(Some(false)) => {
            return refuse(refused(
                Code::TemporarilyUnavailable,
                "too many registered clients; the operator can remove some with `2bot-mcp oauth delete-client`",
            ));
        }
        Ok(None) | Err(_) => {
            return refuse(refused(
                Code::ServerError,
                "the server cannot store the client",
            ));
        }
    }
    server.inner.registrations.record(ip, Instant::now());
    server.note(
        OAuthEvent::client_registered,
        Detail {
            ip: Some(ip),
            ..Detail::client(&client.id)
        },
    );
    tracing::info!(client = %client.id, name = %client.name, "client registered");
    let mut body = json!({
        "client_id": client.id,
        "client_id_issued_at": client.created_at,
        "client_name": client.name,
        "redirect_uris": client.redirect_uris,
        "token_endpoint_auth_method": client.auth_method.as_str(),
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
    });
    if let Some(secret) = secret {
        body["client_secret"] = json!(secret);
        body["client_secret_expires_at"] = json!(0);
    }
    let mut response = (StatusCode::CREATED, Json(body)).into_response();
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The client a valid registration makes, and its secret (shown once, stored hashed).
fn checked(
    server: &AuthorizationServer,
    r: Registration,
) -> Result<(Client, Option<String>), Box<Response>> {
    let bad = |code: Code, why: String| Box::new(refuse(refused(code, why)));
    let uris = r.redirect_uris.unwrap_or_default();
    if uris.is_empty() {
        return Err(bad(
            Code::InvalidRedirectUri,
            "redirect_uris is required (at least one)".into(),
        ));
    }
    if uris.len() > 10 {
        return Err(bad(
            Code::InvalidRedirectUri,
            "at most 10 redirect_uris".into(),
        ));
    }
    for uri in &uris {
        if let Err(e) = redirect::check_redirect_uri(uri, &server.settings().redirect_hosts) {
            return Err(bad(Code::InvalidRedirectUri, format!("{uri}: {e}")));
        }
    }
    let asked = r
        .token_endpoint_auth_method
        .as_deref()
        .unwrap_or("client_secret_basic");
    let method = match AuthMethod::parse(asked) {
        Some(method) => method,
        None => {
            let other = asked;
            return Err(bad(
                Code::InvalidClientMetadata,
                format!(
                    "token_endpoint_auth_method {other} is not supported; use none, client_secret_post or client_secret_basic"
                ),
            ));
        }
    };
    if let Some(other) = r
        .grant_types
        .iter()
        .flatten()
        .find(|g| !matches!(g.as_str(), "authorization_code" | "refresh_token"))
    {
        return Err(bad(
            Code::InvalidClientMetadata,
            format!("grant type {other} is not supported"),
        ));
    }
    if let Some(other) = r.response_types.iter().flatten().find(|t| *t != "code") {
        return Err(bad(
            Code::InvalidClientMetadata,
            format!("response type {other} is not supported"),
        ));
    }
    let name: String = r
        .client_name
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_NAME_CHARS)
        .collect();
    let name = match name.trim() {
        "" => "Unnamed client".to_owned(),
        n => n.to_owned(),
    };
    let secret = (method != AuthMethod::None_).then(|| random_token(32));
    Ok((
        Client {
            id: format!("c_{}", random_token(16)),
            kind: ClientKind::Dcr,
            name,
            redirect_uris: uris,
            auth_method: method,
            secret_hash: secret.as_deref().map(sha256_hex),
            created_at: now(),
        },
        secret,
    ))
}
