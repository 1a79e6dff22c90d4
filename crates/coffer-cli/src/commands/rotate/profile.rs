//! Named environments (`--env staging|production`): where their server is and which
//! environment variable holds their token.
//!
//! The profiles file (`~/.config/coffer/cli.toml`, or `--profiles FILE`):
//!
//! ```toml
//! [env.staging]
//! addr = "https://kms.staging.example:9446"
//! token_env = "STAGING_TOKEN"
//! ops_addr = "https://kms.staging.example:9909"
//! ```
//!
//! A token is never read from the file, only from the variable it names: the file is
//! shared and versioned, the token is not. A `token` key is refused with that reason.
//!
//! A profile may also name what seed 001's script runs around a rotation: health-check
//! URLs (`api_healthcheck_url`, `enclave_healthcheck_url`, fetched with
//! `healthcheck_timeout`, see `health.rs`) and hook commands (`stage_cmd`,
//! `validate_cmd`, `rollback_cmd`, run with `hook_timeout`, see `hooks.rs`), and the
//! enclave allow-list a rotation puts in force with its switch (`allowed_measurements`),
//! and the test authority key `validate` attests with (`attestation_authority_key_file`,
//! see `attested.rs`).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use coffer_core::HumanDuration;
use serde::Deserialize;
use serde::de::IgnoredAny;

use crate::commands::Globals;

/// The environments a rotation can target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Environment {
    /// Rehearsal.
    Staging,
    /// Changes here need `--confirm-production`.
    Production,
}

impl Environment {
    /// The profile's name in the file (`[env.NAME]`) and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Staging => "staging",
            Self::Production => "production",
        }
    }
}

/// The server a command talks to, and its credential.
///
/// No `Debug`: it holds the token.
pub struct Target {
    /// Base URL of the native API.
    pub api: String,
    /// Base URL of the operations port, when known.
    pub ops: Option<String>,
    /// The bearer token, if any.
    pub token: Option<String>,
    /// Where the token comes from, for messages (`$STAGING_TOKEN`, `--token`).
    pub token_source: String,
    /// The profile's health checks and hooks (none without `--env`).
    pub runbook: Runbook,
}

/// What a profile runs around a rotation besides Coffer's own calls (seed 001's
/// health-check URLs and `*_STAGE_CMD`, `*_VALIDATE_CMD`, `*_ROLLBACK_CMD`).
///
/// No `Debug`: a hook command line can carry a secret.
#[derive(Default)]
pub struct Runbook {
    /// `(name, url)`: `api`, then `enclave`.
    pub health: Vec<(&'static str, String)>,
    /// How long each health check may take.
    pub health_timeout: Duration,
    /// Run once the new version is staged, before the switch.
    pub stage_cmd: Option<String>,
    /// Run by `validate` (and `all`) after the smoke test.
    pub validate_cmd: Option<String>,
    /// Run by `rollback` once the rotation is rolled back.
    pub rollback_cmd: Option<String>,
    /// How long a hook may run before it and its process group are killed.
    pub hook_timeout: Duration,
    /// The variable that holds the token: removed from the hooks' environment.
    pub token_env: Option<String>,
    /// Seed 001's `KMS_ALLOWED_MEASUREMENTS`: the enclave allow-list `stage` and `all`
    /// put in force with the switch (`--allowed-measurements` overrides it).
    pub allowed_measurements: Option<Vec<String>>,
    /// A test attestation authority's signing key (PKCS #8, mode 0600): `validate`
    /// makes Coffer test-format documents with it (`--attestation-authority-key`
    /// overrides it).
    pub attestation_authority_key: Option<PathBuf>,
}

/// A health check that answers slower than this fails.
const HEALTHCHECK_TIMEOUT: Duration = Duration::from_secs(5);
/// A hook still running after this is killed.
const HOOK_TIMEOUT: Duration = Duration::from_secs(600);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfilesFile {
    #[serde(default)]
    env: BTreeMap<String, Profile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Profile {
    addr: String,
    #[serde(default)]
    token_env: Option<String>,
    #[serde(default)]
    ops_addr: Option<String>,
    /// Present only to refuse it by name: its value is never kept.
    #[serde(default)]
    token: Option<IgnoredAny>,
    #[serde(default)]
    api_healthcheck_url: Option<String>,
    #[serde(default)]
    enclave_healthcheck_url: Option<String>,
    #[serde(default)]
    healthcheck_timeout: Option<String>,
    #[serde(default)]
    stage_cmd: Option<String>,
    #[serde(default)]
    validate_cmd: Option<String>,
    #[serde(default)]
    rollback_cmd: Option<String>,
    #[serde(default)]
    hook_timeout: Option<String>,
    #[serde(default)]
    allowed_measurements: Option<Vec<String>>,
    #[serde(default)]
    attestation_authority_key_file: Option<PathBuf>,
}

/// Addresses only: hook commands can carry secrets.
impl fmt::Debug for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Profile")
            .field("addr", &self.addr)
            .field("ops_addr", &self.ops_addr)
            .finish_non_exhaustive()
    }
}

