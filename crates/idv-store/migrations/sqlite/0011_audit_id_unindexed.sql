-- 0011: the audit table without a unique index on `id` (SQLite). Events are
-- appended by one writer per database, which takes every `id` from one
-- monotonic UUIDv7 context, so the index could never refuse a row; what it
-- cost was a B-tree insert per event and, because SQLite rebalances an index
-- that only grows at its right edge three pages at a time, ~2.6 of the ~10
-- pages every group commit wrote to the WAL and synced. No query looks an
-- event up by `id`; lists go by `seq` (the rowid) or `(tenant_id, seq)`.
-- SQLite cannot drop a constraint's index, so the table is rebuilt (once;
-- every row is copied as it is, the chain is unchanged).
CREATE TABLE audit_events_new (
    seq            INTEGER PRIMARY KEY,
    id             TEXT NOT NULL,
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
INSERT INTO audit_events_new SELECT seq, id, time, tenant_id, actor_kind, actor_name, actor_token_id,
    action, target_type, target_id, outcome, reason, request_id, details, prev_hash, hash
    FROM audit_events ORDER BY seq;
DROP TABLE audit_events;
ALTER TABLE audit_events_new RENAME TO audit_events;
CREATE INDEX audit_events_tenant ON audit_events (tenant_id, seq);
