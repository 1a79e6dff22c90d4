//! The one integration-test binary of the service: real servers on ephemeral ports
//! (SQLite in a temp dir; PostgreSQL too where `COFFER_TEST_DATABASE_URL` is set),
//! driven through `coffer-client` and through the `coffer` binary.

mod service {
    pub mod admin_powers;
    pub mod algorithms;
    pub mod alias_move;
    pub mod api;
    pub mod attestation;
    pub mod attestation_recipient;
    pub mod audit;
    pub mod audit_pages;
    pub mod aws_clients;
    pub mod aws_recipient;
    pub mod aws_throttling;
    pub mod backup;
    pub mod backup_hsm;
    pub mod backup_schedule;
    pub mod bad_input;
    pub mod batch_rewrap;
    pub mod certificates;
    pub mod cli;
    pub mod config_check;
    pub mod disclosure;
    pub mod envelope;
    pub mod error_bodies;
    pub mod fairness;
    pub mod grafana;
    pub mod grpc;
    pub mod grpc_envelope;
    // Shared with the faults binary, which alone restarts servers.
    #[allow(dead_code, reason = "shared with the faults binary")]
    pub mod harness;
    pub mod heavy;
    pub mod hsm;
    pub mod hsm_destroy;
    pub mod hsm_keys;
    pub mod hsm_rotation;
    pub mod hsm_tampering;
    pub mod isolation;
    pub mod migrate;
    pub mod migrate_paths;
    pub mod migrate_tracked;
    pub mod openapi;
    pub mod pq_policy;
    pub mod pq_rollout;
    pub mod quotas;
    pub mod refusal_audit;
    pub mod rewrap_watch;
    pub mod rotation;
    pub mod rotation_allow_list;
    pub mod rotation_worker;
    pub mod runbook004;
    pub mod scope_probes;
    pub mod sealed;
    pub mod seed001;
    pub mod seed001_attested;
    pub mod seed004;
    pub mod shredding;
    pub mod state_tampering;
    pub mod systemd;
    pub mod tampering;
    pub mod tokens;
    pub mod tour;
    pub mod tracked_import;
    pub mod tracker;
    pub mod transport;
    pub mod unseal_attacks;
    pub mod verify_cache;
}