impl Profile {
    fn runbook(&self, env: Environment) -> anyhow::Result<Runbook> {
        let duration = |value: &Option<String>, key: &str, default: Duration| match value {
            None => Ok(default),
            Some(text) => text
                .parse::<HumanDuration>()
                .map(HumanDuration::get)
                .with_context(|| format!("[env.{}] {key}", env.name())),
        };
        let health = [
            ("api", &self.api_healthcheck_url),
            ("enclave", &self.enclave_healthcheck_url),
        ]
        .into_iter()
        .filter_map(|(name, url)| url.clone().map(|url| (name, url)))
        .collect();
        let command = |value: &Option<String>| value.clone().filter(|c| !c.trim().is_empty());
        Ok(Runbook {
            health,
            health_timeout: duration(
                &self.healthcheck_timeout,
                "healthcheck_timeout",
                HEALTHCHECK_TIMEOUT,
            )?,
            stage_cmd: command(&self.stage_cmd),
            validate_cmd: command(&self.validate_cmd),
            rollback_cmd: command(&self.rollback_cmd),
            hook_timeout: duration(&self.hook_timeout, "hook_timeout", HOOK_TIMEOUT)?,
            token_env: self.token_env.clone(),
            allowed_measurements: self.allowed_measurements.clone(),
            attestation_authority_key: self.attestation_authority_key_file.clone(),
        })
    }
}

/// Without `--env`: `--addr`, `--token` and `--ops-addr`. With it: the profile's
/// addresses, and the token from the variable the profile names (the flags are not
/// consulted, so a stray `COFFER_ADDR` cannot redirect a production run).
pub fn resolve(
    global: &Globals,
    env: Option<Environment>,
    profiles: Option<&Path>,
    ops_addr: &str,
) -> anyhow::Result<Target> {
    let Some(env) = env else {
        return Ok(Target {
            api: global.addr.clone(),
            ops: Some(ops_addr.to_owned()),
            token: global.token.clone(),
            token_source: "--token / COFFER_TOKEN".into(),
            runbook: Runbook::default(),
        });
    };
    let path = match profiles {
        Some(path) => path.to_owned(),
        None => default_path()?,
    };
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read the profiles file {}", path.display()))?;
    let profile = parse(&text, env).with_context(|| format!("in {}", path.display()))?;
    let token = match &profile.token_env {
        Some(name) => std::env::var(name).ok().filter(|t| !t.trim().is_empty()),
        None => None,
    };
    let runbook = profile
        .runbook(env)
        .with_context(|| format!("in {}", path.display()))?;
    Ok(Target {
        runbook,
        api: profile.addr,
        ops: profile.ops_addr,
        token,
        token_source: match profile.token_env {
            Some(name) => format!("${name} (token_env of [env.{}])", env.name()),
            None => format!("nothing: [env.{}] sets no token_env", env.name()),
        },
    })
}

fn parse(text: &str, env: Environment) -> anyhow::Result<Profile> {
    // Only toml's message: its Display quotes the offending line, which could be a
    // token someone pasted into the file.
    let file: ProfilesFile = toml::from_str(text).map_err(|e| {
        let line = e
            .span()
            .map(|span| newlines(&text.as_bytes()[..span.start.min(text.len())]) + 1);
        match line {
            Some(line) => anyhow::anyhow!("line {line}: {}", e.message()),
            None => anyhow::anyhow!("{}", e.message()),
        }
    })?;
    for (name, profile) in &file.env {
        if profile.token.is_some() {
            bail!(
                "[env.{name}] has a `token`: tokens are never read from this file; \
                 name an environment variable with `token_env` instead"
            );
        }
    }
    let mut env_profiles = file.env;
    env_profiles
        .remove(env.name())
        .with_context(|| format!("no [env.{}] profile", env.name()))
}

