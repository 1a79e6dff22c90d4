//! Seed 002's PQ policy knobs (top-level keys, as the seed names them:
//! `pq_verify_mode` ↔ `COFFER_PQ_VERIFY_MODE`, `KMS_PQ_VERIFY_MODE` in the seed): the
//! server's defaults, which an operator overrides per tenant at runtime
//! (`coffer tenant set`). What they mean: `coffer_core::pq`.

use coffer_core::pq::{HybridSigning, PqDefaults, RolloutPercent};
use serde::Deserialize;

use super::{ConfigError, invalid};

/// The PQ keys as read (top level of the file). The boolean and the number are read as
/// any TOML value, so a value of the wrong type is refused with its key named.
#[derive(Debug, Default, Deserialize)]
pub(super) struct RawPq {
    pub(super) pq_verify_mode: Option<String>,
    pub(super) pq_produce_hybrid: Option<toml::Value>,
    pub(super) pq_rollout_percent: Option<toml::Value>,
}

impl RawPq {
    /// Validated; absent keys take the defaults (`and`, `true`, `100`): a hybrid key
    /// signs and verifies as the composite construction defines.
    pub(super) fn validate(self) -> Result<PqDefaults, ConfigError> {
        let defaults = PqDefaults::default();
        Ok(PqDefaults {
            verify_mode: match self.pq_verify_mode {
                Some(text) => text
                    .parse()
                    .map_err(|_| invalid("pq_verify_mode", "expected and, or or pq_only"))?,
                None => defaults.verify_mode,
            },
            signing: match self.pq_produce_hybrid {
                Some(toml::Value::Boolean(produce)) => HybridSigning::from_produce_hybrid(produce),
                Some(_) => return Err(invalid("pq_produce_hybrid", "expected true or false")),
                None => defaults.signing,
            },
            rollout: match self.pq_rollout_percent {
                Some(toml::Value::Integer(percent)) => u8::try_from(percent)
                    .ok()
                    .and_then(|p| RolloutPercent::new(p).ok())
                    .ok_or_else(|| invalid("pq_rollout_percent", "must be between 0 and 100"))?,
                Some(_) => return Err(invalid("pq_rollout_percent", "must be between 0 and 100")),
                None => defaults.rollout,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::load;
    use super::*;

    #[test]
    fn pq_keys_default_load_from_file_and_environment_and_refuse_bad_values() {
        let config = load("", &[]).unwrap();
        assert_eq!(config.pq, PqDefaults::default());
        let config = load(
            "pq_produce_hybrid = false\npq_rollout_percent = 30\n",
            &[("COFFER_PQ_VERIFY_MODE", "or")],
        )
        .unwrap();
        assert_eq!(
            config.pq,
            PqDefaults {
                verify_mode: coffer_crypto::PqVerifyMode::Or,
                signing: HybridSigning::ClassicalHalf,
                rollout: RolloutPercent::new(30).unwrap(),
            }
        );
        let config = load(
            "",
            &[
                ("COFFER_PQ_PRODUCE_HYBRID", "true"),
                ("COFFER_PQ_ROLLOUT_PERCENT", "0"),
            ],
        )
        .unwrap();
        assert_eq!(config.pq.signing, HybridSigning::Composite);
        assert_eq!(config.pq.rollout.get(), 0);
        for (text, env, key) in [
            ("pq_rollout_percent = 101\n", None, "`pq_rollout_percent`"),
            ("pq_rollout_percent = -1\n", None, "`pq_rollout_percent`"),
            (
                "",
                Some(("COFFER_PQ_ROLLOUT_PERCENT", "half")),
                "`pq_rollout_percent`",
            ),
            (
                "",
                Some(("COFFER_PQ_PRODUCE_HYBRID", "yes")),
                "`pq_produce_hybrid`",
            ),
            (
                "pq_produce_hybrid = \"false\"\n",
                None,
                "`pq_produce_hybrid`",
            ),
            ("pq_rollout_percent = 2.5\n", None, "`pq_rollout_percent`"),
            ("pq_verify_mode = \"both\"\n", None, "`pq_verify_mode`"),
        ] {
            let env: Vec<(&str, &str)> = env.into_iter().collect();
            let err = load(text, &env).unwrap_err().to_string();
            assert!(err.contains(key), "{text} {env:?}: {err}");
        }
    }
}
