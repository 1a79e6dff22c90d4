-- The AWS front's 12-digit account id of a tenant, when chosen at creation (NULL: the
-- front derives one from the tenant id). Unique: an account names one tenant.
ALTER TABLE tenants ADD COLUMN aws_account_id TEXT;
CREATE UNIQUE INDEX tenants_aws_account_id ON tenants (aws_account_id);
