-- 0005: access token lifetimes per tenant and per agent class (SQLite).
-- `class` '' is the tenant's default.
CREATE TABLE token_ttls (
    tenant_id  TEXT NOT NULL REFERENCES tenants (id),
    class      TEXT NOT NULL,
    ttl_secs   INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    updated_by TEXT NOT NULL,
    PRIMARY KEY (tenant_id, class)
);
