//! The Shamir method: the unseal key split into shares over GF(256) (blahaj).
//!
//! A share's text is `coffer-share-v1:` and the base64 of blahaj's bytes: the x
//! coordinate (1..=255) then 32 bytes, one per byte of the unseal key.
//!
//! Shares are authenticated by a tag per share made at init and kept in the state file
//! (`share_tags`): SHA-256 over a domain label and the share's bytes. A share whose tag
//! does not match — forged, damaged, or dealt for another deployment — is refused on
//! its own, before it takes a slot, so it can neither block a real holder's index nor
//! spoil the recombination and reset the ceremony. The tag reveals nothing usable
//! about the share (a preimage of SHA-256 over 33 random-looking bytes). The share's
//! own text did not change; state files made before tags have none, and their shares
//! are still accepted as before, unauthenticated.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use blahaj::{Share, Sharks};
use coffer_core::CustodyError;
use coffer_crypto::AeadKey;
use coffer_crypto::xaes::KEY_LEN;
use zeroize::Zeroizing;

use crate::secret::UnsealShare;

/// The prefix of every share's text; it names the format so a share from another tool
/// or a later format is refused by name rather than misread.
pub const SHARE_PREFIX: &str = "coffer-share-v1:";

/// Length of a share's tag in the state file.
pub(crate) const TAG_LEN: usize = 32;

/// Separates share tags from every other SHA-256 Coffer computes.
const TAG_DOMAIN: &[u8] = b"coffer-share-tag-v1\0";

/// x coordinate, then one byte per key byte.
const SHARE_LEN: usize = 1 + KEY_LEN;
/// Base64 of `SHARE_LEN` bytes, padded.
const SHARE_TEXT_LEN: usize = SHARE_LEN.div_ceil(3) * 4;

/// Checks `1 <= threshold <= shares` (`shares <= 255` holds by type: blahaj deals at
/// most 255 distinct x coordinates).
pub(crate) fn check_params(shares: u8, threshold: u8) -> Result<(), CustodyError> {
    if threshold == 0 {
        return Err(CustodyError::Config(
            "shamir threshold must be at least 1".into(),
        ));
    }
    if threshold > shares {
        return Err(CustodyError::Config(format!(
            "shamir threshold {threshold} exceeds the share count {shares}"
        )));
    }
    Ok(())
}

/// The tag of a share's bytes (x, then y).
fn tag(bytes: &[u8]) -> [u8; TAG_LEN] {
    coffer_crypto::hash::sha256(&[TAG_DOMAIN, bytes])
}

/// Splits the unseal key into `shares` shares, any `threshold` of which recombine it,
/// and returns each share's tag (in x order, x = 1 first) for the state file.
pub(crate) fn split(
    unseal_key: &AeadKey,
    shares: u8,
    threshold: u8,
) -> (Vec<UnsealShare>, Vec<Vec<u8>>) {
    // blahaj's dealer draws the polynomials from rand's thread generator, a CSPRNG
    // seeded from the OS.
    let mut dealt: Vec<(u8, UnsealShare, Vec<u8>)> = Sharks(threshold)
        .dealer(unseal_key.expose_secret())
        .take(usize::from(shares))
        .map(|share| {
            let bytes = Zeroizing::new(Vec::from(&share));
            // Sized up front so the text never reallocates and leaves a copy behind.
            let mut text = String::with_capacity(SHARE_PREFIX.len() + SHARE_TEXT_LEN);
            text.push_str(SHARE_PREFIX);
            STANDARD.encode_string(&bytes[..], &mut text);
            (bytes[0], UnsealShare::new(text), tag(&bytes).to_vec())
        })
        .collect();
    dealt.sort_by_key(|(x, _, _)| *x);
    dealt
        .into_iter()
        .map(|(_, share, tag)| (share, tag))
        .unzip()
}

