//! `coffer config get`: the value a server uses for each key, and where it comes from
//! (seed 002 §6.1, "config get"): either for a configuration file and environment read
//! here ([`effective`]), or for a running server, which keeps where each key came from
//! when it loaded ([`Config::running`], served on the operations port's `/config`).

use std::collections::BTreeMap;
use std::path::Path;

use super::redacted::shown_value;
use super::{Config, ConfigError, KEYS, env_name, invalid};

/// Where an effective value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Neither the file nor the environment sets it.
    Default,
    /// The configuration file.
    File,
    /// A `COFFER_…` variable (it wins over the file).
    Env,
}

impl Source {
    /// `default`, `file` or `env`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Default => "default",
            Self::File => "file",
            Self::Env => "env",
        }
    }
}

/// One key of a configuration, as it may be shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shown {
    /// The dotted key.
    pub key: &'static str,
    /// Its value, secrets redacted; `None` when the key does not apply (a PKCS#11 key
    /// under key-file custody).
    pub value: Option<String>,
    /// Where it comes from.
    pub source: Source,
}

/// Where each key of a loaded configuration came from, kept from the load.
#[derive(Debug, Clone, Default)]
pub(super) struct Origin {
    sources: BTreeMap<&'static str, Source>,
    /// Keys whose value the validated configuration does not keep (it keeps what these
    /// files hold, not their names), as the environment or the file gave them.
    given: BTreeMap<&'static str, String>,
}

/// The keys kept as given.
const GIVEN: [&str; 3] = [
    "aws.static_keys_file",
    "attestation.authority_public_key_file",
    "attestation.nitro_root_file",
];

impl Origin {
    /// `file` is the configuration file's table as read, before the environment.
    pub(super) fn of(file: &toml::Table, env: impl Fn(&str) -> Option<String>) -> Self {
        let mut origin = Self::default();
        for key in KEYS {
            let from_env = env(&env_name(key));
            let in_file = lookup(file, key);
            let source = match (&from_env, in_file) {
                (Some(_), _) => Source::Env,
                (None, Some(_)) => Source::File,
                (None, None) => Source::Default,
            };
            origin.sources.insert(key, source);
            if GIVEN.contains(key) {
                let given =
                    from_env.or_else(|| in_file.and_then(toml::Value::as_str).map(str::to_owned));
                if let Some(value) = given {
                    origin.given.insert(key, value);
                }
            }
        }
        origin
    }

    pub(super) fn given(&self, key: &str) -> Option<String> {
        self.given.get(key).cloned()
    }

    fn source(&self, key: &str) -> Source {
        self.sources.get(key).copied().unwrap_or(Source::Default)
    }
}

fn lookup<'a>(table: &'a toml::Table, key: &str) -> Option<&'a toml::Value> {
    match key.split_once('.') {
        Some((section, field)) => table
            .get(section)
            .and_then(toml::Value::as_table)
            .and_then(|t| t.get(field)),
        None => table.get(key),
    }
}

impl Config {
    /// Every key, its value as it may be shown (secrets redacted) and its source, in
    /// the order of the example configuration.
    pub fn running(&self) -> Vec<Shown> {
        KEYS.iter()
            .map(|key| Shown {
                key,
                // Every key of KEYS has a rule (`every_key_has_a_value_rule…`).
                value: shown_value(self, key).unwrap_or(None),
                source: self.origin.source(key),
            })
            .collect()
    }
}

impl Config {
    /// [`Config::running`] as the operations port's `/config` answers it (built once
    /// at start: the configuration does not change while the server runs).
    pub fn running_view(&self) -> coffer_api::admin::RunningConfigView {
        coffer_api::admin::RunningConfigView {
            settings: self
                .running()
                .into_iter()
                .map(|shown| coffer_api::admin::ConfigSettingView {
                    key: shown.key.to_owned(),
                    value: shown.value,
                    source: shown.source.as_str().to_owned(),
                })
                .collect(),
        }
    }
}

/// `key`'s effective value (`None`: the key does not apply to this configuration, such
/// as a PKCS#11 key under key-file custody) and its source, for `file` and `env` as
/// [`Config::load_with`] reads them. The whole configuration must load. A database URL
/// is shown without its password.
pub fn effective(
    key: &str,
    file: Option<&Path>,
    env: impl Fn(&str) -> Option<String> + Copy,
) -> Result<(Option<String>, Source), ConfigError> {
    if !KEYS.contains(&key) {
        return Err(invalid(key, "unknown config key"));
    }
    let config = Config::load_with(file, env)?;
    Ok((shown_value(&config, key)?, config.origin.source(key)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_has_a_value_rule_and_sources_are_told_apart() {
        let dir = std::env::temp_dir().join(format!("coffer-get-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("coffer.toml");
        std::fs::write(
            &file,
            "max_inflight_sign = 100\ncache_ttl = \"1m\"\ndatabase_url = \"postgres://u:pw@h/db\"\n",
        )
        .unwrap();
        let env = |name: &str| (name == "COFFER_CACHE_TTL").then(|| "2m".to_owned());
        for key in KEYS {
            effective(key, Some(&file), env).unwrap_or_else(|e| panic!("{key}: {e}"));
        }
        let get = |key| effective(key, Some(&file), env).unwrap();
        assert_eq!(get("max_inflight_sign"), (Some("100".into()), Source::File));
        assert_eq!(get("cache_ttl"), (Some("2m".into()), Source::Env));
        assert_eq!(
            get("max_inflight_verify"),
            (Some("1024".into()), Source::Default)
        );
        assert_eq!(
            get("database_url"),
            (Some("postgres://u:***@h/db".into()), Source::File)
        );
        assert_eq!(get("custody.module"), (None, Source::Default));
        let err = effective("max_inflight_sing", Some(&file), env).unwrap_err();
        assert!(err.to_string().contains("`max_inflight_sing`"), "{err}");

        // A running server's view: the same values and sources, kept from its load.
        let running = Config::load_with(Some(&file), env).unwrap().running();
        assert_eq!(running.len(), KEYS.len());
        for shown in &running {
            let (value, source) = get(shown.key);
            assert_eq!(
                (&shown.value, shown.source),
                (&value, source),
                "{}",
                shown.key
            );
        }
    }
}
