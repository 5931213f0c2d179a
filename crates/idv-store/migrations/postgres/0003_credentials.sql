-- 0003: agent grants, credentials, signing keys, revoked tokens (PostgreSQL)
ALTER TABLE agents ADD COLUMN grants TEXT NOT NULL DEFAULT '{}';

CREATE TABLE credentials (
    id           TEXT COLLATE "C" PRIMARY KEY,
    tenant_id    TEXT COLLATE "C" NOT NULL REFERENCES tenants (id),
    agent_id     TEXT COLLATE "C" NOT NULL REFERENCES agents (id),
    kind         TEXT NOT NULL,
    hint         TEXT,
    secret_hash  BYTEA UNIQUE,
    jwk          TEXT,
    scopes       TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    created_by   TEXT NOT NULL,
    expires_at   BIGINT,
    revoked_at   BIGINT,
    last_used_at BIGINT
);
CREATE INDEX credentials_agent ON credentials (tenant_id, agent_id, id);

-- Private halves sealed under the master key; the associated data names the
-- tenant and the key id, so a row copied elsewhere does not open.
CREATE TABLE signing_keys (
    id             TEXT COLLATE "C" PRIMARY KEY,
    tenant_id      TEXT COLLATE "C" NOT NULL REFERENCES tenants (id),
    alg            TEXT NOT NULL,
    public_jwk     TEXT NOT NULL,
    sealed_private BYTEA NOT NULL,
    created_at     BIGINT NOT NULL,
    retired_at     BIGINT,
    publish_until  BIGINT
);
CREATE INDEX signing_keys_tenant ON signing_keys (tenant_id, created_at);

-- Access tokens revoked before they expire (RFC 7009); rows may be dropped
-- once `expires_at` has passed.
CREATE TABLE revoked_tokens (
    jti        TEXT COLLATE "C" PRIMARY KEY,
    tenant_id  TEXT COLLATE "C" NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT NOT NULL
);

-- One-time proof and assertion ids (RFC 7523 §3 client assertions, later
-- RFC 9449 DPoP proofs): a second use of a key inside its lifetime is a
-- replay. `key` names the issuer and the jti; rows may be dropped after
-- `expires_at`.
CREATE TABLE seen_jtis (
    key        TEXT COLLATE "C" PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
