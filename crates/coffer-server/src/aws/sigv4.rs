//! AWS Signature Version 4, the verifying side: parse `Authorization`, rebuild the
//! canonical request from what arrived, derive the signing key from the secret and
//! compare in constant time. HMAC and SHA-256 are RustCrypto's (`hmac`, `sha2`).
//!
//! Replays: SigV4 has no nonce, and AWS itself accepts an identical signed request
//! again within its ±5 minute window. Coffer does the same: refusing a repeated
//! signature would refuse a client that legitimately sends the same request twice in
//! one second (same date, same body, same signature). What bounds a replay is the
//! window, and an altered request never verifies.

use axum::http::HeaderMap;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// How far a request's `X-Amz-Date` may be from the server's clock (AWS's window).
pub const MAX_SKEW_SECONDS: i64 = 5 * 60;
const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// Why a signature was refused; each maps to the AWS error type clients expect.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigV4Error {
    /// No `Authorization` header.
    #[error("Missing Authentication Token")]
    Missing,
    /// The header or the date cannot be parsed.
    #[error("{0}")]
    Incomplete(&'static str),
    /// Scope, date window or signature wrong.
    #[error("{0}")]
    Invalid(&'static str),
}

/// The parsed `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    /// Access key id.
    pub access_key_id: String,
    /// `YYYYMMDD` of the credential scope.
    pub date: String,
    /// Region of the credential scope.
    pub region: String,
    /// Service of the credential scope.
    pub service: String,
    /// Lower-case names, in the header's order.
    pub signed_headers: Vec<String>,
    /// Hex signature.
    pub signature: String,
}

impl Authorization {
    /// Parses `AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…`.
    pub fn parse(header: &str) -> Result<Self, SigV4Error> {
        let rest = header
            .strip_prefix(ALGORITHM)
            .ok_or(SigV4Error::Incomplete(
                "only AWS4-HMAC-SHA256 signatures are accepted",
            ))?;
        let (mut credential, mut signed, mut signature) = (None, None, None);
        for part in rest.split(',') {
            let (name, value) = part
                .trim()
                .split_once('=')
                .ok_or(SigV4Error::Incomplete("malformed Authorization header"))?;
            match name {
                "Credential" => credential = Some(value),
                "SignedHeaders" => signed = Some(value),
                "Signature" => signature = Some(value),
                _ => return Err(SigV4Error::Incomplete("malformed Authorization header")),
            }
        }
        let (Some(credential), Some(signed), Some(signature)) = (credential, signed, signature)
        else {
            return Err(SigV4Error::Incomplete(
                "Authorization header requires Credential, SignedHeaders and Signature",
            ));
        };
        let scope: Vec<&str> = credential.split('/').collect();
        let [access_key_id, date, region, service, "aws4_request"] = scope[..] else {
            return Err(SigV4Error::Incomplete("malformed credential scope"));
        };
        Ok(Self {
            access_key_id: access_key_id.to_owned(),
            date: date.to_owned(),
            region: region.to_owned(),
            service: service.to_owned(),
            signed_headers: signed.split(';').map(str::to_owned).collect(),
            signature: signature.to_owned(),
        })
    }
}

/// What arrived, as SigV4 reads it.
pub struct Request<'a> {
    /// Method.
    pub method: &'a str,
    /// Path as sent (percent-encoded).
    pub path: &'a str,
    /// Raw query string (without `?`).
    pub query: &'a str,
    /// Headers.
    pub headers: &'a HeaderMap,
    /// Body.
    pub body: &'a [u8],
}

