//! `coffer encrypt`, `decrypt`, `datakey`, `rewrap`: envelope operations, and with
//! `--algorithm` RSA-OAEP encryption and decryption with an RSA key.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use coffer_api::crypto::{
    DatakeyRequest, DecryptRequest, EncryptRequest, RewrapRequest, UnwrapRequest, WrapRequest,
};
use coffer_api::{B64, B64Secret};
use zeroize::Zeroizing;

use super::{
    Globals, decode_b64, encode_b64, pairs_to_map, parse_pair, print_bytes, print_json, print_line,
    read_input,
};

/// `encrypt`.
#[derive(Args)]
pub struct EncryptArgs {
    /// Key id or alias/NAME.
    #[arg(long)]
    key: String,
    /// Encryption context KEY=VALUE (repeatable); decrypt needs the same pairs.
    #[arg(long = "context", value_name = "KEY=VALUE", value_parser = parse_pair)]
    context: Vec<(String, String)>,
    /// Read the plaintext from FILE (default: stdin).
    #[arg(long = "in", value_name = "FILE", conflicts_with = "plaintext")]
    input: Option<PathBuf>,
    /// The plaintext as an argument (visible in `ps` and shell history).
    #[arg(long)]
    plaintext: Option<String>,
    /// RSA-OAEP with an RSA key made for encryption: rsa-oaep-sha256 or rsa-oaep-sha1
    /// (no context).
    #[arg(long, value_name = "ALG", conflicts_with = "context")]
    algorithm: Option<String>,
    /// With --algorithm: the version to encrypt to (default: the primary).
    #[arg(long, value_name = "N", requires = "algorithm")]
    version: Option<u32>,
    /// Register the plaintext (a data key you already hold, 1–1024 bytes) as a tracked
    /// data key under this id, so rotations rewrap it (`GET /v1/kms/tracked/ID`).
    #[arg(long, value_name = "ID", conflicts_with = "algorithm")]
    track_id: Option<String>,
}

/// `decrypt`.
#[derive(Args)]
pub struct DecryptArgs {
    /// With --algorithm: the RSA key (an envelope names its own key).
    #[arg(long, requires = "algorithm")]
    key: Option<String>,
    /// RSA-OAEP decryption (rsa-oaep-sha256 or rsa-oaep-sha1), as encrypted.
    #[arg(long, value_name = "ALG", requires = "key", conflicts_with = "context")]
    algorithm: Option<String>,
    /// With --algorithm: the version that encrypted (default: the primary).
    #[arg(long, value_name = "N", requires = "algorithm")]
    version: Option<u32>,
    /// Encryption context KEY=VALUE (repeatable), as given to encrypt.
    #[arg(long = "context", value_name = "KEY=VALUE", value_parser = parse_pair)]
    context: Vec<(String, String)>,
    /// Read the ciphertext (base64) from FILE (default: stdin).
    #[arg(long = "in", value_name = "FILE", conflicts_with = "ciphertext")]
    input: Option<PathBuf>,
    /// The ciphertext (base64).
    #[arg(long, value_name = "B64")]
    ciphertext: Option<String>,
}

/// `datakey`.
#[derive(Args)]
pub struct DatakeyArgs {
    /// Key id or alias/NAME that wraps the data key.
    #[arg(long)]
    key: String,
    /// Data key length in bytes, 1–1024 (default 32).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1024))]
    bytes: Option<u32>,
    /// Encryption context KEY=VALUE (repeatable).
    #[arg(long = "context", value_name = "KEY=VALUE", value_parser = parse_pair)]
    context: Vec<(String, String)>,
    /// Return only the wrapped data key.
    #[arg(long)]
    no_plaintext: bool,
    /// Register the wrapped data key under this id so rotations rewrap it.
    #[arg(long)]
    track_id: Option<String>,
}

/// `rewrap`.
#[derive(Args)]
pub struct RewrapArgs {
    /// Destination key (default: the same key's primary version).
    #[arg(long, value_name = "DEST")]
    key: Option<String>,
    /// Encryption context KEY=VALUE (repeatable), as given to encrypt; kept.
    #[arg(long = "context", value_name = "KEY=VALUE", value_parser = parse_pair)]
    context: Vec<(String, String)>,
    /// The ciphertext (base64).
    #[arg(long, value_name = "B64")]
    ciphertext: String,
}

