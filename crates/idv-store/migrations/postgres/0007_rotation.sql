-- 0007: credential rotation lineage and successor pick-up (PostgreSQL)
-- A successor names its predecessor and the predecessor its successor; the
-- successor's secret waits for the agent sealed under the master key (for
-- rotations the agent did not ask for) and is erased when collected.
ALTER TABLE credentials ADD COLUMN predecessor_id TEXT COLLATE "C";
ALTER TABLE credentials ADD COLUMN successor_id TEXT COLLATE "C";
ALTER TABLE credentials ADD COLUMN retire_on_use BIGINT NOT NULL DEFAULT 0;
ALTER TABLE credentials ADD COLUMN revoked_reason TEXT;
ALTER TABLE credentials ADD COLUMN sealed_secret BYTEA;

-- Rotation policies: for the whole tenant (scope_id ''), a class or an agent.
CREATE TABLE rotation_policies (
    tenant_id    TEXT COLLATE "C" NOT NULL REFERENCES tenants (id),
    scope_type   TEXT NOT NULL,
    scope_id     TEXT COLLATE "C" NOT NULL,
    every_secs   BIGINT,
    max_age_secs BIGINT,
    overlap_secs BIGINT NOT NULL,
    retire       TEXT NOT NULL,
    updated_at   BIGINT NOT NULL,
    updated_by   TEXT NOT NULL,
    PRIMARY KEY (tenant_id, scope_type, scope_id)
);
