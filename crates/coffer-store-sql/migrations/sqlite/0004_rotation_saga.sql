-- The rotation saga's persisted state, and tracked data keys (rewrapped by rotations).

ALTER TABLE rotations ADD COLUMN from_version BIGINT NOT NULL DEFAULT 0;
ALTER TABLE rotations ADD COLUMN to_version BIGINT;
ALTER TABLE rotations ADD COLUMN switched BIGINT NOT NULL DEFAULT 0;
ALTER TABLE rotations ADD COLUMN failures BIGINT NOT NULL DEFAULT 0;
ALTER TABLE rotations ADD COLUMN error TEXT;

CREATE TABLE tracked_keys (
    tenant_id   TEXT NOT NULL REFERENCES tenants (id),
    track_id    TEXT NOT NULL,
    key_id      TEXT NOT NULL REFERENCES keys (id),
    version     BIGINT NOT NULL CHECK (version >= 1),
    ciphertext  BLOB NOT NULL,
    context     TEXT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, track_id)
);
CREATE INDEX tracked_by_version ON tracked_keys (key_id, version);
