//! keys.labels: changing a key's labels after its creation (set some, remove some), in
//! one transaction with its event and audit entry. AWS KMS's UpdateKeyDescription is
//! this, on the label `aws:description`.

use super::{Caller, Kms, KmsError, KmsResult, keys::KeyDetails};
use crate::audit::Actor;
use crate::event::Event;
use crate::key::Labels;
use crate::store::Record;
use crate::token::Operation;

impl Kms {
    /// Sets the labels of `set` (replacing values of names already there) and removes
    /// the names of `remove`; the result obeys the limits labels have at creation.
    pub async fn set_labels(
        &self,
        caller: &Caller,
        reference: &str,
        set: Labels,
        remove: &[String],
    ) -> KmsResult<KeyDetails> {
        let actor = caller.actor("keys.labels");
        let result = self
            .set_labels_unaudited(caller, &actor, reference, set, remove)
            .await;
        self.settled(caller, &actor, Some(reference), result).await
    }

    async fn set_labels_unaudited(
        &self,
        caller: &Caller,
        actor: &Actor,
        reference: &str,
        set: Labels,
        remove: &[String],
    ) -> KmsResult<KeyDetails> {
        let entry = self
            .key_for(caller, Operation::KeysManage, reference)
            .await?;
        if set.is_empty() && remove.is_empty() {
            return Err(KmsError::Invalid("no label to set or remove".into()));
        }
        if let Some(both) = remove.iter().find(|name| set.contains_key(*name)) {
            return Err(KmsError::Invalid(format!(
                "label {both} is both set and removed"
            )));
        }
        let mut key = self.keys.key(entry.key.tenant, entry.key.id).await?;
        for name in remove {
            key.labels.remove(name);
        }
        // Names only in the detail: values are the operator's, shown by keys show.
        let mut changed: Vec<String> = set.keys().map(|n| format!("set {n}")).collect();
        changed.extend(remove.iter().map(|n| format!("removed {n}")));
        key.labels.extend(set);
        crate::key::check_labels(&key.labels).map_err(|e| KmsError::Invalid(e.to_string()))?;
        let event = Event::key(
            key.tenant,
            key.id,
            None,
            "key.labels",
            changed.join(", "),
            self.keys.clock().now(),
        );
        self.keys
            .store()
            .update_metadata(&key, &Record::event(actor, event))
            .await?;
        self.forget_key(key.tenant, key.id);
        self.show_key_unaudited(caller, &key.id.to_string()).await
    }
}
