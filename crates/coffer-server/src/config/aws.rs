//! `[aws]`: the AWS front's operator-registered access keys.
//!
//! `aws.static_keys_file` names a file of fixed access key pairs (existing AWS
//! configurations and test fixtures carry fixed credentials), one per line:
//!
//! ```text
//! # access key id        secret access key                         Coffer token
//! AKIAIOSFODNN7EXAMPLE   wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY   coffer_v1_…
//! ```
//!
//! Each pair acts as its token: the token's tenant, caveats, expiry and revocation.
//! The secrets live in this file (keep it 0600), never in the database.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;
use zeroize::Zeroizing;

use super::{ConfigError, invalid};

const KEY: &str = "aws.static_keys_file";

/// One registered pair. Secret and token are bearer secrets: `Debug` elides them.
#[derive(Clone)]
pub struct StaticKey {
    /// The secret access key.
    pub secret: Zeroizing<String>,
    /// The Coffer token it acts as.
    pub token: Zeroizing<String>,
}

impl std::fmt::Debug for StaticKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticKey").finish_non_exhaustive()
    }
}

/// The `[aws]` section, validated: registered pairs by access key id.
#[derive(Clone, Default)]
pub struct AwsConfig {
    /// Registered pairs.
    pub static_keys: Arc<HashMap<String, StaticKey>>,
}

impl std::fmt::Debug for AwsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut ids: Vec<&String> = self.static_keys.keys().collect();
        ids.sort();
        f.debug_struct("AwsConfig")
            .field("static_key_ids", &ids)
            .finish()
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAws {
    static_keys_file: Option<PathBuf>,
}

impl RawAws {
    pub(super) fn validate(self) -> Result<AwsConfig, ConfigError> {
        let Some(path) = self.static_keys_file else {
            return Ok(AwsConfig::default());
        };
        let text =
            Zeroizing::new(
                std::fs::read_to_string(&path).map_err(|e| ConfigError::Read {
                    path: path.clone(),
                    reason: e.to_string(),
                })?,
            );
        parse(&text).map(|keys| AwsConfig {
            static_keys: Arc::new(keys),
        })
    }
}

fn parse(text: &str) -> Result<HashMap<String, StaticKey>, ConfigError> {
    let mut keys = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [id, secret, token] = fields[..] else {
            return Err(invalid(
                KEY,
                format!("line {}: expected ACCESS_KEY_ID SECRET TOKEN", n + 1),
            ));
        };
        // Ids Coffer derives from tokens start with CFR1; a fixed one may not shadow them.
        if id.starts_with("CFR1") || id.contains(['/', ',', '=']) {
            return Err(invalid(
                KEY,
                format!(
                    "line {}: the access key id may not start with CFR1 or hold / , =",
                    n + 1
                ),
            ));
        }
        if coffer_core::token::Token::decode(token).is_err() {
            return Err(invalid(KEY, format!("line {}: not a Coffer token", n + 1)));
        }
        let key = StaticKey {
            secret: Zeroizing::new(secret.to_owned()),
            token: Zeroizing::new(token.to_owned()),
        };
        if keys.insert(id.to_owned(), key).is_some() {
            return Err(invalid(
                KEY,
                format!("line {}: access key id {id} twice", n + 1),
            ));
        }
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;
    use coffer_core::token::{Token, TokenId};

    fn token() -> String {
        let root = coffer_crypto::MacKey::from_bytes(&[1u8; 32]).unwrap();
        Token::mint(&root, TokenId::generate(), vec![])
            .unwrap()
            .encode()
    }

    #[test]
    fn pairs_parse_and_their_secrets_stay_out_of_debug() {
        let text = format!("# comment\n\nAKIDEXAMPLE  s3cr3t-value  {}\n", token());
        let keys = parse(&text).unwrap();
        assert_eq!(keys["AKIDEXAMPLE"].secret.as_str(), "s3cr3t-value");
        let config = AwsConfig {
            static_keys: Arc::new(keys),
        };
        let shown = format!("{config:?}");
        assert!(
            shown.contains("AKIDEXAMPLE") && !shown.contains("s3cr3t"),
            "{shown}"
        );
    }

    #[test]
    fn bad_lines_are_refused_with_their_number() {
        let t = token();
        for bad in [
            "AKID only-two".to_owned(),
            format!("CFR1abc secret {t}"),
            "AKID secret not-a-token".to_owned(),
            format!("AKID a {t}\nAKID b {t}"),
        ] {
            let err = parse(&bad).unwrap_err().to_string();
            assert!(
                err.contains("aws.static_keys_file") && err.contains("line"),
                "{err}"
            );
        }
    }
}
