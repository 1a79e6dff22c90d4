//! Tags through the AWS front: TagResource, UntagResource, ListResourceTags, and the
//! `Tags` of CreateKey — over the native key tags (`Kms::set_tags`, audited as
//! `keys.tags`), with AWS's limits: 50 tags per key, tag keys of 1–128 characters,
//! values of at most 256, `aws:` reserved.

use coffer_core::kms::KmsError;
use coffer_core::store::Tags;
use serde_json::{Value, json};

use super::paging::Page;
use super::request::Body;
use super::{AwsError, Ctx};

fn tag_error(error: KmsError) -> AwsError {
    match error {
        KmsError::Invalid(message) => AwsError::client(
            "TagException",
            coffer_api::ErrorCode::InvalidRequest,
            message,
        ),
        other => other.into(),
    }
}

/// The `Tags` list of a request (`[{"TagKey", "TagValue"}]`), checked against AWS's
/// rules (`TagException`; more than 50 is `LimitExceededException`); empty when absent.
pub fn parse_tags(input: &Body) -> Result<Tags, AwsError> {
    let mut tags = Tags::new();
    for item in input.opt_list("Tags")?.unwrap_or(&[]) {
        let field = |name: &str| {
            item.get(name)
                .and_then(Value::as_str)
                .ok_or_else(|| AwsError::validation(format!("each tag needs a string {name}")))
        };
        tags.insert(field("TagKey")?.to_owned(), field("TagValue")?.to_owned());
    }
    coffer_core::kms::check_tags(&tags).map_err(tag_error)?;
    Ok(tags)
}

/// `TagResource`: adds tags, replacing the values of tag keys already there.
pub async fn tag(ctx: &Ctx<'_>, input: &Body) -> Result<Value, AwsError> {
    let reference = ctx.reference(input.str("KeyId")?)?;
    let tags = parse_tags(input)?;
    if tags.is_empty() {
        return Err(AwsError::validation("Tags is required"));
    }
    ctx.state
        .kms
        .set_tags(&ctx.caller, &reference, tags, &[])
        .await
        .map_err(tag_error)?;
    Ok(json!({}))
}

/// `UntagResource`: removes tag keys (absent ones are no error, as at AWS).
pub async fn untag(ctx: &Ctx<'_>, input: &Body) -> Result<Value, AwsError> {
    let reference = ctx.reference(input.str("KeyId")?)?;
    let names = input
        .opt_strings("TagKeys")?
        .filter(|names| !names.is_empty())
        .ok_or_else(|| AwsError::validation("TagKeys is required"))?;
    for name in &names {
        coffer_core::kms::check_tag_key(name).map_err(tag_error)?;
    }
    ctx.state
        .kms
        .set_tags(&ctx.caller, &reference, Tags::new(), &names)
        .await
        .map_err(tag_error)?;
    Ok(json!({}))
}

/// `ListResourceTags`: by tag key, by `Limit` (1–50, 50 by default) and `Marker`.
pub async fn list(ctx: &Ctx<'_>, input: &Body) -> Result<Value, AwsError> {
    let page = Page::of(input, 50, 50)?;
    let reference = ctx.reference(input.str("KeyId")?)?;
    let (_, tags) = ctx.state.kms.key_tags(&ctx.caller, &reference).await?;
    let entries = tags
        .into_iter()
        .map(|(key, value)| {
            let entry = json!({ "TagKey": key, "TagValue": value });
            (key, entry)
        })
        .collect();
    Ok(page.answer("Tags", entries))
}
