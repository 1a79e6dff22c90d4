//! Key policy documents: the subset of AWS's policy language Coffer enforces, parsed
//! into `KeyPolicy` rules. Anything outside it is refused with
//! `MalformedPolicyDocumentException`, never ignored:
//!
//! - top level: `Version` (`2012-10-17` or `2008-10-17`), `Id`, `Statement`;
//! - a statement: `Sid`, `Effect` (`Allow` or `Deny`), `Principal`, `Action`,
//!   `Resource` (`"*"`, the key itself); no `Condition`, `NotAction`, `NotPrincipal`
//!   or `NotResource`;
//! - `Principal`: `"*"` or `{"AWS": …}` with the account (`<account>`,
//!   `arn:aws:iam::<account>:root`, `*`) or Coffer tokens of it
//!   (`arn:aws:iam::<account>:user/<token id>`); another account is refused;
//! - `Action`: `kms:*`, `kms:<Operation>` of an operation on a key, or a prefix
//!   ending in `*` (`kms:GenerateDataKey*`).

use coffer_core::kms::{KeyPolicy, Statement, known_action};
use serde_json::Value;

use super::AwsError;

/// AWS's limit on a key policy's size.
const MAX_POLICY_BYTES: usize = 32_768;

pub fn malformed(message: impl Into<String>) -> AwsError {
    AwsError::client(
        "MalformedPolicyDocumentException",
        coffer_api::ErrorCode::InvalidRequest,
        message,
    )
}

fn strings<'a>(value: &'a Value, what: &str) -> Result<Vec<&'a str>, AwsError> {
    let items: Vec<&Value> = match value {
        Value::String(_) => vec![value],
        Value::Array(items) if !items.is_empty() => items.iter().collect(),
        _ => {
            return Err(malformed(format!(
                "{what} must be a string or a list of them"
            )));
        }
    };
    items
        .into_iter()
        .map(|v| {
            v.as_str()
                .ok_or_else(|| malformed(format!("{what} must hold strings")))
        })
        .collect()
}

/// A principal string: `None` for the whole account, else a token id.
pub fn principal(text: &str, account: &str) -> Result<Option<String>, AwsError> {
    if text == "*" || text == account || text == format!("arn:aws:iam::{account}:root") {
        return Ok(None);
    }
    let token = text
        .strip_prefix(&format!("arn:aws:iam::{account}:user/"))
        .filter(|t| {
            t.len() == 32
                && t.bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        })
        .ok_or_else(|| {
            malformed(format!(
                "principal {text} is not this account nor one of its tokens \
                 (arn:aws:iam::{account}:user/<token id>)"
            ))
        })?;
    Ok(Some(token.to_owned()))
}

fn principals(value: &Value, account: &str) -> Result<Option<Vec<String>>, AwsError> {
    let aws = match value {
        Value::String(s) if s == "*" => return Ok(None),
        Value::Object(map) if map.len() == 1 && map.contains_key("AWS") => &map["AWS"],
        _ => {
            return Err(malformed(
                "Principal must be \"*\" or {\"AWS\": …}; other principal types are not supported",
            ));
        }
    };
    let mut tokens = Vec::new();
    for text in strings(aws, "Principal.AWS")? {
        match principal(text, account)? {
            None => return Ok(None),
            Some(token) => tokens.push(token),
        }
    }
    Ok(Some(tokens))
}

fn action(text: &str) -> Result<String, AwsError> {
    let name = text
        .strip_prefix("kms:")
        .ok_or_else(|| malformed(format!("action {text} is not a kms: action")))?;
    let ok = match name.strip_suffix('*') {
        Some(prefix) => prefix.bytes().all(|b| b.is_ascii_alphabetic()),
        None => known_action(name),
    };
    if !ok {
        return Err(malformed(format!(
            "action {text} is not an operation on a key Coffer knows"
        )));
    }
    Ok(text.to_owned())
}

fn statement(value: &Value, account: &str) -> Result<Statement, AwsError> {
    let map = value
        .as_object()
        .ok_or_else(|| malformed("a Statement must be an object"))?;
    if let Some(other) = map
        .keys()
        .find(|k| !["Sid", "Effect", "Principal", "Action", "Resource"].contains(&k.as_str()))
    {
        return Err(malformed(format!(
            "{other} is not supported by Coffer's key policies (see docs/aws.md)"
        )));
    }
    let allow = match map.get("Effect").and_then(Value::as_str) {
        Some("Allow") => true,
        Some("Deny") => false,
        _ => return Err(malformed("Effect must be Allow or Deny")),
    };
    let tokens = principals(
        map.get("Principal")
            .ok_or_else(|| malformed("Principal is required"))?,
        account,
    )?;
    let actions = strings(
        map.get("Action")
            .ok_or_else(|| malformed("Action is required"))?,
        "Action",
    )?
    .into_iter()
    .map(action)
    .collect::<Result<Vec<_>, _>>()?;
    let resources = strings(
        map.get("Resource")
            .ok_or_else(|| malformed("Resource is required"))?,
        "Resource",
    )?;
    if resources.iter().any(|r| *r != "*") {
        return Err(malformed("Resource must be \"*\" (the key itself)"));
    }
    Ok(Statement {
        allow,
        tokens,
        actions,
    })
}

