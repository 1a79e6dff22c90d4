-- Server-side records of capability tokens, and wrapped server secrets (the token root
-- key), both needed before any tenant exists.

CREATE TABLE tokens (
    id           TEXT PRIMARY KEY,
    kind         TEXT NOT NULL CHECK (kind IN ('admin', 'tenant')),
    tenant_id    TEXT REFERENCES tenants (id),
    description  TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    revoked_at   BIGINT,
    CHECK ((kind = 'tenant') = (tenant_id IS NOT NULL))
);

CREATE TABLE server_secrets (
    name        TEXT PRIMARY KEY,
    wrapped     BYTEA NOT NULL,
    created_at  BIGINT NOT NULL
);
