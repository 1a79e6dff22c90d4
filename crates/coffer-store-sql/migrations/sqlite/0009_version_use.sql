-- The reference tracker's persisted counts: use of each key version per principal and
-- kind of use (encrypt, decrypt, tracked-datakey, sign, verify), so every replica and
-- every restart answers "who still uses v3" alike. Rows only grow by upsert (counts add,
-- first_seen keeps the minimum, last_seen the maximum).
--
-- No foreign keys on purpose: the rows are telemetry flushed in batches, and one row
-- naming a key whose rows changed underneath must not keep a whole batch from landing.

CREATE TABLE version_use (
    tenant_id   TEXT NOT NULL,
    key_id      TEXT NOT NULL,
    version     BIGINT NOT NULL CHECK (version >= 1),
    principal   TEXT NOT NULL,
    kind        TEXT NOT NULL,
    first_seen  BIGINT NOT NULL,
    last_seen   BIGINT NOT NULL,
    uses        BIGINT NOT NULL CHECK (uses >= 0),
    PRIMARY KEY (key_id, version, principal, kind)
);
