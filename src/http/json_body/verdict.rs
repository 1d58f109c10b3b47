//! The JSON body layer's decision: is a body one JSON-RPC message object, and what
//! does it name? A pure function of the bytes, read in one pass that checks the whole
//! body as a `serde_json::Value` parse would and keeps only the id, the method and the
//! few facts the layers inside decide on (`params`), so none of them parses it again.

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use super::params::{Params, Plain};

/// Why a body is not a JSON-RPC message 2Bot can serve.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// Not JSON at all (bad UTF-8, lone surrogates, too deep, truncated).
    #[error("Parse error: {0}")]
    Parse(String),
    /// JSON, but not one JSON-RPC message object (a batch array, a bare value).
    #[error("Invalid Request: {0}")]
    Invalid(&'static str),
    /// A request whose id another request of the same session still uses.
    #[error(
        "Invalid Request: request id {0} is already in flight in this session; ids must be unique among requests in flight"
    )]
    IdInFlight(String),
}

/// What this layer read of a POST's message, left in the request's extensions so that
/// the layers inside decide without parsing the body again.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Read {
    /// The request's id as JSON text (`None` for notifications and responses).
    pub id: Option<String>,
    /// The method named, when it is a string (`None` for responses).
    pub method: Option<String>,
    /// `"jsonrpc": "2.0"`, written without escapes.
    pub jsonrpc_2_0: bool,
    /// `params`, when the message has them.
    pub params: Option<Params>,
    /// `jsonrpc`, `id`, `method` or `params` written twice (the last one counts above).
    pub repeated: bool,
}

/// The decision: is `body` a single JSON object? If so, what it names.
pub fn check(body: &[u8]) -> Result<Read, BodyError> {
    let not_one_object = BodyError::Invalid("the body must be one JSON-RPC message object");
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        // Checked before parsing, so even a huge or deep batch costs nothing.
        Some(b'[') => Err(BodyError::Invalid(
            "JSON-RPC batches are not supported (MCP 2025-06-18 removed batching); send one message per request",
        )),
        Some(b'{') => match serde_json::from_slice::<Object>(body) {
            Err(e) => Err(BodyError::Parse(e.to_string())),
            Ok(Object {
                id,
                method,
                jsonrpc_2_0,
                params,
                repeated,
            }) => Ok(Read {
                id: method.as_ref().and(id.as_ref()).map(Value::to_string),
                method: method.as_ref().and_then(Value::as_str).map(str::to_owned),
                jsonrpc_2_0,
                params,
                repeated,
            }),
        },
        // Not an object: still parsed whole, so a broken body is a parse error.
        _ => match serde_json::from_slice::<Valid>(body) {
            Err(e) => Err(BodyError::Parse(e.to_string())),
            Ok(Valid) => Err(not_one_object),
        },
    }
}

/// An object parsed as [`Valid`] does, keeping only its `id` and `method` (the last of
/// each, as a `Value` map would) and the facts [`Read`] names.
#[derive(Default)]
struct Object {
    id: Option<Value>,
    method: Option<Value>,
    jsonrpc_2_0: bool,
    params: Option<Params>,
    repeated: bool,
}

impl<'de> Deserialize<'de> for Object {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor;
        impl<'de> Visitor<'de> for ObjectVisitor {
            type Value = Object;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Object, A::Error> {
                let mut object = Object::default();
                let mut jsonrpc = false;
                while let Some(key) = map.next_key::<Key>()? {
                    match key {
                        Key::Id => {
                            object.repeated |= object.id.is_some();
                            object.id = Some(map.next_value()?);
                        }
                        Key::Method => {
                            object.repeated |= object.method.is_some();
                            object.method = Some(map.next_value()?);
                        }
                        Key::JsonRpc => {
                            object.repeated |= jsonrpc;
                            jsonrpc = true;
                            object.jsonrpc_2_0 = map.next_value::<Plain<'de>>()?.0 == Some("2.0");
                        }
                        Key::Params => {
                            object.repeated |= object.params.is_some();
                            object.params = Some(map.next_value()?);
                        }
                        Key::Other => {
                            map.next_value::<Valid>()?;
                        }
                    }
                }
                Ok(object)
            }
        }
        deserializer.deserialize_map(ObjectVisitor)
    }
}

/// A top-level key: those this layer reads, or any other (read as a string, so its
/// escapes are checked too).
enum Key {
    Id,
    Method,
    JsonRpc,
    Params,
    Other,
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object key")
            }
            fn visit_str<E>(self, key: &str) -> Result<Key, E> {
                Ok(match key {
                    "id" => Key::Id,
                    "method" => Key::Method,
                    "jsonrpc" => Key::JsonRpc,
                    "params" => Key::Params,
                    _ => Key::Other,
                })
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// Any JSON value, checked as fully as parsing it into a `Value` would check it (every
/// string's escapes decoded, so a lone surrogate is refused; serde_json's depth limit)
/// but kept nowhere: no tree is built only to be dropped. `IgnoredAny` would be cheaper
/// still, but it skips strings without decoding them, and rmcp then fails on what it let by.
pub(super) struct Valid;

impl<'de> Deserialize<'de> for Valid {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(Valid)
    }
}

impl<'de> Visitor<'de> for Valid {
    type Value = Valid;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Valid, A::Error> {
        while map.next_entry::<Valid, Valid>()?.is_some() {}
        Ok(Valid)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Valid, A::Error> {
        while seq.next_element::<Valid>()?.is_some() {}
        Ok(Valid)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Valid, E> {
        Ok(Valid)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Valid, E> {
        Ok(Valid)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Valid, E> {
        Ok(Valid)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Valid, E> {
        Ok(Valid)
    }
    fn visit_str<E>(self, _: &str) -> Result<Valid, E> {
        Ok(Valid)
    }
    fn visit_unit<E>(self) -> Result<Valid, E> {
        Ok(Valid)
    }
}

#[cfg(test)]
#[path = "verdict_tests.rs"]
mod tests;
