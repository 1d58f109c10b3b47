//! The portable subset of JSON Schema every client reads the same way: what
//! `tools/list` advertises is rewritten into it once, at start-up.

use std::sync::Arc;

use rmcp::model::{JsonObject, Tool};

/// Rewrite a tool's schemas into the subset every client reads the same way
/// (MCP Inspector `--strict`, and clients that map a schema onto one type per field,
/// such as Gemini's function declarations):
///
/// - self-contained: every `$ref` into `$defs` is inlined and `$defs` is dropped;
/// - single-typed: `["string", "null"]` and `anyOf [X, null]` become X (such a field
///   is optional, and absent rather than null; serde still accepts `null` on input);
/// - enums inline: a `oneOf` of string `const`s becomes `{"type": "string", "enum": […]}`;
/// - no non-standard numeric `format` (`uint64`, `double`…; ajv warns about each), the
///   range they imply stays as `minimum`.
///
/// Bare `true` schemas are not rewritten here (their meaning is the type's to declare);
/// the schema tests refuse them.
pub fn portable(mut tool: Tool) -> Tool {
    tool.input_schema = Arc::new(portable_schema(&tool.input_schema));
    tool.output_schema = tool
        .output_schema
        .as_ref()
        .map(|s| Arc::new(portable_schema(s)));
    tool
}

/// References deeper than this are left alone (2Bot's types are not recursive).
const MAX_SCHEMA_DEPTH: usize = 32;

/// See [`portable`].
fn portable_schema(schema: &JsonObject) -> JsonObject {
    let mut root = schema.clone();
    let defs = match root.remove("$defs") {
        Some(serde_json::Value::Object(defs)) => defs,
        _ => JsonObject::new(),
    };
    let mut root = serde_json::Value::Object(root);
    simplify(&mut root, &defs, 0);
    match root {
        serde_json::Value::Object(map) => map,
        _ => schema.clone(),
    }
}

fn simplify(value: &mut serde_json::Value, defs: &JsonObject, depth: usize) {
    use serde_json::Value;
    if depth > MAX_SCHEMA_DEPTH {
        return;
    }
    let Value::Object(map) = value else {
        if let Value::Array(items) = value {
            items
                .iter_mut()
                .for_each(|item| simplify(item, defs, depth + 1));
        }
        return;
    };
    // Inline a local reference; the referring node's own keywords (its description,
    // default) win over the definition's.
    if let Some(target) = map
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix("#/$defs/"))
        .and_then(|name| defs.get(name))
        .and_then(Value::as_object)
        .cloned()
    {
        map.remove("$ref");
        for (key, v) in target {
            map.entry(key).or_insert(v);
        }
    }
    // `anyOf`/`oneOf` [X, {"type": "null"}] → X.
    for key in ["anyOf", "oneOf"] {
        let single = match map.get(key) {
            Some(Value::Array(branches)) => {
                let rest: Vec<&Value> = branches.iter().filter(|b| !is_null_type(b)).collect();
                (rest.len() == 1 && branches.len() == 2).then(|| rest[0].clone())
            }
            _ => None,
        };
        if let Some(Value::Object(branch)) = single {
            map.remove(key);
            for (k, v) in branch {
                map.entry(k).or_insert(v);
            }
        }
    }
    // The merge above may have brought in another reference.
    if map.contains_key("$ref") {
        simplify(value, defs, depth + 1);
        return;
    }
    // `"type": ["string", "null"]` → `"type": "string"`.
    if let Some(Value::Array(types)) = map.get("type") {
        let kept: Vec<Value> = types
            .iter()
            .filter(|t| t.as_str() != Some("null"))
            .cloned()
            .collect();
        if kept.len() == 1 {
            map.insert("type".into(), kept[0].clone());
        } else {
            map.insert("type".into(), Value::Array(kept));
        }
    }
    if map.get("default").is_some_and(Value::is_null) {
        map.remove("default");
    }
    // A `oneOf` of string constants (schemars' spelling of a documented enum) → `enum`.
    let constants: Option<Vec<Value>> = match map.get("oneOf") {
        Some(Value::Array(branches)) if !branches.is_empty() => branches
            .iter()
            .map(|b| b.get("const").filter(|c| c.is_string()).cloned())
            .collect(),
        _ => None,
    };
    if let Some(constants) = constants {
        map.remove("oneOf");
        map.insert("type".into(), "string".into());
        map.insert("enum".into(), Value::Array(constants));
    }
    if map
        .get("format")
        .and_then(Value::as_str)
        .is_some_and(is_numeric_format)
    {
        map.remove("format");
    }
    if depth > 0 {
        map.remove("$schema");
    }
    for (key, child) in map.iter_mut() {
        match (key.as_str(), child) {
            // Keywords whose values are data, not schemas.
            ("default" | "enum" | "const" | "examples" | "required", _) => {}
            // Maps from names to schemas: each value is a schema, the map is not.
            ("properties" | "patternProperties", Value::Object(named)) => named
                .values_mut()
                .for_each(|schema| simplify(schema, defs, depth + 1)),
            (_, child) => simplify(child, defs, depth + 1),
        }
    }
}

