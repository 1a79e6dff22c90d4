//! Conformance suites every backend passes (feature `testing`).
//!
//! A backend crate instantiates a suite with one line in its integration tests, e.g.
//! `coffer_core::store_conformance!(sqlite_store);`, where the factory returns a fresh,
//! empty store (or `None` to skip, for a database not configured locally).

pub mod custody;
pub mod fixtures;
pub mod store;
pub mod store_access;
pub mod store_aliases;
pub mod store_attestation;
pub mod store_deletion;
pub mod store_hsm;
pub mod store_pq;
pub mod store_records;
pub mod store_rotations;
pub mod store_seals;
pub mod store_tags;

/// Generates one `#[tokio::test]` per store conformance case. `$factory` is an async
/// fn returning `Option<Arc<dyn Store>>`.
#[macro_export]
macro_rules! store_conformance {
    ($factory:path) => {
        $crate::store_conformance!(@cases $factory;
            tenants_are_created_listed_and_unique,
            keys_round_trip_with_aliases,
            aliases_are_unique_per_tenant_only,
            an_alias_moves_by_compare_and_set,
            a_versions_validity_moves_by_compare_and_set,
            another_tenants_key_is_absent,
            versions_are_listed_in_order,
            lifecycle_changes_are_compare_and_set,
            primary_switch_is_atomic,
            schema_keeps_one_active_primary,
            key_state_changes_record_deletion_due,
            destroying_a_version_destroys_its_material,
            destroying_a_key_erases_every_version,
            every_change_records_one_event,
            one_running_rotation_per_key,
            shredding_a_tenant_removes_its_key,
            tenant_key_replacement_is_compare_and_set,
            racing_writers_cannot_both_win,
            server_secrets_are_write_once,
            token_records_round_trip_and_revoke,
            token_grants_bind_once,
            audit_entries_append_and_read_in_order,
            rotation_records_save_the_saga_state,
            a_rotation_starts_only_from_the_primary,
            rotations_list_by_tenant_key_and_status,
            tracked_keys_rewrap_by_compare_and_set,
            concurrent_key_creations_commit_independently,
            a_group_with_one_alias_twice_commits_all_but_one,
            a_shredded_tenant_gets_no_new_keys,
            leases_have_one_holder_until_they_expire,
            version_use_adds_up_per_principal_and_kind,
            certificate_chains_are_kept_per_version,
            key_tags_change_within_their_limit,
            key_policies_and_grants_are_kept_per_key,
            hsm_protection_and_locations_round_trip,
            attestation_policies_are_versioned_by_compare_and_set,
            a_switch_and_its_allow_list_commit_together,
            tenant_pq_overrides_change_one_setting_at_a_time,
            state_tags_change_by_compare_and_set
        );
    };
    (@cases $factory:path; $($case:ident),+) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let Some(store) = $factory().await else { return };
                $crate::testing::store::$case(store).await;
            }
        )+
    };
}

/// Generates one `#[tokio::test]` per custody conformance case. `$factory` is an async
/// fn returning an unsealed `Arc<dyn Custody>` with a fresh root.
#[macro_export]
macro_rules! custody_conformance {
    ($factory:path) => {
        $crate::custody_conformance!(@cases $factory;
            wraps_and_unwraps,
            binds_associated_data_and_detects_tampering,
            rotates_the_root_without_downtime,
            serves_concurrent_callers
        );
    };
    (@cases $factory:path; $($case:ident),+) => {
        $(
            #[tokio::test]
            async fn $case() {
                $crate::testing::custody::$case($factory().await).await;
            }
        )+
    };
}
