//! The AWS KMS front: `POST /` with `X-Amz-Target: TrentService.<Operation>` and an
//! `application/x-amz-json-1.1` body, signed with SigV4. A thin translation onto the
//! same `Kms` operations the native API calls — the same authorisation, audit entries
//! (naming the access key and the AWS operation), metrics, limits and tenancy.
//!
//! - `sigv4` — verifying signatures; `error` — AWS's error shapes;
//! - `specs` — AWS key specs ↔ Coffer's; `request` — fields of the JSON body;
//! - `keys` — key management operations; `aliases` — alias operations;
//! - `paging` — `Limit`/`Marker` paging of list operations; `crypto` — encryption and
//!   data keys; `pairs` — data key pairs; `signing` — signatures and MACs;
//! - `rotation` — rotation policy, on-demand rotation and its history;
//! - `tags` — key tags; `access` — grants and key policies (`policy`: their documents).

mod access;
mod aliases;
mod crypto;
mod error;
mod keys;
mod paging;
mod pairs;
mod policy;
mod request;
mod rotation;
mod signing;
pub mod sigv4;
mod specs;
mod tags;

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, Method, Uri};
use axum::response::{IntoResponse, Response};
use coffer_core::kms::Caller;
use coffer_core::{Tenant, TenantId};
use serde_json::Value;

pub use error::{AwsError, AwsErrorBody};

use crate::state::AppState;
use request::Body;

pub(crate) const CONTENT_TYPE_JSON: &str = "application/x-amz-json-1.1";
const TARGET_PREFIX: &str = "TrentService.";

/// A request's caller and where it thinks it is (region of its credential scope).
pub(crate) struct Ctx<'a> {
    state: &'a AppState,
    caller: Caller,
    region: String,
    account: String,
}

impl Ctx<'_> {
    /// The key's ARN in the caller's account and region.
    fn key_arn(&self, key_id: impl std::fmt::Display) -> String {
        format!("arn:aws:kms:{}:{}:key/{key_id}", self.region, self.account)
    }

    /// An AWS `KeyId` (key id, key ARN, alias name, alias ARN) as a Coffer reference.
    /// An ARN of another account names nothing the caller can see.
    fn reference(&self, key_id: &str) -> Result<String, AwsError> {
        let Some(arn) = key_id.strip_prefix("arn:") else {
            return Ok(key_id.to_owned());
        };
        let parts: Vec<&str> = arn.splitn(5, ':').collect();
        let [_, "kms", _region, account, resource] = parts[..] else {
            return Err(AwsError::not_found(format!("Invalid arn {key_id}")));
        };
        if account != self.account {
            return Err(AwsError::not_found(format!(
                "Key '{key_id}' does not exist"
            )));
        }
        match resource.strip_prefix("key/") {
            Some(id) => Ok(id.to_owned()),
            None if resource.starts_with("alias/") => Ok(resource.to_owned()),
            None => Err(AwsError::not_found(format!("Invalid arn {key_id}"))),
        }
    }
}

/// The tenant's AWS account id: the one chosen at its creation, or else derived from
/// its id.
pub fn account_of(tenant: &Tenant) -> String {
    tenant
        .aws_account_id
        .clone()
        .unwrap_or_else(|| account_id(tenant.id))
}

/// The account of the caller's tenant. Account ids never change, so they are
/// remembered once read.
async fn caller_account(state: &AppState, tenant: TenantId) -> Result<String, AwsError> {
    if let Some(known) = state
        .aws_accounts
        .read()
        .ok()
        .and_then(|m| m.get(&tenant).cloned())
    {
        return Ok(known);
    }
    let record = state.kms.find_tenant(&tenant.to_string()).await?;
    let account = account_of(&record);
    if let Ok(mut map) = state.aws_accounts.write() {
        map.insert(tenant, account.clone());
    }
    Ok(account)
}

