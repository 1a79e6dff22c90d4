//! Known answers checked at start, before a server reports ready: fixed public vectors
//! for the algorithms whose output is deterministic, so a broken build or backend is
//! found before it seals or signs anything. (Randomised algorithms — ECDSA, ML-DSA,
//! RSA-PSS — are checked by the caller's round trip with a stored key instead.)

use crate::sign::Ed25519Key;
use crate::spec::KeySpec;
use crate::xaes::{AeadKey, NONCE_LEN};
use crate::{CryptoError, Result};

/// The answer did not match: names the algorithm and vector.
fn mismatch(what: &'static str) -> CryptoError {
    CryptoError::Backend(what)
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .filter_map(|i| text.get(i..i + 2))
        .filter_map(|pair| u8::from_str_radix(pair, 16).ok())
        .collect()
}

/// XAES-256-GCM, the first fixed vector of <https://c2sp.org/XAES-256-GCM>; the
/// ciphertext must open again.
pub fn xaes_256_gcm() -> Result<()> {
    let key = AeadKey::from_bytes(&[0x01; 32])?;
    let nonce: &[u8; NONCE_LEN] = b"ABCDEFGHIJKLMNOPQRSTUVWX";
    let mut out = Vec::new();
    key.seal_with_nonce(nonce, b"", b"XAES-256-GCM", &mut out)?;
    let expected = unhex("ce546ef63c9cc60765923609b33a9a1974e96e52daf2fcf7075e2271");
    if out.get(NONCE_LEN..) != Some(&expected[..]) {
        return Err(mismatch("XAES-256-GCM known answer (C2SP vector 1)"));
    }
    let opened = key.open(b"", &out)?;
    if opened.expose_secret() != b"XAES-256-GCM" {
        return Err(mismatch("XAES-256-GCM known answer does not open"));
    }
    Ok(())
}

/// Ed25519, RFC 8032 section 7.1, TEST 1: public key and signature of the empty message.
pub fn ed25519() -> Result<()> {
    let key = Ed25519Key::from_seed_bytes(&unhex(
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
    ))?;
    if key.public_key()[..]
        != unhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")[..]
    {
        return Err(mismatch(
            "Ed25519 known answer (RFC 8032 TEST 1 public key)",
        ));
    }
    let expected = unhex(
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    );
    if key.sign(b"") != expected {
        return Err(mismatch("Ed25519 known answer (RFC 8032 TEST 1 signature)"));
    }
    Ok(())
}

/// The fixed-vector check for `spec`'s algorithm, where one exists: XAES-256-GCM for
/// `aes-256`, Ed25519 for `ed25519` and the hybrid (its classical half).
pub fn fixed_vector(spec: KeySpec) -> Option<fn() -> Result<()>> {
    match spec {
        KeySpec::Aes256 => Some(xaes_256_gcm),
        KeySpec::Ed25519 | KeySpec::HybridEd25519MlDsa65 => Some(ed25519),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fixed_vectors_answer() {
        xaes_256_gcm().unwrap();
        ed25519().unwrap();
        assert!(fixed_vector(KeySpec::Aes256).is_some());
        assert!(fixed_vector(KeySpec::EcdsaP256).is_none());
    }
}
