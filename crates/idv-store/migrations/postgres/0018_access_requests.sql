-- Just-in-time access requests: an owner asks for a role or an action for
-- their agent, for a while; an approval makes a grant that ends on its own.
CREATE TABLE access_requests (
    id               TEXT COLLATE "C" PRIMARY KEY,
    tenant_id        TEXT COLLATE "C" NOT NULL REFERENCES tenants (id),
    agent_id         TEXT COLLATE "C" NOT NULL REFERENCES agents (id),
    permission_type  TEXT NOT NULL,
    permission       TEXT NOT NULL,
    justification    TEXT NOT NULL,
    duration_secs    BIGINT NOT NULL,
    requested_by     TEXT NOT NULL,
    status           TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    expires_at       BIGINT NOT NULL,
    decided_by       TEXT,
    decided_at       BIGINT,
    comment          TEXT,
    grant_id         TEXT,
    grant_expires_at BIGINT
);
CREATE INDEX access_requests_status ON access_requests (tenant_id, status, id);
CREATE INDEX access_requests_agent ON access_requests (tenant_id, agent_id, id);
