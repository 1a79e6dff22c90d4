//! The code generated from `proto/coffer/v1/kms.proto` (`build.rs`): the messages,
//! the server (`kms_server`) and a client generic over its transport (`kms_client`).
//!
//! Messages that carry a plaintext or a data key (`WrapRequest`, `UnwrapResponse`,
//! `DatakeyResponse`) are generated without `Debug`: theirs, below, prints the secret
//! elided, and they wipe it when dropped. Code that moves the secret out takes it with
//! `std::mem::take`, leaving nothing behind to wipe.

// Generated code: documented from the .proto's comments, but its helper items are not,
// and it is not written to this crate's lints.
#![allow(missing_docs, clippy::all, clippy::pedantic)]

use std::fmt;

use zeroize::Zeroize;

tonic::include_proto!("coffer.v1");

const ELIDED: &str = "[secret elided]";

impl fmt::Debug for WrapRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WrapRequest")
            .field("key_id", &self.key_id)
            .field("plaintext", &ELIDED)
            .field("context", &self.context)
            .finish()
    }
}

impl Drop for WrapRequest {
    fn drop(&mut self) {
        self.plaintext.zeroize();
    }
}

impl fmt::Debug for UnwrapResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnwrapResponse")
            .field("plaintext", &ELIDED)
            .field("key_id", &self.key_id)
            .field("key_version", &self.key_version)
            .field("ciphertext_for_recipient", &self.ciphertext_for_recipient)
            .finish()
    }
}

impl Drop for UnwrapResponse {
    fn drop(&mut self) {
        self.plaintext.zeroize();
    }
}

impl fmt::Debug for DatakeyResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatakeyResponse")
            .field("plaintext", &self.plaintext.as_ref().map(|_| ELIDED))
            .field("ciphertext", &self.ciphertext)
            .field("key_id", &self.key_id)
            .field("key_version", &self.key_version)
            .field("ciphertext_for_recipient", &self.ciphertext_for_recipient)
            .finish()
    }
}

impl Drop for DatakeyResponse {
    fn drop(&mut self) {
        if let Some(plaintext) = self.plaintext.as_mut() {
            plaintext.zeroize();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_print_elided() {
        // Built field by field: a type with `Drop` cannot take `..Default::default()`.
        let mut request = WrapRequest::default();
        request.plaintext = b"hunter2".to_vec();
        let mut response = DatakeyResponse::default();
        response.plaintext = Some(b"hunter2".to_vec());
        let mut unwrapped = UnwrapResponse::default();
        unwrapped.plaintext = b"hunter2".to_vec();
        for printed in [
            format!("{request:?}"),
            format!("{response:?}"),
            format!("{unwrapped:?}"),
        ] {
            assert!(!printed.contains("104, 117"), "{printed}");
            assert!(printed.contains(ELIDED), "{printed}");
        }
    }
}
