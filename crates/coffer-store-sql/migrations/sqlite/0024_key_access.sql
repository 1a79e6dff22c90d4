-- Key policies and grants (the AWS front's access controls), in tables of their own,
-- apart from the keys' columns. A key has at most one policy (AWS's "default"): the
-- document as given and the rules Coffer evaluates. A grant lets a grantee token use
-- the listed AWS operations on one key.
CREATE TABLE key_policies (
    key_id      TEXT PRIMARY KEY REFERENCES keys (id),
    tenant_id   TEXT NOT NULL REFERENCES tenants (id),
    document    TEXT NOT NULL,
    rules       TEXT NOT NULL
);

CREATE TABLE key_grants (
    grant_id    TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants (id),
    key_id      TEXT NOT NULL REFERENCES keys (id),
    grantee     TEXT NOT NULL,
    retiring    TEXT,
    operations  TEXT NOT NULL,
    name        TEXT,
    created_at  BIGINT NOT NULL
);
CREATE INDEX key_grants_by_key ON key_grants (key_id);
CREATE INDEX key_grants_by_tenant ON key_grants (tenant_id);
