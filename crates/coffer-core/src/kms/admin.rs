//! Administration: first initialisation, tenants, tokens. Admin tokens only, and only
//! those whose caveats allow the power (`admin:tenants`, `admin:tokens`); a minted
//! token never outlives or out-powers the token that minted it.

use std::collections::BTreeSet;

use super::{Caller, Kms, KmsError, KmsResult};
use crate::audit::Actor;
use crate::ids::TenantId;
use crate::store::Record;
use crate::tenant::{Tenant, TenantName, TenantState};
use crate::time::HumanDuration;
use crate::token::{Caveat, Operation, Token, TokenId, TokenKind, TokenRecord};

/// A request for a new token.
#[derive(Debug, Clone, Default)]
pub struct MintToken {
    /// Tenant name or id (tenant tokens).
    pub tenant: Option<String>,
    /// An admin token instead.
    pub admin: bool,
    /// Allowed operations (empty: all).
    pub operations: Vec<Operation>,
    /// Allowed keys (empty: all).
    pub keys: Vec<String>,
    /// Lifetime.
    pub ttl: Option<HumanDuration>,
    /// Operator note.
    pub description: String,
}

fn require_admin(caller: &Caller, power: Operation) -> KmsResult<()> {
    match caller.grants.refuses_admin(power) {
        None => Ok(()),
        Some(why) => Err(KmsError::Forbidden(why)),
    }
}

impl Kms {
    /// First start of a deployment: creates the token root key and returns an admin
    /// token. `Ok(None)` when already initialised (nothing changes).
    pub async fn initialize(&self) -> KmsResult<Option<String>> {
        if self.load().await? {
            return Ok(None);
        }
        self.create_token_root().await?;
        let actor = Actor::new("-", "init", "token.mint");
        let (token, _) = self
            .mint(TokenKind::Admin, Vec::new(), "initial admin token", &actor)
            .await?;
        // A new deployment's records are the one just minted: all there is to load.
        self.tokens.mark_records_loaded();
        Ok(Some(token))
    }

    async fn mint(
        &self,
        kind: TokenKind,
        caveats: Vec<Caveat>,
        description: &str,
        actor: &Actor,
    ) -> KmsResult<(String, TokenId)> {
        let root = self.token_root()?;
        let id = TokenId::generate();
        // Made before anything is stored: a caveat that would not round-trip is the
        // request's fault and must leave no record behind.
        let token = Token::mint(&root, id, caveats.clone())
            .map_err(|error| KmsError::Invalid(error.to_string()))?;
        let record = TokenRecord {
            id,
            kind,
            description: description.to_owned(),
            created_at: self.keys.clock().now(),
            revoked_at: None,
            grant_tag: Some(crate::token::grant_tag(&root, id, kind)),
        };
        let scope = match kind {
            TokenKind::Admin => "admin".to_owned(),
            TokenKind::Tenant(tenant) => format!("tenant {tenant}"),
        };
        let caveat_text: Vec<String> = caveats.iter().map(ToString::to_string).collect();
        let tenant = match kind {
            TokenKind::Admin => None,
            TokenKind::Tenant(tenant) => Some(tenant),
        };
        let audit = actor.entry(
            tenant,
            (None, None),
            record.created_at,
            Some(format!(
                "minted token {} ({scope}; caveats: {})",
                record.id,
                if caveat_text.is_empty() {
                    "none".to_owned()
                } else {
                    caveat_text.join(", ")
                }
            )),
        );
        self.keys
            .store()
            .insert_token(&record, &Record::audit(audit))
            .await?;
        self.remember_token(record.clone());
        Ok((token.encode(), record.id))
    }

    /// Creates a tenant.
    pub async fn create_tenant(&self, caller: &Caller, name: &str) -> KmsResult<Tenant> {
        self.create_tenant_with_account(caller, name, None).await
    }

    /// Creates a tenant with a chosen AWS account id (12 digits, unique).
    pub async fn create_tenant_with_account(
        &self,
        caller: &Caller,
        name: &str,
        aws_account_id: Option<&str>,
    ) -> KmsResult<Tenant> {
        let actor = caller.actor("tenant.create");
        let result = self
            .create_tenant_unaudited(caller, &actor, name, aws_account_id)
            .await;
        self.settled(caller, &actor, None, result).await
    }

    /// Creates a tenant.
    pub(super) async fn create_tenant_unaudited(
        &self,
        caller: &Caller,
        actor: &Actor,
        name: &str,
        aws_account_id: Option<&str>,
    ) -> KmsResult<Tenant> {
        require_admin(caller, Operation::AdminTenants)?;
        let name: TenantName = name
            .parse()
            .map_err(|e: crate::InvalidInput| KmsError::Invalid(e.to_string()))?;
        if aws_account_id.is_some_and(|id| !crate::tenant::is_aws_account_id(id)) {
            return Err(KmsError::Invalid(
                "an AWS account id is exactly 12 digits".into(),
            ));
        }
        Ok(self
            .keys
            .create_tenant_with_account(name, aws_account_id.map(str::to_owned), actor)
            .await?)
    }