/// Parses a share's text. `shares` is the number dealt, so an x beyond it is refused;
/// `tags` are the state file's share tags (x = 1 first), empty for a file made before
/// tags, and a share that does not match its tag is refused.
pub(crate) fn parse(text: &str, shares: u8, tags: &[Vec<u8>]) -> Result<Share, CustodyError> {
    let encoded = text
        .trim()
        .strip_prefix(SHARE_PREFIX)
        .ok_or(CustodyError::UnsealFailed(
            "malformed share: it does not start with coffer-share-v1:",
        ))?;
    if encoded.len() != SHARE_TEXT_LEN {
        return Err(CustodyError::UnsealFailed(
            "malformed share: wrong length for a coffer-share-v1 share",
        ));
    }
    let mut bytes = Zeroizing::new([0u8; SHARE_TEXT_LEN]);
    let len = STANDARD
        .decode_slice(encoded, &mut bytes[..])
        .map_err(|_| CustodyError::UnsealFailed("malformed share: not valid base64"))?;
    if len != SHARE_LEN {
        return Err(CustodyError::UnsealFailed(
            "malformed share: wrong length for a coffer-share-v1 share",
        ));
    }
    // x = 0 is where the polynomial holds the secret itself; the dealer never gives it.
    if bytes[0] == 0 || bytes[0] > shares {
        return Err(CustodyError::UnsealFailed(
            "malformed share: its index is not one of the shares dealt",
        ));
    }
    if !tags.is_empty() {
        let expected = tags
            .get(usize::from(bytes[0]) - 1)
            .ok_or(CustodyError::UnsealFailed(
                "malformed share: its index is not one of the shares dealt",
            ))?;
        if !coffer_crypto::secret::constant_time_eq(&tag(&bytes[..SHARE_LEN]), expected) {
            return Err(CustodyError::UnsealFailed(
                "not a share of this deployment: its tag does not match the one made at \
                 init (forged, damaged or dealt elsewhere); progress unchanged",
            ));
        }
    }
    Share::try_from(&bytes[..SHARE_LEN])
        .map_err(|_| CustodyError::UnsealFailed("malformed share: too short"))
}

/// Shares accepted so far, each at a distinct x. blahaj zeroizes them on drop.
#[derive(Default)]
pub(crate) struct Pending(Vec<Share>);

impl Pending {
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    /// Adds a share unless one at the same x was given already.
    pub(crate) fn add(&mut self, share: Share) -> Result<(), CustodyError> {
        if self.0.iter().any(|s| s.x.0 == share.x.0) {
            return Err(CustodyError::UnsealFailed(
                "duplicate share: a share with this index was already submitted",
            ));
        }
        self.0.push(share);
        Ok(())
    }

    pub(crate) fn clear(&mut self) {
        self.0.clear();
    }

    /// Recombines the unseal key from the shares given (at least `threshold`). Shares
    /// of a state file without tags are not authenticated: a wrong one yields a wrong
    /// key, which the verification blob then rejects.
    pub(crate) fn recombine(&self, threshold: u8) -> Result<AeadKey, CustodyError> {
        let secret = Sharks(threshold)
            .recover(&self.0)
            .map(Zeroizing::new)
            .map_err(|_| CustodyError::UnsealFailed("not enough shares to recombine"))?;
        AeadKey::from_bytes(&secret).map_err(|_| CustodyError::Backend("unseal key"))
    }
}

