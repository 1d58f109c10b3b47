//! Which requests the cached listing answers: only the plain stateless and session cases.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use serde_json::Value;

/// [`super::answerable`] for a body, read as the JSON body layer reads it.
fn answerable(headers: &HeaderMap, body: &[u8]) -> Option<(Route, String)> {
    super::answerable(headers, &super::super::json_body::check(body).ok()?)
}

fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    map.insert(
        "accept",
        HeaderValue::from_static("application/json, text/event-stream"),
    );
    map.insert(
        "mcp-protocol-version",
        HeaderValue::from_static("2026-07-28"),
    );
    map.insert("mcp-method", HeaderValue::from_static("tools/list"));
    map.insert(
        "content-type",
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    for (name, value) in pairs {
        if value.is_empty() {
            map.remove(*name);
        } else {
            map.insert(*name, HeaderValue::from_static(value));
        }
    }
    map
}

const PLAIN: &str = r#"{"jsonrpc":"2.0","id":7,"method":"tools/list","params":{"_meta":{
    "io.modelcontextprotocol/protocolVersion":"2026-07-28",
    "io.modelcontextprotocol/clientCapabilities":{},
    "io.modelcontextprotocol/clientInfo":{"name":"t","version":"0"}}}}"#;

#[test]
fn a_plain_stateless_listing_is_answered_with_its_own_id() {
    assert_eq!(
        answerable(&headers(&[]), PLAIN.as_bytes()),
        Some((Route::Stateless, "7".to_owned()))
    );
    let string_id = PLAIN.replace("\"id\":7", "\"id\":\"a\\\"b\"");
    assert_eq!(
        answerable(&headers(&[]), string_id.as_bytes()),
        Some((Route::Stateless, r#""a\"b""#.to_owned())),
        "a string id comes back as JSON text, escapes kept"
    );
}

#[test]
fn headers_that_are_not_the_plain_case_go_to_rmcp() {
    let cases: [(&str, &[(&'static str, &'static str)]); 10] = [
        (
            "a body not declared JSON",
            &[("content-type", "text/plain")],
        ),
        ("no content type", &[("content-type", "")]),
        ("no method header", &[("mcp-method", "")]),
        (
            "no protocol version header",
            &[("mcp-protocol-version", "")],
        ),
        (
            "another protocol version",
            &[("mcp-protocol-version", "2025-11-25")],
        ),
        (
            "a method header that disagrees",
            &[("mcp-method", "tools/call")],
        ),
        ("a name header", &[("mcp-name", "run_codex_prompt")]),
        ("no accept header", &[("accept", "")]),
        ("json alone accepted", &[("accept", "application/json")]),
        (
            "a weighted accept entry",
            &[("accept", "application/json;q=0, text/event-stream")],
        ),
    ];
    for (what, pairs) in cases {
        assert_eq!(
            answerable(&headers(pairs), PLAIN.as_bytes()),
            None,
            "{what}"
        );
    }
}

#[test]
fn bodies_that_are_not_the_plain_case_go_to_rmcp() {
    let meta = r#""_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}"#;
    let cases = [
        (
            "another method",
            PLAIN.replace("tools/list", "resources/list"),
        ),
        ("jsonrpc 1.0", PLAIN.replace("\"2.0\"", "\"1.0\"")),
        ("a float id", PLAIN.replace("\"id\":7", "\"id\":7.5")),
        ("a null id", PLAIN.replace("\"id\":7", "\"id\":null")),
        ("no id (a notification)", PLAIN.replace("\"id\":7,", "")),
        (
            "no params",
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#.to_owned(),
        ),
        (
            "no _meta",
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}"#.to_owned(),
        ),
        (
            "a cursor",
            format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{{"cursor":"x",{meta}}}}}"#
            ),
        ),
        (
            "a legacy version in _meta",
            PLAIN.replace("2026-07-28", "2025-11-25"),
        ),
        (
            "no client capabilities",
            PLAIN.replace("\"io.modelcontextprotocol/clientCapabilities\":{},", ""),
        ),
        (
            "capabilities of the wrong type",
            PLAIN.replace(
                "\"io.modelcontextprotocol/clientCapabilities\":{}",
                "\"io.modelcontextprotocol/clientCapabilities\":7",
            ),
        ),
        ("not JSON", "{".to_owned()),
        (
            "a version that is not a string",
            PLAIN.replace("\"2026-07-28\"", "20260728"),
        ),
        (
            "a _meta key spelled with escapes (rmcp reads it; this layer does not)",
            PLAIN.replace("protocolVersion", "protocol\\u0056ersion"),
        ),
        (
            "capabilities with a field of the wrong type",
            PLAIN.replace(
                "\"io.modelcontextprotocol/clientCapabilities\":{}",
                "\"io.modelcontextprotocol/clientCapabilities\":{\"sampling\":7}",
            ),
        ),
    ];
    for (what, body) in cases {
        assert_eq!(answerable(&headers(&[]), body.as_bytes()), None, "{what}");
    }
}

