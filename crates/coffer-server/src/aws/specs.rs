//! AWS key specs ↔ Coffer's. One row per AWS spec: adding an algorithm Coffer gains
//! is filling in its row's `coffer`. RSA keys sign (`SIGN_VERIFY`, their natural usage)
//! or encrypt (`ENCRYPT_DECRYPT`, RSAES-OAEP): the key's purpose says which.

use coffer_core::KeyPurpose;
use coffer_crypto::{EncryptionAlgorithm, KeySpec};

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
    row(
        "HMAC_224",
        "GENERATE_VERIFY_MAC",
        Some(KeySpec::HmacSha224),
        &["HMAC_SHA_224"],
    ),
    row(
        "HMAC_384",
        "GENERATE_VERIFY_MAC",
        Some(KeySpec::HmacSha384),
        &["HMAC_SHA_384"],
    ),
    row(
        "HMAC_512",
        "GENERATE_VERIFY_MAC",
        Some(KeySpec::HmacSha512),
        &["HMAC_SHA_512"],
    ),
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

/// AWS's encryption algorithms of RSA keys made for `ENCRYPT_DECRYPT`.
pub const RSA_ENCRYPTION: &[&str] = &["RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"];

/// The Coffer algorithm of an AWS `EncryptionAlgorithm` for RSA keys.
pub fn rsa_encryption(name: &str) -> Option<EncryptionAlgorithm> {
    match name {
        "RSAES_OAEP_SHA_1" => Some(EncryptionAlgorithm::RsaOaepSha1),
        "RSAES_OAEP_SHA_256" => Some(EncryptionAlgorithm::RsaOaepSha256),
        _ => None,
    }
}

/// The Coffer purpose a `KeyUsage` asks of a spec's row: its own usage, or
/// `ENCRYPT_DECRYPT` for RSA; `None` when the spec has no such usage.
pub fn purpose_of(row: &SpecRow, usage: &str) -> Option<KeyPurpose> {
    let spec = row.coffer?;
    if usage == row.usage {
        return Some(KeyPurpose::of(spec));
    }
    (usage == "ENCRYPT_DECRYPT" && spec.is_rsa()).then_some(KeyPurpose::Encrypt)
}

/// The AWS `KeyUsage` of a key of `purpose` (RSA keys have two).
pub fn usage_of(row: &SpecRow, purpose: KeyPurpose) -> &'static str {
    match purpose {
        KeyPurpose::Encrypt => "ENCRYPT_DECRYPT",
        _ => row.usage,
    }
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
        assert!(SPECS.iter().all(|r| r.coffer.is_some()));
    }

    #[test]
    fn only_rsa_has_a_second_usage() {
        let rsa = by_aws("RSA_3072").unwrap();
        assert_eq!(purpose_of(rsa, "SIGN_VERIFY"), Some(KeyPurpose::Sign));
        assert_eq!(
            purpose_of(rsa, "ENCRYPT_DECRYPT"),
            Some(KeyPurpose::Encrypt)
        );
        assert_eq!(usage_of(rsa, KeyPurpose::Encrypt), "ENCRYPT_DECRYPT");
        let p256 = by_aws("ECC_NIST_P256").unwrap();
        assert_eq!(purpose_of(p256, "ENCRYPT_DECRYPT"), None);
        let hmac = by_aws("HMAC_384").unwrap();
        assert_eq!(
            purpose_of(hmac, "GENERATE_VERIFY_MAC"),
            Some(KeyPurpose::Mac)
        );
        assert_eq!(purpose_of(hmac, "SIGN_VERIFY"), None);
        assert_eq!(
            rsa_encryption("RSAES_OAEP_SHA_1"),
            Some(EncryptionAlgorithm::RsaOaepSha1)
        );
        assert_eq!(rsa_encryption("SYMMETRIC_DEFAULT"), None);
    }
}
