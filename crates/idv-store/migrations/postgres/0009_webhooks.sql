-- 0009: outbound webhooks (PostgreSQL). A subscription is a cursor over the
-- audit chain (`cursor_seq`) plus an event filter; the dispatcher turns the
-- matching events after the cursor into deliveries, each attempted by a
-- `webhook.deliver` job. Signing secrets are stored sealed under the master key.
CREATE TABLE webhooks (
    id                     TEXT COLLATE "C" PRIMARY KEY,
    tenant_id              TEXT COLLATE "C" NOT NULL REFERENCES tenants (id),
    url                    TEXT NOT NULL,
    events                 TEXT NOT NULL,
    description            TEXT,
    status                 TEXT COLLATE "C" NOT NULL,
    disabled_reason        TEXT,
    disabled_at            BIGINT,
    sealed_secret          BYTEA NOT NULL,
    sealed_previous_secret BYTEA,
    previous_secret_until  BIGINT,
    cursor_seq             BIGINT NOT NULL,
    consecutive_failures   BIGINT NOT NULL DEFAULT 0,
    failing_since          BIGINT,
    last_success_at        BIGINT,
    created_at             BIGINT NOT NULL,
    created_by             TEXT NOT NULL,
    updated_at             BIGINT NOT NULL
);
CREATE INDEX webhooks_tenant ON webhooks (tenant_id, id);
CREATE INDEX webhooks_behind ON webhooks (status, cursor_seq);

CREATE TABLE webhook_deliveries (
    id               TEXT COLLATE "C" PRIMARY KEY,
    tenant_id        TEXT COLLATE "C" NOT NULL REFERENCES tenants (id),
    webhook_id       TEXT COLLATE "C" NOT NULL REFERENCES webhooks (id),
    event_type       TEXT NOT NULL,
    event_id         TEXT,
    payload          TEXT NOT NULL,
    status           TEXT COLLATE "C" NOT NULL,
    attempts         BIGINT NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT,
    created_at       BIGINT NOT NULL,
    last_attempt_at  BIGINT,
    last_status_code BIGINT,
    last_error       TEXT,
    last_duration_ms BIGINT,
    delivered_at     BIGINT
);
CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries (webhook_id, id);
CREATE INDEX webhook_deliveries_status ON webhook_deliveries (webhook_id, status);
