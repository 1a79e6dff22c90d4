//! Cryptography through the AWS front: Encrypt, Decrypt, ReEncrypt, GenerateDataKey
//! (with and without plaintext), GenerateRandom, Sign, Verify, GenerateMac, VerifyMac.
//! Ciphertexts are Coffer's envelopes, so either front opens the other's.

use coffer_api::ErrorCode;
use coffer_core::KeyId;
use coffer_core::kms::SignInput;
use coffer_crypto::SignatureAlgorithm;
use coffer_crypto::envelope::EnvelopeHeader;
use serde_json::{Value, json};

use super::request::{Body, b64};
use super::{AwsError, Ctx};

/// AWS's limits: Encrypt and Sign/GenerateMac messages, Decrypt ciphertexts, data keys.
const MAX_MESSAGE: usize = 4096;
const MAX_CIPHERTEXT: usize = 6144;
const DATA_KEY_BYTES: std::ops::RangeInclusive<i64> = 1..=1024;

fn symmetric_only(input: &Body, field: &str) -> Result<(), AwsError> {
    match input.opt_str(field)? {
        None | Some("SYMMETRIC_DEFAULT") => Ok(()),
        Some(other) => Err(AwsError::client(
            "InvalidKeyUsageException",
            ErrorCode::WrongKeyPurpose,
            format!("{field} {other} is not available for a SYMMETRIC_DEFAULT key"),
        )),
    }
}

/// `Encrypt`.
pub async fn encrypt(ctx: &Ctx<'_>, input: &Body) -> Result<Value, AwsError> {
    let reference = ctx.reference(input.str("KeyId")?)?;
    let plaintext = input.blob("Plaintext")?;
    let context = input.context("EncryptionContext")?;
    symmetric_only(input, "EncryptionAlgorithm")?;
    if plaintext.is_empty() || plaintext.len() > MAX_MESSAGE {
        return Err(AwsError::validation(
            "Plaintext must be between 1 and 4096 bytes",
        ));
    }
    let sealed = ctx
        .state
        .kms
        .wrap(&ctx.caller, &reference, &plaintext, &context)
        .await?;
    Ok(json!({
        "CiphertextBlob": b64(&sealed.ciphertext),
        "KeyId": ctx.key_arn(sealed.key_id),
        "EncryptionAlgorithm": "SYMMETRIC_DEFAULT",
    }))
}

/// The key an AWS `KeyId` names, for comparing with the key a ciphertext names.
async fn key_of(ctx: &Ctx<'_>, key_id: &str) -> Result<KeyId, AwsError> {
    let reference = ctx.reference(key_id)?;
    if let Ok(id) = reference.parse::<KeyId>() {
        return Ok(id);
    }
    Ok(ctx
        .state
        .kms
        .show_key(&ctx.caller, &reference)
        .await?
        .key
        .id)
}

fn incorrect_key() -> AwsError {
    AwsError::client(
        "IncorrectKeyException",
        ErrorCode::InvalidCiphertext,
        "The key ID in the request does not identify the KMS key that encrypted the ciphertext",
    )
}

fn ciphertext(input: &Body, field: &str) -> Result<Vec<u8>, AwsError> {
    let blob = input.blob(field)?;
    if blob.is_empty() || blob.len() > MAX_CIPHERTEXT {
        return Err(AwsError::validation(format!(
            "{field} must be between 1 and 6144 bytes"
        )));
    }
    Ok(blob)
}

/// `Decrypt`: the key comes from the blob; a `KeyId`, when given, must be that key.
pub async fn decrypt(ctx: &Ctx<'_>, input: &Body) -> Result<Value, AwsError> {
    let blob = ciphertext(input, "CiphertextBlob")?;
    let context = input.context("EncryptionContext")?;
    symmetric_only(input, "EncryptionAlgorithm")?;
    if let Some(key_id) = input.opt_str("KeyId")? {
        let named = EnvelopeHeader::parse(&blob)
            .map_err(|_| AwsError::from(coffer_core::kms::KmsError::InvalidCiphertext))?;
        if key_of(ctx, key_id).await? != KeyId::from_bytes(named.key_id) {
            return Err(incorrect_key());
        }
    }
    let opened = ctx.state.kms.unwrap(&ctx.caller, &blob, &context).await?;
    Ok(json!({
        "KeyId": ctx.key_arn(opened.key_id),
        "Plaintext": b64(opened.plaintext.expose_secret()),
        "EncryptionAlgorithm": "SYMMETRIC_DEFAULT",
    }))
}

