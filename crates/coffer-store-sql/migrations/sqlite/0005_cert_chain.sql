-- X.509 certificate chain of a signing key version (PEM, leaf first), imported or
-- issued by Coffer (seed 004). NULL: no chain.

ALTER TABLE key_versions ADD COLUMN cert_chain TEXT;
