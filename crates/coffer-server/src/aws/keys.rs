//! Key management through the AWS front: CreateKey, DescribeKey, ListKeys,
//! Enable/DisableKey, Schedule/CancelKeyDeletion, GetPublicKey, UpdateKeyDescription.

use std::time::Duration;

use coffer_core::kms::{KeyDetails, KeyFilter};
use coffer_core::{KeyPurpose, KeyState, NewKey};
use serde_json::{Value, json};

use super::paging::Page;
use super::request::{Body, b64};
use super::{AwsError, Ctx, specs};

/// The label that keeps a key's AWS `Description` (visible natively too).
const DESCRIPTION: &str = "aws:description";
/// A label value's limit (AWS allows 8192 characters; see docs/aws.md).
const MAX_DESCRIPTION: usize = coffer_core::key::MAX_LABEL_VALUE;

fn seconds(t: coffer_core::Timestamp) -> f64 {
    t.millis() as f64 / 1000.0
}

fn key_state(state: KeyState) -> &'static str {
    match state {
        KeyState::Enabled => "Enabled",
        KeyState::Disabled => "Disabled",
        KeyState::PendingDeletion => "PendingDeletion",
        // AWS never shows a deleted key; Coffer keeps the record: shown as unavailable.
        KeyState::Destroyed => "Unavailable",
    }
}

/// `KeyMetadata` of a key.
fn metadata(ctx: &Ctx<'_>, details: &KeyDetails) -> Value {
    let key = &details.key;
    let row = specs::by_coffer(key.spec);
    let spec = row.map_or("UNKNOWN", |r| r.aws);
    let mut meta = json!({
        "AWSAccountId": ctx.account,
        "KeyId": key.id.to_string(),
        "Arn": ctx.key_arn(key.id),
        "CreationDate": seconds(key.created_at),
        "Enabled": key.state == KeyState::Enabled,
        "Description": key.labels.get(DESCRIPTION).map_or("", String::as_str),
        "KeyUsage": row.map_or("UNKNOWN", |r| specs::usage_of(r, key.purpose)),
        "KeyState": key_state(key.state),
        "Origin": "AWS_KMS",
        "KeyManager": "CUSTOMER",
        "KeySpec": spec,
        "CustomerMasterKeySpec": spec,
        "MultiRegion": false,
    });
    let algorithms = row.map_or(&[][..], |r| r.algorithms);
    match key.purpose {
        KeyPurpose::Encrypt if key.spec.is_rsa() => {
            meta["EncryptionAlgorithms"] = json!(specs::RSA_ENCRYPTION)
        }
        KeyPurpose::Encrypt => meta["EncryptionAlgorithms"] = json!(["SYMMETRIC_DEFAULT"]),
        KeyPurpose::Sign => meta["SigningAlgorithms"] = json!(algorithms),
        KeyPurpose::Mac => meta["MacAlgorithms"] = json!(algorithms),
    }
    if let Some(due) = key.deletion_due {
        meta["DeletionDate"] = json!(seconds(due));
    }
    meta
}

/// `CreateKey`.
pub async fn create(ctx: &Ctx<'_>, input: &Body) -> Result<Value, AwsError> {
    let name = input
        .opt_str("KeySpec")?
        .or(input.opt_str("CustomerMasterKeySpec")?)
        .unwrap_or("SYMMETRIC_DEFAULT");
    let row = specs::by_aws(name)
        .ok_or_else(|| AwsError::validation(format!("unknown KeySpec {name}")))?;
    let spec = row.coffer.ok_or_else(|| {
        AwsError::unsupported(format!("KeySpec {name} is not available in this Coffer"))
    })?;
    let usage = input.opt_str("KeyUsage")?.unwrap_or(row.usage);
    let purpose = specs::purpose_of(row, usage).ok_or_else(|| {
        AwsError::validation(format!("KeyUsage {usage} is not valid for KeySpec {name}"))
    })?;
    if input.opt_str("Origin")?.is_some_and(|o| o != "AWS_KMS") {
        return Err(AwsError::unsupported("only Origin AWS_KMS is offered"));
    }
    // Checked before the key is made: a refused tag list makes no key, nor does a
    // caller whose token could not tag it (tagging is `keys:manage`).
    let tags = super::tags::parse_tags(input)?;
    let policy = match input.opt_str("Policy")? {
        Some(document) => Some((document, super::policy::parse(document, &ctx.account)?)),
        None => None,
    };
    let bypass = input
        .opt_bool("BypassPolicyLockoutSafetyCheck")?
        .unwrap_or(false);
    if let Some((_, rules)) = &policy {
        let me = ctx.caller.token_id.to_string();
        let asked = coffer_core::kms::Asked::Aws("PutKeyPolicy");
        if !bypass && !rules.permits(&me, asked, &[]) {
            return Err(super::policy::malformed(
                "the policy would not let this caller change it again",
            ));
        }
    }
    if (!tags.is_empty() || policy.is_some())
        && !ctx
            .caller
            .grants
            .allows_op(coffer_core::token::Operation::KeysManage)
    {
        return Err(AwsError::from(coffer_core::kms::KmsError::Forbidden(
            "Tags or a Policy at CreateKey need keys:manage, which the token does not allow",
        )));
    }
    let mut request = NewKey::of(spec);
    request.purpose = purpose;
    if let Some(description) = input.opt_str("Description")? {
        request
            .labels
            .insert(DESCRIPTION.to_owned(), description_value(description)?);
    }
    let details = ctx.state.kms.create_key(&ctx.caller, request).await?;
    // Tags first: the policy, once set, governs what follows.
    let made = details.key.id.to_string();
    if !tags.is_empty() {
        ctx.state
            .kms
            .set_tags(&ctx.caller, &made, tags, &[])
            .await?;
    }
    if let Some((document, rules)) = &policy {
        ctx.state
            .kms
            .put_key_policy(&ctx.caller, &made, document, rules, bypass)
            .await?;
    }
    Ok(json!({ "KeyMetadata": metadata(ctx, &details) }))
}

