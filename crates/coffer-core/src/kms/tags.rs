//! keys.tags: a key's tags (AWS KMS's resource tags), kept apart from its labels, with
//! AWS's limits: at most 50 per key, a tag key of 1–128 characters and a value of at
//! most 256, none with control characters, and tag keys starting `aws:` reserved.

use super::{Caller, Kms, KmsError, KmsResult};
use crate::audit::Actor;
use crate::event::Event;
use crate::ids::KeyId;
use crate::store::{Record, Tags};
use crate::token::Operation;

/// Most tags one key carries.
pub const MAX_TAGS: usize = 50;
/// Longest tag key, in characters.
pub const MAX_TAG_KEY: usize = 128;
/// Longest tag value, in characters.
pub const MAX_TAG_VALUE: usize = 256;

/// Checks one tag key (set or removed) against AWS's rules.
pub fn check_tag_key(name: &str) -> KmsResult<()> {
    let chars = name.chars().count();
    if chars == 0 || chars > MAX_TAG_KEY || name.chars().any(char::is_control) {
        return Err(KmsError::Invalid(format!(
            "a tag key is 1-{MAX_TAG_KEY} characters, none of them control characters"
        )));
    }
    if name.starts_with("aws:") {
        return Err(KmsError::Invalid(
            "tag keys starting with aws: are reserved".into(),
        ));
    }
    Ok(())
}

/// Checks tags to set: each key as [`check_tag_key`], each value at most 256
/// characters without control characters, and no more than 50 of them.
pub fn check_tags(tags: &Tags) -> KmsResult<()> {
    if tags.len() > MAX_TAGS {
        return Err(KmsError::LimitReached(format!(
            "a key carries at most {MAX_TAGS} tags"
        )));
    }
    for (name, value) in tags {
        check_tag_key(name)?;
        if value.chars().count() > MAX_TAG_VALUE || value.chars().any(char::is_control) {
            return Err(KmsError::Invalid(format!(
                "a tag value is at most {MAX_TAG_VALUE} characters, none of them control characters"
            )));
        }
    }
    Ok(())
}

impl Kms {
    /// Sets `set` and removes the tag keys of `remove` on a key; its tags afterwards.
    pub async fn set_tags(
        &self,
        caller: &Caller,
        reference: &str,
        set: Tags,
        remove: &[String],
    ) -> KmsResult<(KeyId, Tags)> {
        let actor = caller.actor("keys.tags");
        let result = self
            .set_tags_unaudited(caller, &actor, reference, set, remove)
            .await;
        self.settled(caller, &actor, Some(reference), result).await
    }

    async fn set_tags_unaudited(
        &self,
        caller: &Caller,
        actor: &Actor,
        reference: &str,
        set: Tags,
        remove: &[String],
    ) -> KmsResult<(KeyId, Tags)> {
        let entry = self
            .key_for(caller, Operation::KeysManage, reference)
            .await?;
        check_tags(&set)?;
        for name in remove {
            check_tag_key(name)?;
        }
        if set.is_empty() && remove.is_empty() {
            return Err(KmsError::Invalid("no tag to set or remove".into()));
        }
        let (tenant, id) = (entry.key.tenant, entry.key.id);
        let store = self.keys.store();
        // The limit as a caller's error first; the store checks it again inside its
        // transaction, so a concurrent change cannot pass it either.
        let mut after = store.key_tags(tenant, id).await?;
        for name in remove {
            after.remove(name);
        }
        after.extend(set.iter().map(|(k, v)| (k.clone(), v.clone())));
        if after.len() > MAX_TAGS {
            return Err(KmsError::LimitReached(format!(
                "a key carries at most {MAX_TAGS} tags"
            )));
        }
        let mut changed: Vec<String> = set.keys().map(|n| format!("set {n}")).collect();
        changed.extend(remove.iter().map(|n| format!("removed {n}")));
        let now = self.keys.clock().now();
        let event = Event::key(tenant, id, None, "key.tags", changed.join(", "), now);
        let record = Record::event(actor, event);
        store
            .change_tags(tenant, id, &set, remove, MAX_TAGS, &record)
            .await?;
        Ok((id, store.key_tags(tenant, id).await?))
    }

    /// A key's tags. Audited as a read (`keys.tags.list`).
    pub async fn key_tags(&self, caller: &Caller, reference: &str) -> KmsResult<(KeyId, Tags)> {
        let result = async {
            let entry = self.key_for(caller, Operation::KeysRead, reference).await?;
            let tags = self
                .keys
                .store()
                .key_tags(entry.key.tenant, entry.key.id)
                .await?;
            Ok((entry.key.id, tags))
        }
        .await;
        self.audited(caller, "keys.tags.list", Some(reference), result)
            .await
    }
}
