//! Aliases through the AWS front: CreateAlias and DeleteAlias over Coffer's alias
//! add/remove, UpdateAlias over its compare-and-set alias move, ListAliases.

use coffer_core::kms::KeyFilter;
use serde_json::{Value, json};

use super::paging::Page;
use super::request::Body;
use super::{AwsError, Ctx};

fn invalid_name(message: impl Into<String>) -> AwsError {
    AwsError::client(
        "InvalidAliasNameException",
        coffer_api::ErrorCode::InvalidRequest,
        message,
    )
}

/// `AliasName` as AWS spells it: `alias/NAME`, never under the reserved `alias/aws/`.
fn alias_name(input: &Body) -> Result<&str, AwsError> {
    let name = input.str("AliasName")?;
    if !name.starts_with("alias/") {
        return Err(invalid_name("AliasName must begin with alias/"));
    }
    name.parse::<coffer_core::Alias>()
        .map_err(|e| invalid_name(format!("AliasName {name}: {e}")))?;
    Ok(name)
}

/// `CreateAlias`: `AlreadyExistsException` if the account has the alias already.
pub async fn create(ctx: &Ctx<'_>, input: &Body) -> Result<Value, AwsError> {
    let alias = alias_name(input)?;
    let target = ctx.reference(input.str("TargetKeyId")?)?;
    ctx.state
        .kms
        .add_alias(&ctx.caller, alias, &target)
        .await
        .map_err(|e| match e {
            coffer_core::kms::KmsError::Conflict(message) => AwsError::client(
                "AlreadyExistsException",
                coffer_api::ErrorCode::Conflict,
                message,
            ),
            other => other.into(),
        })?;
    Ok(json!({}))
}

/// `UpdateAlias`: moves the alias to another key of the same purpose (and RSA to RSA,
/// non-RSA to non-RSA), in one compare-and-set transaction.
pub async fn update(ctx: &Ctx<'_>, input: &Body) -> Result<Value, AwsError> {
    let alias = alias_name(input)?;
    let target = ctx.reference(input.str("TargetKeyId")?)?;
    ctx.state
        .kms
        .move_alias(&ctx.caller, alias, &target, None)
        .await?;
    Ok(json!({}))
}

/// `DeleteAlias`: the key itself is untouched.
pub async fn delete(ctx: &Ctx<'_>, input: &Body) -> Result<Value, AwsError> {
    let alias = alias_name(input)?;
    ctx.state.kms.remove_alias(&ctx.caller, alias).await?;
    Ok(json!({}))
}

/// `ListAliases`: the aliases of the caller's keys (optionally of one key), by page.
pub async fn list(ctx: &Ctx<'_>, input: &Body) -> Result<Value, AwsError> {
    let page = Page::of(input, 50, 100)?;
    let only = match input.opt_str("KeyId")? {
        Some(key_id) => {
            let reference = ctx.reference(key_id)?;
            Some(
                ctx.state
                    .kms
                    .show_key(&ctx.caller, &reference)
                    .await?
                    .key
                    .id,
            )
        }
        None => None,
    };
    let keys = ctx
        .state
        .kms
        .list_keys(&ctx.caller, &KeyFilter::default())
        .await?;
    let aliases: Vec<(String, Value)> = keys
        .iter()
        .filter(|d| only.is_none_or(|id| id == d.key.id))
        .flat_map(|d| {
            d.key.aliases.iter().map(|alias| {
                let entry = json!({
                    "AliasName": alias.as_str(),
                    "AliasArn": format!("arn:aws:kms:{}:{}:{}", ctx.region, ctx.account, alias.as_str()),
                    "TargetKeyId": d.key.id.to_string(),
                    "CreationDate": d.key.created_at.millis() as f64 / 1000.0,
                });
                (alias.as_str().to_owned(), entry)
            })
        })
        .collect();
    Ok(page.answer("Aliases", aliases))
}
