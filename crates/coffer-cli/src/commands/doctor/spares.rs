//! `signing-spares`: every enabled signing key whose versions expire (it has a
//! validity) keeps a usable spare, an `inactive` version to activate when the primary
//! expires (seed 004's "backup keys"). A spare's validity counts from its activation,
//! so any inactive version is usable; a key without one is a warning: when it expires,
//! the mitigation is a new version rather than one step.

use coffer_api::keys::{KeyView, ListKeysQuery};

use super::{CheckName, Context, Report, Status};

const NAME: CheckName = CheckName::SigningSpares;

pub(super) async fn signing_spares(context: &Context) -> Report {
    if !context.has_token {
        let detail = "not checked: needs a tenant token (COFFER_TOKEN or --token)";
        return Report::new(NAME, Status::Warning, detail);
    }
    let query = ListKeysQuery {
        purpose: Some("sign".into()),
        state: Some("enabled".into()),
        ..ListKeysQuery::default()
    };
    match context.client.list_keys(&query).await {
        Ok(answer) => spares_report(&answer.keys),
        Err(error) => Report::new(NAME, Status::Critical, format!("cannot list keys: {error}")),
    }
}

/// The enabled signing keys with a validity and no inactive version.
fn spares_report(keys: &[KeyView]) -> Report {
    let expiring: Vec<&KeyView> = keys
        .iter()
        .filter(|k| k.state == "enabled" && k.purpose == "sign" && k.validity.is_some())
        .collect();
    let without: Vec<String> = expiring
        .iter()
        .filter(|k| !k.versions.iter().any(|v| v.state == "inactive"))
        .map(|k| match k.aliases.first() {
            Some(alias) => format!("{} ({alias})", k.key_id),
            None => k.key_id.clone(),
        })
        .collect();
    if without.is_empty() {
        let detail = match expiring.len() {
            0 => "no enabled signing key has a validity".to_owned(),
            n => format!("each of {n} signing keys with a validity has a spare"),
        };
        return Report::new(NAME, Status::Ok, detail);
    }
    let detail = format!(
        "{} of {} signing keys with a validity have no spare (coffer keys add-spare KEY): {}",
        without.len(),
        expiring.len(),
        without.join(", ")
    );
    Report::new(NAME, Status::Warning, detail)
}

#[cfg(test)]
mod tests {
    use super::*;
    use coffer_api::keys::{RotationPolicyView, VersionView};

    fn key(id: &str, validity: Option<&str>, states: &[&str]) -> KeyView {
        KeyView {
            key_id: id.into(),
            spec: "ed25519".into(),
            purpose: "sign".into(),
            state: "enabled".into(),
            deletion_due: None,
            aliases: vec![format!("alias/{id}")],
            labels: Default::default(),
            registered_purposes: Vec::new(),
            rotation: RotationPolicyView::default(),
            validity: validity.map(str::to_owned),
            protection: "software".into(),
            primary_version: 1,
            created_at: String::new(),
            versions: states
                .iter()
                .enumerate()
                .map(|(i, state)| VersionView {
                    version: u32::try_from(i + 1).unwrap(),
                    state: (*state).into(),
                    primary: i == 0,
                    not_before: String::new(),
                    not_after: None,
                    public_key_pem: None,
                    location: "software".into(),
                    hsm: None,
                })
                .collect(),
        }
    }

    #[test]
    fn a_signing_key_with_a_validity_and_no_spare_is_a_warning() {
        let keys = [
            key("covered", Some("365d"), &["active", "inactive"]),
            key("bare", Some("365d"), &["active", "retired"]),
            key("forever", None, &["active"]),
        ];
        let report = spares_report(&keys);
        assert_eq!(report.status, Status::Warning);
        assert!(report.detail.contains("1 of 2"), "{}", report.detail);
        assert!(
            report.detail.contains("bare (alias/bare)"),
            "{}",
            report.detail
        );
        assert!(!report.detail.contains("covered"), "{}", report.detail);

        let ok = spares_report(&keys[..1]);
        assert_eq!(ok.status, Status::Ok);
        assert_eq!(spares_report(&keys[2..]).status, Status::Ok);
    }
}
