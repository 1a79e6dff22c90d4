//! The global flags, and what every command shares: `k=v` pairs, input from a file,
//! an argument or stdin, and output as JSON, lines or a table.

pub mod audit;
pub mod backup;
pub mod certificates;
pub mod doctor;
pub mod envelope;
pub mod key_alias;
pub mod key_attestation;
pub mod key_lifecycle;
pub mod keys;
pub mod migrate;
pub mod rotate;
pub mod server;
pub mod signing;
pub mod sys;
pub mod tenant;
pub mod token;

use std::collections::BTreeMap;
use std::io::{IsTerminal, Read, Write};
use std::path::Path;

use anyhow::{Context as _, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use clap::Args;
use coffer_client::Client;
use serde::Serialize;
use zeroize::Zeroizing;

/// Flags every command takes, before or after the command name.
#[derive(Args)]
pub struct Globals {
    /// Address of the native API.
    #[arg(
        long,
        env = "COFFER_ADDR",
        default_value = "http://127.0.0.1:9446",
        global = true
    )]
    pub addr: String,
    /// Bearer token (prefer the environment variable: arguments show in `ps`).
    #[arg(long, env = "COFFER_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// Machine output: the API's JSON answer, pretty-printed.
    #[arg(long, global = true)]
    pub json: bool,
    /// PEM CA certificate the server's certificate must chain to (https:// addresses).
    #[arg(long, env = "COFFER_CACERT", value_name = "FILE", global = true)]
    pub cacert: Option<std::path::PathBuf>,
    /// PEM client certificate, for a server with `tls.client_auth`.
    #[arg(long, env = "COFFER_CLIENT_CERT", value_name = "FILE", global = true)]
    pub client_cert: Option<std::path::PathBuf>,
    /// PEM private key of `--client-cert`.
    #[arg(long, env = "COFFER_CLIENT_KEY", value_name = "FILE", global = true)]
    pub client_key: Option<std::path::PathBuf>,
}

impl Globals {
    /// A client of `--addr` with `--token`, `--cacert` and the client certificate.
    pub fn client(&self) -> anyhow::Result<Client> {
        let tls = coffer_client::ClientTls {
            ca_file: self.cacert.clone(),
            cert_file: self.client_cert.clone(),
            key_file: self.client_key.clone(),
        };
        Ok(Client::with_tls(&self.addr, self.token.clone(), &tls)?)
    }
}

/// Parses `KEY=VALUE` (for `--context`, `--label`). The value may be empty and may
/// hold `=`; the key may not be empty.
pub fn parse_pair(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        Some(_) => Err("the key before `=` is empty".into()),
        None => Err(format!("expected KEY=VALUE, got `{text}`")),
    }
}

/// Collects pairs into a map, refusing a key given twice (which one was meant?).
pub fn pairs_to_map(
    pairs: Vec<(String, String)>,
    what: &str,
) -> anyhow::Result<BTreeMap<String, String>> {
    let mut map = BTreeMap::new();
    for (key, value) in pairs {
        if map.insert(key.clone(), value).is_some() {
            bail!("{what} key `{key}` is given twice");
        }
    }
    Ok(map)
}

/// Reads `file`, or `text`, or stdin, into a buffer zeroized on drop.
pub fn read_input(file: Option<&Path>, text: Option<String>) -> anyhow::Result<Zeroizing<Vec<u8>>> {
    if let Some(path) = file {
        return std::fs::read(path)
            .map(Zeroizing::new)
            .with_context(|| format!("cannot read {}", path.display()));
    }
    if let Some(text) = text {
        return Ok(Zeroizing::new(text.into_bytes()));
    }
    let mut stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprintln!("(reading stdin; end with Ctrl-D)");
    }
    let mut buffer = Zeroizing::new(Vec::new());
    stdin
        .read_to_end(&mut buffer)
        .context("cannot read stdin")?;
    Ok(buffer)
}

/// Decodes standard base64, ignoring surrounding whitespace (a trailing newline from a
/// file or `$(...)`).
pub fn decode_b64(text: &[u8], what: &str) -> anyhow::Result<Vec<u8>> {
    STANDARD
        .decode(text.trim_ascii())
        .with_context(|| format!("{what} is not valid base64 (standard alphabet, padded)"))
}

/// Standard base64, as the API writes binary values.
pub fn encode_b64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// Prints an answer as pretty JSON on stdout. Written straight to stdout rather than
/// through a `String`, so an answer holding plaintext leaves no extra copy behind.
pub fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value).context("cannot write the answer")?;
    writeln!(out).context("cannot write to stdout")?;
    Ok(())
}

/// Prints one line on stdout; a closed pipe is an error, not a panic (`println!`
/// would panic).
pub fn print_line(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}").context("cannot write to stdout")
}

/// Writes raw bytes on stdout.
pub fn print_bytes(bytes: &[u8]) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .context("cannot write to stdout")
}

/// A text table with columns padded to their widest cell.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let padded: Vec<String> = cells
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        padded.join("  ").trim_end().to_owned()
    };
    let mut text = line(&mut headers.iter().copied());
    for row in rows {
        text.push('\n');
        text.push_str(&line(&mut row.iter().map(String::as_str)));
    }
    text
}

/// `-` for an absent value in tables and summaries.
pub fn or_dash(value: Option<&str>) -> String {
    value.unwrap_or("-").to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_need_an_equals_sign_and_a_key() {
        assert_eq!(parse_pair("a=b").unwrap(), ("a".into(), "b".into()));
        assert_eq!(parse_pair("a=").unwrap(), ("a".into(), String::new()));
        assert_eq!(parse_pair("a=b=c").unwrap(), ("a".into(), "b=c".into()));
        assert!(parse_pair("ab").is_err());
        assert!(parse_pair("=b").is_err());
    }

    #[test]
    fn a_key_given_twice_is_refused() {
        let pairs = vec![("a".into(), "1".into()), ("a".into(), "2".into())];
        let err = pairs_to_map(pairs, "context").unwrap_err();
        assert!(err.to_string().contains("`a`"), "{err}");
    }

    #[test]
    fn tables_pad_columns() {
        let rows = vec![
            vec!["k1".into(), "enabled".into()],
            vec!["longer".into(), "-".into()],
        ];
        assert_eq!(
            table(&["ID", "STATE"], &rows),
            "ID      STATE\nk1      enabled\nlonger  -"
        );
    }

    #[test]
    fn base64_input_may_end_in_a_newline() {
        assert_eq!(decode_b64(b"aGk=\n", "x").unwrap(), b"hi");
        assert!(decode_b64(b"not base64!", "x").is_err());
    }
}
