-- The audit log: one row per entry (its canonical leaf JSON), and signed checkpoints.

CREATE TABLE audit_entries (
    idx   BIGINT PRIMARY KEY CHECK (idx >= 0),
    leaf  TEXT NOT NULL
);

CREATE TABLE audit_checkpoints (
    size        BIGINT PRIMARY KEY,
    note        TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