/// `ReEncrypt`: Coffer's rewrap (decrypt and encrypt inside the service).
pub async fn re_encrypt(ctx: &Ctx<'_>, input: &Body) -> Result<Value, AwsError> {
    let blob = ciphertext(input, "CiphertextBlob")?;
    let source_context = input.context("SourceEncryptionContext")?;
    let destination_context = input.context("DestinationEncryptionContext")?;
    let destination = ctx.reference(input.str("DestinationKeyId")?)?;
    symmetric_only(input, "SourceEncryptionAlgorithm")?;
    symmetric_only(input, "DestinationEncryptionAlgorithm")?;
    let source = EnvelopeHeader::parse(&blob)
        .map_err(|_| AwsError::from(coffer_core::kms::KmsError::InvalidCiphertext))?;
    let source = KeyId::from_bytes(source.key_id);
    if let Some(key_id) = input.opt_str("SourceKeyId")? {
        if key_of(ctx, key_id).await? != source {
            return Err(incorrect_key());
        }
    }
    let sealed = ctx
        .state
        .kms
        .rewrap(
            &ctx.caller,
            &blob,
            &source_context,
            Some(&destination),
            Some(&destination_context),
        )
        .await?;
    Ok(json!({
        "CiphertextBlob": b64(&sealed.ciphertext),
        "SourceKeyId": ctx.key_arn(source),
        "KeyId": ctx.key_arn(sealed.key_id),
        "SourceEncryptionAlgorithm": "SYMMETRIC_DEFAULT",
        "DestinationEncryptionAlgorithm": "SYMMETRIC_DEFAULT",
    }))
}

/// `GenerateDataKey` / `GenerateDataKeyWithoutPlaintext`.
pub async fn data_key(
    ctx: &Ctx<'_>,
    input: &Body,
    with_plaintext: bool,
) -> Result<Value, AwsError> {
    let reference = ctx.reference(input.str("KeyId")?)?;
    let context = input.context("EncryptionContext")?;
    let bytes = match (input.opt_int("NumberOfBytes")?, input.opt_str("KeySpec")?) {
        (Some(n), None) if DATA_KEY_BYTES.contains(&n) => n.unsigned_abs() as usize,
        (Some(_), None) => {
            return Err(AwsError::validation(
                "NumberOfBytes must be between 1 and 1024",
            ));
        }
        (None, Some("AES_256")) => 32,
        (None, Some("AES_128")) => 16,
        (None, Some(other)) => {
            return Err(AwsError::validation(format!(
                "KeySpec {other} is not AES_256 or AES_128"
            )));
        }
        (None, None) => {
            return Err(AwsError::validation(
                "one of KeySpec or NumberOfBytes is required",
            ));
        }
        (Some(_), Some(_)) => {
            return Err(AwsError::validation(
                "KeySpec and NumberOfBytes are exclusive",
            ));
        }
    };
    let (key, sealed) = ctx
        .state
        .kms
        .datakey(&ctx.caller, &reference, bytes, &context, None)
        .await?;
    let mut answer = json!({
        "CiphertextBlob": b64(&sealed.ciphertext),
        "KeyId": ctx.key_arn(sealed.key_id),
    });
    if with_plaintext {
        answer["Plaintext"] = b64(key.expose_secret());
    }
    Ok(answer)
}

/// `GenerateRandom`: 1–1024 bytes from the operating system's generator.
pub fn random(input: &Body) -> Result<Value, AwsError> {
    if input.opt_present("CustomKeyStoreId") || input.opt_present("Recipient") {
        return Err(AwsError::unsupported(
            "CustomKeyStoreId and Recipient are not offered by Coffer's AWS front",
        ));
    }
    let n = input
        .opt_int("NumberOfBytes")?
        .ok_or_else(|| AwsError::validation("NumberOfBytes is required"))?;
    if !DATA_KEY_BYTES.contains(&n) {
        return Err(AwsError::validation(
            "NumberOfBytes must be between 1 and 1024",
        ));
    }
    let mut bytes = vec![0u8; n.unsigned_abs() as usize];
    coffer_crypto::rng::fill(&mut bytes)
        .map_err(|e| AwsError::from(coffer_core::kms::KmsError::Internal(e.to_string())))?;
    Ok(json!({ "Plaintext": b64(&bytes) }))
}

/// AWS's name of a Coffer signature algorithm (the `specs` table's names).
fn aws_algorithm(algorithm: SignatureAlgorithm) -> &'static str {
    match algorithm {
        SignatureAlgorithm::Ed25519 => "ED25519_SHA_512",
        SignatureAlgorithm::EcdsaP256Sha256 => "ECDSA_SHA_256",
        SignatureAlgorithm::MlDsa65 => "ML_DSA_SHAKE_256",
        SignatureAlgorithm::MlDsa65Ed25519 => "COFFER_ML_DSA_65_ED25519",
        // The algorithms of the new specs: the front does not map their key specs yet,
        // so none of these keys reaches it through CreateKey; named as AWS names them.
        SignatureAlgorithm::EcdsaP384Sha384 => "ECDSA_SHA_384",
        SignatureAlgorithm::EcdsaP521Sha512 => "ECDSA_SHA_512",
        SignatureAlgorithm::EcdsaSecp256k1Sha256 => "ECDSA_SHA_256",
        SignatureAlgorithm::MlDsa44 | SignatureAlgorithm::MlDsa87 => "ML_DSA_SHAKE_256",
        SignatureAlgorithm::RsaPssSha256 => "RSASSA_PSS_SHA_256",
        SignatureAlgorithm::RsaPssSha384 => "RSASSA_PSS_SHA_384",
        SignatureAlgorithm::RsaPssSha512 => "RSASSA_PSS_SHA_512",
        SignatureAlgorithm::RsaPkcs1Sha256 => "RSASSA_PKCS1_V1_5_SHA_256",
        SignatureAlgorithm::RsaPkcs1Sha384 => "RSASSA_PKCS1_V1_5_SHA_384",
        SignatureAlgorithm::RsaPkcs1Sha512 => "RSASSA_PKCS1_V1_5_SHA_512",
    }
}

