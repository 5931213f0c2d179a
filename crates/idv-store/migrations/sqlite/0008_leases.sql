-- 0008: dynamic database credentials: target databases, role templates and
-- the leases on the roles made from them (SQLite). A target's admin
-- connection string is stored sealed under the master key.
CREATE TABLE db_targets (
    tenant_id   TEXT NOT NULL REFERENCES tenants (id),
    name        TEXT NOT NULL,
    host        TEXT NOT NULL,
    port        INTEGER NOT NULL,
    database    TEXT NOT NULL,
    admin_user  TEXT NOT NULL,
    role_prefix TEXT NOT NULL,
    sealed_url  BLOB NOT NULL,
    updated_at  INTEGER NOT NULL,
    updated_by  TEXT NOT NULL,
    PRIMARY KEY (tenant_id, name)
);

CREATE TABLE db_templates (
    tenant_id        TEXT NOT NULL REFERENCES tenants (id),
    name             TEXT NOT NULL,
    target           TEXT NOT NULL,
    statements       TEXT NOT NULL,
    default_ttl_secs INTEGER NOT NULL,
    max_ttl_secs     INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    updated_by       TEXT NOT NULL,
    PRIMARY KEY (tenant_id, name),
    FOREIGN KEY (tenant_id, target) REFERENCES db_targets (tenant_id, name)
);

CREATE TABLE leases (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL REFERENCES tenants (id),
    agent_id       TEXT NOT NULL REFERENCES agents (id),
    template       TEXT NOT NULL,
    target         TEXT NOT NULL,
    username       TEXT NOT NULL,
    state          TEXT NOT NULL,
    issued_at      INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    max_expires_at INTEGER NOT NULL,
    revoked_at     INTEGER,
    end_reason     TEXT
);
CREATE INDEX leases_agent ON leases (tenant_id, agent_id, state);
CREATE INDEX leases_target ON leases (tenant_id, target, state);
