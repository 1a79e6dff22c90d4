//! The principal a client certificate names, and whether a token may be used under it.
//!
//! The certificate's subject common name says who holds it:
//!
//! - `coffer:admin` — admin tokens only;
//! - `coffer:tenant:<tenant id>` — tokens of that tenant only;
//! - `coffer:token:<token id>` — that one token (and none of its children) only.
//!
//! A certificate is a second factor, never a credential of its own: every request still
//! needs its bearer token, and a token presented over a connection whose certificate
//! names another principal (or none of these forms) is refused with 403 before any
//! work. A stolen token is then useless without the key of a certificate naming it.

use coffer_core::kms::Caller;
use x509_parser::prelude::FromDer;

/// Who the client certificate of a connection names (a request extension).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peer {
    /// No certificate (plain HTTP, or TLS without client authentication).
    Anonymous,
    /// `coffer:admin`.
    Admin,
    /// `coffer:tenant:<id>`.
    Tenant(String),
    /// `coffer:token:<id>`.
    Token(String),
    /// A certificate whose common name is none of the forms above.
    Unmapped(String),
}

impl Peer {
    /// The principal named by a client certificate (DER).
    pub fn from_certificate(der: &[u8]) -> Self {
        let Ok((_, cert)) = x509_parser::certificate::X509Certificate::from_der(der) else {
            return Self::Unmapped(String::new());
        };
        let common_name = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .unwrap_or_default()
            .to_owned();
        Self::from_common_name(&common_name)
    }

    fn from_common_name(common_name: &str) -> Self {
        match common_name.strip_prefix("coffer:") {
            Some("admin") => Self::Admin,
            Some(rest) => match rest.split_once(':') {
                Some(("tenant", id)) if !id.is_empty() => Self::Tenant(id.to_owned()),
                Some(("token", id)) if !id.is_empty() => Self::Token(id.to_owned()),
                _ => Self::Unmapped(common_name.to_owned()),
            },
            None => Self::Unmapped(common_name.to_owned()),
        }
    }

    /// Whether `caller`'s token may be used over this connection.
    pub fn admits(&self, caller: &Caller) -> bool {
        match self {
            Self::Anonymous => true,
            Self::Admin => caller.grants.is_admin(),
            Self::Tenant(id) => caller
                .grants
                .tenant()
                .is_some_and(|tenant| tenant.to_string() == *id),
            Self::Token(id) => caller.token_id.to_string() == *id,
            Self::Unmapped(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Peer;

    #[test]
    fn common_names_map_to_principals() {
        assert_eq!(Peer::from_common_name("coffer:admin"), Peer::Admin);
        assert_eq!(
            Peer::from_common_name("coffer:tenant:abc"),
            Peer::Tenant("abc".into())
        );
        assert_eq!(
            Peer::from_common_name("coffer:token:t1"),
            Peer::Token("t1".into())
        );
        for other in [
            "",
            "admin",
            "coffer:tenant:",
            "coffer:root",
            "coffer:admin:x",
        ] {
            assert!(
                matches!(Peer::from_common_name(other), Peer::Unmapped(_)),
                "{other}"
            );
        }
    }
}
