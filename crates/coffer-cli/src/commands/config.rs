//! `coffer config check FILE`: a configuration file validated as `coffer serve` would
//! load it, every unknown key named; `coffer config get [KEY]`: the effective values and
//! their sources (seed 002 §6.1), of a running server (its operations port's `/config`)
//! or, when asked, of a file and this process's environment.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use coffer_api::admin::{ConfigSettingView, RunningConfigView};
use coffer_server::Config;

use super::{Globals, print_json, print_line};

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
    /// Print the value a running server uses for KEY (every key without one), and its
    /// source: `default`, `file` or `env`, as the server loaded it; read from its
    /// operations port (`--server`). With `--config FILE` or `--local`, the values a
    /// server started with that file (if any) and this process's `COFFER_…` variables
    /// would use instead; that configuration must load. `KEY=(not used)` for a key
    /// that does not apply. Secrets are redacted: a database URL's password is `***`.
    Get {
        /// The dotted key, e.g. `max_inflight_sign` or `custody.method`.
        key: Option<String>,
        /// The server's operations port.
        #[arg(
            long,
            value_name = "URL",
            env = "COFFER_OPS_ADDR",
            default_value = "http://127.0.0.1:9909"
        )]
        server: String,
        /// Not a server: this configuration file (as `coffer serve --config`) and this
        /// process's `COFFER_…` variables.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Not a server: this process's `COFFER_…` variables alone (no file).
        #[arg(long, conflicts_with = "config")]
        local: bool,
    },
}

/// Runs a `config` command. Only `get` without `--config` or `--local` asks a server.
pub async fn run(global: &Globals, command: ConfigCommand) -> anyhow::Result<ExitCode> {
    let file = match command {
        ConfigCommand::Check { file } => file,
        ConfigCommand::Get {
            key,
            config: None,
            local: false,
            server,
        } => return get_running(global, key.as_deref(), &server).await,
        ConfigCommand::Get { key, config, .. } => {
            return get(global, key.as_deref(), config.as_deref());
        }
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

fn get(
    global: &Globals,
    key: Option<&str>,
    file: Option<&std::path::Path>,
) -> anyhow::Result<ExitCode> {
    let env = |name: &str| std::env::var(name).ok();
    let settings = match key {
        Some(key) => match coffer_server::config::effective(key, file, env) {
            Ok((value, source)) => vec![ConfigSettingView {
                key: key.to_owned(),
                value,
                source: source.as_str().to_owned(),
            }],
            Err(error) => {
                eprintln!("{error}");
                return Ok(ExitCode::FAILURE);
            }
        },
        None => match Config::load_with(file, env) {
            Ok(config) => config.running_view().settings,
            Err(error) => {
                eprintln!("{error}");
                return Ok(ExitCode::FAILURE);
            }
        },
    };
    print_settings(global, &RunningConfigView { settings })
}

/// The running server's configuration, from its operations port.
async fn get_running(
    global: &Globals,
    key: Option<&str>,
    server: &str,
) -> anyhow::Result<ExitCode> {
    let running = global.client()?.running_config(server).await.map_err(|e| {
        anyhow::anyhow!(
            "cannot read the configuration of the server at {server}: {e} \
                 (--config FILE or --local for a file and this environment instead)"
        )
    })?;
    let settings = match key {
        None => running.settings,
        Some(key) => match running.settings.into_iter().find(|s| s.key == key) {
            Some(setting) => vec![setting],
            None => {
                eprintln!("invalid config key `{key}`: unknown config key");
                return Ok(ExitCode::FAILURE);
            }
        },
    };
    print_settings(global, &RunningConfigView { settings })
}

/// `KEY=VALUE source=SOURCE` per line (`(not used)` for a key that does not apply), or
/// the JSON of `GET /config` with `--json`.
fn print_settings(global: &Globals, view: &RunningConfigView) -> anyhow::Result<ExitCode> {
    if global.json {
        print_json(view)?;
        return Ok(ExitCode::SUCCESS);
    }
    for setting in &view.settings {
        let value = setting.value.as_deref().unwrap_or("(not used)");
        print_line(&format!(
            "{}={value} source={}",
            setting.key, setting.source
        ))?;
    }
    Ok(ExitCode::SUCCESS)
}
