//! HSM-resident keys ([`KeyHsm`]): key pairs and AES keys generated in the token,
//! non-extractable and sensitive, used there through the same pooled sessions, link
//! handling and reconnects as the root key.
//!
//! Objects are found by class, `CKA_LABEL` and `CKA_ID` (random, 16 bytes) on every
//! use: a handle is valid only within one login, and the token may have been
//! reconnected since. Public keys are session objects (read once at generation, then
//! gone); private and secret keys are token objects.

mod der;

use coffer_core::hsm::{HsmError, HsmInput, HsmKeyPair, HsmKeyRef, KeyHsm};
use coffer_crypto::{KeySpec, PublicKey, SecretBytes, SignatureAlgorithm};
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::mechanism::eddsa::{EddsaParams, EddsaSignatureScheme};
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsPssParams};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;

use crate::custody::Pkcs11Custody;
use crate::error::Pkcs11Error;

/// `id-ecPublicKey` curve parameters: the P-256 OID (1.2.840.10045.3.1.7).
const P256_PARAMS: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
/// Ed25519's OID (1.3.101.112), as RFC 8410 and PKCS #11 3.0 name the curve.
const ED25519_PARAMS: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x70];
const GCM_IV_LEN: usize = 12;
const GCM_TAG_BITS: u64 = 128;

fn unsupported(what: impl Into<String>) -> HsmError {
    HsmError::Unsupported(what.into())
}

impl From<Pkcs11Error> for HsmError {
    fn from(error: Pkcs11Error) -> Self {
        match error {
            Pkcs11Error::Unavailable(_) | Pkcs11Error::PoolExhausted => {
                HsmError::Unavailable(error.to_string())
            }
            other => HsmError::Call(other.to_string()),
        }
    }
}

/// What the token must find: the object of `class` at `key`.
fn find(
    session: &Session,
    class: ObjectClass,
    key: &HsmKeyRef,
) -> cryptoki::error::Result<Option<ObjectHandle>> {
    let template = [
        Attribute::Class(class),
        Attribute::Label(key.label.as_bytes().to_vec()),
        Attribute::Id(key.id.clone()),
    ];
    Ok(session.find_objects(&template)?.into_iter().next())
}

fn private_template(label: &str, id: &[u8]) -> Vec<Attribute> {
    vec![
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Label(label.as_bytes().to_vec()),
        Attribute::Id(id.to_vec()),
    ]
}

fn public_template(label: &str, id: &[u8]) -> Vec<Attribute> {
    vec![
        Attribute::Token(false),
        Attribute::Verify(true),
        Attribute::Label(label.as_bytes().to_vec()),
        Attribute::Id(id.to_vec()),
    ]
}

