//! Table and property tests of [`check`] against the parse into a `Value` it replaced.

use super::*;
use crate::http::rescue::Rejection;

#[test]
fn a_message_s_id_and_method_are_read_and_a_notification_has_no_id() {
    let read = |id: Option<&str>, method: Option<&str>| {
        Ok(Read {
            id: id.map(str::to_owned),
            method: method.map(str::to_owned),
        })
    };
    assert_eq!(
        check(br#"{"jsonrpc":"2.0","id":7,"method":"tools/list"}"#),
        read(Some("7"), Some("tools/list"))
    );
    assert_eq!(
        check(br#"{"jsonrpc":"2.0","id":"7","method":"tools/list"}"#),
        read(Some("\"7\""), Some("tools/list")),
        "a string id and a number id are different ids"
    );
    assert_eq!(
        check(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#),
        read(None, Some("notifications/initialized"))
    );
    assert_eq!(
        check(br#"{"jsonrpc":"2.0","id":7,"result":{}}"#),
        read(None, None)
    );
}

/// The check as it was when it parsed into a `Value`: what [`check`] must agree with.
fn by_value(body: &[u8]) -> Result<Read, BodyError> {
    if body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        return check(body);
    }
    match serde_json::from_slice::<Value>(body) {
        Err(e) => Err(BodyError::Parse(e.to_string())),
        Ok(value) if value.is_object() => {
            let method = value.get("method");
            Ok(Read {
                id: method.and(value.get("id")).map(Value::to_string),
                method: method.and_then(Value::as_str).map(str::to_owned),
            })
        }
        Ok(_) => check(b"0"),
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
        assert_eq!(check(body.as_bytes()), by_value(body.as_bytes()), "{body}");
    }
}

proptest::proptest! {
    #[test]
    fn any_body_built_of_json_pieces_gets_the_same_verdict_as_a_value_parse(
        pieces in proptest::collection::vec(proptest::sample::select(vec![
            "{", "}", "[", "]", ":", ",", " ", "\"id\"", "\"method\"", "\"x\"",
            "\"\\ud800\"", "\"\\u0061\"", "\"\\\"\"", "1", "-2.5e3", "1e999", "null",
            "true", "\"", "\\", "\u{e9}", "\u{0}",
        ]), 0..24),
        tail in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..4),
    ) {
        let mut body = pieces.concat().into_bytes();
        body.extend(tail);
        proptest::prop_assert_eq!(check(&body), by_value(&body));
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
