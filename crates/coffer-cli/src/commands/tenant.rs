//! `coffer tenant …`: create, list and shred tenants (admin token).

use std::process::ExitCode;

use clap::Subcommand;
use coffer_api::admin::{
    CreateTenantRequest, SetPqPolicyRequest, ShredTenantRequest, TenantSettingsView,
};

use super::{Globals, print_json, print_line, table};

/// Tenant administration.
#[derive(Subcommand)]
pub enum TenantCommand {
    /// Create a tenant; prints its id and name.
    Create {
        /// 1–64 of a-z, 0-9, `-`, `_`.
        name: String,
        /// The tenant's AWS account id on the AWS front (12 digits, unique); derived
        /// from the tenant id when not given.
        #[arg(long, value_name = "DIGITS")]
        aws_account_id: Option<String>,
    },
    /// List tenants.
    List,
    /// Crypto-shred a tenant: destroys its key and with it all of its keys,
    /// irrecoverably; its tokens stop working.
    Shred {
        /// The tenant's name or id.
        tenant: String,
        /// The tenant's name again, as confirmation.
        #[arg(long, value_name = "NAME")]
        confirm: String,
    },
    /// Show a tenant and the settings its requests run under (PQ policy, in-flight caps
    /// and its floor in each class), each with where it comes from (`tenant` or
    /// `server`).
    Show {
        /// The tenant's name or id.
        tenant: String,
    },
    /// Change a tenant's PQ settings at once, without a restart (audited). Settings not
    /// named are left as they are; `default` puts one back to the server's.
    #[command(group(
        clap::ArgGroup::new("setting")
            .required(true)
            .multiple(true)
            .args(["pq_verify_mode", "pq_produce_hybrid", "pq_rollout_percent"])
    ))]
    Set {
        /// The tenant's name or id.
        tenant: String,
        /// How its hybrid signatures are accepted: `and`, `or`, `pq_only`, or
        /// `default` (the server's `pq_verify_mode` again).
        #[arg(long, value_name = "MODE")]
        pq_verify_mode: Option<String>,
        /// Whether its hybrid keys in the rollout sign with the composite: `true`,
        /// `false` (the classical half alone, a plain Ed25519 signature), or `default`.
        #[arg(long, value_name = "true|false|default")]
        pq_produce_hybrid: Option<String>,
        /// The share of its hybrid keys in the rollout (a stable hash of tenant and
        /// key): 0 to 100, or `default`.
        #[arg(long, value_name = "PERCENT")]
        pq_rollout_percent: Option<String>,
    },
}

fn print_settings(global: &Globals, view: &TenantSettingsView) -> anyhow::Result<()> {
    if global.json {
        return print_json(view);
    }
    print_line(&format!(
        "tenant_id={} name={} state={}",
        view.tenant.tenant_id, view.tenant.name, view.tenant.state
    ))?;
    let rows: Vec<Vec<String>> = view
        .settings
        .iter()
        .map(|s| vec![s.name.clone(), s.value.clone(), s.source.clone()])
        .collect();
    print_line(&table(&["SETTING", "VALUE", "SOURCE"], &rows))
}

/// One setting of `tenant set`: not named (left as it is), `default` (cleared: `null`),
/// or a value.
fn setting<T>(
    given: Option<String>,
    parse: impl Fn(&str) -> anyhow::Result<T>,
) -> anyhow::Result<Option<Option<T>>> {
    match given.as_deref() {
        None => Ok(None),
        Some("default") => Ok(Some(None)),
        Some(text) => parse(text).map(|value| Some(Some(value))),
    }
}

/// Runs a `tenant` command.
pub async fn run(global: &Globals, command: TenantCommand) -> anyhow::Result<ExitCode> {
    let client = global.client()?;
    match command {
        TenantCommand::Create {
            name,
            aws_account_id,
        } => {
            let request = CreateTenantRequest {
                name,
                aws_account_id,
            };
            let tenant = client.create_tenant(&request).await?;
            if global.json {
                print_json(&tenant)?;
            } else {
                print_line(&format!(
                    "tenant_id={} name={}",
                    tenant.tenant_id, tenant.name
                ))?;
            }
        }
        TenantCommand::Shred { tenant, confirm } => {
            client
                .shred_tenant(&ShredTenantRequest {
                    tenant: tenant.clone(),
                    confirm,
                })
                .await?;
            print_line(&format!("tenant {tenant} shredded"))?;
        }
        TenantCommand::Show { tenant } => {
            print_settings(global, &client.show_tenant(&tenant).await?)?;
        }
        TenantCommand::Set {
            tenant,
            pq_verify_mode,
            pq_produce_hybrid,
            pq_rollout_percent,
        } => {
            let request = SetPqPolicyRequest {
                tenant,
                pq_verify_mode: setting(pq_verify_mode, |text| Ok(text.to_owned()))?,
                pq_produce_hybrid: setting(pq_produce_hybrid, |text| {
                    text.parse::<bool>()
                        .map_err(|_| anyhow::anyhow!("--pq-produce-hybrid: true, false or default"))
                })?,
                pq_rollout_percent: setting(pq_rollout_percent, |text| {
                    text.parse::<i64>()
                        .map_err(|_| anyhow::anyhow!("--pq-rollout-percent: 0 to 100 or default"))
                })?,
            };
            print_settings(global, &client.set_pq_policy(&request).await?)?;
        }
        TenantCommand::List => {
            let answer = client.list_tenants().await?;
            if global.json {
                print_json(&answer)?;
            } else {
                let rows: Vec<Vec<String>> = answer
                    .tenants
                    .iter()
                    .map(|t| {
                        vec![
                            t.tenant_id.clone(),
                            t.name.clone(),
                            t.state.clone(),
                            t.created_at.clone(),
                        ]
                    })
                    .collect();
                print_line(&table(&["TENANT ID", "NAME", "STATE", "CREATED"], &rows))?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