/// The 12-digit account id derived from a tenant id: stable and distinct per tenant,
/// for tenants created without a chosen one.
pub fn account_id(tenant: TenantId) -> String {
    let bytes = tenant.as_bytes();
    let mut head = [0u8; 8];
    head.copy_from_slice(&bytes[..8]);
    format!("{:012}", u64::from_be_bytes(head) % 1_000_000_000_000)
}

pub(crate) fn json_body(value: &Value) -> Response {
    let mut response = value.to_string().into_response();
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE_JSON));
    if let Ok(id) = HeaderValue::from_str(&crate::context::request_id()) {
        response.headers_mut().insert("x-amzn-requestid", id);
    }
    response
}

/// `POST /`: one AWS KMS call.
pub async fn handle(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match serve(&state, &method, &uri, &headers, body).await {
        Ok(value) => json_body(&value),
        Err(error) => error.into_response(),
    }
}

async fn serve(
    state: &AppState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Value, AwsError> {
    let body = body.map_err(|rejection| {
        AwsError::validation(format!("the request body could not be read: {rejection}"))
    })?;
    let operation = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix(TARGET_PREFIX))
        .ok_or_else(|| {
            AwsError::client(
                "UnknownOperationException",
                coffer_api::ErrorCode::InvalidRequest,
                "X-Amz-Target must name a TrentService operation",
            )
        })?
        .to_owned();
    let header = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or(sigv4::SigV4Error::Missing)?;
    let auth = sigv4::Authorization::parse(header)?;
    // The secret first, the signature next, the token's standing last: an unsigned
    // request learns nothing about whether a token id is revoked. A registered pair
    // (`aws.static_keys_file`) wins over the ids Coffer derives (which start CFR1).
    let registered = state.aws_keys.get(&auth.access_key_id);
    let derived;
    let secret = match registered {
        Some(key) => key.secret.as_str(),
        None => {
            derived = state.kms.aws_credentials(&auth.access_key_id)?;
            derived.expose_secret()
        }
    };
    let request = sigv4::Request {
        method: method.as_str(),
        path: uri.path(),
        query: uri.query().unwrap_or(""),
        headers,
        body: &body,
    };
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    sigv4::verify(&request, &auth, secret, "kms", now)?;
    let mut caller = match registered {
        Some(key) => state.kms.authenticate(&key.token)?,
        None => state.kms.authenticate_aws(&auth.access_key_id)?,
    };
    caller.request_id = crate::context::request_id();
    caller.via = Some(format!("aws:{}:{operation}", auth.access_key_id));
    let tenant = caller.grants.tenant().ok_or_else(|| {
        AwsError::client(
            "AccessDeniedException",
            coffer_api::ErrorCode::Forbidden,
            "AWS access keys act for a tenant; an admin token's cannot",
        )
    })?;
    crate::context::set_tenant(Some(tenant));
    // The same in-flight caps as the native API, before the body is parsed; AWS SDKs
    // retry a `ThrottlingException` with back-off.
    let class = class_of(&operation);
    let _slot = state
        .admission
        .admit(class, Some(tenant))
        .map_err(|shed| AwsError::throttled(crate::admission::refusal(class, shed)))?;
    let ctx = Ctx {
        state,
        caller,
        region: auth.region,
        account: caller_account(state, tenant).await?,
    };
    let input = Body::parse(&body)?;
    dispatch(&ctx, &operation, &input).await
}

/// The admission class of an AWS operation (as its native counterpart's).
fn class_of(operation: &str) -> crate::admission::Class {
    use crate::admission::Class;
    match operation {
        "Sign" | "GenerateMac" => Class::Sign,
        "Verify" | "VerifyMac" => Class::Verify,
        "Encrypt"
        | "Decrypt"
        | "ReEncrypt"
        | "GenerateDataKey"
        | "GenerateDataKeyWithoutPlaintext"
        | "GenerateRandom" => Class::Wrap,
        _ => Class::Admin,
    }
}

