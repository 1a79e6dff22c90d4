//! The few DER shapes HSM-resident keys need: a token's ECDSA `r ‖ s` as an
//! Ecdsa-Sig-Value (what Coffer's signatures and X.509 carry), an RSA public key from
//! its modulus and exponent, PKCS #1 v1.5's DigestInfo prefixes, and the `CKA_EC_POINT`
//! a token answers (a DER OCTET STRING, or the raw point from some modules).

use coffer_crypto::DigestAlgorithm;

fn length(len: usize, out: &mut Vec<u8>) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

fn tagged(tag: u8, body: &[u8], out: &mut Vec<u8>) {
    out.push(tag);
    length(body.len(), out);
    out.extend_from_slice(body);
}

/// A non-negative INTEGER from big-endian bytes (leading zeros dropped, a zero added
/// when the top bit is set).
fn unsigned(bytes: &[u8], out: &mut Vec<u8>) {
    let trimmed = match bytes.iter().position(|b| *b != 0) {
        Some(first) => &bytes[first..],
        None => &[0u8][..],
    };
    let mut body = Vec::with_capacity(trimmed.len() + 1);
    if trimmed[0] & 0x80 != 0 {
        body.push(0);
    }
    body.extend_from_slice(trimmed);
    tagged(0x02, &body, out);
}

fn sequence_of_unsigned(parts: &[&[u8]]) -> Vec<u8> {
    let mut body = Vec::new();
    for part in parts {
        unsigned(part, &mut body);
    }
    let mut out = Vec::with_capacity(body.len() + 4);
    tagged(0x30, &body, &mut out);
    out
}

/// `SEQUENCE { r INTEGER, s INTEGER }` from a token's fixed-width `r ‖ s`.
pub(crate) fn ecdsa_signature(raw: &[u8]) -> Option<Vec<u8>> {
    if raw.is_empty() || !raw.len().is_multiple_of(2) {
        return None;
    }
    let (r, s) = raw.split_at(raw.len() / 2);
    Some(sequence_of_unsigned(&[r, s]))
}

/// PKCS #1 `RSAPublicKey` (`SEQUENCE { modulus, publicExponent }`).
pub(crate) fn rsa_public_key(modulus: &[u8], exponent: &[u8]) -> Vec<u8> {
    sequence_of_unsigned(&[modulus, exponent])
}

/// The point inside a `CKA_EC_POINT` value of `len` bytes: the DER OCTET STRING PKCS #11
/// specifies, or the bare point some modules answer.
pub(crate) fn ec_point(value: &[u8], len: usize) -> Option<&[u8]> {
    if value.len() == len {
        return Some(value);
    }
    match value {
        [0x04, n, rest @ ..] if usize::from(*n) == len && rest.len() == len && len < 0x80 => {
            Some(rest)
        }
        [0x04, 0x81, n, rest @ ..] if usize::from(*n) == len && rest.len() == len => Some(rest),
        _ => None,
    }
}

/// The DigestInfo prefix PKCS #1 v1.5 signs in front of a digest (RFC 8017 §9.2).
pub(crate) fn digest_info_prefix(hash: DigestAlgorithm) -> &'static [u8] {
    match hash {
        DigestAlgorithm::Sha256 => &[
            0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x01, 0x05, 0x00, 0x04, 0x20,
        ],
        DigestAlgorithm::Sha384 => &[
            0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x02, 0x05, 0x00, 0x04, 0x30,
        ],
        DigestAlgorithm::Sha512 => &[
            0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x03, 0x05, 0x00, 0x04, 0x40,
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_minimal_and_positive() {
        // r with its top bit set gains a zero; s with leading zeros loses them.
        let mut raw = vec![0x80; 32];
        raw.extend_from_slice(&[0; 31]);
        raw.push(0x05);
        let der = ecdsa_signature(&raw).unwrap();
        assert_eq!(&der[..4], &[0x30, 0x26, 0x02, 0x21]);
        assert_eq!(der[4], 0x00);
        assert_eq!(&der[der.len() - 3..], &[0x02, 0x01, 0x05]);
        assert!(ecdsa_signature(&[1, 2, 3]).is_none());
    }

    #[test]
    fn long_lengths_use_the_long_form() {
        let modulus = vec![0xc3; 256];
        let der = rsa_public_key(&modulus, &[0x01, 0x00, 0x01]);
        assert_eq!(&der[..4], &[0x30, 0x82, 0x01, 0x0a]);
        assert_eq!(&der[4..8], &[0x02, 0x82, 0x01, 0x01]);
        assert_eq!(der.len(), 4 + 0x010a);
    }

    #[test]
    fn ec_points_are_found_in_either_encoding() {
        let point = [4u8; 65];
        let wrapped = [&[0x04, 65][..], &point].concat();
        assert_eq!(ec_point(&wrapped, 65), Some(&point[..]));
        assert_eq!(ec_point(&point, 65), Some(&point[..]));
        assert_eq!(ec_point(&wrapped[..10], 65), None);
    }
}
