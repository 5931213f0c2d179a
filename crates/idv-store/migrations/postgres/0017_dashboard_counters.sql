-- Counters for the console's overview, kept by triggers in the same
-- transaction as every write of the rows they count, so a dashboard reads a
-- few indexed rows instead of scanning a million agents, and never drifts
-- from the rows. Each counter is split in 16 shards by the last hex digit of
-- the row's id, so concurrent writers rarely wait on one row; readers sum
-- the shards.

-- Agents by status, environment and class ('' when not set).
CREATE TABLE agent_counts (
    tenant_id   TEXT COLLATE "C" NOT NULL,
    status      TEXT NOT NULL,
    environment TEXT NOT NULL,
    class       TEXT NOT NULL,
    shard       TEXT NOT NULL,
    n           BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, status, environment, class, shard)
);

-- Events per tenant and UTC day (days since the Unix epoch): `created`,
-- `retired`, `suspended` (agents) and `compromised` (credentials).
CREATE TABLE daily_counts (
    tenant_id TEXT COLLATE "C" NOT NULL,
    day       BIGINT NOT NULL,
    kind      TEXT NOT NULL,
    shard     TEXT NOT NULL,
    n         BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, day, kind, shard)
);

-- Scalar counters per tenant: `credentials.live` (not revoked).
CREATE TABLE tenant_counts (
    tenant_id TEXT COLLATE "C" NOT NULL,
    name      TEXT NOT NULL,
    shard     TEXT NOT NULL,
    n         BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, name, shard)
);

-- Authorization decisions per tenant, action and UTC hour (hours since the
-- Unix epoch), written with each batch of decisions: the heat map by hour
-- of the week and the denied decisions over time.
CREATE TABLE decision_hours (
    tenant_id TEXT COLLATE "C" NOT NULL,
    hour      BIGINT NOT NULL,
    action    TEXT NOT NULL,
    allowed   BIGINT NOT NULL,
    denied    BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, hour, action)
);

-- Credentials due for rotation: live ones by expiry.
CREATE INDEX credentials_expiry ON credentials (tenant_id, expires_at)
    WHERE revoked_at IS NULL AND expires_at IS NOT NULL;
-- Agents past their time to live.
CREATE INDEX agents_expiry ON agents (tenant_id, expires_at) WHERE expires_at IS NOT NULL AND status <> 'retired';

INSERT INTO agent_counts (tenant_id, status, environment, class, shard, n)
    SELECT tenant_id, status, COALESCE(environment, ''), COALESCE(class, ''), right(id, 1), COUNT(*)
    FROM agents GROUP BY 1, 2, 3, 4, 5;
INSERT INTO daily_counts (tenant_id, day, kind, shard, n)
    SELECT tenant_id, created_at / 86400000000, 'created', right(id, 1), COUNT(*) FROM agents GROUP BY 1, 2, 3, 4;
INSERT INTO daily_counts (tenant_id, day, kind, shard, n)
    SELECT tenant_id, status_changed_at / 86400000000, status, right(id, 1), COUNT(*) FROM agents
    WHERE status IN ('retired', 'suspended') GROUP BY 1, 2, 3, 4;
INSERT INTO daily_counts (tenant_id, day, kind, shard, n)
    SELECT tenant_id, revoked_at / 86400000000, 'compromised', right(id, 1), COUNT(*) FROM credentials
    WHERE revoked_reason = 'compromised' GROUP BY 1, 2, 3, 4;
INSERT INTO tenant_counts (tenant_id, name, shard, n)
    SELECT tenant_id, 'credentials.live', right(id, 1), COUNT(*) FROM credentials
    WHERE revoked_at IS NULL GROUP BY 1, 2, 3;

CREATE FUNCTION idv_count_agent() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        IF TG_OP = 'DELETE' OR OLD.status IS DISTINCT FROM NEW.status
           OR OLD.environment IS DISTINCT FROM NEW.environment OR OLD.class IS DISTINCT FROM NEW.class THEN
            UPDATE agent_counts SET n = n - 1
                WHERE tenant_id = OLD.tenant_id AND status = OLD.status
                AND environment = COALESCE(OLD.environment, '') AND class = COALESCE(OLD.class, '')
                AND shard = right(OLD.id, 1);
        ELSE
            RETURN NULL;
        END IF;
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN NULL;
    END IF;
    INSERT INTO agent_counts (tenant_id, status, environment, class, shard, n)
        VALUES (NEW.tenant_id, NEW.status, COALESCE(NEW.environment, ''), COALESCE(NEW.class, ''), right(NEW.id, 1), 1)
        ON CONFLICT (tenant_id, status, environment, class, shard) DO UPDATE SET n = agent_counts.n + 1;
    IF TG_OP = 'INSERT' THEN
        INSERT INTO daily_counts (tenant_id, day, kind, shard, n)
            VALUES (NEW.tenant_id, NEW.created_at / 86400000000, 'created', right(NEW.id, 1), 1)
            ON CONFLICT (tenant_id, day, kind, shard) DO UPDATE SET n = daily_counts.n + 1;
    ELSIF OLD.status IS DISTINCT FROM NEW.status AND NEW.status IN ('retired', 'suspended') THEN
        INSERT INTO daily_counts (tenant_id, day, kind, shard, n)
            VALUES (NEW.tenant_id, NEW.status_changed_at / 86400000000, NEW.status, right(NEW.id, 1), 1)
            ON CONFLICT (tenant_id, day, kind, shard) DO UPDATE SET n = daily_counts.n + 1;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER agent_counts AFTER INSERT OR UPDATE OF status, environment, class OR DELETE ON agents
    FOR EACH ROW EXECUTE FUNCTION idv_count_agent();

CREATE FUNCTION idv_count_credential() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.revoked_at IS NULL THEN
            INSERT INTO tenant_counts (tenant_id, name, shard, n)
                VALUES (NEW.tenant_id, 'credentials.live', right(NEW.id, 1), 1)
                ON CONFLICT (tenant_id, name, shard) DO UPDATE SET n = tenant_counts.n + 1;
        END IF;
    ELSIF TG_OP = 'DELETE' THEN
        IF OLD.revoked_at IS NULL THEN
            UPDATE tenant_counts SET n = n - 1
                WHERE tenant_id = OLD.tenant_id AND name = 'credentials.live' AND shard = right(OLD.id, 1);
        END IF;
    ELSIF OLD.revoked_at IS NULL AND NEW.revoked_at IS NOT NULL THEN
        UPDATE tenant_counts SET n = n - 1
            WHERE tenant_id = OLD.tenant_id AND name = 'credentials.live' AND shard = right(OLD.id, 1);
        IF NEW.revoked_reason = 'compromised' THEN
            INSERT INTO daily_counts (tenant_id, day, kind, shard, n)
                VALUES (NEW.tenant_id, NEW.revoked_at / 86400000000, 'compromised', right(NEW.id, 1), 1)
                ON CONFLICT (tenant_id, day, kind, shard) DO UPDATE SET n = daily_counts.n + 1;
        END IF;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER credential_counts AFTER INSERT OR UPDATE OF revoked_at OR DELETE ON credentials
    FOR EACH ROW EXECUTE FUNCTION idv_count_credential();
