//! The final message of a run with an output schema, read back as JSON.
//!
//! Codex passes the caller's schema to the model (`text.format` of the Responses API)
//! and returns the final message as text; 2Bot parses it so the caller gets the object
//! itself (`output`), or a warning saying why not. It does not validate against the
//! schema: the model endpoint enforces it, and a second validator could disagree.

use serde_json::{Map, Value};

/// Why the final message gives no `output`; the caller reads it in a warning.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// The run ended before Codex said anything final.
    #[error("the run has no final message to read as JSON")]
    NoMessage,
    /// Valid JSON, but `output` is an object (a schema's root is one).
    #[error("the final message is JSON but not an object ({0})")]
    NotObject(&'static str),
    /// Prose, or JSON cut short.
    #[error("the final message is not JSON ({0})")]
    NotJson(#[from] serde_json::Error),
}

/// The final message as a JSON object, or why it is not one.
pub fn structured_output(final_message: Option<&str>) -> Result<Map<String, Value>, OutputError> {
    let text = final_message.ok_or(OutputError::NoMessage)?;
    match serde_json::from_str::<Value>(text.trim())? {
        Value::Object(map) => Ok(map),
        other => Err(OutputError::NotObject(kind(&other))),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn an_object_parses_and_anything_else_says_why_not() {
        let ok = structured_output(Some(" {\"answer\": 42}\n")).unwrap();
        assert_eq!(ok["answer"], 42);
        let cases = [
            (None, "no final message"),
            (Some("[1]"), "not an object (an array)"),
            (Some("\"x\""), "not an object (a string)"),
            (Some("the answer is 42"), "not JSON ("),
        ];
        for (message, why) in cases {
            let err = structured_output(message).unwrap_err().to_string();
            assert!(err.contains(why), "{message:?}: {err}");
        }
    }
}
