-- A rotation may change the key's enclave allow-list (its attestation policy's
-- measurements) with its switch (issue 19, seed 001's KMS_ALLOWED_MEASUREMENTS): the
-- record keeps the list to put in force and the policy version it was asked against,
-- so a restarted worker applies exactly that, by compare-and-set on that version.
-- Both are NULL for a rotation that leaves the list alone (and for older rows).

ALTER TABLE rotations ADD COLUMN allow_list TEXT;
ALTER TABLE rotations ADD COLUMN allow_list_from_policy BIGINT;
