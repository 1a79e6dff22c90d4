//! Every route of the native API (port 9446) and the operations port (9909), each with
//! its description: the routers and their OpenAPI documents are both built from here
//! ([`crate::openapi::Routes`]).

use coffer_api::admin::{
    CreateTenantRequest, ListTenantsResponse, MintTokenRequest, MintTokenResponse,
    RevokeTokenRequest, SealStatusView, SetPqPolicyRequest, ShredTenantRequest, TenantSettingsView,
    TenantView, UnsealRequest,
};
use coffer_api::attestation::{
    AttestationPoliciesResponse, AttestationPolicyView, SetAttestationPolicyRequest,
};
use coffer_api::crypto::{
    Batch, CiphertextResponse, DatakeyRequest, DatakeyResponse, DecryptRequest, EncryptRequest,
    ItemResult, MacRequest, MacResponse, RewrapRequest, SignRequest, SignResponse, UnwrapRequest,
    UnwrapResponse, VerifyMacRequest, VerifyRequest, VerifyResponse, WrapRequest,
};
use coffer_api::keys::{
    ActivateRequest, AliasView, ChainQuery, ChainReportView, ChainView, CreateKeyRequest,
    HistoryResponse, IssueCertificateRequest, KeyView, ListKeysQuery, ListKeysResponse,
    RegisterRequest, RotateResponse, ScheduleDeletionRequest, SetAliasRequest, SetPolicyRequest,
};
use coffer_api::paths;
use coffer_api::rotation::{
    ListRotationsQuery, ReferencesView, RotationList, RotationVerifyView, RotationView,
    StartRotationRequest, TrackedView,
};
use coffer_core::quota::Quota;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};

use crate::handlers::{
    admin, aliases, attestation, audit as audit_api, certificates, crypto, keys, rotation, sys,
};
use crate::openapi::{Op, Routes, any_object, schema_of};

mod ops_port;
pub use ops_port::ops;

/// The actions of `POST /v1/kms/keys/{key}/{action}` (and by alias).
pub const KEY_ACTIONS: &[&str] = &[
    "rotate",
    "enable",
    "disable",
    "schedule-deletion",
    "cancel-deletion",
    "add-spare",
    "activate",
    "reactivate",
    "register",
    "publish",
    "policy",
    "issue-certificate",
];

/// One request or `{"items": [...]}`.
fn one_or_batch<T: JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "anyOf": [generator.subschema_for::<T>(), generator.subschema_for::<Batch<T>>()]
    })
}

/// One answer, or a batch's answers item by item.
fn answer_or_batch<R: JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "anyOf": [
            generator.subschema_for::<R>(),
            generator.subschema_for::<Batch<ItemResult<R>>>(),
        ]
    })
}

/// The body of a key action: the one its action takes (most take none).
fn key_action_body(generator: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "anyOf": [
            generator.subschema_for::<coffer_api::keys::EmptyRequest>(),
            generator.subschema_for::<ActivateRequest>(),
            generator.subschema_for::<RegisterRequest>(),
            generator.subschema_for::<ScheduleDeletionRequest>(),
            generator.subschema_for::<SetPolicyRequest>(),
            generator.subschema_for::<IssueCertificateRequest>(),
        ]
    })
}

/// The answer of a key action: the new version (`rotate`), the chain
/// (`issue-certificate`), else the key.
fn key_action_answer(generator: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "anyOf": [
            generator.subschema_for::<KeyView>(),
            generator.subschema_for::<RotateResponse>(),
            generator.subschema_for::<ChainView>(),
        ]
    })
}

/// A hot cryptographic operation: one request or a batch of them.
fn crypto_op<T: JsonSchema, R: JsonSchema>(id: &'static str, summary: &'static str) -> Op {
    Op::new(id, "crypto", summary)
        .body_schema(one_or_batch::<T>)
        .answers_schema(
            200,
            "The answer, or a batch's answers in order.",
            answer_or_batch::<R>,
        )
}