/// The ceremony on untrusted share texts, as `SealedCustody::submit_share` runs it:
/// each text parsed (against `tags`, when given) and added, and once `threshold` are in,
/// the key recombined. `Ok(true)` when a key was recombined. For the fuzz targets and
/// the smoke below; never panics on any input.
#[cfg(any(test, feature = "fuzzing"))]
pub fn ceremony(
    texts: &[&str],
    shares: u8,
    threshold: u8,
    tags: &[Vec<u8>],
) -> Result<bool, CustodyError> {
    check_params(shares, threshold)?;
    let mut pending = Pending::default();
    for text in texts {
        pending.add(parse(text, shares, tags)?)?;
        if pending.len() >= usize::from(threshold) {
            pending.recombine(threshold)?;
            return Ok(true);
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A share's text for arbitrary bytes of the right length.
    fn text_of(bytes: &[u8]) -> String {
        format!("{SHARE_PREFIX}{}", STANDARD.encode(bytes))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// The CI smoke of the `shamir` fuzz target: any text, tagged or not.
        #[test]
        fn arbitrary_share_text_never_panics(
            texts in proptest::collection::vec("\\PC{0,80}", 1..4),
            shares in any::<u8>(),
            threshold in any::<u8>(),
        ) {
            let texts: Vec<String> = texts.iter().map(|t| format!("{SHARE_PREFIX}{t}")).collect();
            let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
            let _ = ceremony(&texts, shares, threshold, &[]);
            let _ = ceremony(&texts, shares, threshold, &[vec![0; TAG_LEN]]);
        }

        /// Well-formed shares of arbitrary bytes reach the combiner: it answers a key
        /// or an error (a repeated index is a duplicate), never a panic.
        #[test]
        fn arbitrary_well_formed_shares_recombine_or_are_refused(
            raw in proptest::collection::vec(proptest::collection::vec(any::<u8>(), SHARE_LEN), 1..5),
            threshold in 1u8..5,
        ) {
            let texts: Vec<String> = raw.iter().map(|b| text_of(b)).collect();
            let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
            let outcome = ceremony(&texts, 255, threshold, &[]);
            let indexes: std::collections::BTreeSet<u8> = raw.iter().map(|b| b[0]).collect();
            if raw.iter().all(|b| b[0] != 0) && indexes.len() == raw.len()
                && raw.len() >= usize::from(threshold)
            {
                prop_assert_eq!(outcome.ok(), Some(true));
            }
        }
    }

    #[test]
    fn the_ceremony_recombines_real_shares_and_refuses_a_forged_one() {
        let key = AeadKey::generate().unwrap();
        let (shares, tags) = split(&key, 3, 2);
        let texts: Vec<&str> = shares.iter().map(|s| s.expose_secret()).collect();
        assert!(ceremony(&texts[1..], 3, 2, &tags).unwrap());
        let forged = text_of(&[1; SHARE_LEN]);
        let err = ceremony(&[&forged, texts[1]], 3, 2, &tags).unwrap_err();
        assert!(matches!(err, CustodyError::UnsealFailed(m) if m.contains("tag")));
        assert!(ceremony(&[texts[0]], 3, 0, &tags).is_err(), "threshold 0");
    }

    #[test]
    fn dealt_shares_parse_and_recombine() {
        let key = AeadKey::generate().unwrap();
        let (shares, tags) = split(&key, 4, 2);
        assert!(
            shares
                .iter()
                .all(|s| s.expose_secret().len() == 16 + SHARE_TEXT_LEN)
        );
        let mut pending = Pending::default();
        pending
            .add(parse(shares[3].expose_secret(), 4, &tags).unwrap())
            .unwrap();
        pending
            .add(parse(shares[0].expose_secret(), 4, &[]).unwrap())
            .unwrap();
        let recombined = pending.recombine(2).unwrap();
        assert_eq!(recombined.expose_secret(), key.expose_secret());
    }

    #[test]
    fn an_index_beyond_the_shares_dealt_is_refused() {
        let key = AeadKey::generate().unwrap();
        let (shares, _) = split(&key, 5, 2);
        // Share 5 (x = 5) of a state file that says only 4 were dealt.
        let err = parse(shares[4].expose_secret(), 4, &[]).err().unwrap();
        assert!(matches!(err, CustodyError::UnsealFailed(m) if m.contains("index")));
    }

    #[test]
    fn a_share_not_matching_its_tag_is_refused() {
        let key = AeadKey::generate().unwrap();
        let (shares, tags) = split(&key, 3, 2);
        let (foreign, _) = split(&AeadKey::generate().unwrap(), 3, 2);
        for share in &foreign {
            let err = parse(share.expose_secret(), 3, &tags).err().unwrap();
            assert!(matches!(err, CustodyError::UnsealFailed(m) if m.contains("tag")));
        }
        // Every real share passes its own tag, and the tags are in x order.
        for share in &shares {
            parse(share.expose_secret(), 3, &tags).unwrap();
        }
    }
}
