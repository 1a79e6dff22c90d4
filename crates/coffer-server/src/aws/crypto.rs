//! Encryption through the AWS front: Encrypt, Decrypt, ReEncrypt, GenerateDataKey (with
//! and without plaintext), GenerateRandom. Symmetric ciphertexts are Coffer's
//! envelopes, so either front opens the other's; RSA `ENCRYPT_DECRYPT` keys encrypt
//! with RSAES-OAEP through the native RSA encryption.

use coffer_api::ErrorCode;
use coffer_core::KeyId;
use coffer_core::kms::Presented;
use coffer_crypto::EncryptionAlgorithm;
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

/// An RSAES-OAEP `EncryptionAlgorithm`, if the request names one; then there is no
/// encryption context (AWS has none for asymmetric keys).
fn rsa_algorithm(input: &Body) -> Result<Option<(&str, EncryptionAlgorithm)>, AwsError> {
    let Some(name) = input.opt_str("EncryptionAlgorithm")? else {
        return Ok(None);
    };
    let Some(algorithm) = super::specs::rsa_encryption(name) else {
        return Ok(None);
    };
    if input.opt_present("EncryptionContext") {
        return Err(AwsError::validation(
            "EncryptionContext is not supported with RSAES_OAEP algorithms",
        ));
    }
    Ok(Some((name, algorithm)))
}

/// `Encrypt`.
pub async fn encrypt(ctx: &Ctx<'_>, input: &Body) -> Result<Value, AwsError> {
    let reference = ctx.reference(input.str("KeyId")?)?;
    let plaintext = input.blob("Plaintext")?;
    if plaintext.is_empty() || plaintext.len() > MAX_MESSAGE {
        return Err(AwsError::validation(
            "Plaintext must be between 1 and 4096 bytes",
        ));
    }
    if let Some((name, algorithm)) = rsa_algorithm(input)? {
        // The key's modulus bounds the plaintext further: refused by the native side.
        let sealed = ctx
            .state
            .kms
            .encrypt_asymmetric(&ctx.caller, &reference, None, algorithm, &plaintext)
            .await?;
        return Ok(json!({
            "CiphertextBlob": b64(&sealed.ciphertext),
            "KeyId": ctx.key_arn(sealed.key_id),
            "EncryptionAlgorithm": name,
        }));
    }
    let context = input.context("EncryptionContext")?;
    symmetric_only(input, "EncryptionAlgorithm")?;
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

/// AWS's bound on a `Recipient`'s attestation document.
const MAX_ATTESTATION_DOCUMENT: usize = 262_144;

/// A `Recipient` (a Nitro enclave's attestation document; docs/aws.md): the document,
/// once the key encryption algorithm is the one AWS offers.
fn recipient(input: &Body) -> Result<Option<Vec<u8>>, AwsError> {
    let Some(recipient) = input.opt_object("Recipient")? else {
        return Ok(None);
    };
    match recipient.opt_str("KeyEncryptionAlgorithm")? {
        None | Some("RSAES_OAEP_SHA_256") => {}
        Some(other) => {
            return Err(AwsError::validation(format!(
                "Recipient.KeyEncryptionAlgorithm {other} is not RSAES_OAEP_SHA_256"
            )));
        }
    }
    let document = recipient.blob("AttestationDocument")?;
    if document.is_empty() || document.len() > MAX_ATTESTATION_DOCUMENT {
        return Err(AwsError::validation(
            "Recipient.AttestationDocument must be between 1 and 262144 bytes",
        ));
    }
    Ok(Some(document))
}

/// The CMS answer of a `Recipient` request (always made by the service for one).
fn for_recipient(sealed: Option<Vec<u8>>) -> Result<Value, AwsError> {
    sealed.map(|cms| b64(&cms)).ok_or_else(|| {
        AwsError::from(coffer_core::kms::KmsError::Internal(
            "no answer for the recipient".into(),
        ))
    })
}

/// `Decrypt`: the key comes from the blob; a `KeyId`, when given, must be that key.
/// An RSAES-OAEP ciphertext names no key: `KeyId` is required, as at AWS. With a
/// `Recipient`, the plaintext comes back only as `CiphertextForRecipient`.
pub async fn decrypt(ctx: &Ctx<'_>, input: &Body) -> Result<Value, AwsError> {
    let blob = ciphertext(input, "CiphertextBlob")?;
    let recipient = recipient(input)?;
    if let Some((name, algorithm)) = rsa_algorithm(input)? {
        if recipient.is_some() {
            return Err(AwsError::unsupported(
                "Recipient is offered for symmetric keys only by Coffer's AWS front",
            ));
        }
        let key_id = input.opt_str("KeyId")?.ok_or_else(|| {
            AwsError::validation("KeyId is required to decrypt with an asymmetric key")
        })?;
        let reference = ctx.reference(key_id)?;
        let opened = ctx
            .state
            .kms
            .decrypt_asymmetric(&ctx.caller, &reference, None, algorithm, &blob)
            .await?;
        return Ok(json!({
            "KeyId": ctx.key_arn(opened.key_id),
            "Plaintext": b64(opened.plaintext.expose_secret()),
            "EncryptionAlgorithm": name,
        }));
    }
    let context = input.context("EncryptionContext")?;
    symmetric_only(input, "EncryptionAlgorithm")?;
    if let Some(key_id) = input.opt_str("KeyId")? {
        let named = EnvelopeHeader::parse(&blob)
            .map_err(|_| AwsError::from(coffer_core::kms::KmsError::InvalidCiphertext))?;
        if key_of(ctx, key_id).await? != KeyId::from_bytes(named.key_id) {
            return Err(incorrect_key());
        }
    }
    if let Some(document) = &recipient {
        let presented = Presented::aws_recipient(document);
        let opened = ctx
            .state
            .kms
            .unwrap_presented(&ctx.caller, &blob, &context, presented)
            .await?;
        return Ok(json!({
            "KeyId": ctx.key_arn(opened.key_id),
            "CiphertextForRecipient": for_recipient(opened.for_recipient)?,
            "EncryptionAlgorithm": "SYMMETRIC_DEFAULT",
        }));
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
    if let Some(key_id) = input.opt_str("SourceKeyId")?
        && key_of(ctx, key_id).await? != source
    {
        return Err(incorrect_key());
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
    let recipient = recipient(input)?;
    if recipient.is_some() && !with_plaintext {
        return Err(AwsError::validation(
            "Recipient is not a parameter of GenerateDataKeyWithoutPlaintext",
        ));
    }
    let presented = match &recipient {
        Some(document) => Presented::aws_recipient(document),
        None => Presented::new(None),
    };
    let (key, sealed, for_cms) = ctx
        .state
        .kms
        .datakey_presented(&ctx.caller, &reference, bytes, &context, None, presented)
        .await?;
    let mut answer = json!({
        "CiphertextBlob": b64(&sealed.ciphertext),
        "KeyId": ctx.key_arn(sealed.key_id),
    });
    if recipient.is_some() {
        // The data key leaves only encrypted to the enclave; Plaintext is omitted.
        answer["CiphertextForRecipient"] = for_recipient(for_cms)?;
    } else if with_plaintext {
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
