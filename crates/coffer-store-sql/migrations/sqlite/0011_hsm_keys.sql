-- HSM-resident keys (`coffer keys create --protection hsm`): where a key's versions
-- live, and for each HSM-resident version where the token keeps it, as JSON
-- {"slot", "token", "label", "id" (hex)}. The location is also sealed in the
-- version's wrapped_material (bound to the row); this copy is what `keys show` reads
-- without unwrapping, and is checked against the sealed one when the key loads.
ALTER TABLE keys ADD COLUMN protection TEXT NOT NULL DEFAULT 'software'
    CHECK (protection IN ('software', 'hsm'));
ALTER TABLE key_versions ADD COLUMN hsm_location TEXT;
