//! `[attestation]`: which attestation documents the server trusts (docs/attestation.md).

use std::path::PathBuf;
use std::time::Duration;

use coffer_attest::{AttestationOptions, AuthorityKey, nitro};
use serde::Deserialize;

use super::{AT_LEAST_1S, ConfigError, duration, invalid};

/// The longest `max_age` accepted: a captured document must not stay usable for long.
const MAX_AGE_LIMIT: Duration = Duration::from_secs(3600);

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAttestation {
    authority_public_key_file: Option<PathBuf>,
    nitro_root_file: Option<PathBuf>,
    max_age: Option<String>,
}

fn read(key: &str, path: &PathBuf) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
        path: path.clone(),
        reason: format!("{key}: {e}"),
    })
}

impl RawAttestation {
    /// Validates, reading the key and certificate files.
    pub(super) fn validate(self) -> Result<AttestationOptions, ConfigError> {
        let authority = self
            .authority_public_key_file
            .as_ref()
            .map(|path| {
                let key = "attestation.authority_public_key_file";
                AuthorityKey::from_pem(&read(key, path)?).map_err(|e| invalid(key, e.to_string()))
            })
            .transpose()?;
        let nitro_root = match &self.nitro_root_file {
            None => nitro::aws_root_der(),
            Some(path) => {
                let key = "attestation.nitro_root_file";
                nitro::pem_certificate_der(&read(key, path)?)
                    .filter(|der| !der.is_empty())
                    .ok_or_else(|| invalid(key, "must hold a PEM certificate"))?
            }
        };
        let max_age = duration(
            "attestation.max_age",
            self.max_age,
            coffer_attest::MAX_AGE,
            AT_LEAST_1S,
        )?;
        if max_age > MAX_AGE_LIMIT {
            return Err(invalid("attestation.max_age", "must be at most 1h"));
        }
        Ok(AttestationOptions {
            authority,
            nitro_root,
            max_age,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_trust_the_aws_root_for_five_minutes_and_no_authority() {
        let options = RawAttestation::default().validate().unwrap();
        assert!(options.authority.is_none());
        assert_eq!(options.nitro_root, nitro::aws_root_der());
        assert_eq!(options.max_age, Duration::from_secs(300));
    }

    #[test]
    fn files_are_read_and_bad_ones_refused() {
        let dir = std::env::temp_dir().join(format!(
            "coffer-attestation-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let (authority, _) = coffer_attest::test_format::Authority::generate_ed25519().unwrap();
        let key = dir.join("authority.pem");
        std::fs::write(&key, authority.public_key_pem()).unwrap();
        let options = RawAttestation {
            authority_public_key_file: Some(key),
            max_age: Some("30s".into()),
            ..RawAttestation::default()
        }
        .validate()
        .unwrap();
        assert_eq!(options.authority.unwrap().kind(), "ed25519");
        assert_eq!(options.max_age, Duration::from_secs(30));

        let junk = dir.join("junk.pem");
        std::fs::write(&junk, "not a key").unwrap();
        for raw in [
            RawAttestation {
                authority_public_key_file: Some(junk.clone()),
                ..RawAttestation::default()
            },
            RawAttestation {
                nitro_root_file: Some(junk.clone()),
                ..RawAttestation::default()
            },
            RawAttestation {
                nitro_root_file: Some(dir.join("absent.pem")),
                ..RawAttestation::default()
            },
            RawAttestation {
                max_age: Some("2h".into()),
                ..RawAttestation::default()
            },
        ] {
            assert!(raw.validate().is_err());
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
