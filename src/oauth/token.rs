//! The token endpoint (`POST /oauth/token`): an authorization code with its PKCE
//! verifier, or a refresh token, in exchange for an access token (an ES256 JWT the MCP
//! endpoint verifies) and a new refresh token; and the revocation endpoint (RFC 7009).
//!
//! Every check that fails uses the code up; a code presented twice revokes what its
//! first exchange issued (RFC 6749 §4.1.2), and a refresh token presented twice revokes
//! its whole family, since one of the two presenters stole it.

use axum::Json;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::header::CACHE_CONTROL;
use http::{HeaderValue, StatusCode};
use serde::Serialize;
use serde_json::json;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use super::Detail;
use super::client_auth::{authenticate, read_form};
use super::errors::{Code, Refused, refused};
use super::{AuthorizationServer, now, random_token};
use crate::metrics::{OAuthEvent, metrics};
use crate::state::oauth::{Exchange, Grant, NewRefresh, Rotation, sha256_hex};

/// The subject of every built-in token: the one operator.
pub const SUBJECT: &str = "operator";
/// The claims of a built-in access token (RFC 9068), plus `gid`, the grant it belongs
/// to, which the MCP endpoint looks up in the revocation list.
#[derive(Debug, Serialize)]
struct AccessClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    iat: i64,
    nbf: i64,
    exp: i64,
    jti: String,
    client_id: &'a str,
    scope: &'a str,
    gid: &'a str,
}

