//! The cryptographic operations and their batch form.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::b64::{B64, B64Secret};
use crate::error::ErrorDetail;

/// An encryption context: string pairs bound into the ciphertext.
pub type Context = BTreeMap<String, String>;

/// `POST /v1/kms/wrap`.
#[derive(Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WrapRequest {
    /// Key id or `alias/NAME`.
    pub key_id: String,
    /// Bytes to encrypt (at most 4096).
    pub plaintext: B64Secret,
    /// Encryption context.
    #[serde(default, skip_serializing_if = "Context::is_empty")]
    pub context: Context,
    /// Register the plaintext (then a data key of 1 to 1024 bytes) as a tracked data
    /// key under this id, as `datakey` with `track_id` registers a generated one, so
    /// rotations rewrap it. Repeating the same import answers the stored envelope to a
    /// token that may also `unwrap` the key; any other reuse of the id is `conflict`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub track_id: Option<String>,
}

/// Answer of wrap, rewrap and (with `plaintext`) datakey.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
pub struct CiphertextResponse {
    /// The envelope.
    pub ciphertext: B64,
    /// Key id.
    pub key_id: String,
    /// Version that sealed it.
    pub key_version: u32,
}

/// `POST /v1/kms/unwrap`.
#[derive(Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UnwrapRequest {
    /// The envelope.
    pub ciphertext: B64,
    /// The context it was sealed with.
    #[serde(default, skip_serializing_if = "Context::is_empty")]
    pub context: Context,
    /// An attestation document (base64), for keys whose attestation policy asks for
    /// one for this operation (docs/attestation.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attestation: Option<B64>,
}

/// Answer of unwrap.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct UnwrapResponse {
    /// The plaintext (empty when it went to a recipient instead).
    pub plaintext: B64Secret,
    /// Key id.
    pub key_id: String,
    /// Version that sealed it.
    pub key_version: u32,
    /// The plaintext encrypted to the public key in the request's attestation document,
    /// when it carried one (then no plaintext is returned; docs/attestation.md §4.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ciphertext_for_recipient: Option<B64>,
}

/// `POST /v1/kms/datakey`.
#[derive(Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DatakeyRequest {
    /// Key id or `alias/NAME`.
    pub key_id: String,
    /// Data key length, 1–64 (default 32).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u32>,
    /// Encryption context.
    #[serde(default, skip_serializing_if = "Context::is_empty")]
    pub context: Context,
    /// Return the plaintext data key too (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_plaintext: Option<bool>,
    /// Register the wrapped data key under this id (the caller's name for it, unique in
    /// the tenant), so rotations rewrap it (seed 000's "cipher rows").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub track_id: Option<String>,
    /// An attestation document (base64), for keys whose attestation policy asks for
    /// one for this operation (docs/attestation.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attestation: Option<B64>,
}

/// Answer of datakey.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct DatakeyResponse {
    /// The data key, unless `include_plaintext` was false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plaintext: Option<B64Secret>,
    /// The data key wrapped.
    pub ciphertext: B64,
    /// Key id.
    pub key_id: String,
    /// Version.
    pub key_version: u32,
    /// The plaintext encrypted to the public key in the request's attestation document,
    /// when it carried one (then no plaintext is returned; docs/attestation.md §4.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ciphertext_for_recipient: Option<B64>,
}

/// `POST /v1/kms/rewrap`.
#[derive(Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RewrapRequest {
    /// The envelope to move.
    pub ciphertext: B64,
    /// Its context.
    #[serde(default, skip_serializing_if = "Context::is_empty")]
    pub context: Context,
    /// Destination key (default: the same key, its primary version).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// Destination context (default: the same context).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_context: Option<Context>,
}

