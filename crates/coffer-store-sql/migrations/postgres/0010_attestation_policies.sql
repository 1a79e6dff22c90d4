-- Attestation policies of keys (issue 19): which operations need an attested caller,
-- and which measurements may perform them. One row per version of a key's policy; the
-- highest version is in force, the older ones stay as its history. A change inserts
-- version n+1: the primary key makes two racing changes from version n conflict, so
-- one wins and the other changes nothing.
--
-- A table of its own, apart from the key's row and from AWS key policies and grants.
-- `operations` and `measurements` are comma-separated lists (parsed back into enums and
-- measurements by the store; anything else is corrupt data).

CREATE TABLE key_attestation_policies (
    tenant_id     TEXT NOT NULL,
    key_id        TEXT NOT NULL REFERENCES keys (id),
    version       BIGINT NOT NULL CHECK (version >= 1),
    operations    TEXT NOT NULL,
    measurements  TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    PRIMARY KEY (key_id, version)
);
