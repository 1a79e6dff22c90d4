//! `coffer config check FILE`: a configuration file validated as `coffer serve` would
//! load it, every unknown key named (seed 002 §6.1, "validate").

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
}

/// Runs a `config` command. Needs no server.
pub fn run(command: ConfigCommand) -> anyhow::Result<ExitCode> {
    let ConfigCommand::Check { file } = command;
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