/// Generates `spec` in the session's token; the public key (SPKI DER) for key pairs.
fn generate_in(
    session: &Session,
    spec: KeySpec,
    label: &str,
    id: &[u8],
) -> cryptoki::error::Result<Result<Option<Vec<u8>>, HsmError>> {
    let mut private = private_template(label, id);
    let mut public = public_template(label, id);
    let (mechanism, point_len) = match spec {
        KeySpec::Aes256 => {
            let mut template = private;
            template.extend([
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::AES),
                Attribute::ValueLen(32.into()),
                Attribute::Encrypt(true),
                Attribute::Decrypt(true),
            ]);
            session.generate_key(&Mechanism::AesKeyGen, &template)?;
            return Ok(Ok(None));
        }
        KeySpec::EcdsaP256 => {
            public.push(Attribute::EcParams(P256_PARAMS.to_vec()));
            (Mechanism::EccKeyPairGen, 65)
        }
        KeySpec::Ed25519 => {
            public.push(Attribute::EcParams(ED25519_PARAMS.to_vec()));
            (Mechanism::EccEdwardsKeyPairGen, 32)
        }
        KeySpec::Rsa2048 | KeySpec::Rsa3072 | KeySpec::Rsa4096 => {
            let bits: u64 = match spec {
                KeySpec::Rsa2048 => 2048,
                KeySpec::Rsa3072 => 3072,
                _ => 4096,
            };
            public.extend([
                Attribute::ModulusBits(bits.into()),
                Attribute::PublicExponent(vec![0x01, 0x00, 0x01]),
            ]);
            (Mechanism::RsaPkcsKeyPairGen, 0)
        }
        other => {
            return Ok(Err(unsupported(format!(
                "the HSM does not hold {other} keys"
            ))));
        }
    };
    private.push(Attribute::Sign(true));
    let (public, _private) = session.generate_key_pair(&mechanism, &public, &private)?;
    let raw = if spec.is_rsa() {
        let attributes = session.get_attributes(
            public,
            &[AttributeType::Modulus, AttributeType::PublicExponent],
        )?;
        let (mut modulus, mut exponent) = (None, None);
        for attribute in attributes {
            match attribute {
                Attribute::Modulus(m) => modulus = Some(m),
                Attribute::PublicExponent(e) => exponent = Some(e),
                _ => {}
            }
        }
        match (modulus, exponent) {
            (Some(m), Some(e)) => der::rsa_public_key(&m, &e),
            _ => {
                return Ok(Err(HsmError::Call(
                    "the token gave no RSA public key".into(),
                )));
            }
        }
    } else {
        let attributes = session.get_attributes(public, &[AttributeType::EcPoint])?;
        let point = attributes.into_iter().find_map(|a| match a {
            Attribute::EcPoint(p) => Some(p),
            _ => None,
        });
        match point.as_deref().and_then(|p| der::ec_point(p, point_len)) {
            Some(raw) => raw.to_vec(),
            None => return Ok(Err(HsmError::Call("the token gave no EC point".into()))),
        }
    };
    session.destroy_object(public)?;
    Ok(PublicKey::from_raw(spec, &raw)
        .map(|pk| Some(pk.to_spki_der()))
        .map_err(|e| HsmError::Call(format!("the token's public key: {e}"))))
}

/// The mechanism and the bytes the token signs for `algorithm` over `input`.
fn signing(
    algorithm: SignatureAlgorithm,
    input: HsmInput<'_>,
) -> Result<(Mechanism<'static>, Vec<u8>), HsmError> {
    use SignatureAlgorithm as A;
    let pss = |hash_alg, mgf, s_len: u64| {
        Mechanism::RsaPkcsPss(PkcsPssParams {
            hash_alg,
            mgf,
            s_len: s_len.into(),
        })
    };
    Ok(match (algorithm, input) {
        (A::Ed25519, HsmInput::Message(message)) => (
            Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Pure)),
            message.to_vec(),
        ),
        (A::EcdsaP256Sha256, HsmInput::Digest(digest)) => (Mechanism::Ecdsa, digest.to_vec()),
        (A::RsaPkcs1Sha256 | A::RsaPkcs1Sha384 | A::RsaPkcs1Sha512, HsmInput::Digest(digest)) => {
            let hash = algorithm.digest().ok_or(unsupported("no digest"))?;
            let info = [der::digest_info_prefix(hash), digest].concat();
            (Mechanism::RsaPkcs, info)
        }
        (A::RsaPssSha256, HsmInput::Digest(d)) => (
            pss(MechanismType::SHA256, PkcsMgfType::MGF1_SHA256, 32),
            d.to_vec(),
        ),
        (A::RsaPssSha384, HsmInput::Digest(d)) => (
            pss(MechanismType::SHA384, PkcsMgfType::MGF1_SHA384, 48),
            d.to_vec(),
        ),
        (A::RsaPssSha512, HsmInput::Digest(d)) => (
            pss(MechanismType::SHA512, PkcsMgfType::MGF1_SHA512, 64),
            d.to_vec(),
        ),
        (other, _) => {
            return Err(unsupported(format!(
                "the HSM does not sign {} over this input",
                other.as_str()
            )));
        }
    })
}

impl Pkcs11Custody {
    /// Runs `op` with the object of `class` at `key` (missing: [`HsmError::Missing`]).
    fn with_object<T>(
        &self,
        class: ObjectClass,
        key: &HsmKeyRef,
        op: impl FnOnce(&Session, ObjectHandle) -> cryptoki::error::Result<Result<T, HsmError>>,
    ) -> Result<T, HsmError> {
        self.with_session(|_, lent| match find(lent.session(), class, key)? {
            Some(handle) => op(lent.session(), handle),
            None => Ok(Err(HsmError::Missing)),
        })?
    }
}

