//! JSON Web Keys for public keys: RFC 8037 (Ed25519, `OKP`), RFC 7518 (P-256, P-384,
//! P-521, `EC`; RSA, `RSA`), RFC 8812 (secp256k1, `EC`), draft-ietf-cose-dilithium
//! (ML-DSA, `AKP`), and `AKP` with the composite algorithm name of
//! draft-prabel-jose-pq-composite-sigs (`ML-DSA-65-Ed25519`) for hybrids.
//!
//! RSA JWKs carry no `alg`: one RSA key signs with PSS or PKCS #1 v1.5 (or decrypts),
//! so no single JOSE algorithm names it.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use super::PublicKey;
use crate::spec::KeySpec;
use crate::{CryptoError, Result};

const WHAT: &str = "JWK";
const COMPOSITE_ALG: &str = "ML-DSA-65-Ed25519";

/// A public JWK. Private members (`d`, `priv`) are never produced and are refused on input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    /// Key type: `OKP`, `EC`, `RSA` or `AKP`.
    pub kty: String,
    /// Curve, for `OKP` and `EC`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    /// Algorithm: required for `AKP`, informative otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    /// Key id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// Intended use; `sig` for every key Coffer publishes.
    #[serde(default, rename = "use", skip_serializing_if = "Option::is_none")]
    pub key_use: Option<String>,
    /// `OKP` public key or `EC` x coordinate, base64url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    /// `EC` y coordinate, base64url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
    /// `AKP` public key, base64url.
    #[serde(default, rename = "pub", skip_serializing_if = "Option::is_none")]
    pub public: Option<String>,
    /// `RSA` modulus, base64url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    /// `RSA` public exponent, base64url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
    /// Present only in private JWKs, which are refused.
    #[serde(default, skip_serializing)]
    d: Option<serde_json::Value>,
    /// An RSA private prime: present only in private JWKs, which are refused.
    #[serde(default, skip_serializing)]
    p: Option<serde_json::Value>,
    /// Present only in private AKP JWKs, which are refused.
    #[serde(default, rename = "priv", skip_serializing)]
    private: Option<serde_json::Value>,
}

/// JOSE curve and algorithm names of an ECDSA spec (RFC 7518 §6.2.1.1, RFC 8812 §3).
fn ec_names(spec: KeySpec) -> (&'static str, &'static str) {
    match spec {
        KeySpec::EcdsaP384 => ("P-384", "ES384"),
        KeySpec::EcdsaP521 => ("P-521", "ES512"),
        KeySpec::EcdsaSecp256k1 => ("secp256k1", "ES256K"),
        _ => ("P-256", "ES256"),
    }
}

fn ec_coordinate_len(spec: KeySpec) -> usize {
    match spec {
        KeySpec::EcdsaP384 => 48,
        KeySpec::EcdsaP521 => 66,
        _ => 32,
    }
}

fn ml_dsa_alg(spec: KeySpec) -> &'static str {
    match spec {
        KeySpec::MlDsa44 => "ML-DSA-44",
        KeySpec::MlDsa87 => "ML-DSA-87",
        _ => "ML-DSA-65",
    }
}

fn b64(bytes: &[u8]) -> Option<String> {
    Some(URL_SAFE_NO_PAD.encode(bytes))
}

fn unb64(field: &Option<String>, name: &'static str) -> Result<Vec<u8>> {
    let text = field.as_deref().ok_or(CryptoError::malformed(WHAT, name))?;
    URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| CryptoError::malformed(WHAT, "member is not base64url"))
}

