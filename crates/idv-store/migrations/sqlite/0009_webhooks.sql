-- 0009: outbound webhooks (SQLite). A subscription is a cursor over the
-- audit chain (`cursor_seq`) plus an event filter; the dispatcher turns the
-- matching events after the cursor into deliveries, each attempted by a
-- `webhook.deliver` job. Signing secrets are stored sealed under the master key.
CREATE TABLE webhooks (
    id                     TEXT PRIMARY KEY,
    tenant_id              TEXT NOT NULL REFERENCES tenants (id),
    url                    TEXT NOT NULL,
    events                 TEXT NOT NULL,
    description            TEXT,
    status                 TEXT NOT NULL,
    disabled_reason        TEXT,
    disabled_at            INTEGER,
    sealed_secret          BLOB NOT NULL,
    sealed_previous_secret BLOB,
    previous_secret_until  INTEGER,
    cursor_seq             INTEGER NOT NULL,
    consecutive_failures   INTEGER NOT NULL DEFAULT 0,
    failing_since          INTEGER,
    last_success_at        INTEGER,
    created_at             INTEGER NOT NULL,
    created_by             TEXT NOT NULL,
    updated_at             INTEGER NOT NULL
);
CREATE INDEX webhooks_tenant ON webhooks (tenant_id, id);
CREATE INDEX webhooks_behind ON webhooks (status, cursor_seq);

CREATE TABLE webhook_deliveries (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL REFERENCES tenants (id),
    webhook_id       TEXT NOT NULL REFERENCES webhooks (id),
    event_type       TEXT NOT NULL,
    event_id         TEXT,
    payload          TEXT NOT NULL,
    status           TEXT NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER,
    created_at       INTEGER NOT NULL,
    last_attempt_at  INTEGER,
    last_status_code INTEGER,
    last_error       TEXT,
    last_duration_ms INTEGER,
    delivered_at     INTEGER
);
CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries (webhook_id, id);
CREATE INDEX webhook_deliveries_status ON webhook_deliveries (webhook_id, status);