    /// Lists tenants.
    pub async fn list_tenants(&self, caller: &Caller) -> KmsResult<Vec<Tenant>> {
        let result = match require_admin(caller, Operation::AdminTenants) {
            Ok(()) => self.keys.store().list_tenants().await.map_err(Into::into),
            Err(refused) => Err(refused),
        };
        self.audited(caller, "tenant.list", None, result).await
    }

    /// Crypto-shreds a tenant (`confirm` repeats its name). At once in this server: its
    /// tenant key and keys leave the cache and its tokens are refused; other replicas
    /// follow at their next token refresh.
    pub async fn shred_tenant(
        &self,
        caller: &Caller,
        reference: &str,
        confirm: &str,
    ) -> KmsResult<()> {
        let actor = caller.actor("tenant.shred");
        let result = self
            .shred_tenant_unaudited(caller, &actor, reference, confirm)
            .await;
        self.settled(caller, &actor, None, result).await
    }

    async fn shred_tenant_unaudited(
        &self,
        caller: &Caller,
        actor: &Actor,
        reference: &str,
        confirm: &str,
    ) -> KmsResult<()> {
        require_admin(caller, Operation::AdminTenants)?;
        let tenant = self.find_tenant(reference).await?;
        let confirm: TenantName = confirm
            .parse()
            .map_err(|e: crate::InvalidInput| KmsError::Invalid(e.to_string()))?;
        self.keys.shred_tenant(tenant.id, &confirm, actor).await?;
        self.cache.forget_tenant(tenant.id);
        self.refresh_tokens().await
    }

    /// A tenant by name or id.
    pub async fn find_tenant(&self, reference: &str) -> KmsResult<Tenant> {
        let store = self.keys.store();
        let found = match reference.parse::<TenantId>() {
            Ok(id) => store.get_tenant(id).await?,
            Err(_) => store.get_tenant_by_name(reference).await?,
        };
        found.ok_or(KmsError::NotFound("tenant"))
    }

    /// Mints a token.
    pub async fn mint_token(
        &self,
        caller: &Caller,
        request: MintToken,
    ) -> KmsResult<(String, TokenId)> {
        let actor = caller.actor("token.mint");
        let result = self.mint_token_unaudited(caller, &actor, request).await;
        self.settled(caller, &actor, None, result).await
    }

    /// Mints a token: an admin token, or a tenant token narrowed by operations, keys and
    /// lifetime, and never beyond the caller's own (see `Grants::child`).
    pub(super) async fn mint_token_unaudited(
        &self,
        caller: &Caller,
        actor: &Actor,
        request: MintToken,
    ) -> KmsResult<(String, TokenId)> {
        require_admin(caller, Operation::AdminTokens)?;
        let kind = match (request.admin, request.tenant.as_deref()) {
            (true, None) => TokenKind::Admin,
            (false, Some(tenant)) => {
                let tenant = self.find_tenant(tenant).await?;
                if tenant.state == TenantState::Shredded {
                    return Err(KmsError::Conflict(format!(
                        "tenant {} is shredded",
                        tenant.name
                    )));
                }
                TokenKind::Tenant(tenant.id)
            }
            _ => {
                return Err(KmsError::Invalid(
                    "give either a tenant or admin, not both".into(),
                ));
            }
        };
        let expires = request
            .ttl
            .map(|ttl| self.keys.clock().now().plus(ttl.get()));
        let caveats = caller
            .grants
            .child(
                request.operations.into_iter().collect::<BTreeSet<_>>(),
                request.keys.into_iter().collect(),
                expires,
            )
            .map_err(KmsError::Exceeds)?;
        self.mint(kind, caveats, &request.description, actor).await
    }

    /// Revokes a token.
    pub async fn revoke_token(&self, caller: &Caller, id: TokenId) -> KmsResult<()> {
        let actor = caller.actor("token.revoke");
        let result = self.revoke_token_unaudited(caller, &actor, id).await;
        self.settled(caller, &actor, None, result).await
    }

    /// Revokes a token id (and every token attenuated from it).
    pub(super) async fn revoke_token_unaudited(
        &self,
        caller: &Caller,
        actor: &Actor,
        id: TokenId,
    ) -> KmsResult<()> {
        require_admin(caller, Operation::AdminTokens)?;
        let kind = self.token_kind(id).await?;
        let now = self.keys.clock().now();
        let tag = crate::token::revoked_tag(&*self.token_root()?, id, kind, now);
        let audit = actor.entry(None, (None, None), now, Some(format!("revoked token {id}")));
        self.keys
            .store()
            .revoke_token(id, now, &tag, &Record::audit(audit))
            .await?;
        self.refresh_tokens().await
    }
}
