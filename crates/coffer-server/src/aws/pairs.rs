//! GenerateDataKeyPair and GenerateDataKeyPairWithoutPlaintext over the native data
//! key pair (`Kms::datakey_pair`, audited as `datakey.pair`): a fresh ECDSA or RSA key
//! pair whose private key (PKCS #8 DER) comes back sealed under a symmetric key, with
//! the public key (SubjectPublicKeyInfo DER) and, unless declined, the private key.

use coffer_crypto::KeySpec;
use serde_json::{Value, json};

use super::request::{Body, b64};
use super::{AwsError, Ctx};

/// AWS's `KeyPairSpec` names Coffer makes.
fn pair_spec(name: &str) -> Result<KeySpec, AwsError> {
    Ok(match name {
        "RSA_2048" => KeySpec::Rsa2048,
        "RSA_3072" => KeySpec::Rsa3072,
        "RSA_4096" => KeySpec::Rsa4096,
        "ECC_NIST_P256" => KeySpec::EcdsaP256,
        "ECC_NIST_P384" => KeySpec::EcdsaP384,
        "ECC_NIST_P521" => KeySpec::EcdsaP521,
        "ECC_SECG_P256K1" => KeySpec::EcdsaSecp256k1,
        "SM2" => {
            return Err(AwsError::unsupported(
                "KeyPairSpec SM2 is not available in this Coffer",
            ));
        }
        other => return Err(AwsError::validation(format!("unknown KeyPairSpec {other}"))),
    })
}

/// `GenerateDataKeyPair` (`with_plaintext`) / `…WithoutPlaintext`.
pub async fn data_key_pair(
    ctx: &Ctx<'_>,
    input: &Body,
    with_plaintext: bool,
) -> Result<Value, AwsError> {
    let reference = ctx.reference(input.str("KeyId")?)?;
    let name = input.str("KeyPairSpec")?;
    let spec = pair_spec(name)?;
    let context = input.context("EncryptionContext")?;
    if input.opt_present("Recipient") {
        return Err(AwsError::unsupported(
            "Recipient (Nitro Enclaves attestation) is not offered by Coffer's AWS front",
        ));
    }
    let pair = ctx
        .state
        .kms
        .datakey_pair(&ctx.caller, &reference, spec, &context)
        .await?;
    let mut answer = json!({
        "KeyId": ctx.key_arn(pair.sealed.key_id),
        "KeyPairSpec": name,
        "PrivateKeyCiphertextBlob": b64(&pair.sealed.ciphertext),
        "PublicKey": b64(&pair.public_key),
    });
    if with_plaintext {
        answer["PrivateKeyPlaintext"] = b64(pair.private_key.expose_secret());
    }
    Ok(answer)
}
