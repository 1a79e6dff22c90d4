-- The head of the audit log: the next index and the hex hash of the last leaf. Every
-- transaction that appends entries updates this one row first, so the database
-- serialises appends from any number of replicas into one contiguous chain (the row
-- lock is held until the transaction ends; a rolled-back append leaves no gap).
-- The row itself is written at start from the stored entries (Rust computes the hash).

CREATE TABLE audit_head (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    next_idx  BIGINT NOT NULL CHECK (next_idx >= 0),
    prev      TEXT NOT NULL
);
