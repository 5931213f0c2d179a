-- Counters for the console's overview, kept by triggers in the same
-- transaction as every write of the rows they count, so a dashboard reads a
-- few indexed rows instead of scanning a million agents, and never drifts
-- from the rows. Each counter is split in 16 shards by the last hex digit of
-- the row's id, so concurrent writers on PostgreSQL rarely wait on one row;
-- readers sum the shards.

-- Agents by status, environment and class ('' when not set).
CREATE TABLE agent_counts (
    tenant_id   TEXT NOT NULL,
    status      TEXT NOT NULL,
    environment TEXT NOT NULL,
    class       TEXT NOT NULL,
    shard       TEXT NOT NULL,
    n           INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, status, environment, class, shard)
) WITHOUT ROWID;

-- Events per tenant and UTC day (days since the Unix epoch): `created`,
-- `retired`, `suspended` (agents) and `compromised` (credentials).
CREATE TABLE daily_counts (
    tenant_id TEXT NOT NULL,
    day       INTEGER NOT NULL,
    kind      TEXT NOT NULL,
    shard     TEXT NOT NULL,
    n         INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, day, kind, shard)
) WITHOUT ROWID;

-- Scalar counters per tenant: `credentials.live` (not revoked).
CREATE TABLE tenant_counts (
    tenant_id TEXT NOT NULL,
    name      TEXT NOT NULL,
    shard     TEXT NOT NULL,
    n         INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, name, shard)
) WITHOUT ROWID;

-- Authorization decisions per tenant, action and UTC hour (hours since the
-- Unix epoch), written with each batch of decisions: the heat map by hour
-- of the week and the denied decisions over time.
CREATE TABLE decision_hours (
    tenant_id TEXT NOT NULL,
    hour      INTEGER NOT NULL,
    action    TEXT NOT NULL,
    allowed   INTEGER NOT NULL,
    denied    INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, hour, action)
) WITHOUT ROWID;

-- Credentials due for rotation: live ones by expiry.
CREATE INDEX credentials_expiry ON credentials (tenant_id, expires_at)
    WHERE revoked_at IS NULL AND expires_at IS NOT NULL;
-- Agents past their time to live.
CREATE INDEX agents_expiry ON agents (tenant_id, expires_at) WHERE expires_at IS NOT NULL AND status <> 'retired';

INSERT INTO agent_counts (tenant_id, status, environment, class, shard, n)
    SELECT tenant_id, status, COALESCE(environment, ''), COALESCE(class, ''), substr(id, -1), COUNT(*)
    FROM agents GROUP BY 1, 2, 3, 4, 5;
INSERT INTO daily_counts (tenant_id, day, kind, shard, n)
    SELECT tenant_id, created_at / 86400000000, 'created', substr(id, -1), COUNT(*) FROM agents GROUP BY 1, 2, 3, 4;
INSERT INTO daily_counts (tenant_id, day, kind, shard, n)
    SELECT tenant_id, status_changed_at / 86400000000, status, substr(id, -1), COUNT(*) FROM agents
    WHERE status IN ('retired', 'suspended') GROUP BY 1, 2, 3, 4;
INSERT INTO daily_counts (tenant_id, day, kind, shard, n)
    SELECT tenant_id, revoked_at / 86400000000, 'compromised', substr(id, -1), COUNT(*) FROM credentials
    WHERE revoked_reason = 'compromised' GROUP BY 1, 2, 3, 4;
INSERT INTO tenant_counts (tenant_id, name, shard, n)
    SELECT tenant_id, 'credentials.live', substr(id, -1), COUNT(*) FROM credentials
    WHERE revoked_at IS NULL GROUP BY 1, 2, 3;

CREATE TRIGGER agent_counts_insert AFTER INSERT ON agents BEGIN
    INSERT INTO agent_counts (tenant_id, status, environment, class, shard, n)
        VALUES (NEW.tenant_id, NEW.status, COALESCE(NEW.environment, ''), COALESCE(NEW.class, ''), substr(NEW.id, -1), 1)
        ON CONFLICT (tenant_id, status, environment, class, shard) DO UPDATE SET n = n + 1;
    INSERT INTO daily_counts (tenant_id, day, kind, shard, n)
        VALUES (NEW.tenant_id, NEW.created_at / 86400000000, 'created', substr(NEW.id, -1), 1)
        ON CONFLICT (tenant_id, day, kind, shard) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER agent_counts_update AFTER UPDATE OF status, environment, class ON agents
WHEN OLD.status IS NOT NEW.status OR OLD.environment IS NOT NEW.environment OR OLD.class IS NOT NEW.class
BEGIN
    UPDATE agent_counts SET n = n - 1
        WHERE tenant_id = OLD.tenant_id AND status = OLD.status AND environment = COALESCE(OLD.environment, '')
        AND class = COALESCE(OLD.class, '') AND shard = substr(OLD.id, -1);
    INSERT INTO agent_counts (tenant_id, status, environment, class, shard, n)
        VALUES (NEW.tenant_id, NEW.status, COALESCE(NEW.environment, ''), COALESCE(NEW.class, ''), substr(NEW.id, -1), 1)
        ON CONFLICT (tenant_id, status, environment, class, shard) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER agent_status_days AFTER UPDATE OF status ON agents
WHEN OLD.status IS NOT NEW.status AND NEW.status IN ('retired', 'suspended')
BEGIN
    INSERT INTO daily_counts (tenant_id, day, kind, shard, n)
        VALUES (NEW.tenant_id, NEW.status_changed_at / 86400000000, NEW.status, substr(NEW.id, -1), 1)
        ON CONFLICT (tenant_id, day, kind, shard) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER agent_counts_delete AFTER DELETE ON agents BEGIN
    UPDATE agent_counts SET n = n - 1
        WHERE tenant_id = OLD.tenant_id AND status = OLD.status AND environment = COALESCE(OLD.environment, '')
        AND class = COALESCE(OLD.class, '') AND shard = substr(OLD.id, -1);
END;

CREATE TRIGGER credential_counts_insert AFTER INSERT ON credentials WHEN NEW.revoked_at IS NULL BEGIN
    INSERT INTO tenant_counts (tenant_id, name, shard, n)
        VALUES (NEW.tenant_id, 'credentials.live', substr(NEW.id, -1), 1)
        ON CONFLICT (tenant_id, name, shard) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER credential_counts_revoke AFTER UPDATE OF revoked_at ON credentials
WHEN OLD.revoked_at IS NULL AND NEW.revoked_at IS NOT NULL
BEGIN
    UPDATE tenant_counts SET n = n - 1
        WHERE tenant_id = OLD.tenant_id AND name = 'credentials.live' AND shard = substr(OLD.id, -1);
    INSERT INTO daily_counts (tenant_id, day, kind, shard, n)
        SELECT NEW.tenant_id, NEW.revoked_at / 86400000000, 'compromised', substr(NEW.id, -1), 1
        WHERE NEW.revoked_reason = 'compromised'
        ON CONFLICT (tenant_id, day, kind, shard) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER credential_counts_delete AFTER DELETE ON credentials WHEN OLD.revoked_at IS NULL BEGIN
    UPDATE tenant_counts SET n = n - 1
        WHERE tenant_id = OLD.tenant_id AND name = 'credentials.live' AND shard = substr(OLD.id, -1);
END;
