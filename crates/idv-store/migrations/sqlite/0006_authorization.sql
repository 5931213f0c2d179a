-- 0006: authorization: policy versions, roles, grants, directory entities,
-- approvals, the agent communication graph and permission usage (SQLite).

-- Per tenant: the active policy version and a revision bumped by every change
-- to what decisions depend on (versions, roles, grants, directory).
CREATE TABLE policy_state (
    tenant_id      TEXT PRIMARY KEY REFERENCES tenants (id),
    active_version INTEGER,
    rev            INTEGER NOT NULL
);

CREATE TABLE policy_versions (
    tenant_id    TEXT NOT NULL REFERENCES tenants (id),
    version      INTEGER NOT NULL,
    policies     TEXT NOT NULL,
    schema_text  TEXT,
    policy_ids   TEXT NOT NULL,
    description  TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    created_by   TEXT NOT NULL,
    activated_at INTEGER,
    PRIMARY KEY (tenant_id, version)
);

CREATE TABLE roles (
    tenant_id   TEXT NOT NULL REFERENCES tenants (id),
    name        TEXT NOT NULL,
    description TEXT NOT NULL,
    actions     TEXT NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, name)
);

CREATE TABLE role_grants (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants (id),
    subject_type TEXT NOT NULL,
    subject_id   TEXT NOT NULL,
    role         TEXT,
    action       TEXT,
    condition    TEXT,
    expires_at   INTEGER,
    created_at   INTEGER NOT NULL,
    created_by   TEXT NOT NULL
);
CREATE INDEX role_grants_subject ON role_grants (tenant_id, subject_type, subject_id);

CREATE TABLE directory_entities (
    tenant_id   TEXT NOT NULL REFERENCES tenants (id),
    entity_type TEXT NOT NULL,
    entity_id   TEXT NOT NULL,
    attrs       TEXT NOT NULL,
    parents     TEXT NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, entity_type, entity_id)
);

CREATE TABLE approvals (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants (id),
    agent_id      TEXT,
    subject_type  TEXT NOT NULL,
    subject_id    TEXT NOT NULL,
    action        TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    resource_id   TEXT NOT NULL,
    context       TEXT NOT NULL,
    fingerprint   TEXT NOT NULL,
    reasons       TEXT NOT NULL,
    assignee      TEXT NOT NULL,
    status        TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    decided_at    INTEGER,
    decided_by    TEXT,
    comment       TEXT
);
CREATE INDEX approvals_request ON approvals (tenant_id, fingerprint, status);
CREATE INDEX approvals_status ON approvals (tenant_id, status, created_at);

CREATE TABLE agent_edges (
    tenant_id  TEXT NOT NULL REFERENCES tenants (id),
    caller_id  TEXT NOT NULL,
    callee_id  TEXT NOT NULL,
    action     TEXT NOT NULL,
    allowed    INTEGER NOT NULL,
    denied     INTEGER NOT NULL,
    first_seen INTEGER NOT NULL,
    last_seen  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, caller_id, callee_id, action)
);
CREATE INDEX agent_edges_callee ON agent_edges (tenant_id, callee_id);

CREATE TABLE agent_usage (
    tenant_id     TEXT NOT NULL REFERENCES tenants (id),
    agent_id      TEXT NOT NULL,
    action        TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    count         INTEGER NOT NULL,
    first_used    INTEGER NOT NULL,
    last_used     INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, agent_id, action, resource_type)
);