/// Parses a policy document for a key of `account`.
pub fn parse(document: &str, account: &str) -> Result<KeyPolicy, AwsError> {
    if document.len() > MAX_POLICY_BYTES {
        return Err(malformed("a key policy is at most 32768 bytes"));
    }
    let value: Value =
        serde_json::from_str(document).map_err(|_| malformed("the policy is not JSON"))?;
    let map = value
        .as_object()
        .ok_or_else(|| malformed("the policy must be a JSON object"))?;
    if let Some(other) = map
        .keys()
        .find(|k| !["Version", "Id", "Statement"].contains(&k.as_str()))
    {
        return Err(malformed(format!(
            "{other} is not supported at the policy's top level"
        )));
    }
    if let Some(version) = map.get("Version")
        && !matches!(version.as_str(), Some("2012-10-17" | "2008-10-17"))
    {
        return Err(malformed("Version must be 2012-10-17 or 2008-10-17"));
    }
    let statements = match map.get("Statement") {
        Some(Value::Array(items)) if !items.is_empty() => items.iter().collect(),
        Some(single @ Value::Object(_)) => vec![single],
        _ => return Err(malformed("Statement is required")),
    };
    Ok(KeyPolicy {
        statements: statements
            .into_iter()
            .map(|s| statement(s, account))
            .collect::<Result<_, _>>()?,
    })
}

/// AWS's default key policy: the account may do everything (so each token's caveats
/// decide), as a key without a policy behaves.
pub fn default_document(account: &str) -> String {
    serde_json::json!({
        "Version": "2012-10-17",
        "Id": "key-default-1",
        "Statement": [{
            "Sid": "Enable IAM User Permissions",
            "Effect": "Allow",
            "Principal": { "AWS": format!("arn:aws:iam::{account}:root") },
            "Action": "kms:*",
            "Resource": "*",
        }],
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACCOUNT: &str = "123456789012";
    const TOKEN: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn the_supported_subset_parses_and_everything_else_is_refused() {
        let policy = parse(
            &format!(
                r#"{{"Version": "2012-10-17", "Statement": [
                {{"Effect": "Allow", "Principal": {{"AWS": "arn:aws:iam::{ACCOUNT}:user/{TOKEN}"}},
                  "Action": ["kms:Encrypt", "kms:GenerateDataKey*"], "Resource": "*"}},
                {{"Sid": "no", "Effect": "Deny", "Principal": "*", "Action": "kms:*", "Resource": ["*"]}}]}}"#
            ),
            ACCOUNT,
        )
        .unwrap();
        assert_eq!(policy.statements.len(), 2);
        assert_eq!(policy.statements[0].tokens, Some(vec![TOKEN.to_owned()]));
        assert_eq!(policy.statements[1].tokens, None);
        assert!(parse(&default_document(ACCOUNT), ACCOUNT).is_ok());
        let refused = [
            r#"{"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "kms:*", "Resource": "*", "Condition": {}}]}"#.to_owned(),
            r#"{"Statement": [{"Effect": "Allow", "Principal": "*", "NotAction": "kms:*", "Resource": "*"}]}"#.to_owned(),
            r#"{"Statement": [{"Effect": "Allow", "Principal": {"Service": "x"}, "Action": "kms:*", "Resource": "*"}]}"#.to_owned(),
            r#"{"Statement": [{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::999999999999:root"}, "Action": "kms:*", "Resource": "*"}]}"#.to_owned(),
            r#"{"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "*"}]}"#.to_owned(),
            r#"{"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "kms:NoSuchThing", "Resource": "*"}]}"#.to_owned(),
            r#"{"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "kms:*", "Resource": "arn:aws:s3:::b"}]}"#.to_owned(),
            r#"{"Statement": [{"Effect": "Maybe", "Principal": "*", "Action": "kms:*", "Resource": "*"}]}"#.to_owned(),
            r#"{"Version": "2099-01-01", "Statement": []}"#.to_owned(),
            r#"{"Statement": []}"#.to_owned(),
            "not json".to_owned(),
            format!(r#"{{"Id": "{}"}}"#, "x".repeat(40_000)),
        ];
        for document in refused {
            let err = parse(&document, ACCOUNT).unwrap_err();
            assert_eq!(
                err.kind, "MalformedPolicyDocumentException",
                "{document:.80}"
            );
        }
    }
}
