-- 0001: tenants, admin tokens, agents, audit chain, jobs (PostgreSQL)
CREATE TABLE idv_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE tenants (
    id           TEXT COLLATE "C" PRIMARY KEY,
    name         TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    created_at   BIGINT NOT NULL
);

CREATE TABLE admin_tokens (
    id          TEXT COLLATE "C" PRIMARY KEY,
    tenant_id   TEXT COLLATE "C" NOT NULL REFERENCES tenants (id),
    name        TEXT NOT NULL,
    role        TEXT NOT NULL,
    platform    BIGINT NOT NULL,
    hint        TEXT NOT NULL,
    secret_hash BYTEA NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL,
    created_by  TEXT NOT NULL,
    expires_at  BIGINT,
    revoked_at  BIGINT
);
CREATE INDEX admin_tokens_tenant ON admin_tokens (tenant_id, id);

CREATE TABLE agents (
    id                TEXT COLLATE "C" PRIMARY KEY,
    tenant_id         TEXT COLLATE "C" NOT NULL REFERENCES tenants (id),
    name              TEXT NOT NULL,
    owner             TEXT NOT NULL,
    purpose           TEXT NOT NULL,
    environment       TEXT,
    team              TEXT,
    labels            TEXT NOT NULL,
    capabilities      TEXT NOT NULL,
    class             TEXT,
    parent_type       TEXT,
    parent_id         TEXT COLLATE "C",
    depends_on        TEXT NOT NULL,
    status            TEXT NOT NULL,
    status_reason     TEXT,
    status_changed_at BIGINT NOT NULL,
    status_changed_by TEXT NOT NULL,
    expires_at        BIGINT,
    created_at        BIGINT NOT NULL,
    created_by        TEXT NOT NULL,
    updated_at        BIGINT NOT NULL,
    version           BIGINT NOT NULL,
    UNIQUE (tenant_id, name)
);
CREATE INDEX agents_tenant_id ON agents (tenant_id, id);

CREATE TABLE agent_labels (
    agent_id  TEXT COLLATE "C" NOT NULL REFERENCES agents (id),
    tenant_id TEXT COLLATE "C" NOT NULL,
    key       TEXT NOT NULL,
    value     TEXT NOT NULL,
    PRIMARY KEY (agent_id, key)
);
CREATE INDEX agent_labels_lookup ON agent_labels (tenant_id, key, value, agent_id);

CREATE TABLE audit_events (
    seq            BIGINT PRIMARY KEY,
    id             TEXT COLLATE "C" NOT NULL UNIQUE,
    time           BIGINT NOT NULL,
    tenant_id      TEXT COLLATE "C" NOT NULL,
    actor_kind     TEXT NOT NULL,
    actor_name     TEXT NOT NULL,
    actor_token_id TEXT COLLATE "C",
    action         TEXT NOT NULL,
    target_type    TEXT NOT NULL,
    target_id      TEXT COLLATE "C" NOT NULL,
    outcome        TEXT NOT NULL,
    reason         TEXT,
    request_id     TEXT COLLATE "C",
    details        TEXT NOT NULL,
    prev_hash      BYTEA NOT NULL,
    hash           BYTEA NOT NULL
);
CREATE INDEX audit_events_tenant ON audit_events (tenant_id, seq);

CREATE TABLE jobs (
    id           TEXT COLLATE "C" PRIMARY KEY,
    tenant_id    TEXT COLLATE "C" NOT NULL,
    kind         TEXT NOT NULL,
    target_id    TEXT COLLATE "C" NOT NULL,
    run_at       BIGINT NOT NULL,
    locked_until BIGINT,
    attempts     BIGINT NOT NULL DEFAULT 0,
    last_error   TEXT
);
CREATE INDEX jobs_due ON jobs (run_at);
CREATE INDEX jobs_target ON jobs (target_id);
