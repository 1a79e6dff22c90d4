//! Grants and key policies through the AWS front: Get/PutKeyPolicy, ListKeyPolicies,
//! CreateGrant, ListGrants, RevokeGrant, RetireGrant, ListRetirableGrants — over the
//! native `Kms` access operations, which also enforce them (`kms::policy`). A grantee
//! or policy principal is a token of the account, `arn:aws:iam::<account>:user/<token
//! id>`; a grant can never give a token more than its caveats allow.

use coffer_core::store::Grant;
use serde_json::{Value, json};

use super::paging::Page;
use super::policy::{default_document, malformed, parse, principal};
use super::request::Body;
use super::{AwsError, Ctx};

/// The operations a grant may list (AWS's grant operations).
const GRANT_OPERATIONS: &[&str] = &[
    "Decrypt",
    "Encrypt",
    "GenerateDataKey",
    "GenerateDataKeyWithoutPlaintext",
    "GenerateDataKeyPair",
    "GenerateDataKeyPairWithoutPlaintext",
    "ReEncryptFrom",
    "ReEncryptTo",
    "Sign",
    "Verify",
    "GetPublicKey",
    "DescribeKey",
    "GenerateMac",
    "VerifyMac",
    "CreateGrant",
    "RetireGrant",
];

fn policy_name(input: &Body) -> Result<(), AwsError> {
    match input.opt_str("PolicyName")? {
        None | Some("default") => Ok(()),
        Some(other) => Err(AwsError::not_found(format!(
            "policy {other} does not exist: a key has one policy, named default"
        ))),
    }
}

/// A token principal of the caller's account (`None`: the account itself).
fn token_principal(ctx: &Ctx<'_>, text: &str, field: &str) -> Result<String, AwsError> {
    principal(text, &ctx.account)
        .map_err(|e| AwsError::validation(format!("{field}: {}", e.message)))?
        .ok_or_else(|| {
            AwsError::validation(format!(
                "{field} must name one token: arn:aws:iam::{}:user/<token id>",
                ctx.account
            ))
        })
}

fn principal_arn(ctx: &Ctx<'_>, token: &str) -> String {
    format!("arn:aws:iam::{}:user/{token}", ctx.account)
}

/// `PutKeyPolicy`.
pub async fn put_policy(ctx: &Ctx<'_>, input: &Body) -> Result<Value, AwsError> {
    let reference = ctx.reference(input.str("KeyId")?)?;
    policy_name(input)?;
    let document = input.str("Policy")?;
    let policy = parse(document, &ctx.account)?;
    let bypass = input
        .opt_bool("BypassPolicyLockoutSafetyCheck")?
        .unwrap_or(false);
    let me = ctx.caller.token_id.to_string();
    let asked = coffer_core::kms::Asked::Aws("PutKeyPolicy");
    if !bypass && !policy.permits(&me, asked, &[]) {
        return Err(malformed(
            "the policy would not let this caller change it again \
             (set BypassPolicyLockoutSafetyCheck to put it anyway)",
        ));
    }
    ctx.state
        .kms
        .put_key_policy(&ctx.caller, &reference, document, &policy, bypass)
        .await?;
    Ok(json!({}))
}

/// `GetKeyPolicy`: the policy set, or AWS's default one.
pub async fn get_policy(ctx: &Ctx<'_>, input: &Body) -> Result<Value, AwsError> {
    let reference = ctx.reference(input.str("KeyId")?)?;
    policy_name(input)?;
    let (_, document) = ctx.state.kms.key_policy(&ctx.caller, &reference).await?;
    Ok(json!({
        "Policy": document.unwrap_or_else(|| default_document(&ctx.account)),
        "PolicyName": "default",
    }))
}

/// `ListKeyPolicies`: `default`, the one policy a key has.
pub async fn list_policies(ctx: &Ctx<'_>, input: &Body) -> Result<Value, AwsError> {
    let reference = ctx.reference(input.str("KeyId")?)?;
    let page = Page::of(input, 100, 1000)?;
    ctx.state.kms.key_policy(&ctx.caller, &reference).await?;
    let mut answer = page.answer(
        "PolicyNames",
        vec![("default".to_owned(), json!("default"))],
    );
    answer.as_object_mut().map(|m| m.remove("NextMarker"));
    Ok(answer)
}

