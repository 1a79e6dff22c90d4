//! `coffer sign`, `verify`, `mac`, `verify-mac`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use coffer_api::B64;
use coffer_api::crypto::{MacRequest, SignRequest, VerifyMacRequest, VerifyRequest};

use super::{Globals, decode_b64, encode_b64, print_json, print_line, read_input};

/// The message: an argument, a file, or stdin.
#[derive(Args)]
pub struct MessageArgs {
    /// The message as text.
    #[arg(long, conflicts_with = "input")]
    message: Option<String>,
    /// Read the message from FILE (default: stdin).
    #[arg(long = "in", value_name = "FILE")]
    input: Option<PathBuf>,
}

impl MessageArgs {
    fn read(self) -> anyhow::Result<B64> {
        Ok(B64(
            read_input(self.input.as_deref(), self.message)?.to_vec()
        ))
    }
}

/// `sign`.
#[derive(Args)]
pub struct SignArgs {
    /// Key id or alias/NAME.
    #[arg(long)]
    key: String,
    #[command(flatten)]
    message: MessageArgs,
    /// Sign this digest (hex, by the algorithm's hash) instead of a message (ECDSA, RSA).
    #[arg(long, value_name = "HEX", conflicts_with_all = ["message", "input"])]
    digest_hex: Option<String>,
    /// Sign this ML-DSA μ (hex, 64 bytes) instead of a message (ML-DSA external μ).
    #[arg(long, value_name = "HEX", conflicts_with_all = ["message", "input", "digest_hex"])]
    mu_hex: Option<String>,
    /// Signature algorithm for keys with several (RSA: rsa-pss-sha256 by default,
    /// rsa-pss-sha384, rsa-pss-sha512, rsa-pkcs1-sha256, rsa-pkcs1-sha384, rsa-pkcs1-sha512).
    #[arg(long, value_name = "ALG")]
    algorithm: Option<String>,
}

/// `verify`.
#[derive(Args)]
#[command(
    after_help = "Exit status: 0 when the signature is valid, 1 when it is invalid \
                        or on error."
)]
pub struct VerifyArgs {
    /// Key id or alias/NAME.
    #[arg(long)]
    key: String,
    /// Version that signed (default: the primary).
    #[arg(long, value_name = "N")]
    version: Option<u32>,
    /// The signature (base64).
    #[arg(long, value_name = "B64")]
    signature: String,
    #[command(flatten)]
    message: MessageArgs,
    /// Verify against this digest (hex) instead of a message (ECDSA, RSA).
    #[arg(long, value_name = "HEX", conflicts_with_all = ["message", "input"])]
    digest_hex: Option<String>,
    /// Verify against this ML-DSA μ (hex, 64 bytes) instead of a message.
    #[arg(long, value_name = "HEX", conflicts_with_all = ["message", "input", "digest_hex"])]
    mu_hex: Option<String>,
    /// Signature algorithm, as signed (default: the key's default).
    #[arg(long, value_name = "ALG")]
    algorithm: Option<String>,
}

/// `mac`.
#[derive(Args)]
pub struct MacArgs {
    /// Key id or alias/NAME (an hmac-sha256 key).
    #[arg(long)]
    key: String,
    #[command(flatten)]
    message: MessageArgs,
}

/// `verify-mac`.
#[derive(Args)]
#[command(
    after_help = "Exit status: 0 when the tag is valid, 1 when it is invalid or on \
                        error."
)]
pub struct VerifyMacArgs {
    /// Key id or alias/NAME.
    #[arg(long)]
    key: String,
    /// Version that computed the tag (default: the primary).
    #[arg(long, value_name = "N")]
    version: Option<u32>,
    /// The tag (base64).
    #[arg(long, value_name = "B64")]
    mac: String,
    #[command(flatten)]
    message: MessageArgs,
}

/// What sign and verify take: a message, a digest or an ML-DSA μ (the server checks
/// their lengths against the key's algorithm).
struct SignedInput {
    message: Option<B64>,
    digest: Option<B64>,
    mu: Option<B64>,
}

fn signed_input(
    message: MessageArgs,
    digest_hex: Option<String>,
    mu_hex: Option<String>,
) -> anyhow::Result<SignedInput> {
    let hex_arg = |text: String, name: &str| {
        hex::decode(text.trim())
            .map(B64)
            .with_context(|| format!("{name} is not hex"))
    };
    Ok(match (digest_hex, mu_hex) {
        (Some(digest), _) => SignedInput {
            message: None,
            digest: Some(hex_arg(digest, "--digest-hex")?),
            mu: None,
        },
        (None, Some(mu)) => SignedInput {
            message: None,
            digest: None,
            mu: Some(hex_arg(mu, "--mu-hex")?),
        },
        (None, None) => SignedInput {
            message: Some(message.read()?),
            digest: None,
            mu: None,
        },
    })
}

