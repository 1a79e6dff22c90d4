-- A tenant's overrides of the PQ signing rollout (seed 002 §2 and §6.4): whether its
-- hybrid keys sign with the composite (1) or the classical half alone (0), and the share
-- of its hybrid keys in the rollout. Each override is now absent on its own (NULL: the
-- server's default), so the verify mode loses its NOT NULL.
ALTER TABLE tenant_pq_policy ALTER COLUMN pq_verify_mode DROP NOT NULL;
ALTER TABLE tenant_pq_policy
    ADD COLUMN pq_produce_hybrid BIGINT CHECK (pq_produce_hybrid IN (0, 1));
ALTER TABLE tenant_pq_policy
    ADD COLUMN pq_rollout_percent BIGINT CHECK (pq_rollout_percent BETWEEN 0 AND 100);
