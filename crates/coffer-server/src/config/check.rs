//! `coffer config check`: every unknown key of a file named at once (loading stops at
//! the first), before the file is validated as the server would load it.

use super::{ConfigError, KEYS, invalid};

/// The keys of `text` (a config file's contents) that Coffer does not know, dotted and
/// sorted; `Err` if it is not TOML at all.
pub fn unknown_keys(text: &str) -> Result<Vec<String>, ConfigError> {
    let table = text
        .parse::<toml::Table>()
        .map_err(|e| invalid("(file)", e.message().to_owned()))?;
    let mut unknown = Vec::new();
    for (key, value) in &table {
        let section = format!("{key}.");
        match value {
            toml::Value::Table(inner) if KEYS.iter().any(|k| k.starts_with(&section)) => {
                for field in inner.keys() {
                    let dotted = format!("{key}.{field}");
                    if !KEYS.contains(&dotted.as_str()) {
                        unknown.push(dotted);
                    }
                }
            }
            _ if KEYS.contains(&key.as_str()) => {}
            _ => unknown.push(key.clone()),
        }
    }
    unknown.sort();
    Ok(unknown)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_unknown_key_is_named_known_ones_are_not() {
        let text = "max_inflight_sign = 5\nmax_inflight_sing = 5\nverify_cache = 1\n\
                    [custody]\nmethod = \"shamir\"\npin = \"1234\"\n[nosuch]\nx = 1\n";
        assert_eq!(
            unknown_keys(text).unwrap(),
            ["custody.pin", "max_inflight_sing", "nosuch", "verify_cache"]
        );
        assert!(
            unknown_keys("api_addr = \"127.0.0.1:1\"\n")
                .unwrap()
                .is_empty()
        );
        let err = unknown_keys("= nonsense").unwrap_err().to_string();
        assert!(err.contains("(file)"), "{err}");
    }
}