async fn dispatch(ctx: &Ctx<'_>, operation: &str, input: &Body) -> Result<Value, AwsError> {
    match operation {
        "CreateKey" => keys::create(ctx, input).await,
        "DescribeKey" => keys::describe(ctx, input).await,
        "ListKeys" => keys::list(ctx, input).await,
        "EnableKey" => keys::set_enabled(ctx, input, true).await,
        "DisableKey" => keys::set_enabled(ctx, input, false).await,
        "ScheduleKeyDeletion" => keys::schedule_deletion(ctx, input).await,
        "CancelKeyDeletion" => keys::cancel_deletion(ctx, input).await,
        "GetPublicKey" => keys::public_key(ctx, input).await,
        "UpdateKeyDescription" => keys::update_description(ctx, input).await,
        "CreateAlias" => aliases::create(ctx, input).await,
        "UpdateAlias" => aliases::update(ctx, input).await,
        "DeleteAlias" => aliases::delete(ctx, input).await,
        "ListAliases" => aliases::list(ctx, input).await,
        "EnableKeyRotation" => rotation::enable(ctx, input).await,
        "DisableKeyRotation" => rotation::disable(ctx, input).await,
        "GetKeyRotationStatus" => rotation::status(ctx, input).await,
        "RotateKeyOnDemand" => rotation::rotate_on_demand(ctx, input).await,
        "ListKeyRotations" => rotation::list(ctx, input).await,
        "Encrypt" => crypto::encrypt(ctx, input).await,
        "Decrypt" => crypto::decrypt(ctx, input).await,
        "ReEncrypt" => crypto::re_encrypt(ctx, input).await,
        "GenerateDataKey" => crypto::data_key(ctx, input, true).await,
        "GenerateDataKeyWithoutPlaintext" => crypto::data_key(ctx, input, false).await,
        "GenerateDataKeyPair" => pairs::data_key_pair(ctx, input, true).await,
        "GenerateDataKeyPairWithoutPlaintext" => pairs::data_key_pair(ctx, input, false).await,
        "GenerateRandom" => crypto::random(input),
        "Sign" => signing::sign(ctx, input).await,
        "Verify" => signing::verify(ctx, input).await,
        "GenerateMac" => signing::mac(ctx, input).await,
        "VerifyMac" => signing::verify_mac(ctx, input).await,
        "TagResource" => tags::tag(ctx, input).await,
        "UntagResource" => tags::untag(ctx, input).await,
        "ListResourceTags" => tags::list(ctx, input).await,
        "PutKeyPolicy" => access::put_policy(ctx, input).await,
        "GetKeyPolicy" => access::get_policy(ctx, input).await,
        "ListKeyPolicies" => access::list_policies(ctx, input).await,
        "CreateGrant" => access::create_grant(ctx, input).await,
        "ListGrants" => access::list_grants(ctx, input).await,
        "RevokeGrant" => access::revoke_grant(ctx, input).await,
        "RetireGrant" => access::retire_grant(ctx, input).await,
        "ListRetirableGrants" => access::list_retirable(ctx, input).await,
        // Known to AWS, not (yet) offered by Coffer's front: refused, never faked.
        "ImportKeyMaterial"
        | "GetParametersForImport"
        | "DeleteImportedKeyMaterial"
        | "ReplicateKey"
        | "UpdatePrimaryRegion"
        | "DeriveSharedSecret"
        | "ConnectCustomKeyStore"
        | "CreateCustomKeyStore"
        | "DeleteCustomKeyStore"
        | "DescribeCustomKeyStores"
        | "DisconnectCustomKeyStore"
        | "UpdateCustomKeyStore" => Err(AwsError::unsupported(format!(
            "{operation} is not offered by Coffer's AWS front (see docs/aws.md)"
        ))),
        other => Err(AwsError::client(
            "UnknownOperationException",
            coffer_api::ErrorCode::InvalidRequest,
            format!("unknown operation {other}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_ids_are_twelve_digits_and_differ_per_tenant() {
        let a = account_id(TenantId::generate());
        let b = account_id(TenantId::generate());
        assert_eq!(a.len(), 12);
        assert!(a.bytes().all(|c| c.is_ascii_digit()));
        assert_ne!(a, b);
    }
}
