//! A fetched client metadata document, checked: what of it 2Bot keeps ([`ClientMetadata`])
//! and why a document is refused. The rules are the CIMD draft's
//! (draft-ietf-oauth-client-id-metadata-document): `client_id` equals the document's URL
//! by simple string comparison; there is no shared secret (so `token_endpoint_auth_method`
//! is `none` or absent, and no `client_secret`); plus 2Bot's redirect-URI rules.

use serde_json::{Map, Value};

use super::CimdError;
use crate::oauth::redirect::check_redirect_uri;

/// Longest `client_name` shown on the consent page.
pub const MAX_CLIENT_NAME_CHARS: usize = 100;

/// What 2Bot keeps of a client's metadata document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientMetadata {
    /// The document's URL, which is also the client's id.
    pub client_id: String,
    /// `client_name` from the document, or the URL's host when it has none.
    pub client_name: String,
    /// The redirect URIs, each as written in the document (requests must match one exactly).
    pub redirect_uris: Vec<String>,
}

/// Checks a document's bytes; `host` names the client when the document does not.
pub(super) fn parse(
    body: &[u8],
    client_id: &str,
    host: &str,
    allowed_hosts: &[String],
) -> Result<ClientMetadata, CimdError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| CimdError::NotJson {
        reason: e.to_string(),
    })?;
    let Value::Object(doc) = value else {
        return Err(CimdError::NotAnObject);
    };
    let in_doc = string_field(&doc, "client_id")?.ok_or(CimdError::MissingField("client_id"))?;
    if in_doc != client_id {
        return Err(CimdError::ClientIdMismatch {
            document: shorten(in_doc),
            url: client_id.to_owned(),
        });
    }
    if let Some(method) = string_field(&doc, "token_endpoint_auth_method")?
        && method != "none"
    {
        return Err(CimdError::AuthMethod {
            method: shorten(method),
        });
    }
    if doc.contains_key("client_secret") || doc.contains_key("client_secret_expires_at") {
        return Err(CimdError::SharedSecret);
    }
    let redirect_uris = redirect_uris(&doc, allowed_hosts)?;
    let client_name = match string_field(&doc, "client_name")?.map(str::trim) {
        None | Some("") => host.to_owned(),
        Some(name) if name.chars().count() > MAX_CLIENT_NAME_CHARS => {
            return Err(CimdError::ClientName("is longer than 100 characters"));
        }
        Some(name) if name.chars().any(char::is_control) => {
            return Err(CimdError::ClientName("contains a control character"));
        }
        Some(name) => name.to_owned(),
    };
    Ok(ClientMetadata {
        client_id: client_id.to_owned(),
        client_name,
        redirect_uris,
    })
}

fn redirect_uris(doc: &Map<String, Value>, allowed: &[String]) -> Result<Vec<String>, CimdError> {
    let wrong = CimdError::WrongType {
        field: "redirect_uris",
        expected: "an array of strings",
    };
    let list = match doc.get("redirect_uris") {
        None => return Err(CimdError::MissingField("redirect_uris")),
        Some(Value::Array(list)) => list,
        Some(_) => return Err(wrong),
    };
    if list.is_empty() {
        return Err(CimdError::NoRedirectUris);
    }
    list.iter()
        .map(|uri| {
            let uri = uri.as_str().ok_or(CimdError::WrongType {
                field: "redirect_uris",
                expected: "an array of strings",
            })?;
            check_redirect_uri(uri, allowed).map_err(|source| CimdError::RedirectUri {
                uri: shorten(uri),
                source,
            })?;
            Ok(uri.to_owned())
        })
        .collect()
}

/// A string member, `None` when absent; a clear error when it is something else.
fn string_field<'a>(
    doc: &'a Map<String, Value>,
    field: &'static str,
) -> Result<Option<&'a str>, CimdError> {
    match doc.get(field) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(CimdError::WrongType {
            field,
            expected: "a string",
        }),
    }
}