fn key_op(id: &'static str, summary: &'static str) -> Op {
    Op::new(id, "keys", summary)
}

/// The native API's routes (without the fallback and layers `api_router` adds).
pub fn api() -> Routes {
    let r = Routes::new("Coffer API", paths::OPENAPI);
    let r = aws_front(r);
    let r = key_routes(r);
    let r = crypto_routes(r);
    let r = admin_routes(r);
    audit_routes(r).finish()
}

fn aws_front(r: Routes) -> Routes {
    r.post(
        "/",
        crate::aws::handle,
        Op::new(
            "aws",
            "aws",
            "The AWS KMS front: JSON 1.1 signed with SigV4 (docs/aws.md).",
        )
        .public()
        .aws(
            any_object,
            any_object,
            schema_of::<crate::aws::AwsErrorBody>,
        ),
    )
}

fn key_routes(r: Routes) -> Routes {
    let chain = |id: &'static str, summary: &'static str| key_op(id, summary).query::<ChainQuery>();
    r.post(
        paths::KEYS,
        keys::create,
        key_op("create_key", "Create a key.")
            .body::<CreateKeyRequest>()
            .limited_by(&[
                Quota::KeysPerTenant,
                Quota::AliasesPerTenant,
                Quota::LabelsPerKey,
            ])
            .answers::<KeyView>(201, "The key."),
    )
    .get(
        paths::KEYS,
        keys::list,
        key_op("list_keys", "The tenant's keys.")
            .query::<ListKeysQuery>()
            .answers::<ListKeysResponse>(200, "The keys."),
    )
    .post(
        paths::ALIASES,
        aliases::set,
        key_op("set_alias", "Move an alias to another key.")
            .body::<SetAliasRequest>()
            .answers::<AliasView>(200, "The alias moved."),
    )
    .get(
        "/v1/kms/keys/alias/{name}",
        keys::show_alias,
        key_op("show_key_by_alias", "A key by alias.").answers::<KeyView>(200, "The key."),
    )
    .get(
        "/v1/kms/keys/alias/{name}/references",
        rotation::alias_references,
        key_op("references_by_alias", "Who uses which version, by alias.")
            .answers::<ReferencesView>(200, "Use per version."),
    )
    .get(
        "/v1/kms/keys/{key}/references",
        rotation::references,
        key_op("references", "Who uses which version.")
            .answers::<ReferencesView>(200, "Use per version."),
    )
    .get(
        "/v1/kms/keys/{key}/history",
        keys::history,
        key_op("key_history", "A key's lifecycle events.")
            .answers::<HistoryResponse>(200, "The events."),
    )
    .get(
        "/v1/kms/keys/alias/{name}/history",
        keys::alias_history,
        key_op(
            "key_history_by_alias",
            "A key's lifecycle events, by alias.",
        )
        .answers::<HistoryResponse>(200, "The events."),
    )
    // Explicit, GET and POST: a static segment outranks `{key}/{action}`.
    .get(
        "/v1/kms/keys/{key}/certificate",
        certificates::show,
        chain("show_certificate", "A version's certificate chain.")
            .answers::<ChainView>(200, "The chain."),
    )
    .post(
        "/v1/kms/keys/{key}/certificate",
        certificates::import,
        key_op(
            "import_certificate",
            "Import a version's certificate chain.",
        )
        .body::<coffer_api::keys::ImportChainRequest>()
        .answers::<ChainView>(200, "The chain."),
    )
    .get(
        "/v1/kms/keys/alias/{name}/certificate",
        certificates::show_alias,
        chain(
            "show_certificate_by_alias",
            "A certificate chain, by alias.",
        )
        .answers::<ChainView>(200, "The chain."),
    )
    .post(
        "/v1/kms/keys/alias/{name}/certificate",
        certificates::import_alias,
        key_op(
            "import_certificate_by_alias",
            "Import a certificate chain, by alias.",
        )
        .body::<coffer_api::keys::ImportChainRequest>()
        .answers::<ChainView>(200, "The chain."),
    )
    .get(
        "/v1/kms/keys/{key}/attestation-policy",
        attestation::show,
        key_op(
            "show_attestation_policy",
            "A key's attestation policy and its versions.",
        )
        .answers::<AttestationPoliciesResponse>(200, "The policy in force and its history."),
    )
    .post(
        "/v1/kms/keys/{key}/attestation-policy",
        attestation::set,
        key_op(
            "set_attestation_policy",
            "The next version of a key's attestation policy.",
        )
        .body::<SetAttestationPolicyRequest>()
        .answers::<AttestationPolicyView>(200, "The version stored."),
    )
    .get(
        "/v1/kms/keys/alias/{name}/attestation-policy",
        attestation::show_alias,
        key_op(
            "show_attestation_policy_by_alias",
            "An attestation policy, by alias.",
        )
        .answers::<AttestationPoliciesResponse>(200, "The policy in force and its history."),
    )
    .post(
        "/v1/kms/keys/alias/{name}/attestation-policy",
        attestation::set_alias,
        key_op(
            "set_attestation_policy_by_alias",
            "Set an attestation policy, by alias.",
        )
        .body::<SetAttestationPolicyRequest>()
        .answers::<AttestationPolicyView>(200, "The version stored."),
    )
    .get(
        "/v1/kms/keys/{key}/verify-chain",
        certificates::verify,
        chain(
            "verify_chain",
            "Check a version's chain: validity and signatures.",
        )
        .answers::<ChainReportView>(200, "The chain's report."),
    )
    .get(
        "/v1/kms/keys/alias/{name}/verify-chain",
        certificates::verify_alias,
        chain("verify_chain_by_alias", "Check a chain, by alias.")
            .answers::<ChainReportView>(200, "The chain's report."),
    )
    .get(
        "/v1/jwks/{tenant}",
        keys::jwks,
        key_op("jwks", "The tenant's published public keys (JWKS).")
            .public()
            .answers::<keys::Jwks>(200, "The key set."),
    )
    .post(
        paths::ROTATIONS,
        rotation::start,
        Op::new("start_rotation", "rotation", "Start a rotation saga.")
            .body::<StartRotationRequest>()
            .answers::<RotationView>(202, "Started; the worker runs it."),
    )
    .get(
        paths::ROTATIONS,
        rotation::list,
        Op::new(
            "list_rotations",
            "rotation",
            "The tenant's rotations, newest first.",
        )
        .query::<ListRotationsQuery>()
        .answers::<RotationList>(200, "The rotations."),
    )
    .get(
        "/v1/kms/rotations/{id}",
        rotation::show,
        Op::new("show_rotation", "rotation", "One rotation.")
            .answers::<RotationView>(200, "The rotation."),
    )
    .post(
        "/v1/kms/rotations/{id}/resume",
        rotation::resume,
        Op::new(
            "resume_rotation",
            "rotation",
            "Resume a paused or failed rotation.",
        )
        .optional_body(schema_of::<coffer_api::rotation::ResumeRotationRequest>)
        .answers::<RotationView>(202, "Resumed; the worker runs it."),
    )
    .post(
        "/v1/kms/rotations/{id}/rollback",
        rotation::rollback,
        Op::new(
            "rollback_rotation",
            "rotation",
            "Roll back a rotation not yet switched.",
        )
        .answers::<RotationView>(200, "Rolled back."),
    )
    .get(
        "/v1/kms/rotations/{id}/verify",
        rotation::verify,
        Op::new(
            "verify_rotation",
            "rotation",
            "Check a rotation's invariants.",
        )
        .answers::<RotationVerifyView>(200, "The report."),
    )
    .get(
        "/v1/kms/tracked/{track_id}",
        rotation::tracked,
        Op::new(
            "tracked",
            "rotation",
            "A tracked data key's current wrapping.",
        )
        .answers::<TrackedView>(200, "The current envelope."),
    )
    .post(
        "/v1/kms/keys/alias/{name}/{action}",
        keys::alias_action,
        key_op("key_action_by_alias", "A key action, by alias.")
            .path_enum("action", KEY_ACTIONS)
            .limited_by(VERSION_QUOTA)
            .optional_body(key_action_body)
            .answers_schema(200, "The key, new version or chain.", key_action_answer),
    )
    .get(
        "/v1/kms/keys/{key}",
        keys::show,
        key_op("show_key", "A key.").answers::<KeyView>(200, "The key."),
    )
    .post(
        "/v1/kms/keys/{key}/{action}",
        keys::action,
        key_op(
            "key_action",
            "A key action: rotate, enable, disable, deletion, versions…",
        )
        .path_enum("action", KEY_ACTIONS)
        .limited_by(VERSION_QUOTA)
        .optional_body(key_action_body)
        .answers_schema(200, "The key, new version or chain.", key_action_answer),
    )
}

