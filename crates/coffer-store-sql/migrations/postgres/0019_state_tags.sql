-- Key and version states under a MAC (coffer_core::state_seal): each key row carries
-- HMAC-SHA256 over its tenant, id, spec, purpose, protection, state and deletion due
-- time; each version row over its tenant, key, number, state, primary flag and
-- validity. The key is derived from the token root key, which SQL never holds, so
-- rows from before this migration have none until the server binds them at its next
-- unseal; the server secret 'key-states-bound' records that it did, after which an
-- untagged row is an integrity failure too.

ALTER TABLE keys ADD COLUMN state_tag BYTEA;
ALTER TABLE key_versions ADD COLUMN state_tag BYTEA;
