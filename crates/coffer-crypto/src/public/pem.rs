//! Strict RFC 7468 PEM: one block, the expected label, base64 in lines of any length.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::{CryptoError, Result};

const WHAT: &str = "PEM document";
/// Bound on accepted input, well above any public key Coffer handles.
const MAX_PEM_LEN: usize = 64 * 1024;

pub(super) fn encode(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        // base64 output is ASCII, so every chunk is valid UTF-8.
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

pub(super) fn decode(label: &str, text: &str) -> Result<Vec<u8>> {
    if text.len() > MAX_PEM_LEN {
        return Err(CryptoError::TooLong {
            what: WHAT,
            len: text.len(),
            max: MAX_PEM_LEN,
        });
    }
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let text = text.trim();
    let inner = text
        .strip_prefix(begin.as_str())
        .and_then(|rest| rest.strip_suffix(end.as_str()))
        .ok_or(CryptoError::malformed(
            WHAT,
            "missing or wrong BEGIN/END lines",
        ))?;
    let body: String = inner.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    if body.contains('-') {
        return Err(CryptoError::malformed(WHAT, "more than one block"));
    }
    STANDARD
        .decode(body)
        .map_err(|_| CryptoError::malformed(WHAT, "invalid base64"))
}
