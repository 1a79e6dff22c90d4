//! Authentication: bearer token → [`Caller`]. Pure memory: the token root key and the
//! token records are loaded once (and refreshed), so a check costs a decode and an HMAC
//! chain of a few microseconds, and never a store round trip.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use coffer_crypto::MacKey;

use super::IntegrityCheck;
use super::{Kms, KmsError, KmsResult};
use crate::audit::Actor;
use crate::ids::TenantId;
use crate::store::Record;
use crate::tenant::TenantState;
use crate::token::{
    Grants, TagCheck, Token, TokenId, TokenKind, TokenRecord, grant_tag, revoked_tag,
};

/// The authenticated caller of one request.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The token's id (names the principal in logs and audit).
    pub token_id: TokenId,
    /// What it may do.
    pub grants: Grants,
    /// The request id, recorded with every audit entry (shared with the server's
    /// request context, not copied).
    pub request_id: Arc<str>,
    /// How the caller came in, when not with its bearer token: e.g. the AWS front's
    /// `aws:<access key id>:<Operation>`. Audit entries name it with the token id.
    pub via: Option<String>,
}

impl Caller {
    /// This caller acting as `op`: the principal of every change it makes.
    pub fn actor(&self, op: &str) -> crate::audit::Actor {
        crate::audit::Actor::new(self.principal(), &*self.request_id, op)
    }

    /// The principal audit entries name: the token id, and how it came in if not as
    /// a bearer token (`<token id> aws:<access key id>:<Operation>`).
    pub fn principal(&self) -> String {
        match &self.via {
            Some(via) => format!("{} {via}", self.token_id),
            None => self.token_id.to_string(),
        }
    }
}

#[derive(Default)]
pub(super) struct TokenBook {
    root: RwLock<Option<Arc<MacKey>>>,
    records: RwLock<HashMap<TokenId, TokenRecord>>,
    /// Records left out for failing their grant check: each is reported once per
    /// process, not at every refresh.
    refused: RwLock<HashSet<TokenId>>,
    /// Local writes (mints, revocations) made while a refresh reads the store: the
    /// refresh's snapshot may predate them, so they are applied again over it.
    during_refresh: Mutex<RefreshWrites>,
    /// True once records were installed after the root was set: until then a token
    /// would not be found, so requests answer `sealed` (and readiness is false) rather
    /// than `unknown token` (a load that happens while the server already listens: an
    /// unseal, or an HSM that came back after the start).
    records_loaded: std::sync::atomic::AtomicBool,
}

/// Refreshes in progress and the local writes made since the first of them began.
#[derive(Default)]
struct RefreshWrites {
    active: u32,
    writes: Vec<TokenRecord>,
}

/// The request id of a caller no request has named yet: one shared empty string.
fn no_request_id() -> Arc<str> {
    static EMPTY: std::sync::OnceLock<Arc<str>> = std::sync::OnceLock::new();
    EMPTY.get_or_init(|| Arc::from("")).clone()
}

pub(super) const ROOT_SECRET: &str = "token-root-key";
const ROOT_AAD: &[u8] = b"coffer/token-root/v1";
/// Present once every record's grant is bound; from then on an unbound record is an
/// integrity failure, not a record from before binding.
pub(super) const GRANTS_BOUND: &str = "token-grants-bound";
const GRANTS_BOUND_AAD: &[u8] = b"coffer/token-grants-bound/v1";
/// Present once every revoked record carries its revoked tag: from then on no record
/// in the store holds the unrevoked tag of a revoked token.
pub(super) const REVOCATIONS_BOUND: &str = "token-revocations-bound";
const REVOCATIONS_BOUND_AAD: &[u8] = b"coffer/token-revocations-bound/v1";

impl TokenBook {
    pub fn is_loaded(&self) -> bool {
        self.records_loaded
            .load(std::sync::atomic::Ordering::Acquire)
            && self.root.read().is_ok_and(|root| root.is_some())
    }

    pub fn root(&self) -> Option<Arc<MacKey>> {
        self.root.read().ok().and_then(|root| root.clone())
    }

    pub fn set_root(&self, key: MacKey) {
        if let Ok(mut root) = self.root.write() {
            *root = Some(Arc::new(key));
        }
    }

    /// Call before reading the records a refresh will install.
    pub fn begin_refresh(&self) {
        let mut during = self
            .during_refresh
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        during.active += 1;
    }

