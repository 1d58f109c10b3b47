//! Tool arguments parsed with errors a caller can act on.
//!
//! serde speaks Rust: `timeout_sec: "10"` fails with `invalid type: string "10", expected
//! i64`, and does not say which argument it means. The caller is a person or a model
//! reading JSON, so a type error here names the argument and the JSON it wanted:
//! `timeout_sec must be an integer (a whole number of seconds), not the string "10"`.

use serde::de::DeserializeOwned;

/// A tool's arguments that did not parse: the tool, and what the caller must change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid arguments for {tool}: {explained}")]
pub struct InvalidArguments {
    /// The tool called.
    pub tool: String,
    /// The argument and what it must be, in the caller's words ([`explain`]).
    pub explained: String,
}

/// `args` as a `T`, or one line naming the tool, the argument and what it must be.
pub fn parse<T: DeserializeOwned>(
    tool: &str,
    args: Option<rmcp::model::JsonObject>,
) -> Result<T, InvalidArguments> {
    let value = serde_json::Value::Object(args.unwrap_or_default());
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        InvalidArguments {
            tool: tool.to_owned(),
            explained: explain(&path, &e.into_inner().to_string()),
        }
    })
}

/// serde's message about the argument at `path` (`.` when it is the whole object), in
/// the caller's words. Messages that already speak JSON (a missing or unknown field, an
/// unknown value) pass through.
pub fn explain(path: &str, message: &str) -> String {
    let Some(rest) = message
        .strip_prefix("invalid type: ")
        .or_else(|| message.strip_prefix("invalid value: "))
    else {
        return message.to_owned();
    };
    let Some((found, expected)) = rest.split_once(", expected ") else {
        return message.to_owned();
    };
    let field = path.rsplit('.').next().unwrap_or(path);
    let wanted = wanted(field, expected);
    let found = found_json(found);
    if path == "." || path.is_empty() {
        format!("the arguments must be {wanted}, not {found}")
    } else {
        format!("{path} must be {wanted}, not {found}")
    }
}

/// What serde expected (a Rust type or serde's own word), as JSON.
fn wanted(field: &str, expected: &str) -> String {
    let integer = matches!(
        expected,
        "i8" | "i16"
            | "i32"
            | "i64"
            | "i128"
            | "isize"
            | "u8"
            | "u16"
            | "u32"
            | "u64"
            | "u128"
            | "usize"
    );
    let seconds = field.ends_with("_sec") || field.ends_with("_secs");
    match expected {
        _ if integer && seconds => "an integer (a whole number of seconds)".to_owned(),
        _ if integer => "an integer".to_owned(),
        "f32" | "f64" => "a number".to_owned(),
        "a boolean" => "true or false".to_owned(),
        "a string" | "a borrowed string" | "a character" => "a string".to_owned(),
        // Every list argument 2Bot takes is a list of strings (add_dirs, images).
        "a sequence" => "a list of strings".to_owned(),
        "a map" => "an object".to_owned(),
        e if e.starts_with("struct ") => "an object".to_owned(),
        "variant identifier" => "one of the values its schema lists".to_owned(),
        other => other.to_owned(),
    }
}

/// What serde found, said in JSON.
fn found_json(found: &str) -> String {
    if let Some(s) = found.strip_prefix("string ") {
        return format!("the string {s}");
    }
    let ticked = |prefix: &str| {
        found
            .strip_prefix(prefix)
            .map(|v| v.trim_matches('`').to_owned())
    };
    if let Some(n) = ticked("integer ").or_else(|| ticked("floating point ")) {
        return format!("the number {n}");
    }
    if let Some(b) = ticked("boolean ") {
        return b;
    }
    match found {
        "sequence" => "a list".to_owned(),
        "map" => "an object".to_owned(),
        "unit value" | "null" => "null".to_owned(),
        other => other.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_errors_say_what_json_was_wanted_and_found() {
        let cases = [
            (
                "timeout_sec",
                r#"invalid type: string "10", expected i64"#,
                r#"timeout_sec must be an integer (a whole number of seconds), not the string "10""#,
            ),
            (
                "wait_sec",
                "invalid type: floating point `1.5`, expected i64",
                "wait_sec must be an integer (a whole number of seconds), not the number 1.5",
            ),
            (
                "count",
                "invalid type: boolean `true`, expected u32",
                "count must be an integer, not true",
            ),
            (
                "allow_edits",
                r#"invalid type: string "yes", expected a boolean"#,
                r#"allow_edits must be true or false, not the string "yes""#,
            ),
            (
                "prompt",
                "invalid type: integer `5`, expected a string",
                "prompt must be a string, not the number 5",
            ),
            (
                "add_dirs",
                r#"invalid type: string "/x", expected a sequence"#,
                r#"add_dirs must be a list of strings, not the string "/x""#,
            ),
            (
                "add_dirs[1]",
                "invalid type: integer `3`, expected a string",
                "add_dirs[1] must be a string, not the number 3",
            ),
            (
                "review",
                "invalid type: sequence, expected struct ReviewRequest",
                "review must be an object, not a list",
            ),
            (
                "output_schema",
                "invalid type: null, expected a map",
                "output_schema must be an object, not null",
            ),
            (
                ".",
                "invalid type: sequence, expected struct RunRequest",
                "the arguments must be an object, not a list",
            ),
        ];
        for (path, serde, want) in cases {
            assert_eq!(explain(path, serde), want, "{path}: {serde}");
        }
    }

    #[test]
    fn messages_that_already_speak_json_pass_through() {
        for m in [
            "missing field `prompt`",
            "unknown field `promt`, expected one of `prompt`, `cwd`",
            "unknown variant `write`, expected one of `read-only`, `workspace-write`",
        ] {
            assert_eq!(explain("sandbox", m), m);
        }
    }

    #[test]
    fn parsing_names_the_argument_in_its_place() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Args {
            add_dirs: Vec<String>,
        }
        let args = serde_json::json!({"add_dirs": ["a", 3]});
        let err = parse::<Args>("t", args.as_object().cloned()).err();
        assert_eq!(
            err.map(|e| e.to_string()).as_deref(),
            Some("invalid arguments for t: add_dirs[1] must be a string, not the number 3")
        );
    }
}
