//! Fault tests of the durable core: real servers whose storage fails under them,
//! several replicas sharing one PostgreSQL database, a database rewritten while its
//! server is down (the audit log, a deletion's due time), and the self-check under load.
//!
//! A binary of its own, beside `service`, because these tests need what an ordinary
//! test does not: root to mount a small filesystem, a PostgreSQL server, and seconds of
//! load each. They run in CI (as root, with `COFFER_TEST_DATABASE_URL`), and what
//! they need is checked loudly, not skipped quietly: a mount that is not permitted
//! fails the test unless `COFFER_SKIP_MOUNT_TESTS=1` says to skip it on purpose.

// The service suite's harness, shared as a file so that both binaries start servers the
// same way; this binary uses only part of it.
#[path = "service/harness.rs"]
#[allow(
    dead_code,
    reason = "shared with the service suite, which uses the rest"
)]
mod harness;

mod faults {
    pub mod audit_refused;
    pub mod audit_rewrite;
    pub mod batch_commit;
    pub mod db;
    pub mod deletion;
    pub mod disk_full;
    pub mod http;
    pub mod replicas;
    pub mod self_check;
}