    /// Installs a refresh's records (read after `begin_refresh`), then the local writes
    /// made since, which the read may have missed.
    pub fn replace_records(&self, records: Vec<TokenRecord>) {
        let mut during = self
            .during_refresh
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Ok(mut map) = self.records.write() {
            *map = records.into_iter().map(|r| (r.id, r)).collect();
            for record in &during.writes {
                map.insert(record.id, record.clone());
            }
            self.records_loaded
                .store(true, std::sync::atomic::Ordering::Release);
        }
        self.end_refresh_locked(&mut during);
    }

    /// A refresh that ends without installing anything (a store read failed).
    pub fn abandon_refresh(&self) {
        let mut during = self
            .during_refresh
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        self.end_refresh_locked(&mut during);
    }

    fn end_refresh_locked(&self, during: &mut RefreshWrites) {
        during.active = during.active.saturating_sub(1);
        if during.active == 0 {
            during.writes.clear();
        }
    }

    /// Remembers the refused ids; returns those not refused before.
    fn newly_refused(&self, refused: HashSet<TokenId>) -> Vec<TokenId> {
        let Ok(mut known) = self.refused.write() else {
            return Vec::new();
        };
        let new = refused.difference(&known).copied().collect();
        *known = refused;
        new
    }

    pub fn upsert(&self, record: TokenRecord) {
        // Under the refresh lock, so a refresh installs either before this write or
        // with it replayed.
        let mut during = self
            .during_refresh
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if during.active > 0 {
            during.writes.push(record.clone());
        }
        if let Ok(mut map) = self.records.write() {
            map.insert(record.id, record);
        }
    }

    /// The token's base grant and whether it was revoked; copied out under the read
    /// lock so a request clones nothing else of the record.
    fn standing(&self, id: TokenId) -> Option<(TokenKind, bool)> {
        self.records.read().ok().and_then(|map| {
            map.get(&id)
                .map(|record| (record.kind, record.revoked_at.is_some()))
        })
    }

    /// The base grant of a known record.
    pub fn kind_of(&self, id: TokenId) -> Option<TokenKind> {
        self.standing(id).map(|(kind, _)| kind)
    }

    /// The records in memory are all there are (a deployment just initialised).
    pub fn mark_records_loaded(&self) {
        self.records_loaded
            .store(true, std::sync::atomic::Ordering::Release);
    }

    pub fn forget(&self) {
        self.records_loaded
            .store(false, std::sync::atomic::Ordering::Release);
        if let Ok(mut root) = self.root.write() {
            *root = None;
        }
    }
}

impl Kms {
    /// Loads the token root key (unwrapping it through custody) and the token records.
    /// Call after unseal; call again to pick up revocations made by other replicas.
    /// Returns false when the deployment was never initialised.
    pub async fn load(&self) -> KmsResult<bool> {
        let Some(wrapped) = self.keys.store().get_secret(ROOT_SECRET).await? else {
            return Ok(false);
        };
        let raw = self.custody.unwrap(ROOT_AAD, &wrapped)?;
        let root = MacKey::from_bytes(raw.expose_secret())?;
        self.load_state_seal(&root).await?;
        self.tokens.set_root(root);
        self.bind_token_grants().await?;
        self.bind_token_revocations().await?;
        self.refresh_tokens().await?;
        // Before readiness: a store whose keys do not answer is not served as ready.
        self.check_known_answers().await;
        Ok(true)
    }

    /// Re-reads token records (revocations by other replicas). A record whose grant
    /// does not match its tag is an integrity failure and is left out, so its token
    /// does not authenticate.
    pub async fn refresh_tokens(&self) -> KmsResult<()> {
        let root = self.token_root()?;
        self.tokens.begin_refresh();
        let result = self.refresh_tokens_begun(&root).await;
        if result.is_err() {
            self.tokens.abandon_refresh();
        }
        result?;
        // Tenants' PQ policies follow other replicas' changes at the same pace.
        self.refresh_pq_policies().await
    }