/// `POST /oauth/token`.
pub async fn token(State(server): State<AuthorizationServer>, request: Request) -> Response {
    match exchange(&server, request).await {
        Ok(body) => {
            let mut response = Json(body).into_response();
            response
                .headers_mut()
                .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Err(e) => {
            tracing::info!(error = e.code.as_str(), reason = %e.description, "token request refused");
            metrics().oauth(OAuthEvent::token_refused);
            e.into_response()
        }
    }
}

async fn exchange(
    server: &AuthorizationServer,
    request: Request,
) -> Result<serde_json::Value, Refused> {
    let (headers, form) = read_form(request).await?;
    let grant_type = form.require("grant_type")?.to_owned();
    let client = authenticate(server, &headers, &form).await?;
    let broken = |_| {
        refused(
            Code::ServerError,
            "the server cannot read or write its state",
        )
    };
    let settings = server.settings();
    let refresh = format!("rt_{}", random_token(32));
    let now = now();
    let next = NewRefresh {
        token_hash: sha256_hex(&refresh),
        issued_at: now,
        expires_at: now + i64::try_from(settings.refresh_ttl.as_secs()).unwrap_or(i64::MAX / 2),
    };
    let (grant, scope) = match grant_type.as_str() {
        "authorization_code" => {
            let code_hash = sha256_hex(form.require("code")?);
            let lookup = code_hash.clone();
            let row = server
                .store(server.db().code(&lookup))
                .await
                .map_err(broken)?
                .ok_or_else(|| refused(Code::InvalidGrant, "unknown authorization code"))?;
            let verifier = form.get("code_verifier")?;
            let refusal = if row.used_at.is_some() {
                None // the exchange below reports the reuse and revokes
            } else if row.code.client_id != client.id {
                Some((Code::InvalidGrant, "the code was issued to another client"))
            } else if form
                .get("redirect_uri")?
                .is_some_and(|r| r != row.code.redirect_uri)
            {
                Some((
                    Code::InvalidGrant,
                    "redirect_uri differs from the authorization request's",
                ))
            } else if form
                .get("resource")?
                .is_some_and(|r| r.trim_end_matches('/') != row.code.resource)
            {
                // RFC 8707 §2: a resource the grant is not for is an invalid target.
                Some((
                    Code::InvalidTarget,
                    "resource differs from the authorization request's",
                ))
            } else if verifier.is_none() {
                Some((Code::InvalidGrant, "code_verifier is missing (PKCE)"))
            } else if !pkce_matches(verifier.unwrap_or_default(), &row.code.code_challenge) {
                Some((
                    Code::InvalidGrant,
                    "code_verifier does not match the code_challenge (PKCE)",
                ))
            } else {
                None
            };
            if let Some((code, reason)) = refusal {
                let burn = code_hash.clone();
                server
                    .store(server.db().burn_code(&burn, now))
                    .await
                    .map_err(broken)?;
                return Err(refused(code, reason));
            }
            let grant_id = format!("g_{}", random_token(16));
            let issued = next.clone();
            match server
                .store(
                    server
                        .db()
                        .exchange_code(&code_hash, now, &grant_id, &issued),
                )
                .await
                .map_err(broken)?
            {
                Exchange::Issued(grant) => {
                    tracing::info!(client = %client.id, grant = %grant.id, "tokens issued for a code");
                    server.note(
                        OAuthEvent::code_exchanged,
                        Detail {
                            grant: Some(&grant.id),
                            scope: Some(&grant.scope),
                            ..Detail::client(&client.id)
                        },
                    );
                    let scope = grant.scope.clone();
                    (grant, scope)
                }
                Exchange::Reused => {
                    tracing::warn!(client = %client.id, "an authorization code was presented twice; its grant is revoked");
                    server.note(OAuthEvent::code_replayed, Detail::client(&client.id));
                    return Err(refused(
                        Code::InvalidGrant,
                        "the code was already used; what it issued is revoked",
                    ));
                }
                Exchange::Expired => {
                    return Err(refused(
                        Code::InvalidGrant,
                        "the code expired (codes live 60 s)",
                    ));
                }
                Exchange::Unknown => {
                    return Err(refused(Code::InvalidGrant, "unknown authorization code"));
                }
            }
        }
        "refresh_token" => {
            let old = sha256_hex(form.require("refresh_token")?);
            let client_id = client.id.clone();
            let issued = next.clone();
            let grant = match server
                .store(server.db().rotate_refresh(&old, &client_id, now, &issued))
                .await
                .map_err(broken)?
            {
                Rotation::Rotated(grant) => {
                    server.note(
                        OAuthEvent::refresh_rotated,
                        Detail {
                            grant: Some(&grant.id),
                            ..Detail::client(&client.id)
                        },
                    );
                    grant
                }
                Rotation::Reused => {
                    tracing::warn!(client = %client.id, "a refresh token was presented twice; its family is revoked");
                    server.note(OAuthEvent::refresh_replayed, Detail::client(&client.id));
                    return Err(refused(
                        Code::InvalidGrant,
                        "the refresh token was already used; its grant is revoked",
                    ));
                }
                Rotation::Revoked => {
                    return Err(refused(Code::InvalidGrant, "the grant was revoked"));
                }
                Rotation::Expired => {
                    return Err(refused(Code::InvalidGrant, "the refresh token expired"));
                }
                Rotation::WrongClient => {
                    return Err(refused(
                        Code::InvalidGrant,
                        "the refresh token was issued to another client",
                    ));
                }
                Rotation::Unknown => {
                    return Err(refused(Code::InvalidGrant, "unknown refresh token"));
                }
            };
            if form
                .get("resource")?
                .is_some_and(|r| r.trim_end_matches('/') != grant.resource)
            {
                return Err(refused(
                    Code::InvalidTarget,
                    format!("this grant is for {} only", grant.resource),
                ));
            }
            let scope = match form.get("scope")? {
                None => grant.scope.clone(),
                Some(asked) => {
                    let granted: Vec<&str> = grant.scope.split(' ').collect();
                    if let Some(extra) = asked
                        .split(' ')
                        .find(|s| !s.is_empty() && !granted.contains(s))
                    {
                        return Err(refused(
                            Code::InvalidScope,
                            format!("{extra} was not granted"),
                        ));
                    }
                    asked.to_owned()
                }
            };
            (grant, scope)
        }
        other => {
            return Err(refused(
                Code::UnsupportedGrantType,
                format!("{other} is not supported; use authorization_code or refresh_token"),
            ));
        }
    };
    let access = mint(server, &grant, &scope, now)?;
    Ok(json!({
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": settings.access_ttl.as_secs(),
        "refresh_token": refresh,
        "scope": scope,
    }))
}

fn mint(
    server: &AuthorizationServer,
    grant: &Grant,
    scope: &str,
    now: i64,
) -> Result<String, Refused> {
    let settings = server.settings();
    let claims = AccessClaims {
        iss: &settings.issuer,
        sub: SUBJECT,
        aud: &grant.resource,
        iat: now,
        nbf: now,
        exp: now + i64::try_from(settings.access_ttl.as_secs()).unwrap_or(3600),
        jti: random_token(16),
        client_id: &grant.client_id,
        scope,
        gid: &grant.id,
    };
    server.inner.keys.sign(&claims).map_err(|e| {
        tracing::error!(error = %e, "cannot sign an access token");
        refused(Code::ServerError, "the server cannot sign tokens")
    })
}

/// RFC 7636 S256: BASE64URL(SHA256(verifier)) == challenge; the verifier 43–128
/// unreserved characters.
fn pkce_matches(verifier: &str, challenge: &str) -> bool {
    let well_formed = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
    let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    well_formed && bool::from(computed.as_bytes().ct_eq(challenge.as_bytes()))
}

/// `POST /oauth/revoke` (RFC 7009): a refresh token's family ends; the answer is 200
/// whatever the token was, so it reveals nothing.
pub async fn revoke(State(server): State<AuthorizationServer>, request: Request) -> Response {
    let result = async {
        let (headers, form) = read_form(request).await?;
        let client = authenticate(&server, &headers, &form).await?;
        let token = form.require("token")?;
        if let Some(claims) = server.inner.keys.own_claims(token) {
            // An access token: its grant ends (its refresh tokens with it), if the
            // caller is the client it was issued to.
            if claims["client_id"] == client.id.as_str()
                && let Some(grant) = claims["gid"].as_str().map(str::to_owned)
            {
                let revoked = server
                    .store(server.db().revoke_grant_of(
                        &grant,
                        &client.id,
                        "revoked by the client",
                        now(),
                    ))
                    .await
                    .map_err(|_| refused(Code::ServerError, "the server cannot write its state"))?;
                tracing::info!(revoked, "revocation request (access token)");
            }
        } else if token.starts_with("rt_") {
            let hash = sha256_hex(token);
            let revoked = server
                .store(server.db().revoke_refresh_family(
                    &hash,
                    Some(&client.id),
                    "revoked by the client",
                    now(),
                ))
                .await
                .map_err(|_| refused(Code::ServerError, "the server cannot write its state"))?;
            tracing::info!(revoked, "revocation request");
        }
        Ok::<_, Refused>(())
    }
    .await;
    match result {
        Ok(()) => StatusCode::OK.into_response(),
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
#[path = "token_tests.rs"]
mod tests;
