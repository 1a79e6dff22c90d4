//! The audit of refused authentications (401: no token, or one that does not
//! authenticate), under the same per-principal limit as every other refusal
//! (`refusals.rs`): recorded one by one up to `audit.refusals_per_principal` per
//! window, past that counted and summed up, and never waited for (a 401 hands out
//! nothing and changed nothing).
//!
//! The principal is unknown, so the limit is keyed by what the caller cannot forge
//! freely. A token whose tag verifies (revoked, expired, or unknown to this replica)
//! names its own id: only the server could have made it. Anything else — no token, a
//! malformed one, one whose tag does not verify — is keyed by the peer's address
//! (`peer:<ip>`): the id inside an unverified token is whatever the caller wrote, and
//! keying by it would give a prober a fresh allowance per made-up id. Callers behind
//! one proxy share its address and so one allowance; what passes it is still counted
//! and summarised, not dropped.

use std::net::IpAddr;

use super::{Kms, KmsResult};
use crate::audit::AuditEntry;
use crate::token::Token;

/// A refused authentication, as the HTTP layer saw it.
#[derive(Debug, Clone, Copy)]
pub struct Unauthenticated<'a> {
    /// The bearer token presented, if any.
    pub bearer: Option<&'a str>,
    /// The peer's address, if known.
    pub peer: Option<IpAddr>,
    /// Why it was refused (the 401's message; never the token).
    pub reason: &'static str,
    /// The request id.
    pub request_id: &'a str,
}

impl Kms {
    /// Audits a 401 under the refusal limit (see the module docs). `Err` only when its
    /// entry could not even be queued: then the answer is 503, as for any refusal.
    pub async fn record_unauthenticated(&self, refused: Unauthenticated<'_>) -> KmsResult<()> {
        let entry = AuditEntry {
            at: self.keys.clock().now().millis(),
            tenant: "-".to_owned(),
            principal: self.unauthenticated_principal(refused.bearer, refused.peer),
            op: "authenticate".to_owned(),
            key: None,
            version: None,
            outcome: "unauthorized".to_owned(),
            request_id: refused.request_id.to_owned(),
            detail: Some(refused.reason.to_owned()),
        };
        self.refusal_queued(entry).await
    }

    /// The token's id when its tag verifies, else `peer:<address>`.
    fn unauthenticated_principal(&self, bearer: Option<&str>, peer: Option<IpAddr>) -> String {
        let verified = bearer
            .and_then(|text| Token::decode(text).ok())
            .zip(self.tokens.root())
            .filter(|(token, root)| token.verify(root).is_ok())
            .map(|(token, _)| token.id());
        match (verified, peer) {
            (Some(id), _) => id.to_string(),
            (None, Some(ip)) => format!("peer:{ip}"),
            (None, None) => "peer:unknown".to_owned(),
        }
    }
}
