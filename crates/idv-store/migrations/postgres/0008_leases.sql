-- 0008: dynamic database credentials: target databases, role templates and
-- the leases on the roles made from them (PostgreSQL). A target's admin
-- connection string is stored sealed under the master key.
CREATE TABLE db_targets (
    tenant_id   TEXT COLLATE "C" NOT NULL REFERENCES tenants (id),
    name        TEXT COLLATE "C" NOT NULL,
    host        TEXT NOT NULL,
    port        BIGINT NOT NULL,
    database    TEXT NOT NULL,
    admin_user  TEXT NOT NULL,
    role_prefix TEXT NOT NULL,
    sealed_url  BYTEA NOT NULL,
    updated_at  BIGINT NOT NULL,
    updated_by  TEXT NOT NULL,
    PRIMARY KEY (tenant_id, name)
);

CREATE TABLE db_templates (
    tenant_id        TEXT COLLATE "C" NOT NULL REFERENCES tenants (id),
    name             TEXT COLLATE "C" NOT NULL,
    target           TEXT COLLATE "C" NOT NULL,
    statements       TEXT NOT NULL,
    default_ttl_secs BIGINT NOT NULL,
    max_ttl_secs     BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    updated_by       TEXT NOT NULL,
    PRIMARY KEY (tenant_id, name),
    FOREIGN KEY (tenant_id, target) REFERENCES db_targets (tenant_id, name)
);

CREATE TABLE leases (
    id             TEXT COLLATE "C" PRIMARY KEY,
    tenant_id      TEXT COLLATE "C" NOT NULL REFERENCES tenants (id),
    agent_id       TEXT COLLATE "C" NOT NULL REFERENCES agents (id),
    template       TEXT COLLATE "C" NOT NULL,
    target         TEXT COLLATE "C" NOT NULL,
    username       TEXT COLLATE "C" NOT NULL,
    state          TEXT COLLATE "C" NOT NULL,
    issued_at      BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL,
    max_expires_at BIGINT NOT NULL,
    revoked_at     BIGINT,
    end_reason     TEXT
);
CREATE INDEX leases_agent ON leases (tenant_id, agent_id, state);
CREATE INDEX leases_target ON leases (tenant_id, target, state);