    /// The refresh after `begin_refresh`; installs its records on success only.
    async fn refresh_tokens_begun(&self, root: &MacKey) -> KmsResult<()> {
        let records = self.keys.store().list_tokens().await?;
        let bound = self.keys.store().get_secret(GRANTS_BOUND).await?.is_some();
        // A shredded tenant's tokens authenticate nothing, and its cached keys go (a
        // tenant shredded through another replica is noticed here).
        let shredded: HashSet<TenantId> = self
            .keys
            .store()
            .list_tenants()
            .await?
            .into_iter()
            .filter(|tenant| tenant.state == TenantState::Shredded)
            .map(|tenant| tenant.id)
            .collect();
        for tenant in &shredded {
            if self.cache.tenant_key(*tenant).is_some() {
                self.cache.forget_tenant(*tenant);
            }
        }
        let records = records
            .into_iter()
            .filter(|record| !matches!(record.kind, TokenKind::Tenant(t) if shredded.contains(&t)));
        // A revoked record authenticates nothing whatever its tag, so only an edit that
        // would let a token in (a changed grant, a cleared revocation) is refused.
        let (trusted, refused): (Vec<TokenRecord>, Vec<TokenRecord>) = records
            .into_iter()
            .partition(|record| match record.check_tag(root) {
                TagCheck::Verified | TagCheck::RevokedUnbound => true,
                TagCheck::Untagged => !bound,
                TagCheck::Mismatch => false,
            });
        let refused = refused.into_iter().map(|record| record.id).collect();
        for id in self.tokens.newly_refused(refused) {
            let _ = self.integrity_failure(IntegrityCheck::TokenGrant, &format!("token {id}"));
        }
        self.tokens.replace_records(trusted);
        Ok(())
    }