/// Key actions that add a version (`rotate`, `add-spare`) meet the versions quota.
const VERSION_QUOTA: &[Quota] = &[Quota::VersionsPerKey];

fn crypto_routes(r: Routes) -> Routes {
    r.post(
        paths::WRAP,
        crypto::wrap,
        crypto_op::<WrapRequest, CiphertextResponse>("wrap", "Encrypt up to 4 KiB."),
    )
    .post(
        paths::UNWRAP,
        crypto::unwrap,
        crypto_op::<UnwrapRequest, UnwrapResponse>("unwrap", "Decrypt an envelope."),
    )
    .post(
        paths::DATAKEY,
        crypto::datakey,
        crypto_op::<DatakeyRequest, DatakeyResponse>("datakey", "A new data key, wrapped."),
    )
    .post(
        paths::REWRAP,
        crypto::rewrap,
        crypto_op::<RewrapRequest, CiphertextResponse>(
            "rewrap",
            "Move an envelope to a key's primary version.",
        ),
    )
    .post(
        paths::SIGN,
        crypto::sign,
        crypto_op::<SignRequest, SignResponse>("sign", "Sign a message, digest or μ."),
    )
    .post(
        paths::VERIFY,
        crypto::verify,
        crypto_op::<VerifyRequest, VerifyResponse>("verify", "Verify a signature."),
    )
    .post(
        paths::ENCRYPT,
        crypto::encrypt,
        crypto_op::<EncryptRequest, CiphertextResponse>("encrypt", "RSA-OAEP encryption."),
    )
    .post(
        paths::DECRYPT,
        crypto::decrypt,
        crypto_op::<DecryptRequest, UnwrapResponse>("decrypt", "RSA-OAEP decryption."),
    )
    .post(
        paths::MAC,
        crypto::mac,
        crypto_op::<MacRequest, MacResponse>("mac", "HMAC-SHA256 of a message."),
    )
    .post(
        paths::VERIFY_MAC,
        crypto::verify_mac,
        crypto_op::<VerifyMacRequest, VerifyResponse>("verify_mac", "Verify a MAC."),
    )
}

