//! AWS-style credentials for a token: an access key id and a secret access key that
//! the AWS front (SigV4) accepts in place of the bearer text.
//!
//! ```text
//! access key id = "CFR1" ‖ base64url(id (16) ‖ n (1) ‖ n × (len (u16 BE) ‖ caveat))
//! secret        = base64url(HMAC-SHA256(tag, "coffer/aws-secret/v1"))
//! ```
//!
//! Why derived rather than stored: SigV4 is a shared-secret MAC, so the server must be
//! able to recompute the secret for every request. Deriving it from the token's tag
//! means it is stored nowhere — a database reader holds token records but never the
//! token root key (sealed under custody), so cannot compute any tag or secret. The
//! access key id carries the token's public part (id and caveats), so the server
//! re-mints the tag from its root key; revoking the token id revokes every access key
//! made from it or from its attenuations. The secret is one HMAC away from the tag, so
//! a holder of the AWS pair cannot recover the bearer token.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use coffer_crypto::MacKey;

use super::{Caveat, MAX_CAVEATS, Token, TokenError, TokenId, chain};

const ACCESS_KEY_PREFIX: &str = "CFR1";
const SECRET_DOMAIN: &[u8] = b"coffer/aws-secret/v1";
/// Longest accepted access key id (bounds the work a hostile id can ask for).
pub const MAX_ACCESS_KEY_ID_LEN: usize = 4096;

/// An access key id and its secret. The secret is a bearer secret: `Debug` elides it.
#[derive(Clone)]
pub struct AwsCredentials {
    /// The access key id (public; names the token and its caveats).
    pub access_key_id: String,
    secret: String,
}

impl std::fmt::Debug for AwsCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsCredentials")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

impl AwsCredentials {
    /// The secret access key.
    pub fn expose_secret(&self) -> &str {
        &self.secret
    }
}

impl Token {
    /// The AWS credentials of this token (computable offline by its holder).
    pub fn aws_credentials(&self) -> AwsCredentials {
        let mut public = Vec::with_capacity(17);
        public.extend_from_slice(&self.id.0);
        public.push(self.caveats.len() as u8); // bounded by MAX_CAVEATS
        // The caveats' bytes as the token's tag covers them.
        for text in &self.texts {
            public.extend_from_slice(&(text.len() as u16).to_be_bytes());
            public.extend_from_slice(text.as_bytes());
        }
        AwsCredentials {
            access_key_id: format!("{ACCESS_KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(public)),
            secret: URL_SAFE_NO_PAD.encode(chain(&self.tag, SECRET_DOMAIN)),
        }
    }

    /// The token an access key id names, re-minted under `root`: its tag is genuine
    /// whatever the id says, so the caller proves possession only through the SigV4
    /// signature made with the matching secret.
    pub fn from_access_key_id(root: &MacKey, access_key_id: &str) -> Result<Self, TokenError> {
        let (id, caveats) = parse_access_key_id(access_key_id)?;
        Self::mint(root, id, caveats)
    }
}

fn parse_access_key_id(text: &str) -> Result<(TokenId, Vec<Caveat>), TokenError> {
    if text.len() > MAX_ACCESS_KEY_ID_LEN {
        return Err(TokenError::Malformed("too long"));
    }
    let body = text
        .strip_prefix(ACCESS_KEY_PREFIX)
        .ok_or(TokenError::Malformed("not a Coffer access key id"))?;
    let bytes = URL_SAFE_NO_PAD
        .decode(body)
        .map_err(|_| TokenError::Malformed("invalid base64url"))?;
    let mut rest = bytes.as_slice();
    let mut take = |n: usize| -> Result<&[u8], TokenError> {
        if rest.len() < n {
            return Err(TokenError::Malformed("truncated"));
        }
        let (head, tail) = rest.split_at(n);
        rest = tail;
        Ok(head)
    };
    let mut id = [0u8; 16];
    id.copy_from_slice(take(16)?);
    let count = usize::from(take(1)?[0]);
    if count > MAX_CAVEATS {
        return Err(TokenError::Malformed("too many caveats"));
    }
    let mut caveats = Vec::with_capacity(count);
    for _ in 0..count {
        let len = take(2)?;
        let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
        let text = std::str::from_utf8(take(len)?)
            .map_err(|_| TokenError::Malformed("caveat is not UTF-8"))?;
        caveats.push(text.parse()?);
    }
    if !rest.is_empty() {
        return Err(TokenError::Malformed("trailing bytes"));
    }
    Ok((TokenId(id), caveats))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::token::Operation;

    fn root() -> MacKey {
        MacKey::from_bytes(&[7u8; 32]).unwrap()
    }

    #[test]
    fn the_server_recomputes_the_holders_secret_from_the_access_key_id() {
        let token = Token::mint(&root(), TokenId::generate(), vec![])
            .unwrap()
            .attenuate(Caveat::Ops(BTreeSet::from([Operation::Wrap])))
            .unwrap();
        let creds = token.aws_credentials();
        let again = Token::from_access_key_id(&root(), &creds.access_key_id).unwrap();
        assert_eq!(again.id(), token.id());
        assert_eq!(again.caveats(), token.caveats());
        assert_eq!(
            again.aws_credentials().expose_secret(),
            creds.expose_secret()
        );
        assert!(!format!("{creds:?}").contains(creds.expose_secret()));
    }

    #[test]
    fn another_root_or_dropped_caveat_gives_another_secret() {
        let wide = Token::mint(&root(), TokenId::generate(), vec![]).unwrap();
        let narrow = wide
            .attenuate(Caveat::Ops(BTreeSet::from([Operation::Wrap])))
            .unwrap();
        assert_ne!(
            wide.aws_credentials().expose_secret(),
            narrow.aws_credentials().expose_secret()
        );
        let other = MacKey::from_bytes(&[8u8; 32]).unwrap();
        let forged =
            Token::from_access_key_id(&other, &narrow.aws_credentials().access_key_id).unwrap();
        assert_ne!(
            forged.aws_credentials().expose_secret(),
            narrow.aws_credentials().expose_secret()
        );
        // The secret is not the bearer tag.
        assert!(
            !narrow
                .encode()
                .contains(narrow.aws_credentials().expose_secret())
        );
    }

    #[test]
    fn damaged_access_key_ids_are_refused() {
        let creds = Token::mint(&root(), TokenId::generate(), vec![])
            .unwrap()
            .aws_credentials();
        for bad in [
            "AKIDEXAMPLE",
            "CFR1",
            "CFR1!!!!",
            &creds.access_key_id[..creds.access_key_id.len() - 2],
            &format!("{}AA", creds.access_key_id),
        ] {
            assert!(Token::from_access_key_id(&root(), bad).is_err(), "{bad}");
        }
    }
}