/// `CreateGrant`: `GrantToken` and `GrantId` are the same id (a grant takes effect at
/// once on the replica that made it; others within the key cache's time to live).
pub async fn create_grant(ctx: &Ctx<'_>, input: &Body) -> Result<Value, AwsError> {
    let reference = ctx.reference(input.str("KeyId")?)?;
    if input.opt_present("Constraints") {
        return Err(AwsError::unsupported(
            "grant Constraints (encryption context conditions) are not offered by Coffer's AWS front",
        ));
    }
    let grantee = token_principal(ctx, input.str("GranteePrincipal")?, "GranteePrincipal")?;
    let retiring = input
        .opt_str("RetiringPrincipal")?
        .map(|p| token_principal(ctx, p, "RetiringPrincipal"))
        .transpose()?;
    let operations = input
        .opt_strings("Operations")?
        .filter(|ops| !ops.is_empty())
        .ok_or_else(|| AwsError::validation("Operations is required"))?;
    if let Some(other) = operations
        .iter()
        .find(|o| !GRANT_OPERATIONS.contains(&o.as_str()))
    {
        return Err(AwsError::validation(format!(
            "{other} is not a grant operation"
        )));
    }
    let name = input.opt_str("Name")?.map(str::to_owned);
    if name.as_ref().is_some_and(|n| n.is_empty() || n.len() > 256) {
        return Err(AwsError::validation("Name is 1 to 256 characters"));
    }
    let mut id = [0u8; 32];
    coffer_crypto::rng::fill(&mut id)
        .map_err(|e| AwsError::from(coffer_core::kms::KmsError::Internal(e.to_string())))?;
    let grant = Grant {
        id: hex::encode(id),
        tenant: coffer_core::TenantId::generate(),
        key: coffer_core::KeyId::generate(),
        grantee,
        retiring,
        operations,
        name,
        created_at: coffer_core::Timestamp::from_millis(0),
    };
    let made = ctx
        .state
        .kms
        .create_grant(&ctx.caller, &reference, grant)
        .await?;
    Ok(json!({ "GrantToken": made.id, "GrantId": made.id }))
}

fn grant_entry(ctx: &Ctx<'_>, grant: &Grant) -> Value {
    let mut entry = json!({
        "KeyId": ctx.key_arn(grant.key),
        "GrantId": grant.id,
        "CreationDate": grant.created_at.millis() as f64 / 1000.0,
        "GranteePrincipal": principal_arn(ctx, &grant.grantee),
        "IssuingAccount": format!("arn:aws:iam::{}:root", ctx.account),
        "Operations": grant.operations,
    });
    if let Some(name) = &grant.name {
        entry["Name"] = json!(name);
    }
    if let Some(retiring) = &grant.retiring {
        entry["RetiringPrincipal"] = json!(principal_arn(ctx, retiring));
    }
    entry
}

/// `ListGrants`: a key's grants by grant id, optionally one grant or one grantee's.
pub async fn list_grants(ctx: &Ctx<'_>, input: &Body) -> Result<Value, AwsError> {
    let reference = ctx.reference(input.str("KeyId")?)?;
    let page = Page::of(input, 50, 100)?;
    let grantee = input
        .opt_str("GranteePrincipal")?
        .map(|p| token_principal(ctx, p, "GranteePrincipal"))
        .transpose()?;
    let only = input.opt_str("GrantId")?;
    let (_, grants) = ctx.state.kms.list_grants(&ctx.caller, &reference).await?;
    let entries = grants
        .iter()
        .filter(|g| only.is_none_or(|id| g.id == id))
        .filter(|g| grantee.as_ref().is_none_or(|t| &g.grantee == t))
        .map(|g| (g.id.clone(), grant_entry(ctx, g)))
        .collect();
    Ok(page.answer("Grants", entries))
}

/// `RevokeGrant`.
pub async fn revoke_grant(ctx: &Ctx<'_>, input: &Body) -> Result<Value, AwsError> {
    let reference = ctx.reference(input.str("KeyId")?)?;
    let id = input.str("GrantId")?;
    ctx.state
        .kms
        .revoke_grant(&ctx.caller, &reference, id)
        .await?;
    Ok(json!({}))
}

/// `RetireGrant`: by `GrantToken`, or `KeyId` and `GrantId`.
pub async fn retire_grant(ctx: &Ctx<'_>, input: &Body) -> Result<Value, AwsError> {
    let id = match (input.opt_str("GrantToken")?, input.opt_str("GrantId")?) {
        (Some(token), _) => token,
        (None, Some(id)) if input.opt_present("KeyId") => id,
        _ => {
            return Err(AwsError::validation(
                "GrantToken, or KeyId and GrantId, are required",
            ));
        }
    };
    ctx.state.kms.retire_grant(&ctx.caller, id).await?;
    Ok(json!({}))
}

/// `ListRetirableGrants`: the account's grants a token may retire.
pub async fn list_retirable(ctx: &Ctx<'_>, input: &Body) -> Result<Value, AwsError> {
    let page = Page::of(input, 50, 100)?;
    let retiring = token_principal(ctx, input.str("RetiringPrincipal")?, "RetiringPrincipal")?;
    let grants = ctx
        .state
        .kms
        .retirable_grants(&ctx.caller, &retiring)
        .await?;
    let entries = grants
        .iter()
        .map(|g| (g.id.clone(), grant_entry(ctx, g)))
        .collect();
    Ok(page.answer("Grants", entries))
}