impl PublicKey {
    /// The public key as a JWK, with `kid` if given.
    pub fn to_jwk(&self, kid: Option<&str>) -> Jwk {
        let mut jwk = Jwk {
            kty: String::new(),
            crv: None,
            alg: None,
            kid: kid.map(str::to_owned),
            key_use: Some("sig".to_owned()),
            x: None,
            y: None,
            public: None,
            n: None,
            e: None,
            d: None,
            p: None,
            private: None,
        };
        match self {
            Self::Ed25519(pk) => {
                jwk.kty = "OKP".into();
                jwk.crv = Some("Ed25519".into());
                jwk.alg = Some("EdDSA".into());
                jwk.x = b64(pk);
            }
            Self::EcdsaP256(_)
            | Self::EcdsaP384(_)
            | Self::EcdsaP521(_)
            | Self::EcdsaSecp256k1(_) => {
                let (crv, alg) = ec_names(self.spec());
                let point = self.raw();
                let half = point.len() / 2;
                jwk.kty = "EC".into();
                jwk.crv = Some(crv.into());
                jwk.alg = Some(alg.into());
                jwk.x = b64(&point[1..=half]);
                jwk.y = b64(&point[half + 1..]);
            }
            Self::MlDsa44(pk) | Self::MlDsa65(pk) | Self::MlDsa87(pk) => {
                jwk.kty = "AKP".into();
                jwk.alg = Some(ml_dsa_alg(self.spec()).into());
                jwk.public = b64(pk);
            }
            Self::Rsa { der, .. } => {
                jwk.kty = "RSA".into();
                jwk.key_use = None;
                // The key was checked when it was made; a parse failure leaves n and e out.
                if let Ok(key) = aws_lc_rs::rsa::PublicKey::from_der(der) {
                    jwk.n = b64(key.modulus().big_endian_without_leading_zero());
                    jwk.e = b64(key.exponent().big_endian_without_leading_zero());
                }
            }
            Self::Composite { .. } => {
                jwk.kty = "AKP".into();
                jwk.alg = Some(COMPOSITE_ALG.into());
                jwk.public = b64(&self.raw());
            }
        }
        jwk
    }

    /// Parses a public JWK. Private JWKs are refused so a secret is never imported as
    /// if it were public.
    pub fn from_jwk(jwk: &Jwk) -> Result<Self> {
        if jwk.d.is_some() || jwk.p.is_some() || jwk.private.is_some() {
            return Err(CryptoError::malformed(
                WHAT,
                "private keys are not accepted",
            ));
        }
        match (jwk.kty.as_str(), jwk.crv.as_deref(), jwk.alg.as_deref()) {
            ("OKP", Some("Ed25519"), _) => {
                Self::from_raw(KeySpec::Ed25519, &unb64(&jwk.x, "missing x")?)
            }
            ("EC", Some(crv), _) => {
                let spec = [
                    KeySpec::EcdsaP256,
                    KeySpec::EcdsaP384,
                    KeySpec::EcdsaP521,
                    KeySpec::EcdsaSecp256k1,
                ]
                .into_iter()
                .find(|spec| ec_names(*spec).0 == crv)
                .ok_or(CryptoError::malformed(WHAT, "unsupported crv"))?;
                let (x, y) = (unb64(&jwk.x, "missing x")?, unb64(&jwk.y, "missing y")?);
                let coordinate_len = ec_coordinate_len(spec);
                if x.len() != coordinate_len || y.len() != coordinate_len {
                    return Err(CryptoError::malformed(
                        WHAT,
                        "coordinates must be the curve's field size",
                    ));
                }
                Self::from_raw(spec, &[&[0x04][..], &x, &y].concat())
            }
            ("RSA", _, _) => {
                let components = aws_lc_rs::rsa::PublicKeyComponents {
                    n: unb64(&jwk.n, "missing n")?,
                    e: unb64(&jwk.e, "missing e")?,
                };
                let spki = aws_lc_rs::encoding::AsDer::<
                    aws_lc_rs::encoding::PublicKeyX509Der<'static>,
                >::as_der(&components)
                .map_err(|_| CryptoError::KeyRejected("RSA public key"))?;
                Self::from_spki_der(spki.as_ref())
            }
            ("AKP", _, Some(alg @ ("ML-DSA-44" | "ML-DSA-65" | "ML-DSA-87"))) => {
                let spec = [KeySpec::MlDsa44, KeySpec::MlDsa65, KeySpec::MlDsa87]
                    .into_iter()
                    .find(|spec| ml_dsa_alg(*spec) == alg)
                    .ok_or(CryptoError::malformed(WHAT, "unsupported alg"))?;
                Self::from_raw(spec, &unb64(&jwk.public, "missing pub")?)
            }
            ("AKP", _, Some(COMPOSITE_ALG)) => Self::from_raw(
                KeySpec::HybridEd25519MlDsa65,
                &unb64(&jwk.public, "missing pub")?,
            ),
            _ => Err(CryptoError::malformed(WHAT, "unsupported kty, crv or alg")),
        }
    }

    /// Parses a JWK from JSON text.
    pub fn from_jwk_json(text: &str) -> Result<Self> {
        let jwk: Jwk =
            serde_json::from_str(text).map_err(|_| CryptoError::malformed(WHAT, "invalid JSON"))?;
        Self::from_jwk(&jwk)
    }
}
