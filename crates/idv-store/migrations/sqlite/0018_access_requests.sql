-- Just-in-time access requests: an owner asks for a role or an action for
-- their agent, for a while; an approval makes a grant that ends on its own.
CREATE TABLE access_requests (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL REFERENCES tenants (id),
    agent_id         TEXT NOT NULL REFERENCES agents (id),
    permission_type  TEXT NOT NULL,
    permission       TEXT NOT NULL,
    justification    TEXT NOT NULL,
    duration_secs    INTEGER NOT NULL,
    requested_by     TEXT NOT NULL,
    status           TEXT NOT NULL,
    created_at       INTEGER NOT NULL,
    expires_at       INTEGER NOT NULL,
    decided_by       TEXT,
    decided_at       INTEGER,
    comment          TEXT,
    grant_id         TEXT,
    grant_expires_at INTEGER
) WITHOUT ROWID;
CREATE INDEX access_requests_status ON access_requests (tenant_id, status, id);
CREATE INDEX access_requests_agent ON access_requests (tenant_id, agent_id, id);
