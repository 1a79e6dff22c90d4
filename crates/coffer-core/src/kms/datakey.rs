//! datakey: a fresh random data key, returned wrapped (and, unless declined, in the
//! clear) for local envelope encryption.

use coffer_crypto::{EncryptionContext, SecretBytes};

use super::wrap::{Sealed, seal_primary};
use super::{Caller, Kms, KmsError, KmsResult};
use crate::token::Operation;

/// Data key lengths accepted.
pub const DATAKEY_BYTES: std::ops::RangeInclusive<usize> = 1..=64;

impl Kms {
    /// Generates a `bytes`-long data key and wraps it under `reference`.
    pub(super) async fn datakey_unaudited(
        &self,
        caller: &Caller,
        reference: &str,
        bytes: usize,
        context: &EncryptionContext,
    ) -> KmsResult<(SecretBytes, Sealed)> {
        let entry = self.key_for(caller, Operation::Datakey, reference).await?;
        if !DATAKEY_BYTES.contains(&bytes) {
            return Err(KmsError::Invalid(format!(
                "bytes must be 1 to 64, not {bytes}"
            )));
        }
        let key = SecretBytes::random(bytes)?;
        let sealed = seal_primary(&entry, key.expose_secret(), context)?;
        Ok((key, sealed))
    }
}
