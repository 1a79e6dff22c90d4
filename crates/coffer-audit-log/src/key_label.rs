//! The `key` label of `kms_key_ops_total`.

/// The `key` label of `kms_key_ops_total`: the key's canonical id. A refused call's
/// entry names the key as the caller spelled it (an alias, an id in upper case or
/// braces), and every spelling would otherwise be a series of its own; references that
/// are not ids share one series.
pub(crate) fn key_label(reference: &str) -> String {
    uuid::Uuid::try_parse(reference).map_or_else(|_| "alias".to_owned(), |id| id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_of_a_key_is_one_series() {
        let id = "0b9c2f5e-8d1a-4c3b-9e7f-1a2b3c4d5e6f";
        for spelling in [
            id.to_owned(),
            id.to_uppercase(),
            id.replace('-', ""),
            format!("{{{id}}}"),
            format!("urn:uuid:{id}"),
        ] {
            assert_eq!(key_label(&spelling), id, "{spelling}");
        }
        assert_eq!(key_label("alias/a"), key_label("alias/b"));
    }
}
