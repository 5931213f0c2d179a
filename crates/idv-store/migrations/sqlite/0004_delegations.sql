-- 0004: delegations and trusted external issuers (SQLite)
CREATE TABLE delegations (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL REFERENCES tenants (id),
    delegator_type TEXT NOT NULL,
    delegator      TEXT NOT NULL,
    delegate_id    TEXT NOT NULL REFERENCES agents (id),
    scopes         TEXT NOT NULL,
    audiences      TEXT NOT NULL,
    task           TEXT,
    max_depth      INTEGER NOT NULL,
    created_at     INTEGER NOT NULL,
    created_by     TEXT NOT NULL,
    expires_at     INTEGER NOT NULL,
    revoked_at     INTEGER
);
-- Exchange looks up the live delegations from one delegator to one agent.
CREATE INDEX delegations_pair ON delegations (tenant_id, delegate_id, delegator);
CREATE INDEX delegations_tenant ON delegations (tenant_id, id);

CREATE TABLE trusted_issuers (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL REFERENCES tenants (id),
    issuer     TEXT NOT NULL,
    keys       TEXT NOT NULL,
    audience   TEXT,
    created_at INTEGER NOT NULL,
    created_by TEXT NOT NULL,
    UNIQUE (tenant_id, issuer)
);
