use std::collections::BTreeSet;

use coffer_crypto::MacKey;
use proptest::prelude::*;

use super::*;

fn root() -> MacKey {
    MacKey::from_bytes(&[9u8; 32]).unwrap()
}

#[test]
fn minted_tokens_verify_and_round_trip() {
    let token = Token::mint(&root(), TokenId::generate(), vec![]);
    let text = token.encode();
    assert!(text.starts_with("coffer_v1_"));
    let back = Token::decode(&text).unwrap();
    back.verify(&root()).unwrap();
    assert_eq!(back.id(), token.id());
    assert!(!format!("{token:?}").contains(&text[10..20]));
}

#[test]
fn attenuation_narrows_and_cannot_be_undone() {
    let tenant = TenantId::generate();
    let token = Token::mint(&root(), TokenId::generate(), vec![]);
    let narrow = token
        .attenuate(Caveat::Ops(BTreeSet::from([
            Operation::Wrap,
            Operation::Unwrap,
        ])))
        .unwrap()
        .attenuate(Caveat::Ops(BTreeSet::from([Operation::Unwrap])))
        .unwrap();
    let decoded = Token::decode(&narrow.encode()).unwrap();
    decoded.verify(&root()).unwrap();
    let grants = Grants::new(TokenKind::Tenant(tenant), decoded.caveats());
    assert!(grants.allows_op(Operation::Unwrap));
    assert!(!grants.allows_op(Operation::Wrap));
    // Dropping the last caveat while keeping its tag breaks the chain.
    let forged = Token {
        caveats: decoded.caveats()[..1].to_vec(),
        ..decoded.clone()
    };
    assert_eq!(forged.verify(&root()), Err(TokenError::BadTag));
    // Another deployment's root does not verify it.
    assert_eq!(
        decoded.verify(&MacKey::from_bytes(&[1u8; 32]).unwrap()),
        Err(TokenError::BadTag)
    );
}

#[test]
fn a_tenant_caveat_cannot_move_a_token_to_another_tenant() {
    let (mine, theirs) = (TenantId::generate(), TenantId::generate());
    let grants = Grants::new(TokenKind::Tenant(mine), &[Caveat::Tenant(theirs)]);
    assert_eq!(grants.tenant(), None);
    assert!(!grants.allows_op(Operation::Wrap));
    let admin = Grants::new(TokenKind::Admin, &[Caveat::Tenant(mine)]);
    assert!(!admin.is_admin());
}

#[test]
fn expiry_takes_the_earliest_caveat() {
    let grants = Grants::new(
        TokenKind::Admin,
        &[Caveat::Expires(2_000), Caveat::Expires(1_000)],
    );
    assert!(!grants.expired(Timestamp::from_millis(1_000_000)));
    assert!(grants.expired(Timestamp::from_millis(1_000_001)));
}

#[test]
fn token_ids_parse_from_their_display() {
    let id = TokenId::generate();
    assert_eq!(id.to_string().parse::<TokenId>().unwrap(), id);
    assert!("xyz".parse::<TokenId>().is_err());
}

proptest! {
    #[test]
    fn decoding_arbitrary_text_never_panics(text in ".{0,200}", bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = Token::decode(&text);
        use base64::Engine;
        let encoded = format!("coffer_v1_{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&bytes));
        if let Ok(token) = Token::decode(&encoded) {
            prop_assert!(token.verify(&root()).is_err());
        }
    }
}
