-- 0001: tenants, admin tokens, agents, audit chain, jobs (SQLite)
CREATE TABLE idv_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE tenants (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    created_at   INTEGER NOT NULL
);

CREATE TABLE admin_tokens (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants (id),
    name        TEXT NOT NULL,
    role        TEXT NOT NULL,
    platform    INTEGER NOT NULL,
    hint        TEXT NOT NULL,
    secret_hash BLOB NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL,
    created_by  TEXT NOT NULL,
    expires_at  INTEGER,
    revoked_at  INTEGER
);
CREATE INDEX admin_tokens_tenant ON admin_tokens (tenant_id, id);

CREATE TABLE agents (
    id                TEXT PRIMARY KEY,
    tenant_id         TEXT NOT NULL REFERENCES tenants (id),
    name              TEXT NOT NULL,
    owner             TEXT NOT NULL,
    purpose           TEXT NOT NULL,
    environment       TEXT,
    team              TEXT,
    labels            TEXT NOT NULL,
    capabilities      TEXT NOT NULL,
    class             TEXT,
    parent_type       TEXT,
    parent_id         TEXT,
    depends_on        TEXT NOT NULL,
    status            TEXT NOT NULL,
    status_reason     TEXT,
    status_changed_at INTEGER NOT NULL,
    status_changed_by TEXT NOT NULL,
    expires_at        INTEGER,
    created_at        INTEGER NOT NULL,
    created_by        TEXT NOT NULL,
    updated_at        INTEGER NOT NULL,
    version           INTEGER NOT NULL,
    UNIQUE (tenant_id, name)
) WITHOUT ROWID;
CREATE INDEX agents_tenant_id ON agents (tenant_id, id);

CREATE TABLE agent_labels (
    agent_id  TEXT NOT NULL REFERENCES agents (id),
    tenant_id TEXT NOT NULL,
    key       TEXT NOT NULL,
    value     TEXT NOT NULL,
    PRIMARY KEY (agent_id, key)
) WITHOUT ROWID;
CREATE INDEX agent_labels_lookup ON agent_labels (tenant_id, key, value, agent_id);

CREATE TABLE audit_events (
    seq            INTEGER PRIMARY KEY,
    id             TEXT NOT NULL UNIQUE,
    time           INTEGER NOT NULL,
    tenant_id      TEXT NOT NULL,
    actor_kind     TEXT NOT NULL,
    actor_name     TEXT NOT NULL,
    actor_token_id TEXT,
    action         TEXT NOT NULL,
    target_type    TEXT NOT NULL,
    target_id      TEXT NOT NULL,
    outcome        TEXT NOT NULL,
    reason         TEXT,
    request_id     TEXT,
    details        TEXT NOT NULL,
    prev_hash      BLOB NOT NULL,
    hash           BLOB NOT NULL
);
CREATE INDEX audit_events_tenant ON audit_events (tenant_id, seq);

CREATE TABLE jobs (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL,
    kind         TEXT NOT NULL,
    target_id    TEXT NOT NULL,
    run_at       INTEGER NOT NULL,
    locked_until INTEGER,
    attempts     INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT
);
CREATE INDEX jobs_due ON jobs (run_at);
CREATE INDEX jobs_target ON jobs (target_id);
