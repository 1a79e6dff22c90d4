//! Answers only the attested workload can read: a plaintext encrypted to the public key
//! its attestation document carries (as AWS KMS's `CiphertextForRecipient`, in a simpler
//! format of Coffer's own, docs/attestation.md §4.1):
//!
//! ```text
//! 0x01 ‖ len (u16, big-endian) ‖ RSA-OAEP-SHA256(k) ‖ nonce (12) ‖ AES-256-GCM_k(plaintext) ‖ tag (16)
//! ```
//!
//! `k` is a fresh AES-256 key per answer, the associated data is `coffer/recipient/v1`,
//! and the public key is the document's `public_key` as an RSA SubjectPublicKeyInfo
//! (DER) of 2048 to 8192 bits.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::rsa::{
    OAEP_SHA256_MGF1SHA256, OaepPrivateDecryptingKey, OaepPublicEncryptingKey,
    PrivateDecryptingKey, PublicEncryptingKey,
};

use crate::AttestError;

/// The format's version byte.
pub const VERSION: u8 = 1;
const AAD: &[u8] = b"coffer/recipient/v1";

fn not_rsa() -> AttestError {
    AttestError::Malformed(
        "the document's public key is not an RSA key of 2048 to 8192 bits (SubjectPublicKeyInfo, DER)",
    )
}

/// Encrypts `plaintext` to `recipient` (an RSA SubjectPublicKeyInfo, DER).
pub fn seal(recipient: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, AttestError> {
    let public = PublicEncryptingKey::from_der(recipient).map_err(|_| not_rsa())?;
    if !(2048..=8192).contains(&public.key_size_bits()) {
        return Err(not_rsa());
    }
    let oaep = OaepPublicEncryptingKey::new(public).map_err(|_| not_rsa())?;
    let failed = |_| AttestError::Malformed("cannot encrypt to the recipient");
    let mut key = [0u8; 32];
    let mut nonce = [0u8; NONCE_LEN];
    aws_lc_rs::rand::fill(&mut key).map_err(failed)?;
    aws_lc_rs::rand::fill(&mut nonce).map_err(failed)?;
    let mut wrapped = vec![0u8; oaep.ciphertext_size()];
    let wrapped_len = oaep
        .encrypt(&OAEP_SHA256_MGF1SHA256, &key, &mut wrapped, None)
        .map_err(failed)?
        .len();
    wrapped.truncate(wrapped_len);
    let aead = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &key).map_err(failed)?);
    // The one copy of the content key is wiped before the answer leaves.
    key.fill(0);
    let mut body = plaintext.to_vec();
    aead.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(AAD),
        &mut body,
    )
    .map_err(failed)?;
    let len = u16::try_from(wrapped.len()).map_err(|_| not_rsa())?;
    let mut out = Vec::with_capacity(3 + wrapped.len() + NONCE_LEN + body.len());
    out.push(VERSION);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&wrapped);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&body);
    Ok(out)
}

/// Opens a [`seal`]ed answer with the recipient's private key (what the workload does).
pub fn open(private: &PrivateDecryptingKey, sealed: &[u8]) -> Result<Vec<u8>, AttestError> {
    let bad = AttestError::Malformed("not a recipient ciphertext for this key");
    let (&version, rest) = sealed.split_first().ok_or(bad)?;
    if version != VERSION || rest.len() < 2 {
        return Err(bad);
    }
    let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
    let rest = &rest[2..];
    if rest.len() < len + NONCE_LEN + 16 {
        return Err(bad);
    }
    let (wrapped, rest) = rest.split_at(len);
    let (nonce, body) = rest.split_at(NONCE_LEN);
    let oaep = OaepPrivateDecryptingKey::new(private.clone()).map_err(|_| bad)?;
    let mut key = vec![0u8; oaep.min_output_size()];
    let key_len = oaep
        .decrypt(&OAEP_SHA256_MGF1SHA256, wrapped, &mut key, None)
        .map_err(|_| bad)?
        .len();
    let aead = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &key[..key_len]).map_err(|_| bad)?);
    key.fill(0);
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| bad)?;
    let mut body = body.to_vec();
    let plain = aead
        .open_in_place(nonce, Aad::from(AAD), &mut body)
        .map_err(|_| bad)?
        .len();
    body.truncate(plain);
    Ok(body)
}

/// An RSA-2048 recipient key for tests: its SubjectPublicKeyInfo goes into documents.
#[cfg(any(test, feature = "testing"))]
pub fn test_recipient() -> (PrivateDecryptingKey, Vec<u8>) {
    use aws_lc_rs::encoding::AsDer;
    let private =
        PrivateDecryptingKey::generate(aws_lc_rs::rsa::KeySize::Rsa2048).expect("RSA key");
    let spki = private
        .public_key()
        .as_der()
        .expect("SPKI")
        .as_ref()
        .to_vec();
    (private, spki)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_answer_opens_with_the_recipients_key_only() {
        let (private, spki) = test_recipient();
        let sealed = seal(&spki, b"data key bytes").unwrap();
        assert_eq!(sealed[0], VERSION);
        assert_eq!(open(&private, &sealed).unwrap(), b"data key bytes");
        let (other, _) = test_recipient();
        assert!(open(&other, &sealed).is_err());
        let mut flipped = sealed.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(open(&private, &flipped).is_err());
        for len in 0..sealed.len() {
            assert!(open(&private, &sealed[..len]).is_err());
        }
    }

    #[test]
    fn a_public_key_that_is_not_rsa_is_refused() {
        assert!(matches!(
            seal(b"junk", b"x"),
            Err(AttestError::Malformed(_))
        ));
        // An Ed25519 SubjectPublicKeyInfo.
        let (authority, _) = crate::test_format::Authority::generate_ed25519().unwrap();
        let pem = authority.public_key_pem();
        let der =
            crate::nitro::pem_certificate_der(&pem.replace("PUBLIC KEY", "CERTIFICATE")).unwrap();
        assert!(seal(&der, b"x").is_err());
    }
}
