-- 0005: access token lifetimes per tenant and per agent class (PostgreSQL).
-- `class` '' is the tenant's default.
CREATE TABLE token_ttls (
    tenant_id  TEXT COLLATE "C" NOT NULL REFERENCES tenants (id),
    class      TEXT COLLATE "C" NOT NULL,
    ttl_secs   BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    updated_by TEXT NOT NULL,
    PRIMARY KEY (tenant_id, class)
);
