//! Rotation through the AWS front: Enable/DisableKeyRotation and GetKeyRotationStatus
//! over the key's rotation policy; RotateKeyOnDemand and ListKeyRotations over
//! Coffer's rotate and the key's history (`key.rotated` events: by the scheduler
//! AUTOMATIC, by a caller ON_DEMAND). As AWS, only symmetric keys rotate here.

use coffer_core::kms::KeyDetails;
use coffer_core::{HumanDuration, KeyPurpose};
use serde_json::{Value, json};

use super::paging::Page;
use super::request::Body;
use super::{AwsError, Ctx};

/// AWS's bounds on an automatic rotation period, and on on-demand rotations per key.
const PERIOD_DAYS: std::ops::RangeInclusive<i64> = 90..=2560;
const DEFAULT_PERIOD_DAYS: i64 = 365;
const MAX_ON_DEMAND: usize = 10;
/// The scheduler's principal in the key history (`Kms::rotate_due_keys`).
const SCHEDULER: &str = coffer_core::keys::SCHEDULER;

async fn symmetric_key(ctx: &Ctx<'_>, input: &Body) -> Result<(String, KeyDetails), AwsError> {
    let reference = ctx.reference(input.str("KeyId")?)?;
    let details = ctx.state.kms.show_key(&ctx.caller, &reference).await?;
    if details.key.purpose != KeyPurpose::Encrypt {
        return Err(AwsError::unsupported(
            "only symmetric encryption keys rotate through the AWS front, as at AWS",
        ));
    }
    Ok((reference, details))
}

/// `EnableKeyRotation` (period 90–2560 days, 365 by default).
pub async fn enable(ctx: &Ctx<'_>, input: &Body) -> Result<Value, AwsError> {
    let days = input
        .opt_int("RotationPeriodInDays")?
        .unwrap_or(DEFAULT_PERIOD_DAYS);
    if !PERIOD_DAYS.contains(&days) {
        return Err(AwsError::validation(
            "RotationPeriodInDays must be between 90 and 2560",
        ));
    }
    let (reference, _) = symmetric_key(ctx, input).await?;
    let period = HumanDuration::days(days.unsigned_abs());
    ctx.state
        .kms
        .set_rotation_period(&ctx.caller, &reference, Some(period))
        .await?;
    Ok(json!({}))
}

/// `DisableKeyRotation`.
pub async fn disable(ctx: &Ctx<'_>, input: &Body) -> Result<Value, AwsError> {
    let (reference, _) = symmetric_key(ctx, input).await?;
    ctx.state
        .kms
        .set_rotation_period(&ctx.caller, &reference, None)
        .await?;
    Ok(json!({}))
}

/// `GetKeyRotationStatus`.
pub async fn status(ctx: &Ctx<'_>, input: &Body) -> Result<Value, AwsError> {
    let (_, details) = symmetric_key(ctx, input).await?;
    let mut answer = json!({
        "KeyId": ctx.key_arn(details.key.id),
        "KeyRotationEnabled": details.key.rotation.period.is_some(),
    });
    if let Some(period) = details.key.rotation.period {
        answer["RotationPeriodInDays"] = json!(period.as_secs() / 86_400);
    }
    Ok(answer)
}

/// The key's rotations from its history: (date in seconds, AWS rotation type).
async fn rotations(ctx: &Ctx<'_>, reference: &str) -> Result<Vec<(f64, &'static str)>, AwsError> {
    let history = ctx.state.kms.key_history(&ctx.caller, reference).await?;
    Ok(history
        .iter()
        .filter(|event| event.kind == "key.rotated")
        .map(|event| {
            let kind = if event.actor.as_deref() == Some(SCHEDULER) {
                "AUTOMATIC"
            } else {
                "ON_DEMAND"
            };
            (event.at.millis() as f64 / 1000.0, kind)
        })
        .collect())
}

/// `RotateKeyOnDemand`: at most 10 per key, as AWS (`LimitExceededException`). The
/// native rotation counts and rotates so that concurrent calls cannot pass the limit
/// together (`Kms::rotate_key_capped`).
pub async fn rotate_on_demand(ctx: &Ctx<'_>, input: &Body) -> Result<Value, AwsError> {
    let (reference, details) = symmetric_key(ctx, input).await?;
    ctx.state
        .kms
        .rotate_key_capped(&ctx.caller, &reference, Some(MAX_ON_DEMAND))
        .await?;
    Ok(json!({ "KeyId": ctx.key_arn(details.key.id) }))
}

/// `ListKeyRotations`: the rotations by page, oldest first.
pub async fn list(ctx: &Ctx<'_>, input: &Body) -> Result<Value, AwsError> {
    let page = Page::of(input, 100, 1000)?;
    let (reference, details) = symmetric_key(ctx, input).await?;
    let arn = ctx.key_arn(details.key.id);
    // A key's history only grows at its end: the position is a stable sort key.
    let rotations = rotations(ctx, &reference)
        .await?
        .into_iter()
        .enumerate()
        .map(|(n, (at, kind))| {
            let entry = json!({ "KeyId": arn, "RotationDate": at, "RotationType": kind });
            (format!("{n:010}"), entry)
        })
        .collect();
    Ok(page.answer("Rotations", rotations))
}