fn layer(tools: &ListToolsResult) -> ListingLayer {
    let sessions = OwnedSessions::new(
        rmcp::transport::streamable_http_server::session::local::LocalSessionManager::default(),
        crate::mcp::session_runs::SessionRuns::default(),
        std::time::Duration::from_secs(1),
    );
    ListingLayer::new(tools, Arc::new(sessions))
}

/// A legacy session's listing, as the official SDKs send it after `initialize`.
fn session_headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut all = vec![
        ("mcp-session-id", "s-1"),
        ("mcp-protocol-version", "2025-11-25"),
        ("mcp-method", ""),
    ];
    all.extend_from_slice(pairs);
    headers(&all)
}

/// A case: what it is, the headers that differ from the SDKs' and the body.
type Case = (
    &'static str,
    &'static [(&'static str, &'static str)],
    &'static str,
);

const SESSION_PLAIN: &str = r#"{"jsonrpc":"2.0","id":"c-9","method":"tools/list"}"#;

#[test]
fn a_plain_session_listing_is_answered_for_its_session() {
    let session = Some((Route::Session("s-1".to_owned()), r#""c-9""#.to_owned()));
    let cases: [Case; 6] = [
        ("the SDKs' request", &[], SESSION_PLAIN),
        (
            "no version header (rmcp assumes 2025-03-26)",
            &[("mcp-protocol-version", "")],
            SESSION_PLAIN,
        ),
        (
            "an older version",
            &[("mcp-protocol-version", "2025-06-18")],
            SESSION_PLAIN,
        ),
        (
            "a method header that agrees",
            &[("mcp-method", "tools/list")],
            SESSION_PLAIN,
        ),
        (
            "empty params",
            &[],
            r#"{"jsonrpc":"2.0","id":"c-9","method":"tools/list","params":{}}"#,
        ),
        (
            "a progress token",
            &[],
            r#"{"jsonrpc":"2.0","id":"c-9","method":"tools/list","params":{"_meta":{"progressToken":1}}}"#,
        ),
    ];
    for (what, pairs, body) in cases {
        assert_eq!(
            answerable(&session_headers(pairs), body.as_bytes()),
            session,
            "{what}"
        );
    }
}

#[test]
fn session_listings_that_are_not_the_plain_case_go_to_rmcp() {
    let cases: [Case; 7] = [
        (
            "the stateless version with a session",
            &[("mcp-protocol-version", "2026-07-28")],
            SESSION_PLAIN,
        ),
        (
            "a version rmcp does not know",
            &[("mcp-protocol-version", "2099-01-01")],
            SESSION_PLAIN,
        ),
        (
            "a method header that disagrees",
            &[("mcp-method", "tools/call")],
            SESSION_PLAIN,
        ),
        (
            "a name header",
            &[("mcp-name", "run_codex_prompt")],
            SESSION_PLAIN,
        ),
        (
            "a cursor",
            &[],
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"cursor":"x"}}"#,
        ),
        (
            "a per-request protocol version",
            &[],
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2025-11-25"}}}"#,
        ),
        (
            "another method",
            &[],
            r#"{"jsonrpc":"2.0","id":1,"method":"prompts/list"}"#,
        ),
    ];
    for (what, pairs, body) in cases {
        assert_eq!(
            answerable(&session_headers(pairs), body.as_bytes()),
            None,
            "{what}"
        );
    }
}

#[test]
fn the_answer_is_the_json_rpc_response_with_the_serialized_list() {
    let layer = layer(&ListToolsResult::with_all_items(vec![]));
    let answers = layer.answers.expect("a list serializes");
    let body: Value =
        serde_json::from_slice(&answers.stateless.for_id("\"x\"".into()).concat()).expect("JSON");
    assert_eq!(
        body,
        serde_json::json!({"jsonrpc": "2.0", "id": "x", "result": {"resultType": "complete", "ttlMs": 0, "cacheScope": "private", "tools": []}})
    );
    let body: Value =
        serde_json::from_slice(&answers.session.for_id("3".into()).concat()).expect("JSON");
    assert_eq!(
        body,
        serde_json::json!({"jsonrpc": "2.0", "id": 3, "result": {"tools": []}}),
        "a legacy session's result has no result type and no caching hints"
    );
}