fn admin_routes(r: Routes) -> Routes {
    let admin = |id: &'static str, summary: &'static str| Op::new(id, "admin", summary);
    r.post(
        paths::TENANTS,
        admin::create_tenant,
        admin("create_tenant", "Create a tenant.")
            .body::<CreateTenantRequest>()
            .answers::<TenantView>(201, "The tenant."),
    )
    .get(
        paths::TENANTS,
        admin::list_tenants,
        admin("list_tenants", "The tenants.").answers::<ListTenantsResponse>(200, "The tenants."),
    )
    .post(
        paths::TENANTS_SHRED,
        admin::shred_tenant,
        admin("shred_tenant", "Crypto-shred a tenant, irrecoverably.")
            .body::<ShredTenantRequest>()
            .answers_empty(204, "Shredded."),
    )
    .post(
        paths::TENANTS_PQ_POLICY,
        admin::set_pq_policy,
        admin(
            "set_pq_policy",
            "Set or clear a tenant's PQ verify mode, hybrid production and rollout percent.",
        )
        .body::<SetPqPolicyRequest>()
        .answers::<TenantSettingsView>(200, "The tenant and its effective settings."),
    )
    .get(
        "/v1/admin/tenants/{tenant}",
        admin::show_tenant,
        admin(
            "show_tenant",
            "A tenant and the settings its requests run under.",
        )
        .answers::<TenantSettingsView>(200, "The tenant and its effective settings."),
    )
    .post(
        paths::TOKENS,
        admin::mint_token,
        admin("mint_token", "Mint a token.")
            .body::<MintTokenRequest>()
            .limited_by(&[Quota::TokensPerTenant])
            .answers::<MintTokenResponse>(201, "The token, shown once."),
    )
    .post(
        paths::TOKENS_REVOKE,
        admin::revoke_token,
        admin(
            "revoke_token",
            "Revoke a token and those attenuated from it.",
        )
        .body::<RevokeTokenRequest>()
        .answers_empty(204, "Revoked."),
    )
    .post(
        paths::BACKUP,
        admin::backup,
        admin(
            "backup",
            "A backup bundle of the whole store (docs/operations.md).",
        )
        .answers_bytes(
            200,
            "The bundle; its SHA-256 in X-Coffer-Backup-Sha256.",
            "application/octet-stream",
        ),
    )
    .get(
        paths::SEAL_STATUS,
        sys::seal_status,
        Op::new("seal_status", "sys", "Whether the server is sealed.")
            .public()
            .answers::<SealStatusView>(200, "The status."),
    )
    .post(
        paths::UNSEAL,
        sys::unseal,
        Op::new(
            "unseal",
            "sys",
            "Give a share or the passphrase (no token).",
        )
        .public()
        .body::<UnsealRequest>()
        .answers::<SealStatusView>(200, "The status after it."),
    )
}

