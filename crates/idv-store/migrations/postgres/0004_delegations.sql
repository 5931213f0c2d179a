-- 0004: delegations and trusted external issuers (PostgreSQL)
CREATE TABLE delegations (
    id             TEXT COLLATE "C" PRIMARY KEY,
    tenant_id      TEXT COLLATE "C" NOT NULL REFERENCES tenants (id),
    delegator_type TEXT NOT NULL,
    delegator      TEXT COLLATE "C" NOT NULL,
    delegate_id    TEXT COLLATE "C" NOT NULL REFERENCES agents (id),
    scopes         TEXT NOT NULL,
    audiences      TEXT NOT NULL,
    task           TEXT,
    max_depth      BIGINT NOT NULL,
    created_at     BIGINT NOT NULL,
    created_by     TEXT NOT NULL,
    expires_at     BIGINT NOT NULL,
    revoked_at     BIGINT
);
-- Exchange looks up the live delegations from one delegator to one agent.
CREATE INDEX delegations_pair ON delegations (tenant_id, delegate_id, delegator);
CREATE INDEX delegations_tenant ON delegations (tenant_id, id);

CREATE TABLE trusted_issuers (
    id         TEXT COLLATE "C" PRIMARY KEY,
    tenant_id  TEXT COLLATE "C" NOT NULL REFERENCES tenants (id),
    issuer     TEXT NOT NULL,
    keys       TEXT NOT NULL,
    audience   TEXT,
    created_at BIGINT NOT NULL,
    created_by TEXT NOT NULL,
    UNIQUE (tenant_id, issuer)
);
