//! SHA-256, for the formats Coffer owns (audit log, key ids of signed notes).

use aws_lc_rs::digest::{Context, SHA256};

/// SHA-256 of the concatenation of `parts` (no copy into one buffer).
pub fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut context = Context::new(&SHA256);
    for part in parts {
        context.update(part);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(context.finish().as_ref());
    out
}
