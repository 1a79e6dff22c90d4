//! Answers for a Nitro enclave in AWS KMS's own format: `CiphertextForRecipient` is a
//! CMS (RFC 5652) `ContentInfo` holding `EnvelopedData` with one
//! `KeyTransRecipientInfo` — the content key encrypted with RSAES-OAEP (SHA-256, MGF1
//! with SHA-256, RFC 4055 / RFC 3560) to the public key of the enclave's attestation
//! document — and the plaintext encrypted with AES-256-CBC (PKCS #7 padding, a random
//! IV as the algorithm's parameter, RFC 3565). The AWS Nitro Enclaves SDK's
//! `aws_cms_parse_enveloped_data` reads exactly that, as does `openssl cms -decrypt`.
//!
//! The recipient is named by a subject key identifier (version 2 records): the SHA-1 of
//! the public key's bits (RFC 5280 §4.2.1.2, method 1), as the key has no certificate.
//! Structures are encoded with RustCrypto's `cms` and `der` (DER); the cryptography is
//! aws-lc's.

use aws_lc_rs::cipher::{
    AES_256, DecryptionContext, PaddedBlockDecryptingKey, PaddedBlockEncryptingKey,
    UnboundCipherKey,
};
use aws_lc_rs::iv::FixedLength;
use aws_lc_rs::rsa::{
    OAEP_SHA256_MGF1SHA256, OaepPrivateDecryptingKey, OaepPublicEncryptingKey,
    PrivateDecryptingKey, PublicEncryptingKey,
};
use cms::content_info::{CmsVersion, ContentInfo};
use cms::enveloped_data::{
    EncryptedContentInfo, EnvelopedData, KeyTransRecipientInfo, RecipientIdentifier, RecipientInfo,
    RecipientInfos,
};
use der::asn1::{Any, ObjectIdentifier, OctetString, SetOfVec};
use der::{Decode, Encode, Sequence};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoRef};
use x509_cert::ext::pkix::SubjectKeyIdentifier;

use crate::AttestError;

const ID_ENVELOPED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.3");
const ID_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1");
const ID_AES256_CBC: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.1.42");
const ID_RSAES_OAEP: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.7");
const ID_MGF1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.8");
const ID_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");

/// `RSAES-OAEP-params` (RFC 4055 §4.1) with SHA-256 for the hash and for MGF1; the label
/// source is the default (empty), so it is left out.
#[derive(Sequence)]
struct OaepParams {
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT")]
    hash: AlgorithmIdentifierOwned,
    #[asn1(context_specific = "1", tag_mode = "EXPLICIT")]
    mask_gen: AlgorithmIdentifierOwned,
}

fn sha256() -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned {
        oid: ID_SHA256,
        parameters: Some(Any::null()),
    }
}

fn oaep_sha256() -> Result<AlgorithmIdentifierOwned, AttestError> {
    let params = OaepParams {
        hash: sha256(),
        mask_gen: AlgorithmIdentifierOwned {
            oid: ID_MGF1,
            parameters: Some(Any::encode_from(&sha256()).map_err(|_| encoding())?),
        },
    };
    Ok(AlgorithmIdentifierOwned {
        oid: ID_RSAES_OAEP,
        parameters: Some(Any::encode_from(&params).map_err(|_| encoding())?),
    })
}

fn encoding() -> AttestError {
    AttestError::Malformed("cannot encode the CMS structure")
}

fn not_rsa() -> AttestError {
    AttestError::Malformed(
        "the document's public key is not an RSA key of 2048 to 8192 bits (SubjectPublicKeyInfo, DER)",
    )
}

/// The RFC 5280 method 1 key identifier of `spki`: SHA-1 over the public key's bits.
fn key_identifier(spki: &[u8]) -> Result<OctetString, AttestError> {
    let parsed = SubjectPublicKeyInfoRef::from_der(spki).map_err(|_| not_rsa())?;
    let bits = parsed.subject_public_key.raw_bytes();
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, bits);
    OctetString::new(digest.as_ref()).map_err(|_| encoding())
}

