//! JSON Web Keys for public keys: RFC 8037 (Ed25519, `OKP`), RFC 7518 (P-256, `EC`),
//! draft-ietf-cose-dilithium (ML-DSA, `AKP`), and `AKP` with the composite algorithm
//! name of draft-prabel-jose-pq-composite-sigs (`ML-DSA-65-Ed25519`) for hybrids.

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
    /// Key type: `OKP`, `EC` or `AKP`.
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
    /// Present only in private JWKs, which are refused.
    #[serde(default, skip_serializing)]
    d: Option<serde_json::Value>,
    /// Present only in private AKP JWKs, which are refused.
    #[serde(default, rename = "priv", skip_serializing)]
    private: Option<serde_json::Value>,
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
            d: None,
            private: None,
        };
        match self {
            Self::Ed25519(pk) => {
                jwk.kty = "OKP".into();
                jwk.crv = Some("Ed25519".into());
                jwk.alg = Some("EdDSA".into());
                jwk.x = b64(pk);
            }
            Self::EcdsaP256(pk) => {
                jwk.kty = "EC".into();
                jwk.crv = Some("P-256".into());
                jwk.alg = Some("ES256".into());
                jwk.x = b64(&pk[1..33]);
                jwk.y = b64(&pk[33..]);
            }
            Self::MlDsa65(pk) => {
                jwk.kty = "AKP".into();
                jwk.alg = Some("ML-DSA-65".into());
                jwk.public = b64(pk);
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
        if jwk.d.is_some() || jwk.private.is_some() {
            return Err(CryptoError::malformed(
                WHAT,
                "private keys are not accepted",
            ));
        }
        match (jwk.kty.as_str(), jwk.crv.as_deref(), jwk.alg.as_deref()) {
            ("OKP", Some("Ed25519"), _) => {
                Self::from_raw(KeySpec::Ed25519, &unb64(&jwk.x, "missing x")?)
            }
            ("EC", Some("P-256"), _) => {
                let (x, y) = (unb64(&jwk.x, "missing x")?, unb64(&jwk.y, "missing y")?);
                if x.len() != 32 || y.len() != 32 {
                    return Err(CryptoError::malformed(
                        WHAT,
                        "P-256 coordinates must be 32 bytes",
                    ));
                }
                Self::from_raw(KeySpec::EcdsaP256, &[&[0x04][..], &x, &y].concat())
            }
            ("AKP", _, Some("ML-DSA-65")) => {
                Self::from_raw(KeySpec::MlDsa65, &unb64(&jwk.public, "missing pub")?)
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
