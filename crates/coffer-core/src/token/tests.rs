use std::collections::BTreeSet;

use coffer_crypto::MacKey;
use proptest::prelude::*;

use super::*;

fn root() -> MacKey {
    MacKey::from_bytes(&[9u8; 32]).unwrap()
}

#[test]
fn minted_tokens_verify_and_round_trip() {
    let token = Token::mint(&root(), TokenId::generate(), vec![]).unwrap();
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
    let token = Token::mint(&root(), TokenId::generate(), vec![]).unwrap();
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
        texts: decoded.texts[..1].to_vec(),
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
    // Lower-case, two digits a byte, leading zeros kept: how ids appear in audit
    // entries, URLs and `coffer tokens` output.
    let id = TokenId([
        0x00, 0x01, 0x0a, 0x10, 0x7f, 0x80, 0xab, 0xcd, 0xef, 0xff, 0x09, 0x90, 0x12, 0x34, 0x56,
        0x78,
    ]);
    assert_eq!(id.to_string(), "00010a107f80abcdefff099012345678");
}

proptest! {
    #[test]
    fn decoding_arbitrary_text_never_panics(text in ".{0,200}", bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = Token::decode(&text);
        use base64::Engine;
        let encoded = format!("coffer_v1_{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&bytes));
        if let Ok(token) = Token::decode(&encoded) {
            prop_assert!(token.verify(&root()).is_err());
            // The bytes as sent are what the token keeps and writes back.
            prop_assert_eq!(token.encode(), encoded);
        }
    }
}

#[test]
fn admin_powers_are_operations_caveats_can_name() {
    let admin = |caveats: &[Caveat]| Grants::new(TokenKind::Admin, caveats);
    assert_eq!(admin(&[]).refuses_admin(Operation::AdminTenants), None);
    let verify_only = admin(&[Caveat::Ops(BTreeSet::from([Operation::Verify]))]);
    for power in [
        Operation::AdminTenants,
        Operation::AdminTokens,
        Operation::AuditRead,
        Operation::AuditCheckpoint,
    ] {
        assert!(verify_only.refuses_admin(power).is_some(), "{power:?}");
        assert_eq!(power.as_str().parse::<Operation>().unwrap(), power);
    }
    let scoped = admin(&[Caveat::Keys(BTreeSet::from(["alias/k".to_owned()]))]);
    assert!(scoped.refuses_admin(Operation::AuditRead).is_some());
    assert_eq!(scoped.refuses_admin(Operation::AdminTokens), None);
    let tenant = Grants::new(TokenKind::Tenant(TenantId::generate()), &[]);
    assert!(tenant.refuses_admin(Operation::AdminTokens).is_some());
}

#[test]
fn a_child_never_outlives_or_out_powers_its_minter() {
    let ops = |list: &[Operation]| list.iter().copied().collect::<BTreeSet<_>>();
    let keys = |list: &[&str]| {
        list.iter()
            .map(|k| (*k).to_owned())
            .collect::<BTreeSet<_>>()
    };
    let at = |secs: i64| Timestamp::from_millis(secs * 1000);
    let minter = Grants::new(
        TokenKind::Admin,
        &[
            Caveat::Ops(ops(&[Operation::AdminTokens, Operation::Wrap])),
            Caveat::Keys(keys(&["alias/a", "alias/b"])),
            Caveat::Expires(100),
        ],
    );
    // Asking for nothing inherits every restriction.
    assert_eq!(
        minter
            .child(BTreeSet::new(), BTreeSet::new(), None)
            .unwrap(),
        [
            Caveat::Ops(ops(&[Operation::AdminTokens, Operation::Wrap])),
            Caveat::Keys(keys(&["alias/a", "alias/b"])),
            Caveat::Expires(100),
        ]
    );
    // Narrower is kept; a later expiry is cut to the minter's, an earlier one kept.
    assert_eq!(
        minter
            .child(ops(&[Operation::Wrap]), keys(&["alias/a"]), Some(at(5_000)))
            .unwrap(),
        [
            Caveat::Ops(ops(&[Operation::Wrap])),
            Caveat::Keys(keys(&["alias/a"])),
            Caveat::Expires(100),
        ]
    );
    assert_eq!(
        minter
            .child(BTreeSet::new(), BTreeSet::new(), Some(at(50)))
            .unwrap()[2],
        Caveat::Expires(50)
    );
    // Wider is refused, naming what is missing.
    let err = minter
        .child(
            ops(&[Operation::Wrap, Operation::AdminTenants]),
            BTreeSet::new(),
            None,
        )
        .unwrap_err();
    assert!(err.contains("admin:tenants"), "{err}");
    let err = minter
        .child(BTreeSet::new(), keys(&["alias/c"]), None)
        .unwrap_err();
    assert!(err.contains("alias/c"), "{err}");
    // A minter restricted to nothing passes on nothing, not everything.
    let empty = Grants::new(
        TokenKind::Admin,
        &[
            Caveat::Ops(ops(&[Operation::Wrap])),
            Caveat::Ops(ops(&[Operation::Sign])),
        ],
    );
    assert_eq!(
        empty.child(BTreeSet::new(), BTreeSet::new(), None).unwrap(),
        [Caveat::Ops(BTreeSet::new())]
    );
    // An unrestricted minter gives what is asked.
    let root = Grants::new(TokenKind::Admin, &[]);
    assert_eq!(
        root.child(BTreeSet::new(), BTreeSet::new(), None).unwrap(),
        []
    );
}

#[test]
fn a_comma_inside_a_key_reference_cannot_split_the_scope() {
    let root = root();
    let token = Token::mint(&root, TokenId::generate(), vec![]).unwrap();
    let sneaky = Caveat::Keys(BTreeSet::from(["alias/a,alias/b".to_owned()]));
    assert!(token.attenuate(sneaky.clone()).is_err());
    assert!(Token::mint(&root, TokenId::generate(), vec![sneaky]).is_err());
    let empty = Caveat::Keys(BTreeSet::from([String::new()]));
    assert!(token.attenuate(empty).is_err());
}

#[test]
fn the_tag_covers_the_caveat_bytes_as_sent() {
    let root = root();
    let id = TokenId::generate();
    // Not the canonical spelling ("keys=alias/a,alias/b"), but a valid one.
    let sent = |text: &str| {
        let texts = vec![text.to_owned()];
        Token {
            id,
            caveats: vec![text.parse().unwrap()],
            tag: super::chain_over(&root, id, &texts),
            texts,
        }
    };
    let token = sent("keys=alias/b,alias/a");
    token.verify(&root).unwrap();
    let round_trip = Token::decode(&token.encode()).unwrap();
    round_trip.verify(&root).unwrap();
    assert_eq!(round_trip.encode(), token.encode(), "bytes kept as sent");
    // The same caveat in other bytes is another token: the tag does not carry over.
    let respelled = Token {
        texts: vec!["keys=alias/a,alias/b".to_owned()],
        ..token.clone()
    };
    assert_eq!(respelled.verify(&root), Err(TokenError::BadTag));
}
