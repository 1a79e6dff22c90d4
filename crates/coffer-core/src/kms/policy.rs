//! Key policies and grants, evaluated: AWS KMS's access controls mapped onto Coffer's
//! capability model, where a token's caveats only narrow. A key with no policy has
//! AWS's default one (the account may do everything: each token's caveats decide). A
//! key with a policy is refused to a token unless an `Allow` statement names it (or
//! the whole account) for the action, or, through the AWS front, a grant gives it
//! that operation on the key; a matching `Deny` refuses whatever else allows. All of
//! this only removes powers: the token's own caveats are checked first, and nothing
//! here can widen them or reach another tenant's keys.
//!
//! Actions are AWS's names. A call through the AWS front is checked under its own AWS
//! operation (taken from the caller's `via`) when that is an action on a key; a native
//! call (and an AWS one that is not, such as CreateKey tagging its new key) under its
//! Coffer operation, conservatively: allowed only if the statements allow every AWS action
//! that operation stands for, denied if a `Deny` names any of them. Grants name AWS
//! operations and so apply to AWS-front calls only.

use serde_json::{Value, json};

use super::{Caller, KmsError, KmsResult};
use crate::store::Grant;
use crate::token::Operation;

/// One statement: an effect, principals and actions (`kms:*`, `kms:Encrypt`,
/// `kms:GenerateDataKey*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// `Allow` (true) or `Deny`.
    pub allow: bool,
    /// Token ids the statement names; `None` for the whole account.
    pub tokens: Option<Vec<String>>,
    /// Action patterns, each `kms:` and a name, or a prefix ending in `*`.
    pub actions: Vec<String>,
}

/// A key policy's rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyPolicy {
    /// The statements, in the document's order.
    pub statements: Vec<Statement>,
}

/// The AWS actions each Coffer operation on a key stands for.
pub fn actions_of(op: Operation) -> &'static [&'static str] {
    match op {
        Operation::Wrap => &["Encrypt"],
        Operation::Unwrap => &["Decrypt"],
        Operation::Rewrap => &["ReEncryptFrom", "ReEncryptTo"],
        Operation::Datakey => &[
            "GenerateDataKey",
            "GenerateDataKeyWithoutPlaintext",
            "GenerateDataKeyPair",
            "GenerateDataKeyPairWithoutPlaintext",
        ],
        Operation::Sign => &["Sign"],
        Operation::Verify => &["Verify"],
        Operation::Mac => &["GenerateMac"],
        Operation::VerifyMac => &["VerifyMac"],
        Operation::KeysRead => &[
            "DescribeKey",
            "GetPublicKey",
            "GetKeyRotationStatus",
            "ListKeyRotations",
            "ListResourceTags",
            "GetKeyPolicy",
            "ListKeyPolicies",
            "ListGrants",
        ],
        Operation::KeysRotate => &["RotateKeyOnDemand"],
        Operation::KeysManage => &[
            "EnableKey",
            "DisableKey",
            "ScheduleKeyDeletion",
            "CancelKeyDeletion",
            "UpdateKeyDescription",
            "TagResource",
            "UntagResource",
            "CreateAlias",
            "UpdateAlias",
            "DeleteAlias",
            "EnableKeyRotation",
            "DisableKeyRotation",
            "PutKeyPolicy",
            "CreateGrant",
            "RevokeGrant",
        ],
        _ => &[],
    }
}

/// Every AWS action a policy may name (the operations above).
pub fn known_action(name: &str) -> bool {
    Operation::ALL
        .into_iter()
        .any(|op| actions_of(op).contains(&name))
}

fn pattern_matches(pattern: &str, action: &str) -> bool {
    let Some(pattern) = pattern.strip_prefix("kms:") else {
        return false;
    };
    match pattern.strip_suffix('*') {
        Some(prefix) => action.starts_with(prefix),
        None => pattern == action,
    }
}

impl Statement {
    fn names(&self, token: &str) -> bool {
        self.tokens
            .as_ref()
            .is_none_or(|tokens| tokens.iter().any(|t| t == token))
    }

    fn covers(&self, action: &str) -> bool {
        self.actions.iter().any(|p| pattern_matches(p, action))
    }
}

/// What a call asks: one AWS operation (the AWS front), or a Coffer operation.
#[derive(Debug, Clone, Copy)]
pub enum Asked<'a> {
    /// An AWS operation by name (`ReEncrypt` stands for `ReEncryptFrom` and `…To`).
    Aws(&'a str),
    /// A native operation.
    Native(Operation),
}

impl Asked<'_> {
    /// The AWS actions this needs, all of them.
    fn actions(self) -> Vec<&'static str> {
        match self {
            Self::Aws("ReEncrypt") => vec!["ReEncryptFrom", "ReEncryptTo"],
            Self::Aws(name) => Operation::ALL
                .into_iter()
                .flat_map(|op| actions_of(op).iter().copied())
                .filter(|a| *a == name)
                .take(1)
                .collect(),
            Self::Native(op) => actions_of(op).to_vec(),
        }
    }
}

impl KeyPolicy {
    /// The rules as stored (JSON).
    pub fn to_json(&self) -> String {
        let statements: Vec<Value> = self
            .statements
            .iter()
            .map(|s| json!({ "allow": s.allow, "tokens": s.tokens, "actions": s.actions }))
            .collect();
        json!({ "statements": statements }).to_string()
    }

