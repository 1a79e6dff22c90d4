//! Thin handlers: extract, call the service, map. One module per area.

pub mod admin;
pub mod aliases;
pub mod attestation;
pub mod audit;
pub mod certificates;
pub mod crypto;
mod crypto_batch;
pub mod keys;
pub mod ops;
pub mod rotation;
pub mod sys;