/// A document's value quoted in an error, cut so a hostile document cannot fill a page.
fn shorten(s: &str) -> String {
    const MAX: usize = 200;
    match s.char_indices().nth(MAX) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use serde_json::json;

    use super::*;

    const ID: &str = "https://app.example/oauth/client.json";

    fn check(doc: Value) -> Result<ClientMetadata, CimdError> {
        parse(
            doc.to_string().as_bytes(),
            ID,
            "app.example",
            &["chatgpt.com".to_owned()],
        )
    }

    #[test]
    fn a_good_document_gives_its_name_and_redirect_uris() {
        let got = check(json!({
            "client_id": ID, "client_name": " Example App ",
            "redirect_uris": ["https://chatgpt.com/cb", "http://127.0.0.1/cb"],
            "token_endpoint_auth_method": "none", "grant_types": ["authorization_code"],
        }))
        .unwrap();
        assert_eq!(got.client_name, "Example App");
        assert_eq!(
            got.redirect_uris,
            ["https://chatgpt.com/cb", "http://127.0.0.1/cb"]
        );
    }

    #[test]
    fn a_document_without_a_name_is_named_after_its_host() {
        let doc = json!({"client_id": ID, "redirect_uris": ["https://chatgpt.com/cb"]});
        assert_eq!(check(doc).unwrap().client_name, "app.example");
    }

    #[test]
    fn bad_documents_are_refused_with_the_specific_reason() {
        let good = || json!({"client_id": ID, "redirect_uris": ["https://chatgpt.com/cb"]});
        let with = |k: &str, v: Value| {
            let mut d = good();
            d[k] = v;
            d
        };
        let without = |k: &str| {
            let mut d = good();
            d.as_object_mut().unwrap().remove(k);
            d
        };
        let cases: Vec<(Value, &str)> = vec![
            (json!([1]), "not a JSON object"),
            (without("client_id"), "has no client_id"),
            (with("client_id", json!(7)), "client_id must be a string"),
            (
                with("client_id", json!("https://app.example/other")),
                "client_id in the document (https://app.example/other) differs from its URL",
            ),
            (
                with("client_id", json!("https://app.example/oauth/client.json/")),
                "differs from its URL",
            ),
            (without("redirect_uris"), "has no redirect_uris"),
            (
                with("redirect_uris", json!("https://chatgpt.com/cb")),
                "redirect_uris must be an array of strings",
            ),
            (
                with("redirect_uris", json!([1])),
                "redirect_uris must be an array of strings",
            ),
            (with("redirect_uris", json!([])), "redirect_uris is empty"),
            (
                with("redirect_uris", json!(["https://evil.com/cb"])),
                "redirect URI https://evil.com/cb is refused: redirect URI host `evil.com` is not an allowed redirect host",
            ),
            (
                with("redirect_uris", json!(["javascript:alert(1)"])),
                "only https, or http on a loopback host",
            ),
            (
                with("token_endpoint_auth_method", json!("client_secret_basic")),
                "token_endpoint_auth_method `client_secret_basic` is not allowed",
            ),
            (
                with("client_secret", json!("s3cret")),
                "carries a client_secret",
            ),
            (
                with("client_name", json!(["x"])),
                "client_name must be a string",
            ),
            (
                with("client_name", json!("a".repeat(101))),
                "client_name is longer than 100 characters",
            ),
            (
                with("client_name", json!("Evil\u{1b}[2J")),
                "client_name contains a control character",
            ),
        ];
        for (doc, want) in cases {
            let err = check(doc.clone()).unwrap_err().to_string();
            assert!(err.contains(want), "{doc}: {err}");
        }
        let err = parse(b"<html>", ID, "h", &[]).unwrap_err().to_string();
        assert!(
            err.starts_with("the client metadata document is not JSON"),
            "{err}"
        );
    }
}
