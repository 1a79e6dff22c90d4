//! `coffer token …`: mint and revoke (admin token), and attenuate, which is offline:
//! the holder of a token can narrow it without asking the server (see
//! `coffer_core::token`).

use std::collections::BTreeSet;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use clap::{ArgGroup, Args, Subcommand};
use coffer_api::admin::{MintTokenRequest, RevokeTokenRequest};
use coffer_core::HumanDuration;
use coffer_core::token::{Caveat, Operation, Token, TokenId};
use zeroize::Zeroizing;

use super::{Globals, print_json, print_line};

/// Tokens.
#[derive(Subcommand)]
pub enum TokenCommand {
    /// Mint a token; prints it on stdout (shown once) and token_id=… on stderr.
    Mint(MintArgs),
    /// Narrow a token offline (no server call); prints the new token.
    Attenuate(AttenuateArgs),
    /// Print the AWS access key id and secret access key of a token (offline, no
    /// server call): for AWS SDKs and tools pointed at Coffer's AWS front. Revoking
    /// the token id revokes them; attenuate first for a narrower key.
    AwsKey {
        /// The token (default: --token / COFFER_TOKEN; `-` reads stdin).
        #[arg(value_name = "TOKEN")]
        token_text: Option<String>,
    },
    /// Revoke a token id and every token attenuated from it.
    Revoke {
        /// The token id (32 hex digits), as printed by mint.
        #[arg(value_name = "TOKEN_ID")]
        token_id: TokenId,
    },
}

/// `token mint`.
#[derive(Args)]
#[command(group(ArgGroup::new("grant").required(true).args(["tenant", "admin"])))]
pub struct MintArgs {
    /// A token for this tenant (name or id).
    #[arg(long, value_name = "NAME")]
    tenant: Option<String>,
    /// An admin token (tenants and tokens) instead.
    #[arg(long)]
    admin: bool,
    #[command(flatten)]
    scope: Scope,
    /// A note for operators.
    #[arg(long, value_name = "TEXT")]
    description: Option<String>,
}

/// What a token is narrowed to.
#[derive(Args)]
pub struct Scope {
    /// Only these operations (comma-separated): wrap, unwrap, datakey, rewrap, sign,
    /// verify, mac, verify-mac, keys:create, keys:read, keys:rotate, keys:manage; and
    /// the admin powers admin:tenants, admin:tokens, audit:read, audit:checkpoint,
    /// admin:backup. A
    /// minted token never gets more than the minting token has.
    #[arg(long, value_name = "OPS", value_delimiter = ',', value_parser = parse_operation)]
    ops: Vec<Operation>,
    /// Only these keys (comma-separated ids or alias/NAME).
    #[arg(long, value_name = "KEYS", value_delimiter = ',')]
    keys: Vec<String>,
    /// Lifetime from now, e.g. 24h.
    #[arg(long, value_name = "D")]
    ttl: Option<HumanDuration>,
}

fn parse_operation(text: &str) -> Result<Operation, String> {
    text.parse().map_err(|_| {
        let names: Vec<&str> = Operation::ALL.iter().map(|op| op.as_str()).collect();
        format!("unknown operation; use {}", names.join(", "))
    })
}

/// `token attenuate`.
#[derive(Args)]
pub struct AttenuateArgs {
    /// The token to narrow (default: --token / COFFER_TOKEN; `-` reads stdin).
    // Not named `token`: that id is the global `--token`, and a shared id would mix
    // the two values.
    #[arg(value_name = "TOKEN")]
    token_text: Option<String>,
    #[command(flatten)]
    scope: Scope,
}

/// A token given as an argument, on stdin (`-`), or by --token / COFFER_TOKEN.
fn token_input(global: &Globals, text: Option<&str>) -> anyhow::Result<Zeroizing<String>> {
    Ok(match text {
        Some("-") => {
            let bytes = super::read_input(None, None)?;
            Zeroizing::new(String::from_utf8(bytes.to_vec()).context("not a token")?)
        }
        Some(text) => Zeroizing::new(text.to_owned()),
        None => Zeroizing::new(
            global
                .token
                .clone()
                .filter(|t| !t.is_empty())
                .context("give the token as an argument or in COFFER_TOKEN")?,
        ),
    })
}

