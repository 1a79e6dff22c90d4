//! AWS key specs ↔ Coffer's. One row per AWS spec: adding an algorithm Coffer gains
//! (HMAC-224/384/512 are still missing) is filling in its row's `coffer`. RSA keys map
//! for signing (`SIGN_VERIFY`); AWS's asymmetric `ENCRYPT_DECRYPT` is not on the front.

use coffer_crypto::KeySpec;

/// One AWS key spec.
pub struct SpecRow {
    /// AWS `KeySpec`.
    pub aws: &'static str,
    /// AWS `KeyUsage`.
    pub usage: &'static str,
    /// Coffer's spec, once Coffer has the algorithm.
    pub coffer: Option<KeySpec>,
    /// `SigningAlgorithms` (sign keys) or `MacAlgorithms` (HMAC keys).
    pub algorithms: &'static [&'static str],
}

const fn row(
    aws: &'static str,
    usage: &'static str,
    coffer: Option<KeySpec>,
    algorithms: &'static [&'static str],
) -> SpecRow {
    SpecRow {
        aws,
        usage,
        coffer,
        algorithms,
    }
}

const RSA_SIGN: &[&str] = &[
    "RSASSA_PSS_SHA_256",
    "RSASSA_PSS_SHA_384",
    "RSASSA_PSS_SHA_512",
    "RSASSA_PKCS1_V1_5_SHA_256",
    "RSASSA_PKCS1_V1_5_SHA_384",
    "RSASSA_PKCS1_V1_5_SHA_512",
];

/// Every AWS spec the front knows; rows without `coffer` answer
/// `UnsupportedOperationException` until Coffer has the algorithm.
pub const SPECS: &[SpecRow] = &[
    row(
        "SYMMETRIC_DEFAULT",
        "ENCRYPT_DECRYPT",
        Some(KeySpec::Aes256),
        &[],
    ),
    row(
        "HMAC_256",
        "GENERATE_VERIFY_MAC",
        Some(KeySpec::HmacSha256),
        &["HMAC_SHA_256"],
    ),
    row("HMAC_224", "GENERATE_VERIFY_MAC", None, &["HMAC_SHA_224"]),
    row("HMAC_384", "GENERATE_VERIFY_MAC", None, &["HMAC_SHA_384"]),
    row("HMAC_512", "GENERATE_VERIFY_MAC", None, &["HMAC_SHA_512"]),
    row(
        "ECC_NIST_P256",
        "SIGN_VERIFY",
        Some(KeySpec::EcdsaP256),
        &["ECDSA_SHA_256"],
    ),
    row(
        "ECC_NIST_P384",
        "SIGN_VERIFY",
        Some(KeySpec::EcdsaP384),
        &["ECDSA_SHA_384"],
    ),
    row(
        "ECC_NIST_P521",
        "SIGN_VERIFY",
        Some(KeySpec::EcdsaP521),
        &["ECDSA_SHA_512"],
    ),
    row(
        "ECC_SECG_P256K1",
        "SIGN_VERIFY",
        Some(KeySpec::EcdsaSecp256k1),
        &["ECDSA_SHA_256"],
    ),
    row(
        "ECC_NIST_EDWARDS25519",
        "SIGN_VERIFY",
        Some(KeySpec::Ed25519),
        &["ED25519_SHA_512"],
    ),
    row(
        "ML_DSA_44",
        "SIGN_VERIFY",
        Some(KeySpec::MlDsa44),
        &["ML_DSA_SHAKE_256"],
    ),
    row(
        "ML_DSA_65",
        "SIGN_VERIFY",
        Some(KeySpec::MlDsa65),
        &["ML_DSA_SHAKE_256"],
    ),
    row(
        "ML_DSA_87",
        "SIGN_VERIFY",
        Some(KeySpec::MlDsa87),
        &["ML_DSA_SHAKE_256"],
    ),
    row("RSA_2048", "SIGN_VERIFY", Some(KeySpec::Rsa2048), RSA_SIGN),
    row("RSA_3072", "SIGN_VERIFY", Some(KeySpec::Rsa3072), RSA_SIGN),
    row("RSA_4096", "SIGN_VERIFY", Some(KeySpec::Rsa4096), RSA_SIGN),
    // Coffer's own: AWS has no composite spec; the name is Coffer's.
    row(
        "COFFER_HYBRID_ED25519_ML_DSA_65",
        "SIGN_VERIFY",
        Some(KeySpec::HybridEd25519MlDsa65),
        &["COFFER_ML_DSA_65_ED25519"],
    ),
];

/// The row of an AWS spec name.
pub fn by_aws(name: &str) -> Option<&'static SpecRow> {
    SPECS.iter().find(|row| row.aws == name)
}

/// The row of a Coffer spec (every Coffer spec has one).
pub fn by_coffer(spec: KeySpec) -> Option<&'static SpecRow> {
    SPECS.iter().find(|row| row.coffer == Some(spec))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_coffer_spec_has_exactly_one_aws_row() {
        for spec in KeySpec::ALL {
            assert_eq!(
                SPECS.iter().filter(|r| r.coffer == Some(spec)).count(),
                1,
                "{spec:?}"
            );
        }
        assert!(by_aws("HMAC_512").is_some_and(|r| r.coffer.is_none()));
    }
}
