-- Tenants, their wrapped tenant keys, keys, versions, aliases, events, rotations.
-- Instants are Unix milliseconds; ids are canonical UUID text; booleans are 0/1.

CREATE TABLE tenants (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    state       TEXT NOT NULL CHECK (state IN ('active', 'shredded')),
    created_at  BIGINT NOT NULL
);

CREATE TABLE tenant_keks (
    tenant_id   TEXT PRIMARY KEY REFERENCES tenants (id),
    wrapped     BLOB NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE keys (
    id                      TEXT PRIMARY KEY,
    tenant_id               TEXT NOT NULL REFERENCES tenants (id),
    spec                    TEXT NOT NULL,
    purpose                 TEXT NOT NULL CHECK (purpose IN ('encrypt', 'sign', 'mac')),
    state                   TEXT NOT NULL
        CHECK (state IN ('enabled', 'disabled', 'pending-deletion', 'destroyed')),
    deletion_due            BIGINT,
    labels                  TEXT NOT NULL,
    registered_purposes     TEXT NOT NULL,
    rotation_period         BIGINT,
    rotation_before_expiry  BIGINT,
    rotation_overlap        BIGINT,
    validity                BIGINT,
    created_at              BIGINT NOT NULL,
    CHECK ((state = 'pending-deletion') = (deletion_due IS NOT NULL))
);
CREATE INDEX keys_by_tenant ON keys (tenant_id);

CREATE TABLE key_versions (
    key_id            TEXT NOT NULL REFERENCES keys (id),
    number            INTEGER NOT NULL CHECK (number >= 1),
    state             TEXT NOT NULL
        CHECK (state IN ('pending', 'active', 'inactive', 'retiring', 'retired', 'destroyed')),
    is_primary        INTEGER NOT NULL CHECK (is_primary IN (0, 1)),
    not_before        BIGINT NOT NULL,
    not_after         BIGINT,
    public_key        BLOB,
    wrapped_material  BLOB,
    created_at        BIGINT NOT NULL,
    PRIMARY KEY (key_id, number),
    -- Only an active version can be primary.
    CHECK (is_primary = 0 OR state = 'active'),
    -- Destroyed versions keep no material.
    CHECK ((state = 'destroyed') = (wrapped_material IS NULL))
);
-- At most one primary per key.
CREATE UNIQUE INDEX one_primary_per_key ON key_versions (key_id) WHERE is_primary = 1;

CREATE TABLE aliases (
    tenant_id  TEXT NOT NULL REFERENCES tenants (id),
    alias      TEXT NOT NULL,
    key_id     TEXT NOT NULL REFERENCES keys (id),
    PRIMARY KEY (tenant_id, alias)
);

CREATE TABLE events (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id   TEXT NOT NULL,
    key_id      TEXT,
    version     INTEGER,
    kind        TEXT NOT NULL,
    detail      TEXT NOT NULL,
    actor       TEXT,
    at          BIGINT NOT NULL
);
CREATE INDEX events_by_key ON events (key_id, seq);

CREATE TABLE rotations (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants (id),
    key_id      TEXT NOT NULL REFERENCES keys (id),
    step        TEXT NOT NULL,
    status      TEXT NOT NULL,
    started_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
-- At most one running rotation per key.
CREATE UNIQUE INDEX one_running_rotation_per_key ON rotations (key_id) WHERE status = 'running';
