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

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
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
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfilesFile {
    #[serde(default)]
    env: BTreeMap<String, Profile>,
}

/// `Debug` is safe: a `token` key's value is never kept.
#[derive(Debug, Deserialize)]
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
    Ok(Target {
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