fn newlines(bytes: &[u8]) -> usize {
    bytes.iter().filter(|&&b| b == b'\n').count()
}

/// `$XDG_CONFIG_HOME/coffer/cli.toml`, else `~/.config/coffer/cli.toml`.
fn default_path() -> anyhow::Result<PathBuf> {
    let base = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
            Some(home) => PathBuf::from(home).join(".config"),
            None => bail!("neither XDG_CONFIG_HOME nor HOME is set; pass --profiles FILE"),
        },
    };
    Ok(base.join("coffer").join("cli.toml"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
[env.staging]
addr = "http://staging:9446"
token_env = "STAGING_TOKEN"
ops_addr = "http://staging:9909"

[env.production]
addr = "http://prod:9446"
"#;

    #[test]
    fn profiles_are_found_by_name() {
        let staging = parse(FILE, Environment::Staging).unwrap();
        assert_eq!(staging.addr, "http://staging:9446");
        assert_eq!(staging.token_env.as_deref(), Some("STAGING_TOKEN"));
        assert_eq!(staging.ops_addr.as_deref(), Some("http://staging:9909"));
        let production = parse(FILE, Environment::Production).unwrap();
        assert_eq!(production.ops_addr, None);
        let err = parse("[env.staging]\naddr = \"x\"\n", Environment::Production).unwrap_err();
        assert!(err.to_string().contains("[env.production]"), "{err}");
    }

    #[test]
    fn hooks_and_health_checks_are_read_with_their_timeouts() {
        let text = "[env.staging]\naddr = \"x\"\ntoken_env = \"T\"\n\
                    enclave_healthcheck_url = \"http://enclave/healthz\"\n\
                    api_healthcheck_url = \"http://api/healthz\"\n\
                    healthcheck_timeout = \"2s\"\nstage_cmd = \"./stage.sh\"\n\
                    validate_cmd = \"  \"\n";
        let runbook = parse(text, Environment::Staging)
            .unwrap()
            .runbook(Environment::Staging)
            .unwrap();
        assert_eq!(
            runbook.health,
            [
                ("api", "http://api/healthz".to_owned()),
                ("enclave", "http://enclave/healthz".to_owned())
            ]
        );
        assert_eq!(runbook.health_timeout, Duration::from_secs(2));
        assert_eq!(runbook.stage_cmd.as_deref(), Some("./stage.sh"));
        assert_eq!(runbook.validate_cmd, None, "a blank command is no hook");
        assert_eq!(runbook.hook_timeout, HOOK_TIMEOUT);
        assert_eq!(runbook.token_env.as_deref(), Some("T"));
        let bad = "[env.staging]\naddr = \"x\"\nhook_timeout = \"soon\"\n";
        let err = parse(bad, Environment::Staging)
            .unwrap()
            .runbook(Environment::Staging)
            .err()
            .unwrap();
        assert!(format!("{err:#}").contains("hook_timeout"), "{err:#}");
    }

    #[test]
    fn a_token_in_the_file_is_refused_without_echo() {
        let text = "[env.staging]\naddr = \"x\"\ntoken = \"coffer_v1_SECRET\"\n";
        let err = parse(text, Environment::Staging).unwrap_err();
        let shown = format!("{err:#}");
        assert!(shown.contains("token_env"), "{shown}");
        assert!(!shown.contains("SECRET"), "{shown}");
    }

    #[test]
    fn parse_errors_name_the_line_not_its_text() {
        let text = "[env.staging]\naddr = \"x\"\ntokn = \"coffer_v1_SECRET\"\n";
        let err = parse(text, Environment::Staging).unwrap_err();
        let shown = format!("{err:#}");
        assert!(shown.contains("line 3"), "{shown}");
        assert!(shown.contains("tokn"), "{shown}");
        assert!(!shown.contains("SECRET"), "{shown}");
    }
}
