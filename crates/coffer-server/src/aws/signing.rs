//! Signatures and MACs through the AWS front: Sign, Verify, GenerateMac, VerifyMac.
//! An algorithm name that is not the key's is refused before anything is signed or
//! computed: the name stands for the Coffer algorithms it may mean (`ECDSA_SHA_256` is
//! P-256's or secp256k1's), and the native operation takes the one the key offers.

use coffer_api::ErrorCode;
use coffer_core::kms::{KmsError, SignInput};
use coffer_crypto::{KeySpec, SignatureAlgorithm as A};
use serde_json::{Value, json};

use super::request::{Body, b64};
use super::{AwsError, Ctx};

/// AWS's limit on Sign and GenerateMac messages.
const MAX_MESSAGE: usize = 4096;

/// The Coffer algorithms an AWS `SigningAlgorithm` may stand for.
fn among(name: &str) -> Option<&'static [A]> {
    Some(match name {
        "ECDSA_SHA_256" => &[A::EcdsaP256Sha256, A::EcdsaSecp256k1Sha256],
        "ECDSA_SHA_384" => &[A::EcdsaP384Sha384],
        "ECDSA_SHA_512" => &[A::EcdsaP521Sha512],
        "ED25519_SHA_512" => &[A::Ed25519],
        "ML_DSA_SHAKE_256" => &[A::MlDsa44, A::MlDsa65, A::MlDsa87],
        "COFFER_ML_DSA_65_ED25519" => &[A::MlDsa65Ed25519],
        "RSASSA_PSS_SHA_256" => &[A::RsaPssSha256],
        "RSASSA_PSS_SHA_384" => &[A::RsaPssSha384],
        "RSASSA_PSS_SHA_512" => &[A::RsaPssSha512],
        "RSASSA_PKCS1_V1_5_SHA_256" => &[A::RsaPkcs1Sha256],
        "RSASSA_PKCS1_V1_5_SHA_384" => &[A::RsaPkcs1Sha384],
        "RSASSA_PKCS1_V1_5_SHA_512" => &[A::RsaPkcs1Sha512],
        _ => return None,
    })
}

/// The native operations refuse an algorithm the key does not offer as bad input; the
/// front has already checked the input's shape (message, digest and μ lengths, message
/// types), so what is left to refuse is the algorithm for this key, which AWS answers
/// with `InvalidKeyUsageException`.
fn wrong_algorithm(algorithm: &str) -> impl Fn(KmsError) -> AwsError + '_ {
    move |error| match error {
        KmsError::Invalid(_) => AwsError::client(
            "InvalidKeyUsageException",
            ErrorCode::WrongKeyPurpose,
            format!("SigningAlgorithm {algorithm} is not valid for this key"),
        ),
        other => other.into(),
    }
}

fn algorithms(name: &str) -> Result<&'static [A], AwsError> {
    among(name).ok_or_else(|| AwsError::validation(format!("unknown SigningAlgorithm {name}")))
}

/// The digest length `MessageType: DIGEST` takes for an algorithm (ECDSA and RSA).
fn digest_len(name: &str) -> Option<usize> {
    let hashed = name.starts_with("ECDSA_") || name.starts_with("RSASSA_");
    match name.rsplit('_').next() {
        Some("256") if hashed => Some(32),
        Some("384") if hashed => Some(48),
        Some("512") if hashed => Some(64),
        _ => None,
    }
}

/// The message and how it is to be read (`MessageType` RAW, or DIGEST for ECDSA and
/// RSA; `EXTERNAL_MU` for ML-DSA).
fn sign_input<'a>(
    input: &Body,
    message: &'a [u8],
    algorithm: &str,
) -> Result<SignInput<'a>, AwsError> {
    match input.opt_str("MessageType")?.unwrap_or("RAW") {
        "RAW" if message.len() <= MAX_MESSAGE && !message.is_empty() => {
            Ok(SignInput::Message(message))
        }
        "RAW" => Err(AwsError::validation(
            "Message must be between 1 and 4096 bytes",
        )),
        "DIGEST" => match digest_len(algorithm) {
            Some(len) if message.len() == len => Ok(SignInput::Digest(message)),
            Some(len) => Err(AwsError::validation(format!(
                "a digest for {algorithm} is {len} bytes"
            ))),
            None => Err(AwsError::validation(format!(
                "MessageType DIGEST is not available for {algorithm}"
            ))),
        },
        "EXTERNAL_MU" if algorithm == "ML_DSA_SHAKE_256" && message.len() == 64 => {
            Ok(SignInput::MlDsaMu(message))
        }
        "EXTERNAL_MU" if algorithm == "ML_DSA_SHAKE_256" => {
            Err(AwsError::validation("an ML-DSA mu is 64 bytes"))
        }
        other => Err(AwsError::validation(format!(
            "MessageType {other} is not available for {algorithm}"
        ))),
    }
}

/// `Sign`. A `SigningAlgorithm` the key does not offer is `InvalidKeyUsageException`,
/// refused before signing.
pub async fn sign(ctx: &Ctx<'_>, input: &Body) -> Result<Value, AwsError> {
    let reference = ctx.reference(input.str("KeyId")?)?;
    let message = input.blob("Message")?;
    let algorithm = input.str("SigningAlgorithm")?;
    let candidates = algorithms(algorithm)?;
    let signed = ctx
        .state
        .kms
        .sign_among(
            &ctx.caller,
            &reference,
            candidates,
            sign_input(input, &message, algorithm)?,
        )
        .await
        .map_err(wrong_algorithm(algorithm))?;
    Ok(json!({
        "KeyId": ctx.key_arn(signed.key_id),
        "Signature": b64(&signed.signature),
        "SigningAlgorithm": algorithm,
    }))
}

