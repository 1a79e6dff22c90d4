-- Each token record's base grant (kind, tenant) under a MAC made with the token root
-- key: HMAC-SHA256(root, "coffer/token-grant/v1" ‖ id ‖ kind ‖ tenant id). Editing a
-- row's kind or tenant then fails the check made when records are loaded, and the
-- token stops authenticating. Records made before this migration have none until the
-- server binds them at its next unseal (the root key is not available to SQL); the
-- server secret 'token-grants-bound' records that it did, after which an unbound record
-- is an integrity failure too.

ALTER TABLE tokens ADD COLUMN grant_tag BYTEA;
