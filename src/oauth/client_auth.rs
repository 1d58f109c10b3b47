//! How a client proves who it is at the token and revocation endpoints (RFC 6749 §2.3:
//! none for a public client, its secret by HTTP Basic or in the form), the form those
//! endpoints read (each parameter at most once).

use axum::extract::Request;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::HeaderMap;
use http::header::AUTHORIZATION;

use super::AuthorizationServer;
use super::errors::{Code, Refused, refused};
use crate::state::oauth::{AuthMethod, Client};

/// Largest token request body.
const MAX_FORM_BYTES: usize = 16 * 1024;

/// The form's fields, once each.
pub(super) struct Form(Vec<(String, String)>);

impl Form {
    pub(super) fn get(&self, name: &str) -> Result<Option<&str>, Refused> {
        let mut found = self.0.iter().filter(|(k, _)| k == name);
        let first = found.next().map(|(_, v)| v.as_str());
        if found.next().is_some() {
            return Err(refused(
                Code::InvalidRequest,
                format!("the parameter {name} is repeated"),
            ));
        }
        Ok(first.filter(|v| !v.is_empty()))
    }

    pub(super) fn require(&self, name: &str) -> Result<&str, Refused> {
        self.get(name)?.ok_or_else(|| {
            refused(
                Code::InvalidRequest,
                format!("the parameter {name} is missing"),
            )
        })
    }
}

pub(super) async fn read_form(request: Request) -> Result<(HeaderMap, Form), Refused> {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, MAX_FORM_BYTES)
        .await
        .map_err(|_| refused(Code::InvalidRequest, "the request body is too large"))?;
    let fields = url::form_urlencoded::parse(&body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    Ok((parts.headers, Form(fields)))
}

/// `client_secret_basic` credentials, if the request has them (RFC 6749 §2.3.1: each
/// part form-encoded inside the base64).
pub(super) fn basic(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let unescape = |s: &str| {
        url::form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
    };
    Some((unescape(id)?, unescape(secret)?))
}

/// The calling client, authenticated by the method it registered (a secret client may
/// send its secret either way; a public client sends none).
pub(super) async fn authenticate(
    server: &AuthorizationServer,
    headers: &HeaderMap,
    form: &Form,
) -> Result<Client, Refused> {
    let basic = basic(headers);
    let form_id = form.get("client_id")?;
    let id = match (&basic, form_id) {
        (Some((b, _)), Some(f)) if b != f => {
            return Err(refused(
                Code::InvalidRequest,
                "client_id differs from the Basic credentials",
            ));
        }
        (Some((b, _)), _) => b.clone(),
        (None, Some(f)) => f.to_owned(),
        (None, None) => {
            return Err(refused(
                Code::InvalidRequest,
                "the parameter client_id is missing",
            ));
        }
    };
    let used_basic = basic.is_some();
    let invalid_client =
        |why: &str| refused(Code::InvalidClient, why).with_basic_challenge(used_basic);
    let lookup = id.clone();
    let client = server
        .store(server.db().client(&lookup))
        .await
        .map_err(|_| refused(Code::ServerError, "the server cannot read its state"))?
        .ok_or_else(|| invalid_client("unknown client; register again"))?;
    let secret = basic
        .map(|(_, s)| s)
        .or(form.get("client_secret")?.map(str::to_owned));
    match (client.auth_method, secret) {
        (AuthMethod::None_, None) => Ok(client),
        (AuthMethod::None_, Some(_)) => Err(invalid_client(
            "this client is public: it has no secret to send",
        )),
        (_, Some(given)) if client.secret_matches(&given) => Ok(client),
        (_, Some(_)) => Err(invalid_client("wrong client secret")),
        (_, None) => Err(invalid_client(
            "this client must authenticate with its secret",
        )),
    }
}
