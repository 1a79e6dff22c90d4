//! The one integration-test binary of coffer-store-sql: the `Store` conformance suite on
//! SQLite and on PostgreSQL, plus durability and at-rest checks with the real key
//! hierarchy.

mod store {
    pub mod backends;
    pub mod backup;
    pub mod batch_audit;
    pub mod capped;
    pub mod deletion;
    pub mod durability;
    pub mod expiry;
    pub mod group_create;
    pub mod journal;
    pub mod rewrap;
    pub mod service;
    pub mod tracker;
}

use store::backends::{postgres_store, sqlite_store};

mod sqlite {
    use super::sqlite_store;
    coffer_core::store_conformance!(sqlite_store);
}

mod postgres {
    use super::postgres_store;
    coffer_core::store_conformance!(postgres_store);
}