impl KeyHsm for Pkcs11Custody {
    fn generate(
        &self,
        spec: KeySpec,
        label: &str,
        slot: Option<u64>,
    ) -> Result<HsmKeyPair, HsmError> {
        let mut id = vec![0u8; 16];
        coffer_crypto::rng::fill(&mut id).map_err(|e| HsmError::Call(e.to_string()))?;
        self.with_session(|connection, lent| {
            let here = connection.slot.id();
            if let Some(wanted) = slot.filter(|s| *s != here) {
                return Ok(Err(unsupported(format!(
                    "--hsm-slot {wanted}: Coffer's token is in slot {here}; keys live in the \
                     configured token only"
                ))));
            }
            if spec == KeySpec::Ed25519 {
                let offered = connection
                    .context
                    .pkcs11
                    .get_mechanism_list(connection.slot)?;
                if !offered.contains(&MechanismType::ECC_EDWARDS_KEY_PAIR_GEN) {
                    return Ok(Err(unsupported(
                        "this token does not generate Ed25519 keys",
                    )));
                }
            }
            let made = generate_in(lent.session(), spec, label, &id)?;
            Ok(made.map(|public_key| HsmKeyPair {
                location: HsmKeyRef {
                    slot: here,
                    token: connection.token_label.clone(),
                    label: label.to_owned(),
                    id: id.clone(),
                },
                public_key,
            }))
        })?
    }

    fn sign(
        &self,
        key: &HsmKeyRef,
        spec: KeySpec,
        algorithm: SignatureAlgorithm,
        input: HsmInput<'_>,
    ) -> Result<Vec<u8>, HsmError> {
        if !SignatureAlgorithm::for_spec(spec).contains(&algorithm) {
            return Err(unsupported(format!(
                "{} is not an algorithm of {spec} keys",
                algorithm.as_str()
            )));
        }
        let (mechanism, data) = signing(algorithm, input)?;
        let raw = self.with_object(ObjectClass::PRIVATE_KEY, key, |session, handle| {
            session.sign(&mechanism, handle, &data).map(Ok)
        })?;
        if matches!(spec, KeySpec::EcdsaP256) {
            return der::ecdsa_signature(&raw).ok_or(HsmError::Call(
                "the token's ECDSA signature is malformed".into(),
            ));
        }
        Ok(raw)
    }

    fn seal(&self, key: &HsmKeyRef, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, HsmError> {
        self.with_object(ObjectClass::SECRET_KEY, key, |session, handle| {
            let mut iv = [0u8; GCM_IV_LEN];
            session.generate_random_slice(&mut iv)?;
            let mut param_iv = iv;
            let params = GcmParams::new(&mut param_iv, aad, GCM_TAG_BITS.into())?;
            let sealed = session.encrypt(&Mechanism::AesGcm(params), handle, plaintext)?;
            Ok(Ok([&iv[..], &sealed].concat()))
        })
    }

    fn open(&self, key: &HsmKeyRef, aad: &[u8], sealed: &[u8]) -> Result<SecretBytes, HsmError> {
        if sealed.len() < GCM_IV_LEN + (GCM_TAG_BITS as usize) / 8 {
            return Err(HsmError::OpenFailed);
        }
        let result = self.with_object(ObjectClass::SECRET_KEY, key, |session, handle| {
            let mut iv = [0u8; GCM_IV_LEN];
            iv.copy_from_slice(&sealed[..GCM_IV_LEN]);
            let params = GcmParams::new(&mut iv, aad, GCM_TAG_BITS.into())?;
            session
                .decrypt(&Mechanism::AesGcm(params), handle, &sealed[GCM_IV_LEN..])
                .map(|plain| Ok(SecretBytes::new(plain)))
        });
        match result {
            // The token refused to open it: a wrong tag, associated data or length.
            Err(HsmError::Call(_)) => Err(HsmError::OpenFailed),
            other => other,
        }
    }

    fn destroy(&self, key: &HsmKeyRef) -> Result<(), HsmError> {
        self.with_session(|_, lent| {
            let template = [
                Attribute::Label(key.label.as_bytes().to_vec()),
                Attribute::Id(key.id.clone()),
            ];
            for handle in lent.session().find_objects(&template)? {
                lent.session().destroy_object(handle)?;
            }
            Ok(())
        })?;
        Ok(())
    }
}