/// `POST /v1/kms/sign`: exactly one of `message`, `digest` (by the algorithm's hash;
/// ECDSA and RSA only) or `mu` (ML-DSA's 64-byte μ, computed by the caller).
#[derive(Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SignRequest {
    /// Key id or `alias/NAME`.
    pub key_id: String,
    /// The message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<B64>,
    /// A digest of the message by the algorithm's hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<B64>,
    /// ML-DSA's μ (FIPS 204 external μ), 64 bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mu: Option<B64>,
    /// Signature algorithm, for keys that offer several (RSA: `rsa-pss-sha256` by
    /// default, `rsa-pss-sha384`, `rsa-pss-sha512`, `rsa-pkcs1-sha256`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algorithm: Option<String>,
    /// An attestation document (base64), for keys whose attestation policy asks for
    /// one for this operation (docs/attestation.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attestation: Option<B64>,
}

/// Answer of sign.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
pub struct SignResponse {
    /// The signature.
    pub signature: B64,
    /// Key id.
    pub key_id: String,
    /// Version that signed.
    pub key_version: u32,
    /// Algorithm, e.g. `ed25519`.
    pub algorithm: String,
}

/// `POST /v1/kms/verify`.
#[derive(Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    /// Key id or `alias/NAME`.
    pub key_id: String,
    /// Version that signed (default: the primary).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_version: Option<u32>,
    /// The message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<B64>,
    /// Or its digest by the algorithm's hash (ECDSA and RSA only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<B64>,
    /// Or ML-DSA's μ, 64 bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mu: Option<B64>,
    /// Signature algorithm, as for sign (default: the spec's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algorithm: Option<String>,
    /// The signature.
    pub signature: B64,
}

/// `POST /v1/kms/encrypt`: RSA-OAEP encryption with an RSA key of purpose encrypt.
#[derive(Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EncryptRequest {
    /// Key id or `alias/NAME`.
    pub key_id: String,
    /// Version to encrypt to (default: the primary).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_version: Option<u32>,
    /// `rsa-oaep-sha256` or `rsa-oaep-sha1`.
    pub algorithm: String,
    /// Bytes to encrypt (at most k − 2·hLen − 2 bytes: 190 for RSA-2048 with SHA-256).
    pub plaintext: B64Secret,
}

/// `POST /v1/kms/decrypt`: RSA-OAEP decryption with an RSA key of purpose encrypt.
#[derive(Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DecryptRequest {
    /// Key id or `alias/NAME`.
    pub key_id: String,
    /// Version that encrypted (default: the primary; the ciphertext does not say).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_version: Option<u32>,
    /// `rsa-oaep-sha256` or `rsa-oaep-sha1`, as encrypted.
    pub algorithm: String,
    /// The OAEP ciphertext.
    pub ciphertext: B64,
}

/// Answer of verify and verify-mac.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
pub struct VerifyResponse {
    /// True when the signature is valid.
    pub valid: bool,
    /// Key id.
    pub key_id: String,
    /// Version checked.
    pub key_version: u32,
}

/// `POST /v1/kms/mac`.
#[derive(Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MacRequest {
    /// Key id or `alias/NAME`.
    pub key_id: String,
    /// The message.
    pub message: B64,
    /// An attestation document (base64), for keys whose attestation policy asks for
    /// one for this operation (docs/attestation.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attestation: Option<B64>,
}

/// Answer of mac.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
pub struct MacResponse {
    /// The HMAC-SHA256 tag.
    pub mac: B64,
    /// Key id.
    pub key_id: String,
    /// Version.
    pub key_version: u32,
}

/// `POST /v1/kms/verify-mac`.
#[derive(Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyMacRequest {
    /// Key id or `alias/NAME`.
    pub key_id: String,
    /// Version (default: the primary).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_version: Option<u32>,
    /// The message.
    pub message: B64,
    /// The tag.
    pub mac: B64,
}

/// The batch form of a hot operation: `{"items": [...]}`.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "{T}Batch")]
pub struct Batch<T> {
    /// The requests, at most 256.
    pub items: Vec<T>,
}

/// One item's outcome in a batch answer.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "{T}Outcome")]
#[serde(untagged)]
pub enum ItemResult<T> {
    /// It failed.
    Err {
        /// Why.
        error: ErrorDetail,
    },
    /// It succeeded.
    Ok(T),
}

/// Largest batch accepted.
pub const MAX_BATCH_ITEMS: usize = 256;
