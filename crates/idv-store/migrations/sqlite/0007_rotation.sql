-- 0007: credential rotation lineage and successor pick-up (SQLite)
-- A successor names its predecessor and the predecessor its successor; the
-- successor's secret waits for the agent sealed under the master key (for
-- rotations the agent did not ask for) and is erased when collected.
ALTER TABLE credentials ADD COLUMN predecessor_id TEXT;
ALTER TABLE credentials ADD COLUMN successor_id TEXT;
ALTER TABLE credentials ADD COLUMN retire_on_use INTEGER NOT NULL DEFAULT 0;
ALTER TABLE credentials ADD COLUMN revoked_reason TEXT;
ALTER TABLE credentials ADD COLUMN sealed_secret BLOB;

-- Rotation policies: for the whole tenant (scope_id ''), a class or an agent.
CREATE TABLE rotation_policies (
    tenant_id    TEXT NOT NULL REFERENCES tenants (id),
    scope_type   TEXT NOT NULL,
    scope_id     TEXT NOT NULL,
    every_secs   INTEGER,
    max_age_secs INTEGER,
    overlap_secs INTEGER NOT NULL,
    retire       TEXT NOT NULL,
    updated_at   INTEGER NOT NULL,
    updated_by   TEXT NOT NULL,
    PRIMARY KEY (tenant_id, scope_type, scope_id)
);
