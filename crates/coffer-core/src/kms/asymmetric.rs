//! encrypt and decrypt with RSA keys made for encryption: RSAES-OAEP to a version's
//! public key, and decryption with its private key (AWS KMS's asymmetric Encrypt and
//! Decrypt). Authorised as wrap and unwrap: the same powers over a key's secrets.
//!
//! Encrypting needs only the public key, which anyone may hold; the service offers it so
//! callers need no RSA code. An OAEP ciphertext does not name its key version, so
//! decryption uses the version the caller names (default: the primary), as the
//! encryption's answer told it.

use coffer_crypto::{EncryptionAlgorithm, KeyMaterial, SecretBytes};

use super::cache::CachedKey;
use super::{Caller, Kms, KmsError, KmsResult, Opened, Sealed, require_enabled};
use crate::key::KeyPurpose;
use crate::token::Operation;
use crate::usage::UseKind;

/// Enabled, of purpose encrypt, and RSA.
fn require_rsa_encryption(entry: &CachedKey, operation: &'static str) -> KmsResult<()> {
    require_enabled(entry)?;
    if entry.key.purpose != KeyPurpose::Encrypt {
        return Err(KmsError::WrongPurpose {
            purpose: entry.key.purpose.as_str(),
            operation,
        });
    }
    if !entry.key.spec.is_rsa() {
        return Err(KmsError::WrongPurpose {
            purpose: entry.key.spec.as_str(),
            operation,
        });
    }
    Ok(())
}

impl Kms {
    /// RSA-OAEP encryption to `version` (default: the primary) of an RSA encrypt key.
    pub async fn encrypt_asymmetric(
        &self,
        caller: &Caller,
        reference: &str,
        version: Option<u32>,
        algorithm: EncryptionAlgorithm,
        plaintext: &[u8],
    ) -> KmsResult<Sealed> {
        let result = self
            .encrypt_asymmetric_unaudited(caller, reference, version, algorithm, plaintext)
            .await;
        self.audited(caller, "encrypt", Some(reference), result)
            .await
    }

    async fn encrypt_asymmetric_unaudited(
        &self,
        caller: &Caller,
        reference: &str,
        version: Option<u32>,
        algorithm: EncryptionAlgorithm,
        plaintext: &[u8],
    ) -> KmsResult<Sealed> {
        let entry = self.key_for(caller, Operation::Wrap, reference).await?;
        require_rsa_encryption(&entry, "encrypt")?;
        let (number, ready) = entry.ready_to_check(version)?;
        let public = ready
            .software()
            .and_then(|m| m.public_key())
            .ok_or(KmsError::Internal("RSA key without a public key".into()))?;
        // Untracked use, as wrap's is: Coffer cannot rewrap an OAEP ciphertext.
        let _in_flight = self.in_flight(caller, &entry.key, number, UseKind::Encrypt);
        Ok(Sealed {
            ciphertext: public.encrypt(algorithm, plaintext)?,
            key_id: entry.key.id,
            version: number,
        })
    }

    /// RSA-OAEP decryption with `version` (default: the primary) of an RSA encrypt key.
    /// Every failure of the ciphertext itself is `InvalidCiphertext`, one answer for all.
    pub async fn decrypt_asymmetric(
        &self,
        caller: &Caller,
        reference: &str,
        version: Option<u32>,
        algorithm: EncryptionAlgorithm,
        ciphertext: &[u8],
    ) -> KmsResult<Opened> {
        let result = self
            .decrypt_asymmetric_unaudited(caller, reference, version, algorithm, ciphertext)
            .await;
        self.audited(caller, "decrypt", Some(reference), result)
            .await
    }

    async fn decrypt_asymmetric_unaudited(
        &self,
        caller: &Caller,
        reference: &str,
        version: Option<u32>,
        algorithm: EncryptionAlgorithm,
        ciphertext: &[u8],
    ) -> KmsResult<Opened> {
        let entry = self.key_for(caller, Operation::Unwrap, reference).await?;
        require_rsa_encryption(&entry, "decrypt")?;
        let (number, _) = entry.ready_to_check(version)?;
        let _in_flight = self.in_flight(caller, &entry.key, number, UseKind::Decrypt);
        // RSA private-key operations are heavy: on the bounded pool, as signing is.
        let (shared, ciphertext) = (entry.clone(), ciphertext.to_vec());
        let job: crate::offload::HeavyJob = Box::new(move || {
            match shared.ready.get(&number).and_then(|r| r.software()) {
                Some(KeyMaterial::Signing(key)) => key
                    .decrypt(algorithm, &ciphertext)
                    // Moved out as the Vec the pool carries; wrapped again below.
                    .map(|plain| plain.expose_secret().to_vec()),
                _ => Err(coffer_crypto::CryptoError::Backend("RSA key vanished")),
            }
        });
        let plaintext = SecretBytes::new(self.offload.run(job).await?);
        Ok(Opened {
            plaintext,
            key_id: entry.key.id,
            version: number,
            for_recipient: None,
        })
    }
}