/// Encrypts `plaintext` to `recipient` (an RSA SubjectPublicKeyInfo, DER, 2048 to 8192
/// bits) as DER of a CMS `ContentInfo` / `EnvelopedData`.
pub fn seal(recipient: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, AttestError> {
    let public = PublicEncryptingKey::from_der(recipient).map_err(|_| not_rsa())?;
    if !(2048..=8192).contains(&public.key_size_bits()) {
        return Err(not_rsa());
    }
    let oaep = OaepPublicEncryptingKey::new(public).map_err(|_| not_rsa())?;
    let failed = |_| AttestError::Malformed("cannot encrypt to the recipient");
    let mut key = [0u8; 32];
    aws_lc_rs::rand::fill(&mut key).map_err(failed)?;
    let mut wrapped = vec![0u8; oaep.ciphertext_size()];
    let wrapped_len = oaep
        .encrypt(&OAEP_SHA256_MGF1SHA256, &key, &mut wrapped, None)
        .map_err(failed)?
        .len();
    wrapped.truncate(wrapped_len);
    let cipher = UnboundCipherKey::new(&AES_256, &key)
        .and_then(PaddedBlockEncryptingKey::cbc_pkcs7)
        .map_err(failed);
    // The one copy of the content key is wiped before anything can fail further on.
    key.fill(0);
    let mut body = plaintext.to_vec();
    let iv = cipher?.encrypt(&mut body).map_err(failed)?;
    let iv: &[u8] = (&iv).try_into().map_err(failed)?;

    let ktri = KeyTransRecipientInfo {
        version: CmsVersion::V2,
        rid: RecipientIdentifier::SubjectKeyIdentifier(SubjectKeyIdentifier(key_identifier(
            recipient,
        )?)),
        key_enc_alg: oaep_sha256()?,
        enc_key: OctetString::new(wrapped).map_err(|_| encoding())?,
    };
    let mut recipients = SetOfVec::new();
    recipients
        .insert(RecipientInfo::Ktri(ktri))
        .map_err(|_| encoding())?;
    let enveloped = EnvelopedData {
        version: CmsVersion::V2,
        originator_info: None,
        recip_infos: RecipientInfos(recipients),
        encrypted_content: EncryptedContentInfo {
            content_type: ID_DATA,
            content_enc_alg: AlgorithmIdentifierOwned {
                oid: ID_AES256_CBC,
                parameters: Some(
                    Any::encode_from(&OctetString::new(iv).map_err(|_| encoding())?)
                        .map_err(|_| encoding())?,
                ),
            },
            encrypted_content: Some(OctetString::new(body).map_err(|_| encoding())?),
        },
        unprotected_attrs: None,
    };
    ContentInfo {
        content_type: ID_ENVELOPED_DATA,
        content: Any::encode_from(&enveloped).map_err(|_| encoding())?,
    }
    .to_der()
    .map_err(|_| encoding())
}

/// Opens a [`seal`]ed `ContentInfo` with the recipient's private key, as an enclave
/// does: only the structure [`seal`] makes (one key-transport recipient, RSAES-OAEP
/// with SHA-256, AES-256-CBC) is accepted; anything else is `Malformed`, never a panic.
pub fn open(private: &PrivateDecryptingKey, der: &[u8]) -> Result<Vec<u8>, AttestError> {
    let bad = AttestError::Malformed("not a CMS EnvelopedData for this key");
    let info = ContentInfo::from_der(der).map_err(|_| bad)?;
    if info.content_type != ID_ENVELOPED_DATA {
        return Err(bad);
    }
    let enveloped: EnvelopedData = info.content.decode_as().map_err(|_| bad)?;
    let [RecipientInfo::Ktri(ktri)] = enveloped.recip_infos.0.as_slice() else {
        return Err(bad);
    };
    if ktri.key_enc_alg != oaep_sha256()? {
        return Err(bad);
    }
    let content = &enveloped.encrypted_content;
    if content.content_enc_alg.oid != ID_AES256_CBC {
        return Err(bad);
    }
    let iv: OctetString = content
        .content_enc_alg
        .parameters
        .as_ref()
        .ok_or(bad)?
        .decode_as()
        .map_err(|_| bad)?;
    let iv: [u8; 16] = iv.as_bytes().try_into().map_err(|_| bad)?;
    let body = content.encrypted_content.as_ref().ok_or(bad)?;

    let oaep = OaepPrivateDecryptingKey::new(private.clone()).map_err(|_| bad)?;
    let mut key = vec![0u8; oaep.min_output_size()];
    let key_len = oaep
        .decrypt(
            &OAEP_SHA256_MGF1SHA256,
            ktri.enc_key.as_bytes(),
            &mut key,
            None,
        )
        .map_err(|_| bad)?
        .len();
    let cipher = UnboundCipherKey::new(&AES_256, &key[..key_len])
        .and_then(PaddedBlockDecryptingKey::cbc_pkcs7)
        .map_err(|_| bad);
    key.fill(0);
    let mut out = body.as_bytes().to_vec();
    let len = cipher?
        .decrypt(&mut out, DecryptionContext::Iv128(FixedLength::from(iv)))
        .map_err(|_| bad)?
        .len();
    out.truncate(len);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recipient::test_recipient;

    #[test]
    fn a_sealed_answer_opens_with_the_recipients_key_only() {
        let (private, spki) = test_recipient();
        let sealed = seal(&spki, b"data key bytes").unwrap();
        assert_eq!(open(&private, &sealed).unwrap(), b"data key bytes");
        let (other, _) = test_recipient();
        assert!(open(&other, &sealed).is_err());
        // Empty plaintexts pad to one block and come back empty.
        assert!(
            open(&private, &seal(&spki, b"").unwrap())
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn the_structure_is_aws_kms_s() {
        let (_, spki) = test_recipient();
        let sealed = seal(&spki, &[7u8; 32]).unwrap();
        let info = ContentInfo::from_der(&sealed).unwrap();
        assert_eq!(info.content_type, ID_ENVELOPED_DATA);
        let enveloped: EnvelopedData = info.content.decode_as().unwrap();
        assert_eq!(enveloped.version, CmsVersion::V2);
        let [RecipientInfo::Ktri(ktri)] = enveloped.recip_infos.0.as_slice() else {
            panic!("one key-transport recipient")
        };
        assert_eq!(ktri.version, CmsVersion::V2);
        assert_eq!(ktri.key_enc_alg.oid, ID_RSAES_OAEP);
        assert_eq!(ktri.enc_key.as_bytes().len(), 256);
        let RecipientIdentifier::SubjectKeyIdentifier(ski) = &ktri.rid else {
            panic!("named by key identifier")
        };
        assert_eq!(ski.0.as_bytes().len(), 20);
        let content = &enveloped.encrypted_content;
        assert_eq!(content.content_type, ID_DATA);
        assert_eq!(content.content_enc_alg.oid, ID_AES256_CBC);
        // 32 bytes of plaintext pad to 48 under PKCS #7.
        assert_eq!(
            content.encrypted_content.as_ref().unwrap().as_bytes().len(),
            48
        );
    }

    #[test]
    fn keys_that_are_not_rsa_of_a_useful_size_are_refused() {
        assert!(seal(b"not a key", b"x").is_err());
        let ec = aws_lc_rs::signature::EcdsaKeyPair::generate(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
        )
        .unwrap();
        use aws_lc_rs::encoding::AsDer;
        use aws_lc_rs::signature::KeyPair;
        let spki = ec.public_key().as_der().unwrap();
        assert!(seal(spki.as_ref(), b"x").is_err());
    }

    /// CMS EnvelopedData with AES-CBC carries no integrity check of its own (as AWS's
    /// answers do not): what is proven here is that no byte of an answer makes `open`
    /// panic, that a cut answer is refused, and that an altered encrypted key is.
    #[test]
    fn truncated_or_altered_answers_never_panic_and_an_altered_key_is_refused() {
        let (private, spki) = test_recipient();
        let sealed = seal(&spki, b"secret").unwrap();
        for cut in 0..sealed.len() {
            assert!(open(&private, &sealed[..cut]).is_err(), "cut at {cut}");
        }
        let info = ContentInfo::from_der(&sealed).unwrap();
        let enveloped: EnvelopedData = info.content.decode_as().unwrap();
        let [RecipientInfo::Ktri(ktri)] = enveloped.recip_infos.0.as_slice() else {
            panic!("one recipient")
        };
        let key = ktri.enc_key.as_bytes();
        let at = sealed.windows(key.len()).position(|w| w == key).unwrap();
        for i in 0..sealed.len() {
            let mut altered = sealed.clone();
            altered[i] ^= 0x01;
            let opened = open(&private, &altered);
            if (at..at + key.len()).contains(&i) {
                assert!(opened.is_err(), "an altered encrypted key at {i} opened");
            }
        }
    }
}
