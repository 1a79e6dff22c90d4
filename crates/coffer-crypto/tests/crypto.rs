//! The one integration-test binary of coffer-crypto.

mod crypto {
    pub mod algorithms;
    pub mod formats;
    pub mod hygiene;
    pub mod kat_classical;
    pub mod kat_mldsa;
    pub mod kat_rsa;
    pub mod props;
    pub mod vectors;
}
