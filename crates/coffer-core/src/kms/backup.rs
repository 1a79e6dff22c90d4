//! Backups made by the server: a snapshot of the store in one read transaction, sealed
//! into a bundle under custody (`backup::bundle`). Admin tokens with `admin:backup`
//! only; the scheduled backup (the server's backup worker) names itself.

use super::{Caller, Kms, KmsError, KmsResult};
use crate::audit::Actor;
use crate::backup::bundle::{self, BundleHeader};
use crate::token::Operation;

/// The principal scheduled backups are recorded under.
pub const BACKUP_PRINCIPAL: &str = "coffer-backup";

/// A bundle and what its header says.
pub struct BackupMade {
    /// The bundle's bytes.
    pub bundle: Vec<u8>,
    /// Its header (counts, audit size, newest checkpoint).
    pub header: BundleHeader,
}

impl Kms {
    /// `POST /v1/admin/backup`: a bundle of the whole store, for an admin token allowed
    /// `admin:backup`. Checked before any work; recorded in the audit log.
    pub async fn backup(&self, caller: &Caller) -> KmsResult<BackupMade> {
        let result = match caller.grants.refuses_admin(Operation::AdminBackup) {
            Some(why) => Err(KmsError::Forbidden(why)),
            None => self.make_backup().await,
        };
        let detail = result
            .as_ref()
            .ok()
            .map(|made| format!("audit_size={}", made.header.audit_size));
        self.audited_with(caller, "backup.create", None, detail, result)
            .await
    }

    /// A scheduled backup (the caller holds the backup lease), recorded as
    /// [`BACKUP_PRINCIPAL`].
    pub async fn scheduled_backup(&self) -> KmsResult<BackupMade> {
        let made = self.make_backup().await?;
        let now = self.keys.clock().now();
        let actor = Actor::new(
            BACKUP_PRINCIPAL,
            format!("backup:{}", now.millis()),
            "backup.create",
        );
        let entry = actor.entry(
            None,
            (None, None),
            now,
            Some(format!("audit_size={}", made.header.audit_size)),
        );
        self.recorded(entry, Ok(made)).await
    }

    async fn make_backup(&self) -> KmsResult<BackupMade> {
        let at = self.keys.clock().now();
        let snapshot = self.keys.store().snapshot().await?;
        let custody = self.custody.clone();
        let bundle =
            tokio::task::spawn_blocking(move || bundle::seal(&snapshot, custody.as_ref(), at))
                .await
                .map_err(|e| KmsError::Unavailable(e.to_string()))?
                .map_err(|e| KmsError::Unavailable(e.to_string()))?;
        let header = bundle::inspect(&bundle).map_err(|e| KmsError::Unavailable(e.to_string()))?;
        Ok(BackupMade { bundle, header })
    }
}