fn audit_routes(r: Routes) -> Routes {
    let audit = |id: &'static str, summary: &'static str| Op::new(id, "audit", summary);
    r.get(
        paths::AUDIT_CHECKPOINT,
        audit_api::latest,
        audit(
            "latest_checkpoint",
            "The newest signed checkpoint (a signed note).",
        )
        .public()
        .answers_text(200, "The signed note.", "text/plain"),
    )
    .post(
        paths::AUDIT_CHECKPOINT,
        audit_api::create,
        audit("create_checkpoint", "Sign a checkpoint now.").answers_text(
            201,
            "The signed note.",
            "text/plain",
        ),
    )
    .get(
        paths::AUDIT_KEY,
        audit_api::key,
        audit("audit_key", "The checkpoint verifier key.")
            .public()
            .answers_text(200, "The verifier key.", "text/plain"),
    )
    .get(
        paths::AUDIT_ENTRIES,
        audit_api::entries,
        audit("audit_entries", "Audit entries as JSON lines.")
            .query::<audit_api::Range>()
            .answers_text(200, "One entry a line.", "application/x-ndjson"),
    )
    .get(
        paths::AUDIT_INCLUSION,
        audit_api::inclusion,
        audit("inclusion_proof", "An entry's inclusion proof.")
            .query::<audit_api::InclusionQuery>()
            .answers::<audit_api::InclusionProof>(200, "The proof."),
    )
    .get(
        paths::AUDIT_CONSISTENCY,
        audit_api::consistency,
        audit(
            "consistency_proof",
            "A consistency proof between two sizes.",
        )
        .query::<audit_api::ConsistencyQuery>()
        .answers::<audit_api::ConsistencyProof>(200, "The proof."),
    )
}
