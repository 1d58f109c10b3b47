//! The wire contract of every rejection: status, code, headers and body, pinned.

#![allow(clippy::unwrap_used)]
use super::*;

fn header<'a>(headers: &'a [(HeaderName, HeaderValue)], name: &HeaderName) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.to_str().unwrap())
}

/// Each rejection's status, code and headers, pinned: these are the wire contract.
/// (rejection, status, code, Retry-After, `Connection: close`, `WWW-Authenticate`, JSON-RPC code)
type Case = (
    Rejection,
    u16,
    &'static str,
    Option<&'static str>,
    bool,
    bool,
    Option<i64>,
);

#[test]
#[rustfmt::skip]
fn every_rejection_has_its_pinned_status_code_and_headers() {
    let ch = || "Bearer resource_metadata=\"x\"".to_owned();
    let cases: Vec<Case> = vec![
        (Rejection::Unauthenticated { challenge: ch() }, 401, "unauthorized", None, false, true, None),
        (Rejection::UnacceptableToken { reason: "no sub", challenge: ch() }, 401, "invalid_token", None, false, true, None),
        (Rejection::InsufficientScope { required: "mcp".into(), challenge: ch() }, 403, "insufficient_scope", None, false, true, None),
        (Rejection::RepeatedAuthorization { challenge: ch() }, 400, "invalid_request", None, false, true, None),
        (Rejection::HostNotAllowed("evil".into()), 403, "host_not_allowed", None, false, false, None),
        (Rejection::OriginNotAllowed("null".into()), 403, "origin_not_allowed", None, false, false, None),
        (Rejection::RateLimited { retry_after_secs: 0 }, 429, "rate_limited", Some("1"), false, false, None),
        (Rejection::RateLimited { retry_after_secs: 7 }, 429, "rate_limited", Some("7"), false, false, None),
        (Rejection::AddressRateLimited { retry_after_secs: 0 }, 429, "address_rate_limited", Some("1"), false, false, None),
        (Rejection::AddressRateLimited { retry_after_secs: 4 }, 429, "address_rate_limited", Some("4"), false, false, None),
        (Rejection::TooManyConnectionsFromAddress { max: 8 }, 429, "too_many_connections_from_address", Some("1"), true, false, None),
        (Rejection::TooManyInFlight { max: 4 }, 429, "too_many_in_flight", Some("5"), true, false, None),
        (Rejection::TooManySessions { max: 2 }, 503, "too_many_sessions", Some("30"), false, false, None),
        (Rejection::SessionQuota { max: 1 }, 429, "session_quota_exceeded", Some("30"), false, false, None),
        (Rejection::SessionNotFound, 404, "session_not_found", None, false, false, None),
        (Rejection::BodyTimedOut(Duration::from_secs(3)), 408, "body_timeout", None, true, false, None),
        (Rejection::BodyTooLarge { declared: Some(9), limit: 8 }, 413, "body_too_large", None, true, false, Some(-32600)),
        (Rejection::BodyTooLarge { declared: None, limit: 8 }, 413, "body_too_large", None, true, false, Some(-32600)),
        (Rejection::MalformedJson("eof".into()), 400, "malformed_json", None, false, false, Some(-32700)),
        (Rejection::NotOneMessage("a batch"), 400, "not_one_jsonrpc_message", None, false, false, Some(-32600)),
        (Rejection::RequestIdInFlight("7".into()), 400, "request_id_in_flight", None, false, false, Some(-32600)),
        (Rejection::TooManyConnections { max: 3 }, 503, "too_many_connections", Some("1"), true, false, None),
    ];
    for (rejection, status, code, retry, close, challenge, rpc) in cases {
        let headers = rejection.headers();
        assert_eq!(rejection.status().as_u16(), status, "{rejection:?}");
        assert_eq!(rejection.code(), code, "{rejection:?}");
        assert_eq!(header(&headers, &RETRY_AFTER), retry, "{rejection:?}");
        assert_eq!(header(&headers, &CONNECTION) == Some("close"), close, "{rejection:?}");
        assert_eq!(header(&headers, &WWW_AUTHENTICATE).is_some(), challenge, "{rejection:?}");
        assert_eq!(rejection.jsonrpc_code(), rpc, "{rejection:?}");

        // One body shape: the common body, at the top or as the JSON-RPC error's data.
        let body: serde_json::Value = serde_json::from_str(&rejection.body()).unwrap();
        let common = match rpc {
            Some(n) => {
                assert_eq!(body["jsonrpc"], "2.0");
                assert!(body["id"].is_null());
                assert_eq!(body["error"]["code"], n);
                assert_eq!(body["error"]["message"], rejection.to_string());
                &body["error"]["data"]
            }
            None => &body,
        };
        assert_eq!(common.as_object().unwrap().len(), 2, "{common}");
        assert_eq!(common["error"], code);
        assert_eq!(common["reason"], rejection.to_string());

        let response = render(&rejection);
        assert_eq!(response.status().as_u16(), status);
        assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
    }
}

#[test]
fn the_raw_socket_answer_has_the_same_status_headers_and_body_bytes() {
    let rejection = Rejection::TooManyConnections { max: 3 };
    let raw = String::from_utf8(rejection.to_http1()).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    assert!(
        head.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
        "{head}"
    );
    for line in [
        "content-type: application/json",
        "retry-after: 1",
        "connection: close",
        &format!("content-length: {}", body.len()),
    ] {
        assert!(head.lines().any(|l| l == line), "{line} in {head}");
    }
    assert_eq!(body, rejection.body());
}

#[test]
fn reasons_of_a_bad_token_say_nothing_about_the_token() {
    let r = Rejection::Unauthenticated {
        challenge: String::new(),
    };
    assert!(!r.to_string().contains("invalid token"));
    assert!(!r.body().contains("signature"));
}
