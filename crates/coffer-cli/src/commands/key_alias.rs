//! `coffer keys alias set alias/NAME KEY`: move an alias to another key of the tenant
//! (seed 004: consumers of the alias follow it to the backup key).

use std::process::ExitCode;

use clap::{Args, Subcommand};
use coffer_api::keys::SetAliasRequest;
use coffer_client::Client;

use super::{Globals, print_json, print_line};

/// `keys alias …`.
#[derive(Subcommand)]
pub enum AliasCommand {
    /// Move an existing alias to another key of the tenant, atomically (audited; this
    /// server follows at once, other replicas within their cache_ttl).
    Set(SetArgs),
}

/// `keys alias set`.
#[derive(Args)]
pub struct SetArgs {
    /// The alias, alias/NAME.
    #[arg(value_name = "ALIAS")]
    alias: String,
    /// The key it is to name (id or alias/NAME).
    #[arg(value_name = "KEY")]
    key: String,
    /// Move it only if it still names this key (id or alias/NAME).
    #[arg(long, value_name = "KEY")]
    expect: Option<String>,
}

/// Runs `keys alias …`.
pub async fn run(
    global: &Globals,
    client: &Client,
    command: AliasCommand,
) -> anyhow::Result<ExitCode> {
    match command {
        AliasCommand::Set(args) => {
            let moved = client
                .set_alias(&SetAliasRequest {
                    alias: args.alias,
                    key_id: args.key,
                    expected_key_id: args.expect,
                })
                .await?;
            if global.json {
                print_json(&moved)?;
            } else {
                print_line(&format!(
                    "{} -> key {} (was key {})",
                    moved.alias, moved.key_id, moved.previous_key_id
                ))?;
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
