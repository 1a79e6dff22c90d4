//! Masking secrets in hook output before it is printed or kept as evidence (unless
//! `--show-commands`). A hook is the operator's script, so its output is free text:
//! this masks what is recognisably a credential, and says so in the docs rather than
//! promising more.
//!
//! Masked: Coffer tokens (`coffer_v1_…`), the word after `Bearer`, and the value of
//! any `NAME=value` or `NAME: value` (quotes allowed around either) whose name
//! contains `token`, `secret`, `password`, `passwd`, `credential`, `api_key`,
//! `apikey` or `private_key`, in any case.

use super::session::REDACTED;

const SECRET_NAMES: [&str; 8] = [
    "token",
    "secret",
    "password",
    "passwd",
    "credential",
    "api_key",
    "apikey",
    "private_key",
];

/// `text` with every recognisable credential replaced by `<redacted>`.
pub fn scrub(text: &str) -> String {
    assignments(&bearer(&tokens(text)))
}

/// Where an unquoted value starting at `from` ends.
fn value_end(text: &str, from: usize) -> usize {
    text[from..]
        .find(|c: char| c.is_whitespace() || "\"',;&)]}".contains(c))
        .map_or(text.len(), |i| from + i)
}

fn tokens(text: &str) -> String {
    const PREFIX: &str = "coffer_v1_";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(PREFIX) {
        out.push_str(&rest[..i]);
        out.push_str(REDACTED);
        let end = value_end(rest, i);
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

fn bearer(text: &str) -> String {
    const WORD: &str = "bearer ";
    // ASCII lowercasing keeps every byte where it was.
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut from = 0;
    while let Some(i) = lower[from..].find(WORD) {
        let start = from + i + WORD.len();
        let value = start + (text[start..].len() - text[start..].trim_start().len());
        let end = value_end(text, value);
        if end > value && &text[value..end] != REDACTED {
            out.push_str(&text[copied..value]);
            out.push_str(REDACTED);
            copied = end;
        }
        from = end.max(start);
    }
    out.push_str(&text[copied..]);
    out
}

fn assignments(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        if (bytes[i] == b'=' || bytes[i] == b':') && secret_name_before(text, i) {
            let mut value = i + 1;
            while value < bytes.len() && (bytes[value] == b' ' || bytes[value] == b'\t') {
                value += 1;
            }
            let end = match bytes.get(value) {
                Some(&quote @ (b'"' | b'\'')) => {
                    value += 1;
                    text[value..]
                        .find(quote as char)
                        .map_or(text.len(), |n| value + n)
                }
                _ => value_end(text, value),
            };
            if end > value && &text[value..end] != REDACTED {
                out.push_str(&text[copied..value]);
                out.push_str(REDACTED);
                copied = end;
                i = end;
                continue;
            }
        }
        i += 1;
    }
    out.push_str(&text[copied..]);
    out
}

/// True when the name just before the `=` or `:` at `at` looks like a secret's.
fn secret_name_before(text: &str, at: usize) -> bool {
    let bytes = text.as_bytes();
    let mut end = at;
    while end > 0 && bytes[end - 1] == b' ' {
        end -= 1;
    }
    if end > 0 && (bytes[end - 1] == b'"' || bytes[end - 1] == b'\'') {
        end -= 1;
    }
    let mut start = end;
    while start > 0
        && (bytes[start - 1].is_ascii_alphanumeric() || b"_-.".contains(&bytes[start - 1]))
    {
        start -= 1;
    }
    let name = text[start..end].to_ascii_lowercase();
    !name.is_empty() && SECRET_NAMES.iter().any(|word| name.contains(word))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_masked_and_the_rest_is_kept() {
        let text = "deployed v3 to https://api.example:8443/x\n\
                    using coffer_v1_AbC-d_9 now\n\
                    Authorization: Bearer eyJhbGciOi.x.y\n\
                    DB_PASSWORD=hunter2 user=ops\n\
                    {\"api_token\": \"two words\", \"count\": 3}\n\
                    Secret : s3cr3t; done\n";
        let shown = scrub(text);
        for secret in ["AbC-d_9", "eyJhbGciOi", "hunter2", "two words", "s3cr3t"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert_eq!(
            shown,
            "deployed v3 to https://api.example:8443/x\n\
             using <redacted> now\n\
             Authorization: Bearer <redacted>\n\
             DB_PASSWORD=<redacted> user=ops\n\
             {\"api_token\": \"<redacted>\", \"count\": 3}\n\
             Secret : <redacted>; done\n"
        );
        assert_eq!(scrub(&shown), shown, "masking twice changes nothing");
    }

    #[test]
    fn text_without_credentials_is_unchanged() {
        let text = "ok: 3 checks passed; latency=12ms\nversion: 4\nünïcode = fine\n";
        assert_eq!(scrub(text), text);
    }
}
