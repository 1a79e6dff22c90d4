//! Base64 (standard alphabet, padded) fields.

use std::borrow::Cow;
use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::Zeroizing;

/// Public bytes carried as base64 (ciphertexts, signatures, messages).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct B64(pub Vec<u8>);

impl fmt::Debug for B64 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "B64({} bytes)", self.0.len())
    }
}

impl Serialize for B64 {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&STANDARD.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for B64 {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)
            .map_err(|_| D::Error::custom("expected a base64 string"))?;
        STANDARD
            .decode(text)
            .map(Self)
            .map_err(|_| D::Error::custom("invalid base64 (standard alphabet, padded)"))
    }
}

/// Secret bytes carried as base64 (plaintext, data keys): zeroized on drop, `Debug`
/// elided.
#[derive(Default)]
pub struct B64Secret(pub Zeroizing<Vec<u8>>);

impl B64Secret {
    /// Wraps secret bytes.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// The bytes.
    pub fn expose_secret(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for B64Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "B64Secret([{} bytes elided])", self.0.len())
    }
}

impl Serialize for B64Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let encoded = Zeroizing::new(STANDARD.encode(self.0.as_slice()));
        serializer.serialize_str(&encoded)
    }
}

impl<'de> Deserialize<'de> for B64Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = Zeroizing::new(
            String::deserialize(deserializer)
                .map_err(|_| D::Error::custom("expected a base64 string"))?,
        );
        STANDARD
            .decode(text.as_bytes())
            .map(Self::new)
            .map_err(|_| D::Error::custom("invalid base64 (standard alphabet, padded)"))
    }
}

/// Both base64 fields are one schema: a string in the standard alphabet, padded
/// (`format: byte`, so OpenAPI tools generate and check base64).
fn base64_schema() -> Schema {
    json_schema!({
        "type": "string",
        "format": "byte",
        "description": "Base64, standard alphabet, padded."
    })
}

impl JsonSchema for B64 {
    fn schema_name() -> Cow<'static, str> {
        "Base64".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        base64_schema()
    }
}

impl JsonSchema for B64Secret {
    fn schema_name() -> Cow<'static, str> {
        "Base64".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        base64_schema()
    }
}
