//! Signed checkpoints: a C2SP `tlog-checkpoint` body in a C2SP `signed-note`.
//!
//! ```text
//! <origin>\n<tree size>\n<base64 root hash>\n     ← body (what is signed)
//! \n
//! — <key name> <base64(key hash (4) ‖ Ed25519 signature (64))>\n
//! ```
//!
//! The key hash is the first four bytes of SHA-256(key name ‖ "\n" ‖ 0x01 ‖ public key),
//! and verifier keys are written `<name>+<hex key hash>+<base64(0x01 ‖ public key)>`
//! (<https://c2sp.org/signed-note>, <https://c2sp.org/tlog-checkpoint>).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use coffer_crypto::hash::sha256;
use coffer_crypto::{PqVerifyMode, PublicKey, SigningKey, VerifyingKey};

use crate::AuditError;
use crate::merkle::Hash;

const ED25519_ALG: u8 = 0x01;
const SIGNATURE_PREFIX: &str = "\u{2014} ";

/// A tree head: origin, size, root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's name, e.g. `coffer.example/audit`.
    pub origin: String,
    /// Number of entries covered.
    pub size: u64,
    /// Root hash of those entries.
    pub root: Hash,
}

impl Checkpoint {
    /// The signed body, with its final newline.
    pub fn body(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            STANDARD.encode(self.root)
        )
    }

    fn parse_body(body: &str) -> Result<Self, AuditError> {
        const WHAT: AuditError = AuditError::Malformed("checkpoint body");
        let mut lines = body.strip_suffix('\n').ok_or(WHAT)?.split('\n');
        let origin = lines
            .next()
            .filter(|o| !o.is_empty())
            .ok_or(WHAT)?
            .to_owned();
        let size = lines.next().and_then(|s| s.parse().ok()).ok_or(WHAT)?;
        let root_b64 = lines.next().ok_or(WHAT)?;
        let root: Hash = STANDARD
            .decode(root_b64)
            .ok()
            .and_then(|r| r.try_into().ok())
            .ok_or(WHAT)?;
        // Extension lines may follow; Coffer writes none and ignores them.
        Ok(Self { origin, size, root })
    }
}

fn key_hash(name: &str, public: &[u8; 32]) -> [u8; 4] {
    let digest = sha256(&[name.as_bytes(), b"\n", &[ED25519_ALG], public]);
    [digest[0], digest[1], digest[2], digest[3]]
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && !name.contains(['+', ' ', '\n', '\u{2014}'])
}

/// Signs checkpoints with an Ed25519 key.
pub struct CheckpointSigner {
    name: String,
    key: SigningKey,
    public: [u8; 32],
    hash: [u8; 4],
}

impl CheckpointSigner {
    /// A signer named `name` (no spaces or `+`) with an Ed25519 `key`.
    pub fn new(name: &str, key: SigningKey) -> Result<Self, AuditError> {
        if !valid_name(name) {
            return Err(AuditError::Malformed("key name"));
        }
        let PublicKey::Ed25519(public) = key.public_key() else {
            return Err(AuditError::Malformed("checkpoint keys are Ed25519"));
        };
        Ok(Self {
            name: name.to_owned(),
            hash: key_hash(name, &public),
            public,
            key,
        })
    }

    /// The signed note of `checkpoint`.
    pub fn sign(&self, checkpoint: &Checkpoint) -> Result<String, AuditError> {
        let body = checkpoint.body();
        let signature = self
            .key
            .sign(body.as_bytes())
            .map_err(|_| AuditError::BadSignature)?;
        let blob = [&self.hash[..], &signature].concat();
        Ok(format!(
            "{body}\n{SIGNATURE_PREFIX}{} {}\n",
            self.name,
            STANDARD.encode(blob)
        ))
    }

    /// The verifier key string to give to verifiers.
    pub fn verifier_key(&self) -> String {
        let hash: String = self.hash.iter().map(|b| format!("{b:02x}")).collect();
        format!(
            "{}+{hash}+{}",
            self.name,
            STANDARD.encode([&[ED25519_ALG][..], &self.public].concat())
        )
    }
}

/// Verifies notes signed by one key.
pub struct CheckpointVerifier {
    name: String,
    hash: [u8; 4],
    key: VerifyingKey,
}

impl CheckpointVerifier {
    /// Parses `<name>+<hex hash>+<base64(0x01 ‖ key)>`, checking the hash matches.
    pub fn parse(text: &str) -> Result<Self, AuditError> {
        const WHAT: AuditError = AuditError::Malformed("verifier key");
        let mut parts = text.trim().splitn(3, '+');
        let (name, hash_hex, key_b64) = (
            parts.next().ok_or(WHAT)?,
            parts.next().ok_or(WHAT)?,
            parts.next().ok_or(WHAT)?,
        );
        if !valid_name(name) || hash_hex.len() != 8 {
            return Err(WHAT);
        }
        let raw = STANDARD.decode(key_b64).map_err(|_| WHAT)?;
        let [ED25519_ALG, key @ ..] = raw.as_slice() else {
            return Err(WHAT);
        };
        let public: [u8; 32] = key.try_into().map_err(|_| WHAT)?;
        let hash = key_hash(name, &public);
        let expected: String = hash.iter().map(|b| format!("{b:02x}")).collect();
        if expected != hash_hex {
            return Err(WHAT);
        }
        let key = VerifyingKey::new(PublicKey::Ed25519(public)).map_err(|_| WHAT)?;
        Ok(Self {
            name: name.to_owned(),
            hash,
            key,
        })
    }

