//! Fields of an AWS JSON 1.1 body: strings, integers, base64 blobs, encryption
//! contexts; a missing or mistyped field is a `ValidationException`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use coffer_crypto::EncryptionContext;
use serde_json::{Map, Value};

use super::AwsError;

/// A parsed request body.
pub struct Body(Map<String, Value>);

impl Body {
    /// Parses the body (an empty body is `{}`).
    pub fn parse(bytes: &[u8]) -> Result<Self, AwsError> {
        if bytes.is_empty() {
            return Ok(Self(Map::new()));
        }
        match serde_json::from_slice(bytes) {
            Ok(Value::Object(map)) => Ok(Self(map)),
            _ => Err(AwsError::client(
                "SerializationException",
                coffer_api::ErrorCode::InvalidRequest,
                "the body is not a JSON object",
            )),
        }
    }

    /// True when the field is present and not null.
    pub fn opt_present(&self, name: &str) -> bool {
        self.0.get(name).is_some_and(|v| !v.is_null())
    }

    /// An optional string.
    pub fn opt_str(&self, name: &str) -> Result<Option<&str>, AwsError> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(AwsError::validation(format!("{name} must be a string"))),
        }
    }

    /// A required string.
    pub fn str(&self, name: &str) -> Result<&str, AwsError> {
        self.opt_str(name)?
            .ok_or_else(|| AwsError::validation(format!("{name} is required")))
    }

    /// An optional boolean.
    pub fn opt_bool(&self, name: &str) -> Result<Option<bool>, AwsError> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(AwsError::validation(format!("{name} must be a boolean"))),
        }
    }

    /// An optional list.
    pub fn opt_list(&self, name: &str) -> Result<Option<&[Value]>, AwsError> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(items)) => Ok(Some(items)),
            Some(_) => Err(AwsError::validation(format!("{name} must be a list"))),
        }
    }

    /// An optional list of strings.
    pub fn opt_strings(&self, name: &str) -> Result<Option<Vec<String>>, AwsError> {
        let Some(items) = self.opt_list(name)? else {
            return Ok(None);
        };
        items
            .iter()
            .map(|item| {
                item.as_str().map(str::to_owned).ok_or_else(|| {
                    AwsError::validation(format!("{name} must be a list of strings"))
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    /// An optional integer.
    pub fn opt_int(&self, name: &str) -> Result<Option<i64>, AwsError> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_i64()
                .map(Some)
                .ok_or_else(|| AwsError::validation(format!("{name} must be an integer"))),
        }
    }

    /// An optional nested structure (`Recipient`), as a body of its own.
    pub fn opt_object(&self, name: &str) -> Result<Option<Self>, AwsError> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(map)) => Ok(Some(Self(map.clone()))),
            Some(_) => Err(AwsError::validation(format!("{name} must be a structure"))),
        }
    }

    /// A required base64 blob.
    pub fn blob(&self, name: &str) -> Result<Vec<u8>, AwsError> {
        STANDARD
            .decode(self.str(name)?)
            .map_err(|_| AwsError::validation(format!("{name} is not valid base64")))
    }

    /// An encryption context (a string → string map), empty when absent.
    pub fn context(&self, name: &str) -> Result<EncryptionContext, AwsError> {
        let pairs = match self.0.get(name) {
            None | Some(Value::Null) => return Ok(EncryptionContext::default()),
            Some(Value::Object(map)) => map,
            Some(_) => return Err(AwsError::validation(format!("{name} must be a map"))),
        };
        let mut strings = Vec::with_capacity(pairs.len());
        for (k, v) in pairs {
            let v = v
                .as_str()
                .ok_or_else(|| AwsError::validation(format!("{name} values must be strings")))?;
            strings.push((k.as_str(), v));
        }
        EncryptionContext::from_pairs(strings)
            .map_err(|e| AwsError::validation(format!("{name}: {e}")))
    }
}

/// Bytes as an AWS blob.
pub fn b64(bytes: &[u8]) -> Value {
    Value::String(STANDARD.encode(bytes))
}
