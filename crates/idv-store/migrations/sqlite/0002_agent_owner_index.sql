-- Listing agents by owner (a high-cardinality filter) without scanning the tenant.
CREATE INDEX agents_owner ON agents (tenant_id, owner, id);
