//! Key references (a key id or `alias/NAME`) checked and turned into paths.
//!
//! The reference goes into the URL path, so anything that could make it address
//! another resource is refused before a request is built: `?` and `#` (query,
//! fragment), `.` (so no `..`), `%` (pre-encoded bytes), whitespace and control
//! characters. An allowlist does that by construction: key ids are UUIDs and alias
//! names are `[A-Za-z0-9/_-]` (`coffer_core::Alias`), so nothing else can name a key.

use coffer_api::paths;

use crate::error::ClientError;

const ALIAS_PREFIX: &str = "alias/";
/// Longer than any key id or alias the server accepts.
const MAX_LEN: usize = 512;

/// `KEYS/{id}` or `KEYS/alias/{name}`.
///
/// The `/` after `alias` stays literal because the server routes
/// `/v1/kms/keys/alias/{name}`; a `/` inside NAME is sent as `%2F` so the name stays
/// one path segment and cannot reach `.../alias/a/rotate` by accident.
pub(crate) fn key_path(reference: &str) -> Result<String, ClientError> {
    if reference.is_empty() || reference.len() > MAX_LEN {
        return Err(ClientError::InvalidReference);
    }
    let segment = match reference.strip_prefix(ALIAS_PREFIX) {
        Some(name) => {
            if name.is_empty() || !name.chars().all(|c| is_id_char(c) || c == '/') {
                return Err(ClientError::InvalidReference);
            }
            format!("{ALIAS_PREFIX}{}", name.replace('/', "%2F"))
        }
        None => {
            if !reference.chars().all(is_id_char) {
                return Err(ClientError::InvalidReference);
            }
            reference.to_owned()
        }
    };
    Ok(paths::key(&segment))
}

/// `KEYS/{reference}/{action}`, e.g. `rotate`.
pub(crate) fn key_action_path(reference: &str, action: &str) -> Result<String, ClientError> {
    Ok(format!("{}/{action}", key_path(reference)?))
}

fn is_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_id_is_one_segment() {
        let id = "0b6f3c2e-8d7a-4f0e-9c1b-2a3d4e5f6a7b";
        assert_eq!(key_path(id).unwrap(), format!("/v1/kms/keys/{id}"));
        assert_eq!(
            key_action_path(id, "rotate").unwrap(),
            format!("/v1/kms/keys/{id}/rotate")
        );
    }

    #[test]
    fn an_alias_keeps_its_slash_literal() {
        assert_eq!(
            key_path("alias/payments").unwrap(),
            "/v1/kms/keys/alias/payments"
        );
        assert_eq!(
            key_action_path("alias/payments", "schedule-deletion").unwrap(),
            "/v1/kms/keys/alias/payments/schedule-deletion"
        );
    }

    #[test]
    fn a_slash_inside_an_alias_name_is_encoded() {
        assert_eq!(
            key_action_path("alias/team/prod", "rotate").unwrap(),
            "/v1/kms/keys/alias/team%2Fprod/rotate"
        );
    }

    #[test]
    fn references_that_could_reach_another_path_are_refused() {
        for bad in [
            "",
            "alias/",
            "abc?x=1",
            "abc#frag",
            "..",
            "../admin",
            "alias/../../admin",
            "alias/a..b",
            "a b",
            "alias/a\tb",
            "abc\n",
            " abc",
            "abc/rotate",
            "abc%2F..",
            "alias/a%2Fb",
            "ключ",
        ] {
            assert!(
                matches!(key_path(bad), Err(ClientError::InvalidReference)),
                "{bad:?} should be refused"
            );
        }
        assert!(key_path(&"a".repeat(MAX_LEN + 1)).is_err());
    }
}
