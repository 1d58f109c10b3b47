//! Which client ids are metadata document URLs, and what a refused fetch says before any
//! connection is made (the fetches themselves are driven in tests/suite/oauth_cimd.rs).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

#[test]
fn client_ids_are_metadata_document_urls_only_when_every_rule_holds() {
    let cases: &[(&str, Option<&str>)] = &[
        ("https://chatgpt.com/oauth/client.json", None),
        ("https://app.example:8443/client", None),
        ("https://app.example/c?v=1", None),
        ("https://127.0.0.1:4443/doc", None),
        ("c_abcdefghijklmnopqrstuv", Some("not an absolute URL")),
        ("http://app.example/client", Some("must be an https URL")),
        ("https://app.example/", Some("no path")),
        ("https://app.example", Some("no path")),
        ("https://app.example/client#x", Some("fragment")),
        ("https://app.example/client#", Some("fragment")),
        (
            "https://user@app.example/client",
            Some("user name or password"),
        ),
        ("https://app.example/a/../client", Some(". or .. segment")),
        ("https://app.example/./client", Some(". or .. segment")),
        (
            "https://app.example/a/%2E%2E/client",
            Some(". or .. segment"),
        ),
        ("https://app.example/a/..?x", Some(". or .. segment")),
        ("https://App.Example/client", Some("normal form")),
        ("https://app.example:443/client", Some("normal form")),
        ("https://app.example/client\n", Some("whitespace")),
        ("https://app.example/ client", Some("whitespace")),
    ];
    let mut wrong = Vec::new();
    for &(id, want) in cases {
        let got = cimd_url(id);
        let fine = match (want, &got) {
            (None, Ok(url)) => url.as_str() == id && is_cimd_client_id(id),
            (Some(reason), Err(err)) => err.to_string().contains(reason) && !is_cimd_client_id(id),
            _ => false,
        };
        if !fine {
            wrong.push(format!("{id:?}: {got:?}"));
        }
    }
    let long = format!("https://app.example/{}", "a".repeat(MAX_CLIENT_ID_LEN));
    if is_cimd_client_id(&long) {
        wrong.push("a client id over the cap".into());
    }
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
}

#[tokio::test]
async fn a_client_id_naming_a_loopback_address_is_refused_before_any_connection() {
    let err = CimdFetcher::new(false)
        .fetch("https://127.0.0.1:1/doc", &[])
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "127.0.0.1 resolves to 127.0.0.1, a loopback address (TWOBOT_OAUTH_CIMD_ALLOW_PRIVATE=true allows it on a closed network)"
    );
}

#[tokio::test]
async fn link_local_is_refused_even_with_allow_private() {
    for id in [
        "https://169.254.169.254/latest/meta-data",
        "https://[::ffff:a9fe:a9fe]/latest",
        "https://[fe80::1]/doc",
    ] {
        let err = CimdFetcher::new(true).fetch(id, &[]).await.unwrap_err();
        assert!(
            matches!(&err, CimdError::Forbidden { reason, hint: "", .. } if reason.contains("link-local")),
            "{id}: {err}"
        );
    }
}

#[tokio::test]
async fn localhost_by_name_is_refused_without_allow_private() {
    let err = CimdFetcher::new(false)
        .fetch("https://localhost:1/doc", &[])
        .await
        .unwrap_err();
    assert!(
        err.to_string().starts_with("localhost resolves to "),
        "{err}"
    );
    assert!(err.to_string().contains("a loopback address"), "{err}");
}

#[test]
fn a_bad_root_pem_is_a_clear_error() {
    let err = CimdFetcher::new(false)
        .with_root_pem(b"-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n")
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("cannot set up the HTTPS client for client metadata documents"),
        "{err}"
    );
}