/// Runs a `token` command.
pub async fn run(global: &Globals, command: TokenCommand) -> anyhow::Result<ExitCode> {
    match command {
        TokenCommand::Mint(args) => mint(global, args).await?,
        TokenCommand::AwsKey { token_text } => {
            let text = token_input(global, token_text.as_deref())?;
            let token = Token::decode(&text).context("not a Coffer token")?;
            let credentials = token.aws_credentials();
            if global.json {
                print_json(&serde_json::json!({
                    "access_key_id": credentials.access_key_id,
                    "secret_access_key": credentials.expose_secret(),
                    "token_id": token.id().to_string(),
                }))?;
            } else {
                print_line(&format!("aws_access_key_id={}", credentials.access_key_id))?;
                print_line(&Zeroizing::new(format!(
                    "aws_secret_access_key={}",
                    credentials.expose_secret()
                )))?;
            }
        }
        TokenCommand::Attenuate(args) => {
            let text =
                match args.token_text.as_deref() {
                    Some("-") => {
                        let bytes = super::read_input(None, None)?;
                        Zeroizing::new(String::from_utf8(bytes.to_vec()).context("not a token")?)
                    }
                    Some(text) => Zeroizing::new(text.to_owned()),
                    None => {
                        Zeroizing::new(global.token.clone().filter(|t| !t.is_empty()).context(
                            "give the token to attenuate as an argument or in COFFER_TOKEN",
                        )?)
                    }
                };
            let token = attenuate(&text, &args.scope, unix_now()?)?;
            if global.json {
                print_json(&serde_json::json!({ "token": token.encode(),
                    "token_id": token.id().to_string() }))?;
            } else {
                print_line(&Zeroizing::new(token.encode()))?;
            }
        }
        TokenCommand::Revoke { token_id } => {
            let request = RevokeTokenRequest {
                token_id: token_id.to_string(),
            };
            global.client()?.revoke_token(&request).await?;
            if global.json {
                print_json(&serde_json::json!({ "token_id": request.token_id, "revoked": true }))?;
            } else {
                print_line(&format!("revoked token_id={}", request.token_id))?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn mint(global: &Globals, args: MintArgs) -> anyhow::Result<()> {
    let request = MintTokenRequest {
        tenant: args.tenant,
        admin: args.admin,
        operations: args
            .scope
            .ops
            .iter()
            .map(|op| op.as_str().to_owned())
            .collect(),
        keys: args.scope.keys,
        ttl: args.scope.ttl.map(|d| d.to_string()),
        description: args.description,
    };
    let answer = global.client()?.mint_token(&request).await?;
    if global.json {
        print_json(&answer)?;
    } else {
        print_line(&answer.token)?;
        eprintln!("token_id={}", answer.token_id);
    }
    Ok(())
}

/// Appends the scope's caveats to the token in `text`: ops, then keys, then an expiry
/// `ttl` after `now_unix`. Offline; the server checks the chain when the token is used.
pub fn attenuate(text: &str, scope: &Scope, now_unix: i64) -> anyhow::Result<Token> {
    if scope.ops.is_empty() && scope.keys.is_empty() && scope.ttl.is_none() {
        bail!("nothing to narrow: give --ops, --keys or --ttl");
    }
    // The decode error says what is wrong with the token without quoting it.
    let mut token = Token::decode(text).context("cannot read the token")?;
    if !scope.ops.is_empty() {
        let ops: BTreeSet<Operation> = scope.ops.iter().copied().collect();
        token = token.attenuate(Caveat::Ops(ops))?;
    }
    if !scope.keys.is_empty() {
        token = token.attenuate(Caveat::Keys(scope.keys.iter().cloned().collect()))?;
    }
    if let Some(ttl) = scope.ttl {
        let secs = i64::try_from(ttl.as_secs()).context("--ttl is too long")?;
        let expires = now_unix.checked_add(secs).context("--ttl is too long")?;
        token = token.attenuate(Caveat::Expires(expires))?;
    }
    Ok(token)
}

fn unix_now() -> anyhow::Result<i64> {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("the system clock is before 1970")?
        .as_secs();
    i64::try_from(secs).context("the system clock is out of range")
}

#[cfg(test)]
mod tests {
    use coffer_crypto::MacKey;

    use super::*;
    use crate::Command;
    use crate::tests::parse;

    fn attenuate_args(args: &[&str]) -> AttenuateArgs {
        let mut line = vec!["token", "attenuate"];
        line.extend_from_slice(args);
        match parse(&line).unwrap().command {
            Command::Token(TokenCommand::Attenuate(args)) => args,
            _ => panic!("not token attenuate"),
        }
    }

    #[test]
    fn attenuate_appends_caveats_offline() {
        let root = MacKey::generate().unwrap();
        let minted = Token::mint(&root, TokenId::generate(), Vec::new()).unwrap();
        let text = minted.encode();
        let args = attenuate_args(&[
            &text,
            "--ops",
            "wrap,unwrap",
            "--keys",
            "alias/a,k2",
            "--ttl",
            "24h",
        ]);
        let narrowed = attenuate(args.token_text.as_deref().unwrap(), &args.scope, 1_000).unwrap();

        let decoded = Token::decode(&narrowed.encode()).unwrap();
        assert_eq!(decoded.id(), minted.id());
        assert_eq!(
            decoded.caveats(),
            [
                Caveat::Ops([Operation::Wrap, Operation::Unwrap].into()),
                Caveat::Keys(["alias/a".to_owned(), "k2".to_owned()].into()),
                Caveat::Expires(1_000 + 86_400),
            ]
        );
        decoded
            .verify(&root)
            .expect("the server would accept the chain");
    }

    #[test]
    fn attenuate_narrows_an_already_narrowed_token() {
        let root = MacKey::generate().unwrap();
        let first = Token::mint(
            &root,
            TokenId::generate(),
            vec![Caveat::Ops([Operation::Sign].into())],
        )
        .unwrap();
        let args = attenuate_args(&["--ttl", "1h"]);
        let narrowed = attenuate(&first.encode(), &args.scope, 0).unwrap();
        assert_eq!(narrowed.caveats().len(), 2);
        assert_eq!(narrowed.caveats()[1], Caveat::Expires(3_600));
        narrowed.verify(&root).unwrap();
    }

    #[test]
    fn attenuate_refuses_nothing_to_do_and_bad_tokens() {
        let root = MacKey::generate().unwrap();
        let text = Token::mint(&root, TokenId::generate(), Vec::new())
            .unwrap()
            .encode();
        assert!(attenuate(&text, &attenuate_args(&[]).scope, 0).is_err());
        let err = attenuate(
            "coffer_v1_SECRETgarbage",
            &attenuate_args(&["--ttl", "1h"]).scope,
            0,
        )
        .unwrap_err();
        assert!(!format!("{err:#}").contains("SECRET"), "{err:#}");
    }

    #[test]
    fn the_positional_token_and_the_global_token_stay_apart() {
        let cli = parse(&[
            "--token",
            "global",
            "token",
            "attenuate",
            "local",
            "--ttl",
            "1h",
        ])
        .unwrap();
        assert_eq!(cli.global.token.as_deref(), Some("global"));
        let Command::Token(TokenCommand::Attenuate(args)) = cli.command else {
            panic!("not token attenuate")
        };
        assert_eq!(args.token_text.as_deref(), Some("local"));
    }

    #[test]
    fn unknown_operations_are_usage_errors() {
        assert!(parse(&["token", "attenuate", "--ops", "wrap,launch"]).is_err());
        assert!(parse(&["token", "mint", "--admin", "--ops", "keys:read"]).is_ok());
        assert!(parse(&["token", "revoke", "not-hex"]).is_err());
    }
}
