//! Table and property tests of [`check`] against the parse into a `Value` it replaced.

#![allow(clippy::expect_used)]

use super::*;
use crate::http::json_body::Meta;
use crate::http::rescue::Rejection;

/// What a `Value` parse can be held to: the verdict, and the id and method read.
type Names = Result<(Option<String>, Option<String>), BodyError>;

fn names(body: &[u8]) -> Names {
    check(body).map(|read| (read.id, read.method))
}

#[test]
fn a_message_s_id_and_method_are_read_and_a_notification_has_no_id() {
    let read = |id: Option<&str>, method: Option<&str>| {
        Ok((id.map(str::to_owned), method.map(str::to_owned)))
    };
    assert_eq!(
        names(br#"{"jsonrpc":"2.0","id":7,"method":"tools/list"}"#),
        read(Some("7"), Some("tools/list"))
    );
    assert_eq!(
        names(br#"{"jsonrpc":"2.0","id":"7","method":"tools/list"}"#),
        read(Some("\"7\""), Some("tools/list")),
        "a string id and a number id are different ids"
    );
    assert_eq!(
        names(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#),
        read(None, Some("notifications/initialized"))
    );
    assert_eq!(
        names(br#"{"jsonrpc":"2.0","id":7,"result":{}}"#),
        read(None, None)
    );
}

/// The check as it was when it parsed into a `Value`: what [`check`] must agree with.
fn by_value(body: &[u8]) -> Names {
    if body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        return names(body);
    }
    match serde_json::from_slice::<Value>(body) {
        Err(e) => Err(BodyError::Parse(e.to_string())),
        Ok(value) if value.is_object() => {
            let method = value.get("method");
            Ok((
                method.and(value.get("id")).map(Value::to_string),
                method.and_then(Value::as_str).map(str::to_owned),
            ))
        }
        Ok(_) => names(b"0"),
    }
}

#[test]
fn the_check_without_a_tree_reads_and_refuses_exactly_what_a_value_parse_does() {
    let nested = |n: usize| format!("{}1{}", "{\"a\":".repeat(n), "}".repeat(n));
    let mut cases: Vec<String> = [
        r#"{"jsonrpc":"2.0","id":7,"method":"tools/list"}"#,
        r#"{"id":1,"id":"two","method":"a","method":"b"}"#,
        r#"{"method":7,"id":1}"#,
        r#"{"method":null,"id":1}"#,
        r#"{"m\u0065thod":"x","\u0069d":1.50}"#,
        r#"{"method":"x","id":1e2}"#,
        r#"{"method":"x","id":-0}"#,
        r#"{"method":"x","id":{"b":[1,{"c":null}],"a":true}}"#,
        r#"{"method":"x","id":1e400}"#,
        r#"{"method":"x","id":18446744073709551616}"#,
        r#"{"method":"x","params":{"\ud800":1}}"#,
        r#"{"method":"x","params":["\udc00"]}"#,
        r#"{"method":"x","params":"\ud83d\ude00"}"#,
        r#"{"method":"\ud800","id":1}"#,
        r#"{"jsonrpc":"\ud800","method":"x","id":1}"#,
        r#"{"jsonrpc":["\udc00"],"method":"x","id":1}"#,
        r#"{"method":"x","params":{"_meta":{"\ud800":1}}}"#,
        r#"{"method":"x","params":{"\ud800":1,"_meta":{}}}"#,
        r#"{"method":"x","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"\ud800"}}}"#,
        r#"{"method":"x","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":{"a":"\ud800"}}}}"#,
        r#"{"method":"x","params":{"_meta":{"io.modelcontextprotocol/clientCapabilities":{"\udc00":1}}}}"#,
        r#"{"method":"x","params":{"_meta":{"progressToken":["\ud800"]}}}"#,
        r#"{"method":"x","params":{"_meta":"\ud800"}}"#,
        r#"{"method":"x","params":{"_meta":[1,{"a":"\ud800"}]}}"#,
        r#"{"method":"x","params":[{"_meta":"\ud800"}]}"#,
        r#"{"method":"x","params":{"_meta":{"progressToken":1},"_meta":{"a":1e400}}}"#,
        r#"{"method":"x"} trailing"#,
        r#"{"method":"x",}"#,
        r#"{"a":01}"#,
        "\"\\ud800\"",
        "true",
        "-1.5",
        " {} ",
    ]
    .map(str::to_owned)
    .to_vec();
    cases.extend([126, 127, 128, 129].map(nested));
    for body in &cases {
        assert_eq!(names(body.as_bytes()), by_value(body.as_bytes()), "{body}");
    }
}

proptest::proptest! {
    #[test]
    fn any_body_built_of_json_pieces_gets_the_same_verdict_as_a_value_parse(
        pieces in proptest::collection::vec(proptest::sample::select(vec![
            "{", "}", "[", "]", ":", ",", " ", "\"id\"", "\"method\"", "\"x\"",
            "\"jsonrpc\"", "\"2.0\"", "\"params\"", "\"_meta\"", "\"progressToken\"",
            "\"io.modelcontextprotocol/protocolVersion\"",
            "\"io.modelcontextprotocol/clientCapabilities\"",
            "\"\\ud800\"", "\"\\u0061\"", "\"\\\"\"", "1", "-2.5e3", "1e999", "null",
            "true", "\"", "\\", "\u{e9}", "\u{0}",
        ]), 0..24),
        tail in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..4),
    ) {
        let mut body = pieces.concat().into_bytes();
        body.extend(tail);
        proptest::prop_assert_eq!(names(&body), by_value(&body));
    }
}

#[test]
fn only_a_single_json_object_passes() {
    let deep = format!("{}{}", "[".repeat(1000), "]".repeat(1000));
    let deep_object = format!("{}1{}", "{\"a\":".repeat(200), "}".repeat(200));
    let cases: Vec<(&[u8], Option<i64>)> = vec![
        (br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#, None),
        (b"  \n{\"jsonrpc\":\"2.0\",\"method\":\"x\"}", None),
        (br#"{"a":1,"a":2}"#, None),
        (b"", Some(-32700)),
        (b"{", Some(-32700)),
        (&[0xff, 0xfe, b'{'], Some(-32700)),
        (br#"{"p":"\ud800"}"#, Some(-32700)),
        (deep_object.as_bytes(), Some(-32700)),
        (deep.as_bytes(), Some(-32600)),
        (
            br#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#,
            Some(-32600),
        ),
        (b"42", Some(-32600)),
        (b"\"ping\"", Some(-32600)),
        (b"null", Some(-32600)),
    ];
    for (body, expect) in cases {
        assert_eq!(
            check(body)
                .err()
                .and_then(|e| Rejection::from(e).jsonrpc_code()),
            expect,
            "{:?}",
            String::from_utf8_lossy(body)
        );
    }
}

#[test]
fn the_version_the_metadata_and_what_is_unusual_about_params_are_read_in_the_same_pass() {
    let read = |body: &str| check(body.as_bytes()).expect("a message");
    let plain = read(
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{
            "io.modelcontextprotocol/protocolVersion":"2026-07-28",
            "io.modelcontextprotocol/clientCapabilities":{"sampling":{}},
            "progressToken":"p","io.modelcontextprotocol/clientInfo":{}}}}"#,
    );
    assert!(plain.jsonrpc_2_0 && !plain.repeated);
    assert_eq!(
        plain.params,
        Some(Params {
            unusual: false,
            meta: Some(Meta {
                version: Some(Some("2026-07-28".into())),
                capabilities: Some(serde_json::json!({"sampling": {}})),
                progress_token: true,
                other_keys: true,
                repeated: false,
            }),
        })
    );
    for (body, jsonrpc_2_0, repeated) in [
        (r#"{"jsonrpc":"2.0","method":"x"}"#, true, false),
        (r#"{"jsonrpc":"2\u002e0","method":"x"}"#, false, false),
        (r#"{"jsonrpc":2.0,"method":"x"}"#, false, false),
        (r#"{"jsonrpc":"1.0","method":"x"}"#, false, false),
        (r#"{"method":"x"}"#, false, false),
        (
            r#"{"jsonrpc":"2.0","jsonrpc":"2.0","method":"x"}"#,
            true,
            true,
        ),
        (r#"{"jsonrpc":"2.0","method":"x","method":"x"}"#, true, true),
        (
            r#"{"jsonrpc":"2.0","method":"x","id":1,"id":1}"#,
            true,
            true,
        ),
        (
            r#"{"jsonrpc":"2.0","method":"x","params":{},"params":{}}"#,
            true,
            true,
        ),
    ] {
        let got = read(body);
        assert_eq!(
            (got.jsonrpc_2_0, got.repeated),
            (jsonrpc_2_0, repeated),
            "{body}"
        );
    }
    let unusual = |params: &str| {
        read(&format!(r#"{{"method":"x","params":{params}}}"#))
            .params
            .expect("params")
            .unusual
    };
    for params in [
        "null",
        "[]",
        "7",
        "\"p\"",
        r#"{"cursor":"c"}"#,
        r#"{"_meta":null}"#,
        r#"{"_meta":[]}"#,
        r#"{"_meta":{},"_meta":{}}"#,
        r#"{"_m\u0065ta":{}}"#,
    ] {
        assert!(unusual(params), "{params}");
    }
    assert!(!unusual("{}") && !unusual(r#"{"_meta":{}}"#));
    let meta = |meta: &str| {
        read(&format!(r#"{{"method":"x","params":{{"_meta":{meta}}}}}"#))
            .params
            .and_then(|p| p.meta)
            .expect("_meta")
    };
    let escaped = meta(r#"{"io.modelcontextprotocol/protocol\u0056ersion":"2026-07-28"}"#);
    assert!(
        escaped.other_keys && escaped.version.is_none(),
        "a key with escapes is not the key"
    );
    let version = meta(r#"{"io.modelcontextprotocol/protocolVersion":"2026\u002d07-28"}"#);
    assert_eq!(
        version.version,
        Some(None),
        "a value with escapes is not read as text"
    );
    let twice = meta(r#"{"progressToken":1,"progressToken":2}"#);
    assert!(twice.repeated && twice.progress_token && !twice.other_keys);
}
