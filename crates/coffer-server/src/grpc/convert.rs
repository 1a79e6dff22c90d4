//! proto messages ↔ the native API's wire types, field for field, so a call reaches the
//! native handler's function with the request that route would have parsed.
//!
//! Secrets move without a copy left behind: out of a proto message with
//! `std::mem::take` (its own `Drop` then wipes nothing), into a [`B64Secret`], which
//! wipes itself.

use coffer_api::crypto as api;
use coffer_api::{B64, B64Secret};

use super::proto;

fn b64(bytes: Option<Vec<u8>>) -> Option<B64> {
    bytes.map(B64)
}

impl From<proto::WrapRequest> for api::WrapRequest {
    fn from(mut r: proto::WrapRequest) -> Self {
        Self {
            key_id: std::mem::take(&mut r.key_id),
            plaintext: B64Secret::new(std::mem::take(&mut r.plaintext)),
            context: std::mem::take(&mut r.context),
        }
    }
}

impl From<proto::UnwrapRequest> for api::UnwrapRequest {
    fn from(r: proto::UnwrapRequest) -> Self {
        Self {
            ciphertext: B64(r.ciphertext),
            context: r.context,
            attestation: b64(r.attestation),
        }
    }
}

impl From<proto::DatakeyRequest> for api::DatakeyRequest {
    fn from(r: proto::DatakeyRequest) -> Self {
        Self {
            key_id: r.key_id,
            bytes: r.bytes,
            context: r.context,
            include_plaintext: r.include_plaintext,
            track_id: r.track_id,
            attestation: b64(r.attestation),
        }
    }
}

impl From<proto::RewrapRequest> for api::RewrapRequest {
    fn from(r: proto::RewrapRequest) -> Self {
        Self {
            ciphertext: B64(r.ciphertext),
            context: r.context,
            key_id: r.key_id,
            destination_context: r.destination_context.map(|c| c.pairs),
        }
    }
}

/// `(message, digest, mu)` from a `oneof input`; none set is refused downstream, as a
/// JSON request with none of the three is.
type SignInput = (Option<B64>, Option<B64>, Option<B64>);

fn sign_input(input: Option<proto::sign_request::Input>) -> SignInput {
    use proto::sign_request::Input;
    match input {
        Some(Input::Message(m)) => (Some(B64(m)), None, None),
        Some(Input::Digest(d)) => (None, Some(B64(d)), None),
        Some(Input::Mu(mu)) => (None, None, Some(B64(mu))),
        None => (None, None, None),
    }
}

fn verify_input(input: Option<proto::verify_request::Input>) -> SignInput {
    use proto::verify_request::Input;
    match input {
        Some(Input::Message(m)) => (Some(B64(m)), None, None),
        Some(Input::Digest(d)) => (None, Some(B64(d)), None),
        Some(Input::Mu(mu)) => (None, None, Some(B64(mu))),
        None => (None, None, None),
    }
}

impl From<proto::SignRequest> for api::SignRequest {
    fn from(r: proto::SignRequest) -> Self {
        let (message, digest, mu) = sign_input(r.input);
        Self {
            key_id: r.key_id,
            message,
            digest,
            mu,
            algorithm: r.algorithm,
            attestation: b64(r.attestation),
        }
    }
}

impl From<proto::VerifyRequest> for api::VerifyRequest {
    fn from(r: proto::VerifyRequest) -> Self {
        let (message, digest, mu) = verify_input(r.input);
        Self {
            key_id: r.key_id,
            key_version: r.key_version,
            message,
            digest,
            mu,
            algorithm: r.algorithm,
            signature: B64(r.signature),
        }
    }
}

impl From<proto::MacRequest> for api::MacRequest {
    fn from(r: proto::MacRequest) -> Self {
        Self {
            key_id: r.key_id,
            message: B64(r.message),
            attestation: b64(r.attestation),
        }
    }
}

impl From<proto::VerifyMacRequest> for api::VerifyMacRequest {
    fn from(r: proto::VerifyMacRequest) -> Self {
        Self {
            key_id: r.key_id,
            key_version: r.key_version,
            message: B64(r.message),
            mac: B64(r.mac),
        }
    }
}

impl From<api::CiphertextResponse> for proto::CiphertextResponse {
    fn from(r: api::CiphertextResponse) -> Self {
        Self {
            ciphertext: r.ciphertext.0,
            key_id: r.key_id,
            key_version: r.key_version,
        }
    }
}

impl From<api::UnwrapResponse> for proto::UnwrapResponse {
    fn from(r: api::UnwrapResponse) -> Self {
        Self {
            plaintext: r.plaintext.expose_secret().to_vec(),
            key_id: r.key_id,
            key_version: r.key_version,
            ciphertext_for_recipient: r.ciphertext_for_recipient.map(|c| c.0),
        }
    }
}

impl From<api::DatakeyResponse> for proto::DatakeyResponse {
    fn from(r: api::DatakeyResponse) -> Self {
        Self {
            plaintext: r.plaintext.map(|p| p.expose_secret().to_vec()),
            ciphertext: r.ciphertext.0,
            key_id: r.key_id,
            key_version: r.key_version,
            ciphertext_for_recipient: r.ciphertext_for_recipient.map(|c| c.0),
        }
    }
}

impl From<api::SignResponse> for proto::SignResponse {
    fn from(r: api::SignResponse) -> Self {
        Self {
            signature: r.signature.0,
            key_id: r.key_id,
            key_version: r.key_version,
            algorithm: r.algorithm,
        }
    }
}

impl From<api::VerifyResponse> for proto::VerifyResponse {
    fn from(r: api::VerifyResponse) -> Self {
        Self {
            valid: r.valid,
            key_id: r.key_id,
            key_version: r.key_version,
        }
    }
}

impl From<api::MacResponse> for proto::MacResponse {
    fn from(r: api::MacResponse) -> Self {
        Self {
            mac: r.mac.0,
            key_id: r.key_id,
            key_version: r.key_version,
        }
    }
}