fn description_value(description: &str) -> Result<String, AwsError> {
    if description.len() > MAX_DESCRIPTION {
        return Err(AwsError::validation(format!(
            "Description is at most {MAX_DESCRIPTION} bytes in Coffer (a label value)"
        )));
    }
    Ok(description.to_owned())
}

/// `UpdateKeyDescription`: the label `aws:description`, through the native label
/// update (audited as `keys.labels`).
pub async fn update_description(ctx: &Ctx<'_>, input: &Body) -> Result<Value, AwsError> {
    let reference = ctx.reference(input.str("KeyId")?)?;
    let description = description_value(input.str("Description")?)?;
    let set = std::collections::BTreeMap::from([(DESCRIPTION.to_owned(), description)]);
    ctx.state
        .kms
        .set_labels(&ctx.caller, &reference, set, &[])
        .await?;
    Ok(json!({}))
}

/// `DescribeKey`.
pub async fn describe(ctx: &Ctx<'_>, input: &Body) -> Result<Value, AwsError> {
    let reference = ctx.reference(input.str("KeyId")?)?;
    let details = ctx.state.kms.show_key(&ctx.caller, &reference).await?;
    Ok(json!({ "KeyMetadata": metadata(ctx, &details) }))
}

/// `ListKeys`: the caller's keys by page, in key id order.
pub async fn list(ctx: &Ctx<'_>, input: &Body) -> Result<Value, AwsError> {
    let page = Page::of(input, 100, 1000)?;
    let keys = ctx
        .state
        .kms
        .list_keys(&ctx.caller, &KeyFilter::default())
        .await?;
    let entries = keys
        .iter()
        .map(|d| {
            let id = d.key.id.to_string();
            let entry = json!({ "KeyId": id, "KeyArn": ctx.key_arn(d.key.id) });
            (id, entry)
        })
        .collect();
    Ok(page.answer("Keys", entries))
}

/// `EnableKey` / `DisableKey`.
pub async fn set_enabled(ctx: &Ctx<'_>, input: &Body, enabled: bool) -> Result<Value, AwsError> {
    let reference = ctx.reference(input.str("KeyId")?)?;
    let to = if enabled {
        KeyState::Enabled
    } else {
        KeyState::Disabled
    };
    ctx.state
        .kms
        .set_key_state(&ctx.caller, &reference, to, None)
        .await?;
    Ok(json!({}))
}

/// `ScheduleKeyDeletion`: 7–30 days, 30 by default, as AWS.
pub async fn schedule_deletion(ctx: &Ctx<'_>, input: &Body) -> Result<Value, AwsError> {
    let reference = ctx.reference(input.str("KeyId")?)?;
    let days = input.opt_int("PendingWindowInDays")?.unwrap_or(30);
    if !(7..=30).contains(&days) {
        return Err(AwsError::validation(
            "PendingWindowInDays must be between 7 and 30",
        ));
    }
    let waiting = Duration::from_secs(days.unsigned_abs() * 86_400);
    let details = ctx
        .state
        .kms
        .set_key_state(
            &ctx.caller,
            &reference,
            KeyState::PendingDeletion,
            Some(waiting),
        )
        .await?;
    Ok(json!({
        "KeyId": ctx.key_arn(details.key.id),
        "DeletionDate": details.key.deletion_due.map(seconds),
        "KeyState": key_state(details.key.state),
        "PendingWindowInDays": days,
    }))
}

/// `CancelKeyDeletion`.
pub async fn cancel_deletion(ctx: &Ctx<'_>, input: &Body) -> Result<Value, AwsError> {
    let reference = ctx.reference(input.str("KeyId")?)?;
    let details = ctx
        .state
        .kms
        .cancel_deletion(&ctx.caller, &reference)
        .await?;
    Ok(json!({ "KeyId": ctx.key_arn(details.key.id) }))
}

/// `GetPublicKey`: the primary version's SubjectPublicKeyInfo (DER), as AWS.
pub async fn public_key(ctx: &Ctx<'_>, input: &Body) -> Result<Value, AwsError> {
    let reference = ctx.reference(input.str("KeyId")?)?;
    let details = ctx.state.kms.show_key(&ctx.caller, &reference).await?;
    let der = details
        .versions
        .iter()
        .find(|v| v.primary)
        .and_then(|v| v.public_key.clone())
        .ok_or_else(|| {
            AwsError::client(
                "UnsupportedOperationException",
                coffer_api::ErrorCode::WrongKeyPurpose,
                "the key has no public key (symmetric or HMAC)",
            )
        })?;
    let row = specs::by_coffer(details.key.spec);
    let mut answer = json!({
        "KeyId": ctx.key_arn(details.key.id),
        "PublicKey": b64(&der),
        "KeySpec": row.map_or("UNKNOWN", |r| r.aws),
        "CustomerMasterKeySpec": row.map_or("UNKNOWN", |r| r.aws),
        "KeyUsage": row.map_or("UNKNOWN", |r| specs::usage_of(r, details.key.purpose)),
    });
    if details.key.purpose == KeyPurpose::Encrypt {
        answer["EncryptionAlgorithms"] = json!(specs::RSA_ENCRYPTION);
    } else {
        answer["SigningAlgorithms"] = json!(row.map_or(&[][..], |r| r.algorithms));
    }
    Ok(answer)
}
