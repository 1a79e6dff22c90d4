//! The one source of randomness: the operating system's generator through aws-lc.

use aws_lc_rs::rand::{SecureRandom, SystemRandom};

use crate::{CryptoError, Result};

/// Fills `out` with random bytes from the OS generator.
pub fn fill(out: &mut [u8]) -> Result<()> {
    SystemRandom::new()
        .fill(out)
        .map_err(|_| CryptoError::Backend("random generator"))
}
