-- A tenant's post-quantum policy overrides (seed 002 §6.4): the hybrid verify mode its
-- verifications use instead of the server's `pq_verify_mode`. No row: the default.
CREATE TABLE tenant_pq_policy (
    tenant_id       TEXT PRIMARY KEY REFERENCES tenants (id),
    pq_verify_mode  TEXT NOT NULL CHECK (pq_verify_mode IN ('and', 'or', 'pq_only')),
    updated_at      BIGINT NOT NULL
);