    /// Once per deployment, at the first unseal after grants became bound: tags every
    /// record minted before, and stores the marker saying it was done. Another replica
    /// doing it at the same moment is fine (the marker's `Conflict`; its tags stand).
    async fn bind_token_grants(&self) -> KmsResult<()> {
        let store = self.keys.store();
        if store.get_secret(GRANTS_BOUND).await?.is_some() {
            return Ok(());
        }
        let root = self.token_root()?;
        let tags: Vec<(TokenId, [u8; 32])> = store
            .list_tokens()
            .await?
            .iter()
            .filter(|record| record.grant_tag.is_none())
            .map(|record| (record.id, grant_tag(&root, record.id, record.kind)))
            .collect();
        let marker = self.custody.wrap(GRANTS_BOUND_AAD, b"token grants bound")?;
        let now = self.keys.clock().now();
        let audit = Actor::new("-", "unseal", "token.bind_grants").entry(
            None,
            (None, None),
            now,
            Some(format!(
                "bound the grants of {} earlier token records",
                tags.len()
            )),
        );
        match store
            .bind_token_grants(&tags, (GRANTS_BOUND, &marker), &Record::audit(audit))
            .await
        {
            Ok(()) => {
                tracing::info!(records = tags.len(), "bound earlier token records' grants");
                Ok(())
            }
            Err(crate::store::StoreError::Conflict(_)) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }

    /// Once per deployment, at the first unseal after revocations became bound: gives
    /// every record revoked before its revoked tag (replacing the unrevoked grant tag,
    /// which would otherwise let a cleared `revoked_at` authenticate again), and stores
    /// the marker. Another replica doing it at the same moment is fine.
    async fn bind_token_revocations(&self) -> KmsResult<()> {
        let store = self.keys.store();
        if store.get_secret(REVOCATIONS_BOUND).await?.is_some() {
            return Ok(());
        }
        let root = self.token_root()?;
        let tags: Vec<(TokenId, [u8; 32])> = store
            .list_tokens()
            .await?
            .iter()
            .filter(|record| record.check_tag(&root) == TagCheck::RevokedUnbound)
            .filter_map(|record| {
                let at = record.revoked_at?;
                Some((record.id, revoked_tag(&root, record.id, record.kind, at)))
            })
            .collect();
        let marker = self
            .custody
            .wrap(REVOCATIONS_BOUND_AAD, b"token revocations bound")?;
        let now = self.keys.clock().now();
        let audit = Actor::new("-", "unseal", "token.bind_revocations").entry(
            None,
            (None, None),
            now,
            Some(format!("bound {} earlier revocations", tags.len())),
        );
        match store
            .bind_token_revocations(&tags, (REVOCATIONS_BOUND, &marker), &Record::audit(audit))
            .await
        {
            Ok(()) | Err(crate::store::StoreError::Conflict(_)) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }

    /// Creates the token root key (once per deployment; `Conflict` after that).
    pub(super) async fn create_token_root(&self) -> KmsResult<()> {
        let root = MacKey::generate()?;
        let wrapped = self.custody.wrap(ROOT_AAD, root.expose_secret())?;
        self.keys.store().put_secret(ROOT_SECRET, &wrapped).await?;
        // A new deployment has no records from before binding.
        let marker = self.custody.wrap(GRANTS_BOUND_AAD, b"token grants bound")?;
        self.keys.store().put_secret(GRANTS_BOUND, &marker).await?;
        let marker = self
            .custody
            .wrap(REVOCATIONS_BOUND_AAD, b"token revocations bound")?;
        self.keys
            .store()
            .put_secret(REVOCATIONS_BOUND, &marker)
            .await?;
        self.init_state_seal(&root).await?;
        self.tokens.set_root(root);
        Ok(())
    }

    /// Authenticates a bearer token. Memory only.
    pub fn authenticate(&self, bearer: &str) -> KmsResult<Caller> {
        let token = Token::decode(bearer).map_err(|_| KmsError::Unauthorized("malformed token"))?;
        if !self.tokens.is_loaded() {
            return Err(KmsError::Sealed);
        }
        let root = self.tokens.root().ok_or(KmsError::Sealed)?;
        token
            .verify(&root)
            .map_err(|_| KmsError::Unauthorized("token does not verify"))?;
        let (kind, revoked) = self
            .tokens
            .standing(token.id())
            .ok_or(KmsError::Unauthorized("unknown token"))?;
        if revoked {
            return Err(KmsError::Unauthorized("token revoked"));
        }
        let grants = Grants::new(kind, token.caveats());
        if grants.expired(self.keys.clock().now()) {
            return Err(KmsError::Unauthorized("token expired"));
        }
        Ok(Caller {
            token_id: token.id(),
            grants,
            request_id: no_request_id(),
            via: None,
        })
    }

    /// The AWS credentials an access key id names (see `token::aws`), for checking the
    /// request's SigV4 signature. Says nothing about the token's standing: call
    /// [`Kms::authenticate_aws`] once the signature verified. Memory only.
    pub fn aws_credentials(&self, access_key_id: &str) -> KmsResult<crate::token::AwsCredentials> {
        let root = self.tokens.root().ok_or(KmsError::Sealed)?;
        Token::from_access_key_id(&root, access_key_id)
            .map(|token| token.aws_credentials())
            .map_err(|_| KmsError::Unauthorized("unknown access key id"))
    }

    /// The caller behind an access key id whose signature verified: the token it
    /// names, checked as [`Kms::authenticate`] checks it (unknown, revoked, expired).
    pub fn authenticate_aws(&self, access_key_id: &str) -> KmsResult<Caller> {
        let root = self.tokens.root().ok_or(KmsError::Sealed)?;
        let token = Token::from_access_key_id(&root, access_key_id)
            .map_err(|_| KmsError::Unauthorized("unknown access key id"))?;
        self.authenticate(&token.encode())
    }

    pub(super) fn token_root(&self) -> KmsResult<Arc<MacKey>> {
        self.tokens.root().ok_or(KmsError::Sealed)
    }

    pub(super) fn remember_token(&self, record: TokenRecord) {
        self.tokens.upsert(record);
    }

    /// The base grant of token `id`, from memory or else from the store (a token
    /// minted on another replica since the last refresh, or one left out of memory).
    pub(super) async fn token_kind(&self, id: TokenId) -> KmsResult<TokenKind> {
        if let Some(kind) = self.tokens.kind_of(id) {
            return Ok(kind);
        }
        let records = self.keys.store().list_tokens().await?;
        records
            .into_iter()
            .find(|record| record.id == id)
            .map(|record| record.kind)
            .ok_or(KmsError::NotFound("token"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Timestamp;

    fn record(revoked: bool) -> TokenRecord {
        TokenRecord {
            id: TokenId::generate(),
            kind: TokenKind::Admin,
            description: String::new(),
            created_at: Timestamp::from_millis(0),
            revoked_at: revoked.then(|| Timestamp::from_millis(1)),
            grant_tag: None,
        }
    }

    #[test]
    fn a_token_minted_while_a_refresh_reads_survives_its_older_snapshot() {
        let book = TokenBook::default();
        let old = record(false);
        book.begin_refresh();
        // The refresh read the store before these local writes committed.
        let snapshot = vec![old.clone()];
        let minted = record(false);
        book.upsert(minted.clone());
        let mut revoked = old.clone();
        revoked.revoked_at = Some(Timestamp::from_millis(5));
        book.upsert(revoked);
        book.replace_records(snapshot);
        assert_eq!(book.standing(minted.id), Some((TokenKind::Admin, false)));
        assert_eq!(book.standing(old.id), Some((TokenKind::Admin, true)));
        // Once no refresh runs, writes are not kept for the next one.
        book.begin_refresh();
        book.replace_records(vec![old.clone()]);
        assert_eq!(book.standing(minted.id), None);
        assert_eq!(book.standing(old.id), Some((TokenKind::Admin, false)));
    }
}