/// Prints the signature (base64) on stdout; `key_version=… algorithm=…` on stderr.
pub async fn sign(global: &Globals, args: SignArgs) -> anyhow::Result<ExitCode> {
    let input = signed_input(args.message, args.digest_hex, args.mu_hex)?;
    let request = SignRequest {
        attestation: None,
        key_id: args.key,
        message: input.message,
        digest: input.digest,
        mu: input.mu,
        algorithm: args.algorithm,
    };
    let answer = global.client()?.sign(&request).await?;
    if global.json {
        print_json(&answer)?;
    } else {
        print_line(&encode_b64(&answer.signature.0))?;
        eprintln!(
            "key_version={} algorithm={}",
            answer.key_version, answer.algorithm
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints `valid` or `invalid`; exit 0 or 1.
pub async fn verify(global: &Globals, args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let signature = B64(decode_b64(args.signature.as_bytes(), "the signature")?);
    let input = signed_input(args.message, args.digest_hex, args.mu_hex)?;
    let request = VerifyRequest {
        key_id: args.key,
        key_version: args.version,
        message: input.message,
        digest: input.digest,
        mu: input.mu,
        algorithm: args.algorithm,
        signature,
    };
    let answer = global.client()?.verify(&request).await?;
    report_validity(global, &answer)
}

/// Prints the tag (base64) on stdout; `key_version=…` on stderr.
pub async fn mac(global: &Globals, args: MacArgs) -> anyhow::Result<ExitCode> {
    let request = MacRequest {
        attestation: None,
        key_id: args.key,
        message: args.message.read()?,
    };
    let answer = global.client()?.mac(&request).await?;
    if global.json {
        print_json(&answer)?;
    } else {
        print_line(&encode_b64(&answer.mac.0))?;
        eprintln!("key_version={}", answer.key_version);
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints `valid` or `invalid`; exit 0 or 1.
pub async fn verify_mac(global: &Globals, args: VerifyMacArgs) -> anyhow::Result<ExitCode> {
    let request = VerifyMacRequest {
        key_id: args.key,
        key_version: args.version,
        mac: B64(decode_b64(args.mac.as_bytes(), "the tag")?),
        message: args.message.read()?,
    };
    let answer = global.client()?.verify_mac(&request).await?;
    report_validity(global, &answer)
}

/// An invalid signature is an answer, not an error: no `error:` line, but exit 1 so
/// `coffer verify … && deploy` does the right thing.
fn report_validity(
    global: &Globals,
    answer: &coffer_api::crypto::VerifyResponse,
) -> anyhow::Result<ExitCode> {
    if global.json {
        print_json(answer)?;
    } else {
        print_line(if answer.valid { "valid" } else { "invalid" })?;
    }
    Ok(if answer.valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Command;
    use crate::tests::parse;

    #[test]
    fn a_digest_excludes_a_message() {
        let digest = "ab".repeat(32);
        assert!(parse(&["sign", "--key", "k", "--digest-hex", &digest]).is_ok());
        assert!(
            parse(&[
                "sign",
                "--key",
                "k",
                "--digest-hex",
                &digest,
                "--message",
                "m"
            ])
            .is_err()
        );
        assert!(parse(&["sign", "--key", "k", "--in", "f", "--message", "m"]).is_err());
    }

    #[test]
    fn a_digest_or_mu_must_be_hex_and_excludes_the_other() {
        // The length is the algorithm's to check (SHA-256, -384, -512): the server's.
        let Command::Sign(args) = parse(&["sign", "--key", "k", "--digest-hex", "abcz"])
            .unwrap()
            .command
        else {
            panic!("not sign")
        };
        assert!(signed_input(args.message, args.digest_hex, args.mu_hex).is_err());
        let input = signed_input(
            MessageArgs {
                message: None,
                input: None,
            },
            Some("00".repeat(48)),
            None,
        )
        .unwrap();
        assert!(input.message.is_none() && input.mu.is_none());
        assert_eq!(input.digest.unwrap().0, vec![0u8; 48]);
        let mu = "11".repeat(64);
        let digest = "ab".repeat(32);
        assert!(parse(&["sign", "--key", "k", "--mu-hex", &mu]).is_ok());
        assert!(
            parse(&[
                "sign",
                "--key",
                "k",
                "--mu-hex",
                &mu,
                "--digest-hex",
                &digest
            ])
            .is_err()
        );
        assert!(parse(&["sign", "--key", "k", "--mu-hex", &mu, "--message", "m"]).is_err());
    }
}
