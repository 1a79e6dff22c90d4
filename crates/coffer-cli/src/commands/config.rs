//! `coffer config check FILE`: a configuration file validated as `coffer serve` would
//! load it, every unknown key named; `coffer config get KEY`: one key's effective value
//! and its source (seed 002 §6.1).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use coffer_server::Config;

use super::print_line;

/// Configuration files.
#[derive(Subcommand)]
pub enum ConfigCommand {
    /// Validate a configuration file as `coffer serve --config FILE` would load it (with
    /// this process's `COFFER_…` variables over it): names every unknown key, then the
    /// first bad value. Exit 0 when it loads, 1 when it does not.
    Check {
        /// The file.
        file: PathBuf,
    },
    /// Print the value a server started with this configuration (the file, if given,
    /// and this process's `COFFER_…` variables) uses for KEY, and its source:
    /// `default`, `file` or `env`. `KEY=(not used)` for a key that does not apply.
    /// The whole configuration must load; a database URL is shown without password.
    Get {
        /// The dotted key, e.g. `max_inflight_sign` or `custody.method`.
        key: String,
        /// The configuration file (as `coffer serve --config`).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
}

/// Runs a `config` command. Needs no server.
pub fn run(command: ConfigCommand) -> anyhow::Result<ExitCode> {
    let file = match command {
        ConfigCommand::Check { file } => file,
        ConfigCommand::Get { key, config } => return get(&key, config.as_deref()),
    };
    let text = std::fs::read_to_string(&file)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
    let unknown = match coffer_server::config::unknown_keys(&text) {
        Ok(unknown) => unknown,
        Err(error) => {
            eprintln!("{}: {error}", file.display());
            return Ok(ExitCode::FAILURE);
        }
    };
    if !unknown.is_empty() {
        for key in &unknown {
            eprintln!("{}: unknown config key `{key}`", file.display());
        }
        return Ok(ExitCode::FAILURE);
    }
    match Config::load(Some(&file)) {
        Ok(_) => {
            print_line(&format!("{}: ok", file.display()))?;
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => {
            eprintln!("{}: {error}", file.display());
            Ok(ExitCode::FAILURE)
        }
    }
}

fn get(key: &str, file: Option<&std::path::Path>) -> anyhow::Result<ExitCode> {
    match coffer_server::config::effective(key, file, |name| std::env::var(name).ok()) {
        Ok((value, source)) => {
            let value = value.unwrap_or_else(|| "(not used)".to_owned());
            print_line(&format!("{key}={value} source={}", source.as_str()))?;
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => {
            eprintln!("{error}");
            Ok(ExitCode::FAILURE)
        }
    }
}
