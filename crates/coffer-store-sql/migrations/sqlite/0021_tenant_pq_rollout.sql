-- A tenant's overrides of the PQ signing rollout (seed 002 §2 and §6.4): whether its
-- hybrid keys sign with the composite (1) or the classical half alone (0), and the share
-- of its hybrid keys in the rollout. Each override is now absent on its own (NULL: the
-- server's default), so the verify mode loses its NOT NULL. SQLite cannot drop a NOT NULL
-- in place: the table is rebuilt, its rows kept.
CREATE TABLE tenant_pq_policy_0021 (
    tenant_id           TEXT PRIMARY KEY REFERENCES tenants (id),
    pq_verify_mode      TEXT CHECK (pq_verify_mode IN ('and', 'or', 'pq_only')),
    updated_at          BIGINT NOT NULL,
    pq_produce_hybrid   BIGINT CHECK (pq_produce_hybrid IN (0, 1)),
    pq_rollout_percent  BIGINT CHECK (pq_rollout_percent BETWEEN 0 AND 100)
);
INSERT INTO tenant_pq_policy_0021 (tenant_id, pq_verify_mode, updated_at)
    SELECT tenant_id, pq_verify_mode, updated_at FROM tenant_pq_policy;
DROP TABLE tenant_pq_policy;
ALTER TABLE tenant_pq_policy_0021 RENAME TO tenant_pq_policy;
