//! Table tests for the redirect-URI rules: each row is an attack or a legitimate client.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

fn allowed() -> Vec<String> {
    [
        "chatgpt.com",
        "chat.openai.com",
        "Claude.AI",
        "bücher.example",
    ]
    .map(String::from)
    .to_vec()
}

/// What `check_redirect_uri` must say: `Ok` (with the URL as parsed) or the refusal.
enum Want {
    Accept(&'static str),
    Refuse(RedirectError),
}

fn host(h: &str) -> String {
    h.to_owned()
}

#[test]
fn redirect_uris_are_accepted_or_refused_with_the_specific_reason() {
    use RedirectError as E;
    use Want::{Accept, Refuse};
    let cases: Vec<(&str, Want)> = vec![
        // https on an allowed host, default or any port.
        (
            "https://chatgpt.com/connector_platform_oauth_redirect",
            Accept("https://chatgpt.com/connector_platform_oauth_redirect"),
        ),
        (
            "https://chatgpt.com:443/cb?x=1",
            Accept("https://chatgpt.com/cb?x=1"),
        ),
        (
            "https://chatgpt.com:8443/cb",
            Accept("https://chatgpt.com:8443/cb"),
        ),
        (
            "https://claude.ai/api/mcp/auth_callback",
            Accept("https://claude.ai/api/mcp/auth_callback"),
        ),
        // Host normalisation: upper case, IDN (the allowed list is normalised the same way).
        ("https://ChatGPT.COM/cb", Accept("https://chatgpt.com/cb")),
        (
            "https://BÜCHER.example/cb",
            Accept("https://xn--bcher-kva.example/cb"),
        ),
        (
            "https://xn--bcher-kva.example/cb",
            Accept("https://xn--bcher-kva.example/cb"),
        ),
        // Other hosts, look-alikes and subdomains.
        (
            "https://evil.com/cb",
            Refuse(E::HostNotAllowed {
                host: host("evil.com"),
            }),
        ),
        (
            "https://api.chatgpt.com/cb",
            Refuse(E::HostNotAllowed {
                host: host("api.chatgpt.com"),
            }),
        ),
        (
            "https://chatgpt.com.evil.com/",
            Refuse(E::HostNotAllowed {
                host: host("chatgpt.com.evil.com"),
            }),
        ),
        (
            "https://evilchatgpt.com/",
            Refuse(E::HostNotAllowed {
                host: host("evilchatgpt.com"),
            }),
        ),
        (
            "https://evil.com\\@chatgpt.com/",
            Refuse(E::HostNotAllowed {
                host: host("evil.com"),
            }),
        ),
        (
            "https://chätgpt.com/cb",
            Refuse(E::HostNotAllowed {
                host: host("xn--chtgpt-cua.com"),
            }),
        ),
        (
            "https://127.0.0.1/cb",
            Refuse(E::HostNotAllowed {
                host: host("127.0.0.1"),
            }),
        ),
        (
            "https://chatgpt.com./cb",
            Refuse(E::TrailingDot {
                host: host("chatgpt.com."),
            }),
        ),
        // Userinfo: the host is what follows the @.
        ("https://chatgpt.com@evil.com/", Refuse(E::Userinfo)),
        ("https://user:pw@chatgpt.com/cb", Refuse(E::Userinfo)),
        // Fragments, even empty.
        ("https://chatgpt.com/cb#frag", Refuse(E::Fragment)),
        ("https://chatgpt.com/cb#", Refuse(E::Fragment)),
        // Plain http: loopback only, any port.
        (
            "http://chatgpt.com/",
            Refuse(E::HttpNotLoopback {
                host: host("chatgpt.com"),
            }),
        ),
        (
            "http://127.0.0.1:5555/cb",
            Accept("http://127.0.0.1:5555/cb"),
        ),
        ("http://127.9.8.7/cb", Accept("http://127.9.8.7/cb")),
        ("http://[::1]/cb", Accept("http://[::1]/cb")),
        ("http://[::1]:33418/cb", Accept("http://[::1]:33418/cb")),
        ("http://localhost/cb", Accept("http://localhost/cb")),
        (
            "http://LOCALHOST:8080/cb",
            Accept("http://localhost:8080/cb"),
        ),
        (
            "http://127.0.0.1.evil.com/",
            Refuse(E::HttpNotLoopback {
                host: host("127.0.0.1.evil.com"),
            }),
        ),
        (
            "http://localhost.evil.com/",
            Refuse(E::HttpNotLoopback {
                host: host("localhost.evil.com"),
            }),
        ),
        (
            "http://localhost./cb",
            Refuse(E::TrailingDot {
                host: host("localhost."),
            }),
        ),
        (
            "http://[::ffff:127.0.0.1]/cb",
            Refuse(E::HttpNotLoopback {
                host: host("[::ffff:7f00:1]"),
            }),
        ),
        (
            "http://10.0.0.1/cb",
            Refuse(E::HttpNotLoopback {
                host: host("10.0.0.1"),
            }),
        ),
        (
            "http://0.0.0.0/cb",
            Refuse(E::HttpNotLoopback {
                host: host("0.0.0.0"),
            }),
        ),
        // Other schemes: only https and loopback http.
        (
            "javascript:alert(1)",
            Refuse(E::Scheme {
                scheme: host("javascript"),
            }),
        ),
        (
            "data:text/html,<script>alert(1)</script>",
            Refuse(E::Scheme {
                scheme: host("data"),
            }),
        ),
        (
            "com.example.app:/oauth2redirect",
            Refuse(E::Scheme {
                scheme: host("com.example.app"),
            }),
        ),
        (
            "cursor://anysphere.cursor-mcp/oauth/callback",
            Refuse(E::Scheme {
                scheme: host("cursor"),
            }),
        ),
        (
            "file:///etc/passwd",
            Refuse(E::Scheme {
                scheme: host("file"),
            }),
        ),
        (
            "ftp://chatgpt.com/cb",
            Refuse(E::Scheme {
                scheme: host("ftp"),
            }),
        ),
        ("HTTPS://chatgpt.com/cb", Accept("https://chatgpt.com/cb")),
        // Not absolute.
        (
            "/cb",
            Refuse(E::NotAbsolute {
                reason: host("relative URL without a base"),
            }),
        ),
        (
            "//chatgpt.com/cb",
            Refuse(E::NotAbsolute {
                reason: host("relative URL without a base"),
            }),
        ),
        (
            "",
            Refuse(E::NotAbsolute {
                reason: host("relative URL without a base"),
            }),
        ),
        (
            "https://",
            Refuse(E::NotAbsolute {
                reason: host("empty host"),
            }),
        ),
        // What a browser would strip or rewrite.
        ("https://chat\tgpt.com/cb", Refuse(E::Whitespace)),
        ("https://chatgpt.com/cb\n", Refuse(E::Whitespace)),
        (" https://chatgpt.com/cb", Refuse(E::Whitespace)),
    ];
    let allowed = allowed();
    let mut wrong = Vec::new();
    for (uri, want) in cases {
        let got = check_redirect_uri(uri, &allowed);
        let fine = match (&want, &got) {
            (Want::Accept(expect), Ok(url)) => url.as_str() == *expect,
            (Want::Refuse(expect), Err(err)) => expect == err,
            _ => false,
        };
        if !fine {
            wrong.push(format!("{uri:?}: got {got:?}"));
        }
    }
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
}

#[test]
fn a_redirect_uri_longer_than_the_cap_is_refused() {
    let uri = format!("https://chatgpt.com/{}", "a".repeat(MAX_REDIRECT_URI_LEN));
    assert_eq!(
        check_redirect_uri(&uri, &allowed()),
        Err(RedirectError::TooLong)
    );
}

#[test]
fn no_allowed_hosts_means_only_loopback_http() {
    assert!(check_redirect_uri("https://chatgpt.com/cb", &[]).is_err());
    assert!(check_redirect_uri("http://127.0.0.1:1234/cb", &[]).is_ok());
}

#[test]
fn refusals_name_the_reason_in_words() {
    let err = check_redirect_uri("javascript:alert(1)", &allowed()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "redirect URI scheme `javascript:` is not allowed: only https, or http on a loopback host"
    );
    let err = check_redirect_uri("https://evil.com/", &allowed()).unwrap_err();
    assert!(
        err.to_string()
            .contains("`evil.com` is not an allowed redirect host")
    );
}

#[test]
fn registered_and_requested_redirect_uris_match_exactly_except_a_loopback_port() {
    let cases = [
        ("https://chatgpt.com/cb", "https://chatgpt.com/cb", true),
        ("https://chatgpt.com/cb", "https://chatgpt.com/cb/", false),
        (
            "https://chatgpt.com/cb",
            "https://chatgpt.com/cb?x=1",
            false,
        ),
        ("https://chatgpt.com/cb", "https://ChatGPT.com/cb", false),
        (
            "https://chatgpt.com/cb",
            "https://chatgpt.com:8443/cb",
            false,
        ),
        (
            "https://chatgpt.com/cb",
            "https://chatgpt.com:443/cb",
            false,
        ),
        // RFC 8252 §7.3: any port on a loopback http URI.
        ("http://127.0.0.1/cb", "http://127.0.0.1:51234/cb", true),
        ("http://127.0.0.1:1/cb", "http://127.0.0.1:2/cb", true),
        ("http://[::1]:8080/cb", "http://[::1]:9090/cb", true),
        ("http://localhost:8080/cb", "http://localhost/cb", true),
        // …but nothing else may differ.
        ("http://127.0.0.1/cb", "http://127.0.0.1:5555/other", false),
        ("http://127.0.0.1/cb", "http://127.0.0.2:5555/cb", false),
        ("http://127.0.0.1/cb", "http://localhost:5555/cb", false),
        ("http://127.0.0.1/cb", "http://127.0.0.1:5555/cb?x=1", false),
        ("http://localhost/cb", "http://LOCALHOST:5555/cb", false),
        (
            "http://127.0.0.1/a/../cb",
            "http://127.0.0.1:5555/cb",
            false,
        ),
        ("http://127.0.0.1/cb", "https://127.0.0.1:5555/cb", false),
        ("http://10.0.0.1/cb", "http://10.0.0.1:5555/cb", false),
        ("http://127.0.0.1/cb", "not a url", false),
    ];
    for (registered, requested, want) in cases {
        assert_eq!(
            redirect_matches(registered, requested),
            want,
            "{registered} vs {requested}"
        );
    }
}

#[test]
fn allowed_hosts_are_normalised_like_the_parser_does() {
    assert_eq!(normalize_host(" ChatGPT.com "), Some("chatgpt.com".into()));
    assert_eq!(
        normalize_host("bücher.example"),
        Some("xn--bcher-kva.example".into())
    );
    assert_eq!(normalize_host("chatgpt.com."), None);
    assert_eq!(normalize_host(""), None);
    assert_eq!(normalize_host("a b"), None);
}
