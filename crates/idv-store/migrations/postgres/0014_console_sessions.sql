-- Console sign-in sessions: server-side, revocable. The cookie carries a
-- random secret; only its keyed hash is stored. A session ends at its
-- absolute expiry, after its idle timeout (last_seen_at), or when someone
-- ends it (sign-out, an administrator, the token it was opened with).
CREATE TABLE console_sessions (
    id           TEXT COLLATE "C" PRIMARY KEY,
    tenant_id    TEXT COLLATE "C" NOT NULL REFERENCES tenants (id),
    secret_hash  BYTEA NOT NULL UNIQUE,
    method       TEXT NOT NULL,
    subject      TEXT NOT NULL,
    issuer       TEXT,
    email        TEXT,
    display_name TEXT NOT NULL,
    role         TEXT NOT NULL,
    platform     BIGINT NOT NULL,
    token_id     TEXT,
    source       TEXT,
    user_agent   TEXT,
    created_at   BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    ended_at     BIGINT,
    ended_by     TEXT,
    end_reason   TEXT
);
CREATE INDEX console_sessions_tenant ON console_sessions (tenant_id, id);
CREATE INDEX console_sessions_subject ON console_sessions (tenant_id, subject, id);