/// The Coffer algorithm an AWS `SigningAlgorithm` names where the name alone decides it
/// (RSA's six: the key's spec does not); `None` where the key's spec decides it (one
/// algorithm per spec), checked against the answer's algorithm.
fn chosen_algorithm(name: &str) -> Option<SignatureAlgorithm> {
    Some(match name {
        "RSASSA_PSS_SHA_256" => SignatureAlgorithm::RsaPssSha256,
        "RSASSA_PSS_SHA_384" => SignatureAlgorithm::RsaPssSha384,
        "RSASSA_PSS_SHA_512" => SignatureAlgorithm::RsaPssSha512,
        "RSASSA_PKCS1_V1_5_SHA_256" => SignatureAlgorithm::RsaPkcs1Sha256,
        "RSASSA_PKCS1_V1_5_SHA_384" => SignatureAlgorithm::RsaPkcs1Sha384,
        "RSASSA_PKCS1_V1_5_SHA_512" => SignatureAlgorithm::RsaPkcs1Sha512,
        _ => return None,
    })
}

fn wrong_algorithm(requested: &str) -> AwsError {
    AwsError::client(
        "InvalidKeyUsageException",
        ErrorCode::WrongKeyPurpose,
        format!("SigningAlgorithm {requested} is not valid for this key"),
    )
}

/// The message and how it is to be read (`MessageType` RAW, or DIGEST for ECDSA).
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
        "DIGEST" if algorithm == "ECDSA_SHA_256" && message.len() == 32 => {
            Ok(SignInput::Digest(message))
        }
        "DIGEST" if algorithm == "ECDSA_SHA_256" => {
            Err(AwsError::validation("a SHA-256 digest is 32 bytes"))
        }
        other => Err(AwsError::validation(format!(
            "MessageType {other} is not available for {algorithm}"
        ))),
    }
}

/// `Sign`. The algorithm is the key's own (Coffer keys have one); a request naming
/// another is refused before anything is returned.
pub async fn sign(ctx: &Ctx<'_>, input: &Body) -> Result<Value, AwsError> {
    let reference = ctx.reference(input.str("KeyId")?)?;
    let message = input.blob("Message")?;
    let algorithm = input.str("SigningAlgorithm")?;
    let signed = ctx
        .state
        .kms
        .sign_with(
            &ctx.caller,
            &reference,
            chosen_algorithm(algorithm),
            sign_input(input, &message, algorithm)?,
        )
        .await?;
    if aws_algorithm(signed.algorithm) != algorithm {
        return Err(wrong_algorithm(algorithm));
    }
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
    let details = ctx.state.kms.show_key(&ctx.caller, &reference).await?;
    let expected = super::specs::by_coffer(details.key.spec)
        .is_some_and(|row| row.algorithms.contains(&algorithm));
    if !expected {
        return Err(wrong_algorithm(algorithm));
    }
    let verified = ctx
        .state
        .kms
        .verify_with(
            &ctx.caller,
            &reference,
            None,
            chosen_algorithm(algorithm),
            sign_input(input, &message, algorithm)?,
            &signature,
        )
        .await?;
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

fn mac_algorithm(input: &Body) -> Result<&str, AwsError> {
    match input.str("MacAlgorithm")? {
        "HMAC_SHA_256" => Ok("HMAC_SHA_256"),
        other => Err(AwsError::client(
            "InvalidKeyUsageException",
            ErrorCode::WrongKeyPurpose,
            format!("MacAlgorithm {other} is not valid for this key"),
        )),
    }
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

/// `GenerateMac`.
pub async fn mac(ctx: &Ctx<'_>, input: &Body) -> Result<Value, AwsError> {
    let reference = ctx.reference(input.str("KeyId")?)?;
    let algorithm = mac_algorithm(input)?;
    let message = mac_message(input)?;
    let (tag, made) = ctx.state.kms.mac(&ctx.caller, &reference, &message).await?;
    Ok(json!({
        "KeyId": ctx.key_arn(made.key_id),
        "Mac": b64(&tag),
        "MacAlgorithm": algorithm,
    }))
}

/// `VerifyMac`: a wrong MAC is `KMSInvalidMacException`, as AWS.
pub async fn verify_mac(ctx: &Ctx<'_>, input: &Body) -> Result<Value, AwsError> {
    let reference = ctx.reference(input.str("KeyId")?)?;
    let algorithm = mac_algorithm(input)?;
    let message = mac_message(input)?;
    let tag = input.blob("Mac")?;
    let checked = ctx
        .state
        .kms
        .verify_mac(&ctx.caller, &reference, None, &message, &tag)
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
