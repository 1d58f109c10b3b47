//! Which requests the cached listing answers: only the plain stateless case.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

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
        Some("7".to_owned())
    );
    let string_id = PLAIN.replace("\"id\":7", "\"id\":\"a\\\"b\"");
    assert_eq!(
        answerable(&headers(&[]), string_id.as_bytes()),
        Some(r#""a\"b""#.to_owned()),
        "a string id comes back as JSON text, escapes kept"
    );
}

#[test]
fn headers_that_are_not_the_plain_case_go_to_rmcp() {
    let cases: [(&str, &[(&'static str, &'static str)]); 11] = [
        (
            "a body not declared JSON",
            &[("content-type", "text/plain")],
        ),
        ("no content type", &[("content-type", "")]),
        ("no method header", &[("mcp-method", "")]),
        ("a session", &[("mcp-session-id", "abc")]),
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
    ];
    for (what, body) in cases {
        assert_eq!(answerable(&headers(&[]), body.as_bytes()), None, "{what}");
    }
}

#[test]
fn the_answer_is_the_json_rpc_response_with_the_serialized_list() {
    let layer = ListingLayer::new(&ListToolsResult::with_all_items(vec![]));
    let answer = layer.answer.expect("a list serializes");
    let body: Value = serde_json::from_slice(&answer.for_id("\"x\"")).expect("JSON");
    assert_eq!(
        body,
        serde_json::json!({"jsonrpc": "2.0", "id": "x", "result": {"resultType": "complete", "ttlMs": 0, "cacheScope": "private", "tools": []}})
    );
}
