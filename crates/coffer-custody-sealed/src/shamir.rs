//! The Shamir method: the unseal key split into shares over GF(256) (blahaj).
//!
//! A share's text is `coffer-share-v1:` and the base64 of blahaj's bytes: the x
//! coordinate (1..=255) then 32 bytes, one per byte of the unseal key.

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

/// Splits the unseal key into `shares` shares, any `threshold` of which recombine it.
pub(crate) fn split(unseal_key: &AeadKey, shares: u8, threshold: u8) -> Vec<UnsealShare> {
    // blahaj's dealer draws the polynomials from rand's thread generator, a CSPRNG
    // seeded from the OS.
    Sharks(threshold)
        .dealer(unseal_key.expose_secret())
        .take(usize::from(shares))
        .map(|share| {
            let bytes = Zeroizing::new(Vec::from(&share));
            // Sized up front so the text never reallocates and leaves a copy behind.
            let mut text = String::with_capacity(SHARE_PREFIX.len() + SHARE_TEXT_LEN);
            text.push_str(SHARE_PREFIX);
            STANDARD.encode_string(&bytes[..], &mut text);
            UnsealShare::new(text)
        })
        .collect()
}

/// Parses a share's text. `shares` is the number dealt, so an x beyond it is refused.
pub(crate) fn parse(text: &str, shares: u8) -> Result<Share, CustodyError> {
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
    /// are not authenticated: a wrong one yields a wrong key, which the verification
    /// blob then rejects.
    pub(crate) fn recombine(&self, threshold: u8) -> Result<AeadKey, CustodyError> {
        let secret = Sharks(threshold)
            .recover(&self.0)
            .map(Zeroizing::new)
            .map_err(|_| CustodyError::UnsealFailed("not enough shares to recombine"))?;
        AeadKey::from_bytes(&secret).map_err(|_| CustodyError::Backend("unseal key"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dealt_shares_parse_and_recombine() {
        let key = AeadKey::generate().unwrap();
        let shares = split(&key, 4, 2);
        assert!(
            shares
                .iter()
                .all(|s| s.expose_secret().len() == 16 + SHARE_TEXT_LEN)
        );
        let mut pending = Pending::default();
        pending
            .add(parse(shares[3].expose_secret(), 4).unwrap())
            .unwrap();
        pending
            .add(parse(shares[0].expose_secret(), 4).unwrap())
            .unwrap();
        let recombined = pending.recombine(2).unwrap();
        assert_eq!(recombined.expose_secret(), key.expose_secret());
    }

    #[test]
    fn an_index_beyond_the_shares_dealt_is_refused() {
        let key = AeadKey::generate().unwrap();
        let shares = split(&key, 5, 2);
        // Share 5 (x = 5) of a state file that says only 4 were dealt.
        let err = parse(shares[4].expose_secret(), 4).err().unwrap();
        assert!(matches!(err, CustodyError::UnsealFailed(m) if m.contains("index")));
    }
}