    /// The rules from their stored form.
    pub fn from_json(text: &str) -> Result<Self, String> {
        let value: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let strings = |v: &Value| -> Option<Vec<String>> {
            v.as_array()?
                .iter()
                .map(|s| s.as_str().map(str::to_owned))
                .collect()
        };
        let statements = value["statements"]
            .as_array()
            .ok_or("no statements")?
            .iter()
            .map(|s| {
                Some(Statement {
                    allow: s["allow"].as_bool()?,
                    tokens: match &s["tokens"] {
                        Value::Null => None,
                        tokens => Some(strings(tokens)?),
                    },
                    actions: strings(&s["actions"])?,
                })
            })
            .collect::<Option<Vec<_>>>()
            .ok_or("a malformed statement")?;
        Ok(Self { statements })
    }

    /// True when the policy lets `token` do `asked`, or a grant of `grants` does (AWS
    /// operations only); a matching `Deny` wins over both.
    pub fn permits(&self, token: &str, asked: Asked<'_>, grants: &[Grant]) -> bool {
        let actions = asked.actions();
        if actions.is_empty() {
            // An operation no policy can name (none reaches a key): nothing to allow.
            return false;
        }
        let denied = self
            .statements
            .iter()
            .filter(|s| !s.allow && s.names(token))
            .any(|s| actions.iter().any(|a| s.covers(a)));
        if denied {
            return false;
        }
        let allowed = actions.iter().all(|a| {
            self.statements
                .iter()
                .any(|s| s.allow && s.names(token) && s.covers(a))
        });
        let granted = matches!(asked, Asked::Aws(_))
            && actions.iter().all(|a| {
                grants
                    .iter()
                    .any(|g| g.grantee == token && g.operations.iter().any(|o| o == a))
            });
        allowed || granted
    }
}

/// A key's policy and grants, as loaded with it.
#[derive(Debug, Clone)]
pub(crate) struct KeyAccess {
    pub policy: KeyPolicy,
    pub grants: Vec<Grant>,
}

/// The AWS operation a caller came in with (`aws:<access key id>:<Operation>`).
fn aws_operation(caller: &Caller) -> Option<&str> {
    let via = caller.via.as_deref()?.strip_prefix("aws:")?;
    via.rsplit(':').next()
}

impl KeyAccess {
    /// Refuses `caller` doing `op` unless the policy or a grant permits it.
    pub fn check(&self, caller: &Caller, op: Operation) -> KmsResult<()> {
        // An AWS operation that is no action on a key (CreateKey tagging its new key,
        // ListAliases naming one) is checked as the native operation it calls.
        let asked = match aws_operation(caller) {
            Some(name) if known_action(name) || name == "ReEncrypt" => Asked::Aws(name),
            _ => Asked::Native(op),
        };
        if self
            .policy
            .permits(&caller.token_id.to_string(), asked, &self.grants)
        {
            Ok(())
        } else {
            Err(KmsError::Forbidden(
                "the key's policy and grants do not allow this caller this operation",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn statement(allow: bool, tokens: Option<&[&str]>, actions: &[&str]) -> Statement {
        Statement {
            allow,
            tokens: tokens.map(|t| t.iter().map(|s| (*s).to_owned()).collect()),
            actions: actions.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    #[test]
    fn allow_and_deny_and_grants_combine_as_documented() {
        let policy = KeyPolicy {
            statements: vec![
                statement(true, Some(&["alice"]), &["kms:*"]),
                statement(false, Some(&["alice"]), &["kms:Decrypt"]),
                statement(true, None, &["kms:Describe*"]),
            ],
        };
        assert!(policy.permits("alice", Asked::Aws("Encrypt"), &[]));
        assert!(!policy.permits("alice", Asked::Aws("Decrypt"), &[]));
        // A native unwrap is denied as Decrypt is; a native wrap allowed by kms:*.
        assert!(!policy.permits("alice", Asked::Native(Operation::Unwrap), &[]));
        assert!(policy.permits("alice", Asked::Native(Operation::Wrap), &[]));
        // The whole account may DescribeKey, but keys:read natively stands for more.
        assert!(policy.permits("bob", Asked::Aws("DescribeKey"), &[]));
        assert!(!policy.permits("bob", Asked::Native(Operation::KeysRead), &[]));
        assert!(!policy.permits("bob", Asked::Aws("Encrypt"), &[]));
        let grant = Grant {
            id: "g".into(),
            tenant: crate::ids::TenantId::generate(),
            key: crate::ids::KeyId::generate(),
            grantee: "bob".into(),
            retiring: None,
            operations: vec!["Encrypt".into(), "ReEncryptFrom".into()],
            name: None,
            created_at: crate::time::Timestamp::from_millis(0),
        };
        let grants = [grant];
        assert!(policy.permits("bob", Asked::Aws("Encrypt"), &grants));
        assert!(!policy.permits("carol", Asked::Aws("Encrypt"), &grants));
        // ReEncrypt needs both halves; grants never apply to native calls.
        assert!(!policy.permits("bob", Asked::Aws("ReEncrypt"), &grants));
        assert!(!policy.permits("bob", Asked::Native(Operation::Wrap), &grants));
        // A grant cannot lift a Deny.
        let mut alice_grant = grants[0].clone();
        alice_grant.grantee = "alice".into();
        alice_grant.operations = vec!["Decrypt".into()];
        assert!(!policy.permits("alice", Asked::Aws("Decrypt"), &[alice_grant]));
        assert!(known_action("GenerateDataKeyPair") && !known_action("Nothing"));
        assert_eq!(KeyPolicy::from_json(&policy.to_json()).unwrap(), policy);
        assert!(KeyPolicy::from_json("{\"statements\": [{\"allow\": 1}]}").is_err());
    }
}
