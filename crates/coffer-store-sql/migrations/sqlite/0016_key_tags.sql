-- Tags of keys (the AWS front's TagResource): per key, each tag key names one value.
-- Apart from the key's labels, so AWS tools tagging a key never touch operator labels.
CREATE TABLE key_tags (
    key_id      TEXT NOT NULL REFERENCES keys (id),
    tenant_id   TEXT NOT NULL REFERENCES tenants (id),
    tag_key     TEXT NOT NULL,
    tag_value   TEXT NOT NULL,
    PRIMARY KEY (key_id, tag_key)
);
