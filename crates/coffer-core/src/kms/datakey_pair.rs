//! datakey-pair: a fresh ECDSA or RSA key pair for the caller's own use (AWS KMS's
//! GenerateDataKeyPair): the private key (PKCS #8 DER) sealed under an encryption
//! key's primary version with the caller's context, the public key (SubjectPublicKeyInfo
//! DER) in the clear, and, unless the caller declines it, the private key in the clear.
//! Authorised as datakey: the same power of making a secret sealed under the key.

use coffer_crypto::{EncryptionContext, KeySpec, SecretBytes, SigningKey};

use super::wrap::Sealed;
use super::{Caller, Kms, KmsError, KmsResult, require_usable};
use crate::key::KeyPurpose;
use crate::token::Operation;
use crate::usage::UseKind;

/// A data key pair.
#[derive(Debug)]
pub struct DataKeyPair {
    /// The pair's spec.
    pub spec: KeySpec,
    /// The private key, PKCS #8 DER (secret).
    pub private_key: SecretBytes,
    /// The public key, SubjectPublicKeyInfo DER.
    pub public_key: Vec<u8>,
    /// The private key sealed under the encryption key (an envelope, as wrap's).
    pub sealed: Sealed,
}

/// The specs a data key pair can have: those whose private key exports as PKCS #8.
pub const fn pair_spec(spec: KeySpec) -> bool {
    spec.is_rsa()
        || matches!(
            spec,
            KeySpec::EcdsaP256 | KeySpec::EcdsaP384 | KeySpec::EcdsaP521 | KeySpec::EcdsaSecp256k1
        )
}

impl Kms {
    /// Generates a key pair of `spec` and seals its private key under `reference`.
    pub async fn datakey_pair(
        &self,
        caller: &Caller,
        reference: &str,
        spec: KeySpec,
        context: &EncryptionContext,
    ) -> KmsResult<DataKeyPair> {
        let result = self
            .datakey_pair_unaudited(caller, reference, spec, context)
            .await;
        self.audited(caller, "datakey.pair", Some(reference), result)
            .await
    }

    async fn datakey_pair_unaudited(
        &self,
        caller: &Caller,
        reference: &str,
        spec: KeySpec,
        context: &EncryptionContext,
    ) -> KmsResult<DataKeyPair> {
        let entry = self.key_for(caller, Operation::Datakey, reference).await?;
        if !pair_spec(spec) {
            return Err(KmsError::Invalid(format!(
                "a data key pair is ECDSA or RSA, not {spec}"
            )));
        }
        // Refused before the (for RSA, costly) generation, not after.
        require_usable(&entry, KeyPurpose::Encrypt, "encrypt")?;
        entry.ready_primary()?;
        let _in_flight = entry
            .primary
            .map(|v| self.in_flight(caller, &entry.key, v, UseKind::Encrypt));
        // RSA generation is heavy: on the bounded pool, as RSA signing is.
        let job: crate::offload::HeavyJob = Box::new(move || {
            let key = SigningKey::generate(spec)?;
            // Moved out as the Vec the pool carries; wrapped again below.
            Ok(key.to_pkcs8()?.expose_secret().to_vec())
        });
        let private_key = SecretBytes::new(self.offload.run(job).await?);
        let public_key = SigningKey::from_pkcs8(spec, private_key.expose_secret())?
            .public_key()
            .to_spki_der();
        let sealed = self.seal_primary(&entry, private_key.expose_secret(), context)?;
        Ok(DataKeyPair {
            spec,
            private_key,
            public_key,
            sealed,
        })
    }
}