    /// Verifies a signed checkpoint note; returns its checkpoint.
    pub fn verify(&self, note: &str) -> Result<Checkpoint, AuditError> {
        let split = note
            .find("\n\n")
            .ok_or(AuditError::Malformed("signed note"))?;
        let (body, signatures) = (&note[..split + 1], &note[split + 2..]);
        for line in signatures.lines() {
            let Some(rest) = line.strip_prefix(SIGNATURE_PREFIX) else {
                return Err(AuditError::Malformed("signature line"));
            };
            let Some((name, b64)) = rest.split_once(' ') else {
                continue;
            };
            if name != self.name {
                continue;
            }
            let Ok(blob) = STANDARD.decode(b64) else {
                continue;
            };
            if blob.len() != 68 || blob[..4] != self.hash {
                continue;
            }
            self.key
                .verify(body.as_bytes(), &blob[4..], PqVerifyMode::And)
                .map_err(|_| AuditError::BadSignature)?;
            return Checkpoint::parse_body(body);
        }
        Err(AuditError::BadSignature)
    }
}

#[cfg(test)]
mod tests {
    use coffer_crypto::{KeyMaterial, KeySpec};

    use super::*;

    fn signer() -> CheckpointSigner {
        let KeyMaterial::Signing(key) = KeyMaterial::generate(KeySpec::Ed25519).unwrap() else {
            unreachable!()
        };
        CheckpointSigner::new("coffer-test", key).unwrap()
    }

    #[test]
    fn signed_checkpoints_verify_and_edits_fail() {
        let signer = signer();
        let checkpoint = Checkpoint {
            origin: "coffer.test/audit".into(),
            size: 42,
            root: [7; 32],
        };
        let note = signer.sign(&checkpoint).unwrap();
        assert!(note.starts_with("coffer.test/audit\n42\nBwcH"));
        assert!(note.contains("\n\n\u{2014} coffer-test "));
        let verifier = CheckpointVerifier::parse(&signer.verifier_key()).unwrap();
        assert_eq!(verifier.verify(&note).unwrap(), checkpoint);
        assert!(verifier.verify(&note.replace("\n42\n", "\n43\n")).is_err());
        let other = CheckpointVerifier::parse(&self::signer().verifier_key()).unwrap();
        assert_eq!(other.verify(&note), Err(AuditError::BadSignature));
        let mut key = signer.verifier_key();
        // Two hex digits of the key hash, changed (one key in 256 has "00" there).
        let changed = if &key[12..14] == "00" { "11" } else { "00" };
        key.replace_range(12..14, changed);
        assert!(CheckpointVerifier::parse(&key).is_err());
    }

    /// The key-hash and verifier-key format of C2SP signed-note, computed independently:
    /// the Go reference names keys `name+hash+key` with hash = SHA-256(name‖"\n"‖alg‖key)[:4].
    #[test]
    fn verifier_key_format() {
        let signer = signer();
        let key = signer.verifier_key();
        let parts: Vec<&str> = key.splitn(3, '+').collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[0], "coffer-test");
        let raw = STANDARD.decode(parts[2]).unwrap();
        assert_eq!((raw.len(), raw[0]), (33, 0x01));
        let digest = sha256(&[b"coffer-test\n", &raw]);
        assert_eq!(parts[1], hex::encode(&digest[..4]));
    }

    /// The example of golang.org/x/mod/sumdb/note (the reference implementation of the
    /// signed-note format): its verifier key parses (so the key-hash rule matches), its
    /// signature verifies, and signing the same text with its private key (Ed25519 is
    /// deterministic) gives the same signature line.
    #[test]
    fn go_sumdb_note_vector() {
        let vkey = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
        let text = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
        let sig_line = "\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
        let note = format!("{text}\n{sig_line}");
        let verifier = CheckpointVerifier::parse(vkey).unwrap();
        let split = note.find("\n\n").unwrap();
        let blob = STANDARD
            .decode(note[split + 2..].trim_end().rsplit(' ').next().unwrap())
            .unwrap();
        verifier
            .key
            .verify(&note.as_bytes()[..split + 1], &blob[4..], PqVerifyMode::And)
            .unwrap();
        // Private key "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz":
        // base64(0x01 ‖ Ed25519 seed).
        let seed = STANDARD
            .decode("AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz")
            .unwrap();
        let KeyMaterial::Signing(key) =
            KeyMaterial::from_stored(&[&[1u8, 2][..], &seed[1..]].concat()).unwrap()
        else {
            unreachable!()
        };
        let signer = CheckpointSigner::new("PeterNeumann", key).unwrap();
        assert_eq!(signer.verifier_key(), vkey);
        let signature = signer.key.sign(text.as_bytes()).unwrap();
        assert_eq!(
            STANDARD.encode([&signer.hash[..], &signature].concat()),
            "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM="
        );
        println!("signed-note reference vector: 1 ran");
    }

    proptest::proptest! {
        #[test]
        fn parsing_never_panics(text in ".{0,300}") {
            let _ = CheckpointVerifier::parse(&text);
            let verifier = CheckpointVerifier::parse(&signer().verifier_key()).unwrap();
            let _ = verifier.verify(&text);
            let _ = Checkpoint::parse_body(&text);
        }
    }
}
