-- Listing agents by status (the inventory's and the API's most common filter)
-- in id order without walking the whole tenant.
CREATE INDEX agents_status ON agents (tenant_id, status, id);