/// `Verify`: an invalid signature is `KMSInvalidSignatureException`, as AWS.
pub async fn verify(ctx: &Ctx<'_>, input: &Body) -> Result<Value, AwsError> {
    let reference = ctx.reference(input.str("KeyId")?)?;
    let message = input.blob("Message")?;
    let signature = input.blob("Signature")?;
    let algorithm = input.str("SigningAlgorithm")?;
    let candidates = algorithms(algorithm)?;
    let verified = ctx
        .state
        .kms
        .verify_among(
            &ctx.caller,
            &reference,
            None,
            candidates,
            sign_input(input, &message, algorithm)?,
            &signature,
        )
        .await
        .map_err(wrong_algorithm(algorithm))?;
    if !verified.valid {
        return Err(AwsError::client(
            "KMSInvalidSignatureException",
            ErrorCode::InvalidRequest,
            "the signature does not verify",
        ));
    }
    Ok(json!({
        "KeyId": ctx.key_arn(verified.key_id),
        "SignatureValid": true,
        "SigningAlgorithm": algorithm,
    }))
}

/// The HMAC spec an AWS `MacAlgorithm` needs of the key.
fn mac_spec(input: &Body) -> Result<(&str, KeySpec), AwsError> {
    let name = input.str("MacAlgorithm")?;
    let spec = match name {
        "HMAC_SHA_224" => KeySpec::HmacSha224,
        "HMAC_SHA_256" => KeySpec::HmacSha256,
        "HMAC_SHA_384" => KeySpec::HmacSha384,
        "HMAC_SHA_512" => KeySpec::HmacSha512,
        other => {
            return Err(AwsError::validation(format!(
                "unknown MacAlgorithm {other}"
            )));
        }
    };
    Ok((name, spec))
}

fn mac_message(input: &Body) -> Result<Vec<u8>, AwsError> {
    let message = input.blob("Message")?;
    if message.is_empty() || message.len() > MAX_MESSAGE {
        return Err(AwsError::validation(
            "Message must be between 1 and 4096 bytes",
        ));
    }
    Ok(message)
}

/// `GenerateMac`: a `MacAlgorithm` not the key's is `InvalidKeyUsageException`.
pub async fn mac(ctx: &Ctx<'_>, input: &Body) -> Result<Value, AwsError> {
    let reference = ctx.reference(input.str("KeyId")?)?;
    let (algorithm, spec) = mac_spec(input)?;
    let message = mac_message(input)?;
    let (tag, made) = ctx
        .state
        .kms
        .mac_as(&ctx.caller, &reference, Some(spec), &message)
        .await?;
    Ok(json!({
        "KeyId": ctx.key_arn(made.key_id),
        "Mac": b64(&tag),
        "MacAlgorithm": algorithm,
    }))
}

/// `VerifyMac`: a wrong MAC is `KMSInvalidMacException`, as AWS.
pub async fn verify_mac(ctx: &Ctx<'_>, input: &Body) -> Result<Value, AwsError> {
    let reference = ctx.reference(input.str("KeyId")?)?;
    let (algorithm, spec) = mac_spec(input)?;
    let message = mac_message(input)?;
    let tag = input.blob("Mac")?;
    let checked = ctx
        .state
        .kms
        .verify_mac_as(&ctx.caller, &reference, Some(spec), None, &message, &tag)
        .await?;
    if !checked.valid {
        return Err(AwsError::client(
            "KMSInvalidMacException",
            ErrorCode::InvalidRequest,
            "the MAC does not verify",
        ));
    }
    Ok(json!({
        "KeyId": ctx.key_arn(checked.key_id),
        "MacValid": true,
        "MacAlgorithm": algorithm,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spec_algorithm_name_stands_for_the_specs_algorithms() {
        // Each row's names resolve, and among them is an algorithm the spec offers.
        for row in super::super::specs::SPECS {
            let Some(spec) = row.coffer.filter(|s| s.is_signing()) else {
                continue;
            };
            for name in row.algorithms {
                let candidates = algorithms(name).unwrap();
                assert!(
                    A::choose_among(spec, candidates).is_ok(),
                    "{name} for {spec}"
                );
            }
        }
        // A name of another family is refused by the spec before any signing.
        let p256 = algorithms("ECDSA_SHA_256").unwrap();
        assert!(A::choose_among(KeySpec::MlDsa65, p256).is_err());
        assert_eq!(
            A::choose_among(KeySpec::EcdsaSecp256k1, p256).unwrap(),
            A::EcdsaSecp256k1Sha256
        );
        assert!(algorithms("NOT_AN_ALGORITHM").is_err());
        assert_eq!(digest_len("RSASSA_PSS_SHA_384"), Some(48));
        assert_eq!(digest_len("ECDSA_SHA_512"), Some(64));
        assert_eq!(digest_len("ML_DSA_SHAKE_256"), None);
        assert_eq!(digest_len("ED25519_SHA_512"), None);
    }
}
