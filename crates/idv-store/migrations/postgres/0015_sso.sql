-- Single sign-on for the console: each tenant's OpenID Connect provider.
-- The client secret is sealed under the master key; the role map is JSON
-- (provider group -> role).
CREATE TABLE sso_providers (
    tenant_id     TEXT COLLATE "C" PRIMARY KEY REFERENCES tenants (id),
    issuer        TEXT NOT NULL,
    client_id     TEXT NOT NULL,
    sealed_secret BYTEA NOT NULL,
    scopes        TEXT NOT NULL,
    groups_claim  TEXT NOT NULL,
    role_map      TEXT NOT NULL,
    updated_at    BIGINT NOT NULL,
    updated_by    TEXT NOT NULL
);
