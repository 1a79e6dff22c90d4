//! sqlx errors to `StoreError`, in one place.

use coffer_core::{StoreError, StoreResult};
use sqlx::any::AnyQueryResult;

/// Maps a database error: constraint violations become `Conflict` (the schema's
/// guarantees: unique alias, one primary, one running rotation, state checks), the rest
/// `Unavailable`. Messages name the constraint, never the row's values.
pub fn unavailable(error: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &error {
        if db.is_unique_violation() {
            return StoreError::Conflict(unique_violation(db.message()));
        }
        if db.is_check_violation() {
            return StoreError::Conflict("a state rule of the schema refused the change");
        }
        if db.is_foreign_key_violation() {
            return StoreError::NotFound("referenced object");
        }
    }
    StoreError::Unavailable(error.to_string())
}

fn unique_violation(message: &str) -> &'static str {
    // Both engines name the index or column in the message.
    if message.contains("alias") {
        "the alias is already in use in this tenant"
    } else if message.contains("primary") {
        "the key already has a primary version"
    } else if message.contains("rotation") {
        "a rotation is already running for this key"
    } else if message.contains("server_secrets") {
        "the server secret already exists"
    } else if message.contains("aws_account_id") {
        "the AWS account id is already taken"
    } else if message.contains("name") {
        "the name is already taken"
    } else {
        "the object already exists"
    }
}

/// A stored value that does not decode.
pub fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(what.to_owned())
}

/// A write meant to touch exactly one row: `otherwise` when it touched none (the row was
/// absent, or no longer in the state the write expected).
pub fn one_row(done: &AnyQueryResult, otherwise: StoreError) -> StoreResult<()> {
    if done.rows_affected() == 1 {
        Ok(())
    } else {
        Err(otherwise)
    }
}