fn is_null_type(schema: &serde_json::Value) -> bool {
    schema.get("type").and_then(|t| t.as_str()) == Some("null")
}

fn is_numeric_format(format: &str) -> bool {
    matches!(
        format,
        "int"
            | "int8"
            | "int16"
            | "int32"
            | "int64"
            | "uint"
            | "uint8"
            | "uint16"
            | "uint32"
            | "uint64"
            | "float"
            | "double"
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::run::RunRequest;

    /// The rewrite into the portable subset, case by case.
    #[test]
    fn portable_schemas_inline_references_drop_null_branches_and_spell_enums_inline() {
        let schema = serde_json::json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "properties": {
                "mode": {"$ref": "#/$defs/Mode", "default": "a", "description": "field doc"},
                "policy": {"anyOf": [{"$ref": "#/$defs/Mode"}, {"type": "null"}], "default": null},
                "name": {"type": ["string", "null"], "default": null},
                "count": {"type": "integer", "format": "uint64", "minimum": 0},
                "type": {"type": "string"}
            },
            "$defs": {"Mode": {"description": "type doc", "oneOf": [
                {"const": "a", "type": "string", "description": "A"},
                {"const": "b", "type": "string", "description": "B"}
            ]}}
        });
        let serde_json::Value::Object(schema) = schema else {
            unreachable!()
        };
        let out = serde_json::Value::Object(portable_schema(&schema));
        let mode = serde_json::json!({"type": "string", "enum": ["a", "b"], "default": "a", "description": "field doc"});
        assert_eq!(out["properties"]["mode"], mode);
        assert_eq!(
            out["properties"]["policy"],
            serde_json::json!({"type": "string", "enum": ["a", "b"], "description": "type doc"})
        );
        assert_eq!(
            out["properties"]["name"],
            serde_json::json!({"type": "string"})
        );
        assert_eq!(
            out["properties"]["count"],
            serde_json::json!({"type": "integer", "minimum": 0})
        );
        assert_eq!(
            out["properties"]["type"],
            serde_json::json!({"type": "string"})
        );
        assert!(out.get("$defs").is_none(), "{out}");
        assert_eq!(
            out["$schema"],
            "https://json-schema.org/draft/2020-12/schema"
        );
    }

    /// Absent and `null` mean the same for every optional parameter.
    #[test]
    fn optional_parameters_accept_null_as_absent() {
        let request: RunRequest = serde_json::from_value(serde_json::json!({
            "prompt": "p", "cwd": null, "model": null, "profile": null,
            "approval_policy": null, "add_dirs": null, "timeout_sec": null, "thread_id": null,
            "reasoning_effort": null, "images": null, "output_schema": null, "review": null
        }))
        .unwrap();
        assert_eq!(request, RunRequest::new("p"));
    }
}