/// Prints the ciphertext (base64) on stdout.
pub async fn encrypt(global: &Globals, args: EncryptArgs) -> anyhow::Result<ExitCode> {
    let plaintext = read_input(args.input.as_deref(), args.plaintext)?;
    let answer = if let Some(algorithm) = args.algorithm {
        let request = EncryptRequest {
            key_id: args.key,
            key_version: args.version,
            algorithm,
            plaintext: B64Secret::new(plaintext.to_vec()),
        };
        global.client()?.encrypt_asymmetric(&request).await?
    } else {
        let request = WrapRequest {
            key_id: args.key,
            plaintext: B64Secret::new(plaintext.to_vec()),
            context: pairs_to_map(args.context, "context")?,
            track_id: args.track_id,
        };
        global.client()?.wrap(&request).await?
    };
    if global.json {
        print_json(&answer)?;
    } else {
        print_line(&encode_b64(&answer.ciphertext.0))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes the raw plaintext on stdout.
pub async fn decrypt(global: &Globals, args: DecryptArgs) -> anyhow::Result<ExitCode> {
    let text = read_input(args.input.as_deref(), args.ciphertext)?;
    let ciphertext = B64(decode_b64(&text, "the ciphertext")?);
    let answer = match (args.algorithm, args.key) {
        (Some(algorithm), Some(key_id)) => {
            let request = DecryptRequest {
                key_id,
                key_version: args.version,
                algorithm,
                ciphertext,
            };
            global.client()?.decrypt_asymmetric(&request).await?
        }
        _ => {
            let request = UnwrapRequest {
                attestation: None,
                ciphertext,
                context: pairs_to_map(args.context, "context")?,
            };
            global.client()?.unwrap(&request).await?
        }
    };
    if global.json {
        print_json(&answer)?;
    } else {
        print_bytes(answer.plaintext.expose_secret())?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints `ciphertext=…` and (unless `--no-plaintext`) `plaintext=…`, both base64.
pub async fn datakey(global: &Globals, args: DatakeyArgs) -> anyhow::Result<ExitCode> {
    let request = DatakeyRequest {
        attestation: None,
        key_id: args.key,
        bytes: args.bytes,
        context: pairs_to_map(args.context, "context")?,
        include_plaintext: args.no_plaintext.then_some(false),
        track_id: args.track_id,
    };
    let answer = global.client()?.datakey(&request).await?;
    if global.json {
        print_json(&answer)?;
        return Ok(ExitCode::SUCCESS);
    }
    print_line(&format!("ciphertext={}", encode_b64(&answer.ciphertext.0)))?;
    if let Some(plaintext) = &answer.plaintext {
        let line = Zeroizing::new(format!(
            "plaintext={}",
            encode_b64(plaintext.expose_secret())
        ));
        print_line(&line)?;
    }
    eprintln!(
        "key_id={} key_version={}",
        answer.key_id, answer.key_version
    );
    Ok(ExitCode::SUCCESS)
}

/// Prints the new ciphertext (base64) on stdout.
pub async fn rewrap(global: &Globals, args: RewrapArgs) -> anyhow::Result<ExitCode> {
    let request = RewrapRequest {
        ciphertext: B64(decode_b64(args.ciphertext.as_bytes(), "the ciphertext")?),
        context: pairs_to_map(args.context, "context")?,
        key_id: args.key,
        destination_context: None,
    };
    let answer = global.client()?.rewrap(&request).await?;
    if global.json {
        print_json(&answer)?;
    } else {
        print_line(&encode_b64(&answer.ciphertext.0))?;
        eprintln!(
            "key_id={} key_version={}",
            answer.key_id, answer.key_version
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Command;
    use crate::tests::parse;

    #[test]
    fn context_pairs_parse_and_need_an_equals_sign() {
        let cli = parse(&[
            "encrypt",
            "--key",
            "alias/a",
            "--context",
            "tenant=acme",
            "--context",
            "x=",
            "--plaintext",
            "hi",
        ])
        .unwrap();
        let Command::Encrypt(args) = cli.command else {
            panic!("not encrypt")
        };
        let context = pairs_to_map(args.context, "context").unwrap();
        assert_eq!(context["tenant"], "acme");
        assert_eq!(context["x"], "");

        let err = parse(&["decrypt", "--context", "tenant", "--ciphertext", "AA=="])
            .err()
            .unwrap();
        assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation);
        assert!(err.to_string().contains("KEY=VALUE"), "{err}");
    }

    #[test]
    fn datakey_bytes_are_bounded() {
        assert!(parse(&["datakey", "--key", "k", "--bytes", "1025"]).is_err());
        assert!(parse(&["datakey", "--key", "k", "--bytes", "1024", "--no-plaintext"]).is_ok());
    }
}
