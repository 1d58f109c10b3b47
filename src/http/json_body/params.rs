//! What a message's `params` carry that the layers inside decide on: the MCP request
//! metadata (`_meta`). Read in the JSON body check's one pass, so the listing layer
//! decides without parsing the body again, and validated exactly as [`Valid`] does:
//! recording a fact never changes a verdict.

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use super::verdict::Valid;

const VERSION_KEY: &str = "io.modelcontextprotocol/protocolVersion";
const CAPABILITIES_KEY: &str = "io.modelcontextprotocol/clientCapabilities";
const PROGRESS_KEY: &str = "progressToken";

/// A message's `params`, when it has them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Params {
    /// Anything but an object of `_meta` alone (another key, a key written twice, a
    /// key written with escapes, `params` or `_meta` not an object): a case left to rmcp.
    pub unusual: bool,
    /// `_meta`, when it is there.
    pub meta: Option<Meta>,
}

/// The request metadata (`params._meta`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Meta {
    /// The protocol version, when the key is there: `Some(text)` for a string written
    /// without escapes, `None` for anything else.
    pub version: Option<Option<String>>,
    /// The client's capabilities, when the key is there.
    pub capabilities: Option<Value>,
    /// A progress token is there.
    pub progress_token: bool,
    /// A key besides those three, or one written with escapes.
    pub other_keys: bool,
    /// A key written twice.
    pub repeated: bool,
}

impl<'de> Deserialize<'de> for Params {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ParamsVisitor)
    }
}

/// A key, or a value whose text is a fact, as written: `Some` for a string without
/// escapes (borrowed from the body), `None` for any other value (still validated whole).
pub(super) struct Plain<'de>(pub(super) Option<&'de str>);

impl<'de> Deserialize<'de> for Plain<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(PlainVisitor)
    }
}

struct PlainVisitor;

/// Every visit a value that is not what a visitor records gets: validated as [`Valid`]
/// validates it, and recorded as `$other`.
macro_rules! validate_the_rest {
    ($value:ty, $other:expr) => {
        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<$value, A::Error> {
            Valid.visit_seq(seq).map(|_| $other)
        }
        fn visit_bool<E>(self, _: bool) -> Result<$value, E> {
            Ok($other)
        }
        fn visit_i64<E>(self, _: i64) -> Result<$value, E> {
            Ok($other)
        }
        fn visit_u64<E>(self, _: u64) -> Result<$value, E> {
            Ok($other)
        }
        fn visit_f64<E>(self, _: f64) -> Result<$value, E> {
            Ok($other)
        }
        fn visit_unit<E>(self) -> Result<$value, E> {
            Ok($other)
        }
    };
}

impl<'de> Visitor<'de> for PlainVisitor {
    type Value = Plain<'de>;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_borrowed_str<E>(self, text: &'de str) -> Result<Plain<'de>, E> {
        Ok(Plain(Some(text)))
    }
    // Only a string with escapes is handed over decoded, not borrowed.
    fn visit_str<E>(self, _: &str) -> Result<Plain<'de>, E> {
        Ok(Plain(None))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Plain<'de>, A::Error> {
        Valid.visit_map(map).map(|_| Plain(None))
    }
    validate_the_rest!(Plain<'de>, Plain(None));
}

struct ParamsVisitor;

impl<'de> Visitor<'de> for ParamsVisitor {
    type Value = Params;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Params, A::Error> {
        let mut params = Params::default();
        while let Some(Plain(key)) = map.next_key::<Plain<'de>>()? {
            if key == Some("_meta") {
                params.unusual |= params.meta.is_some();
                match map.next_value::<MetaValue>()? {
                    MetaValue(Some(meta)) => params.meta = Some(meta),
                    MetaValue(None) => params.unusual = true,
                }
            } else {
                params.unusual = true;
                map.next_value::<Valid>()?;
            }
        }
        Ok(params)
    }
    fn visit_str<E>(self, _: &str) -> Result<Params, E> {
        Ok(unusual())
    }
    validate_the_rest!(Params, unusual());
}

fn unusual() -> Params {
    Params {
        unusual: true,
        meta: None,
    }
}

/// `_meta`'s value: `Some` when it is an object.
struct MetaValue(Option<Meta>);

impl<'de> Deserialize<'de> for MetaValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(MetaVisitor)
    }
}

struct MetaVisitor;

impl<'de> Visitor<'de> for MetaVisitor {
    type Value = MetaValue;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<MetaValue, A::Error> {
        let mut meta = Meta::default();
        while let Some(Plain(key)) = map.next_key::<Plain<'de>>()? {
            match key {
                Some(VERSION_KEY) => {
                    meta.repeated |= meta.version.is_some();
                    meta.version = Some(map.next_value::<Plain<'de>>()?.0.map(str::to_owned));
                }
                Some(CAPABILITIES_KEY) => {
                    meta.repeated |= meta.capabilities.is_some();
                    meta.capabilities = Some(map.next_value::<Value>()?);
                }
                Some(PROGRESS_KEY) => {
                    meta.repeated |= meta.progress_token;
                    meta.progress_token = true;
                    map.next_value::<Valid>()?;
                }
                _ => {
                    meta.other_keys = true;
                    map.next_value::<Valid>()?;
                }
            }
        }
        Ok(MetaValue(Some(meta)))
    }
    fn visit_str<E>(self, _: &str) -> Result<MetaValue, E> {
        Ok(MetaValue(None))
    }
    validate_the_rest!(MetaValue, MetaValue(None));
}
