-- Console sign-in sessions: server-side, revocable. The cookie carries a
-- random secret; only its keyed hash is stored. A session ends at its
-- absolute expiry, after its idle timeout (last_seen_at), or when someone
-- ends it (sign-out, an administrator, the token it was opened with).
CREATE TABLE console_sessions (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants (id),
    secret_hash  BLOB NOT NULL UNIQUE,
    method       TEXT NOT NULL,
    subject      TEXT NOT NULL,
    issuer       TEXT,
    email        TEXT,
    display_name TEXT NOT NULL,
    role         TEXT NOT NULL,
    platform     INTEGER NOT NULL,
    token_id     TEXT,
    source       TEXT,
    user_agent   TEXT,
    created_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    ended_at     INTEGER,
    ended_by     TEXT,
    end_reason   TEXT
);
CREATE INDEX console_sessions_tenant ON console_sessions (tenant_id, id);
CREATE INDEX console_sessions_subject ON console_sessions (tenant_id, subject, id);