/// RFC 3986 encoding of everything but the unreserved characters, as SigV4 wants.
fn uri_encode(bytes: &[u8], keep_slash: bool) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'.' | b'_' | b'~')
            || (keep_slash && b == b'/')
        {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn percent_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        if let (b'%', Some(Ok(b))) = (bytes[i], hex.map(|h| u8::from_str_radix(h, 16))) {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

/// The path with dot segments removed, each segment decoded and encoded again.
fn canonical_uri(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/').skip(1) {
        match segment {
            "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let encoded: Vec<String> = segments
        .iter()
        .map(|s| uri_encode(&percent_decode(s), false))
        .collect();
    format!("/{}", encoded.join("/"))
}

fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (
                uri_encode(&percent_decode(k), false),
                uri_encode(&percent_decode(v), false),
            )
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Trimmed, inner runs of spaces collapsed; repeated headers joined with `,`.
fn canonical_header_value(headers: &HeaderMap, name: &str) -> Result<String, SigV4Error> {
    let mut values = Vec::new();
    for value in headers.get_all(name) {
        let text = value
            .to_str()
            .map_err(|_| SigV4Error::Incomplete("a signed header is not ASCII"))?;
        values.push(text.split_whitespace().collect::<Vec<_>>().join(" "));
    }
    if values.is_empty() {
        return Err(SigV4Error::Incomplete("a signed header is missing"));
    }
    Ok(values.join(","))
}

/// The canonical request (SigV4 task 1).
pub fn canonical_request(request: &Request<'_>, signed: &[String]) -> Result<String, SigV4Error> {
    let mut headers = String::new();
    for name in signed {
        headers.push_str(name);
        headers.push(':');
        headers.push_str(&canonical_header_value(request.headers, name)?);
        headers.push('\n');
    }
    Ok(format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        request.method,
        canonical_uri(request.path),
        canonical_query(request.query),
        headers,
        signed.join(";"),
        hex::encode(Sha256::digest(request.body)),
    ))
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length.
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// The signing key for `date/region/service`.
fn signing_key(secret: &str, auth: &Authorization) -> Vec<u8> {
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), auth.date.as_bytes());
    let k_region = hmac(&k_date, auth.region.as_bytes());
    let k_service = hmac(&k_region, auth.service.as_bytes());
    hmac(&k_service, b"aws4_request")
}

/// `YYYYMMDDTHHMMSSZ` → Unix seconds.
fn parse_amz_date(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| text.get(r)?.parse::<u32>().ok();
    let month = time::Month::try_from(u8::try_from(num(4..6)?).ok()?).ok()?;
    let date = time::Date::from_calendar_date(
        i32::try_from(num(0..4)?).ok()?,
        month,
        u8::try_from(num(6..8)?).ok()?,
    )
    .ok()?;
    let clock = time::Time::from_hms(
        u8::try_from(num(9..11)?).ok()?,
        u8::try_from(num(11..13)?).ok()?,
        u8::try_from(num(13..15)?).ok()?,
    )
    .ok()?;
    Some(
        time::PrimitiveDateTime::new(date, clock)
            .assume_utc()
            .unix_timestamp(),
    )
}

/// Verifies `request` was signed by the holder of `secret` for service `service`,
/// within the skew window around `now` (Unix seconds).
pub fn verify(
    request: &Request<'_>,
    auth: &Authorization,
    secret: &str,
    service: &str,
    now: i64,
) -> Result<(), SigV4Error> {
    if auth.service != service {
        return Err(SigV4Error::Invalid(
            "Credential should be scoped to correct service",
        ));
    }
    for required in ["host", "x-amz-date"] {
        if !auth.signed_headers.iter().any(|h| h == required) {
            return Err(SigV4Error::Invalid(
                "the host and x-amz-date headers must be signed",
            ));
        }
    }
    let amz_date = request
        .headers
        .get("x-amz-date")
        .and_then(|v| v.to_str().ok())
        .ok_or(SigV4Error::Incomplete("missing X-Amz-Date"))?;
    let at = parse_amz_date(amz_date).ok_or(SigV4Error::Incomplete("malformed X-Amz-Date"))?;
    if !amz_date.starts_with(&auth.date) || auth.date.len() != 8 {
        return Err(SigV4Error::Invalid(
            "the credential scope's date differs from X-Amz-Date",
        ));
    }
    if (now - at).abs() > MAX_SKEW_SECONDS {
        return Err(SigV4Error::Invalid(
            "Signature expired: the request's date is more than 5 minutes from the server's time",
        ));
    }
    let canonical = canonical_request(request, &auth.signed_headers)?;
    let string_to_sign = format!(
        "{ALGORITHM}\n{amz_date}\n{}/{}/{}/aws4_request\n{}",
        auth.date,
        auth.region,
        auth.service,
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let claimed = hex::decode(&auth.signature)
        .map_err(|_| SigV4Error::Invalid("the signature is not hex"))?;
    let mut mac =
        HmacSha256::new_from_slice(&signing_key(secret, auth)).expect("HMAC takes any key length");
    mac.update(string_to_sign.as_bytes());
    mac.verify_slice(&claimed).map_err(|_| {
        SigV4Error::Invalid(
            "The request signature we calculated does not match the signature you provided",
        )
    })
}

#[cfg(test)]
#[path = "sigv4_tests.rs"]
mod tests;
