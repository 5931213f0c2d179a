//! Read models across concepts for dashboards: a tenant's key figures in a
//! few grouped queries, never a row per agent.

use std::collections::{HashMap, HashSet};

use sqlx::Row;
use uuid::Uuid;

use crate::row::uuid;
use crate::{Store, StoreError};

/// An agent in the communication graph.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GraphNode {
    /// Id.
    pub id: Uuid,
    /// Name.
    pub name: String,
    /// Status.
    pub status: String,
    /// Environment, if set.
    pub environment: Option<String>,
    /// Owner.
    pub owner: String,
}

/// Calls from one agent to another, over every action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GraphEdge {
    /// Who calls.
    pub caller: Uuid,
    /// Who is called.
    pub callee: Uuid,
    /// Calls allowed.
    pub allowed: i64,
    /// Calls denied.
    pub denied: i64,
}

/// A tenant's agent-to-agent graph: the busiest edges and their agents.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Graph {
    /// The agents the edges join.
    pub nodes: Vec<GraphNode>,
    /// The edges, busiest first.
    pub edges: Vec<GraphEdge>,
    /// Whether there were more edges than asked for.
    pub truncated: bool,
}

/// How often one agent used one action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageCell {
    /// The agent.
    pub agent_id: Uuid,
    /// Its name.
    pub agent_name: String,
    /// The action.
    pub action: String,
    /// Decisions recorded.
    pub count: i64,
}

/// How many agents share one status, environment and class.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentGroup {
    /// `provisioning`, `active`, `suspended` or `retired`.
    pub status: String,
    /// The environment, if set.
    pub environment: Option<String>,
    /// The class, if set.
    pub class: Option<String>,
    /// How many.
    pub count: i64,
}

/// Decisions in one UTC hour.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HourCount {
    /// Hours since the Unix epoch.
    pub hour: i64,
    /// Allowed.
    pub allowed: i64,
    /// Denied.
    pub denied: i64,
}

/// How many events of one kind a tenant had on one day.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DayCount {
    /// Days since the Unix epoch (UTC).
    pub day: i64,
    /// `created`, `retired`, `suspended` (agents), `compromised`
    /// (credentials) or `denied` (authorization decisions).
    pub kind: String,
    /// How many.
    pub n: i64,
}

/// A tenant's key figures.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Figures {
    /// Agents grouped by status, environment and class.
    pub agents: Vec<AgentGroup>,
    /// Approval requests waiting for a decision.
    pub pending_approvals: i64,
    /// Database leases whose role exists (active or being revoked).
    pub live_leases: i64,
    /// Credentials not revoked.
    pub live_credentials: i64,
    /// Live credentials without a successor that expire within the
    /// horizon asked for.
    pub rotations_due: i64,
    /// Live credentials without a successor that have expired within the
    /// last [`OVERDUE_DAYS`] days: the agent holds nothing that works.
    pub rotations_overdue: i64,
    /// Agents past their time to live and not retired (the expiry job is
    /// behind or failing).
    pub agents_past_ttl: i64,
    /// Webhook subscriptions disabled or failing.
    pub failing_webhooks: i64,
    /// Events per day since the day asked for, the tenant's whole registry
    /// only (empty for an owner's view).
    pub days: Vec<DayCount>,
}

/// How far back an expired credential still counts as overdue.
pub const OVERDUE_DAYS: i64 = 30;

const DAY_MICROS: i64 = 86_400_000_000;

/// What [`Store::figures`] counts: whose agents, as of when.
#[derive(Clone, Copy, Debug)]
pub struct FiguresAsk<'a> {
    /// The tenant.
    pub tenant_id: Uuid,
    /// Only the agents this owner owns (and the approvals assigned to
    /// them); `None` for the whole tenant.
    pub owner: Option<&'a str>,
    /// Now.
    pub now: idv_core::Timestamp,
    /// Credentials expiring within this many seconds are due.
    pub due_within_secs: i64,
    /// Events per day from this many days back (0: none).
    pub trend_days: i64,
}

impl Store {
    /// A tenant's key figures, or those of one owner's agents. The whole
    /// tenant's are read from counters (migration 17), never a scan of its
    /// agents; an owner's from their agents, through the owner index.
    pub async fn figures(&self, ask: FiguresAsk<'_>) -> Result<Figures, StoreError> {
        let t = ask.tenant_id.to_string();
        // `$2` is the owner, or NULL for every agent.
        let o = ask.owner.map(str::to_owned);
        let rows = match ask.owner {
            None => {
                sqlx::query(
                    "SELECT status, NULLIF(environment, '') AS environment, NULLIF(class, '') AS class, \
                     CAST(SUM(n) AS BIGINT) AS n FROM agent_counts WHERE tenant_id = $1 \
                     GROUP BY status, environment, class HAVING SUM(n) <> 0 ORDER BY status, environment, class",
                )
                .bind(t.clone())
                .fetch_all(&self.inner.read)
                .await?
            }
            Some(owner) => {
                sqlx::query(
                    "SELECT status, environment, class, COUNT(*) AS n FROM agents WHERE tenant_id = $1 \
                     AND owner = $2 GROUP BY status, environment, class ORDER BY status, environment, class",
                )
                .bind(t.clone())
                .bind(owner.to_owned())
                .fetch_all(&self.inner.read)
                .await?
            }
        };
        let agents = rows
            .iter()
            .map(|r| {
                Ok(AgentGroup {
                    status: r.try_get("status")?,
                    environment: r.try_get("environment")?,
                    class: r.try_get("class")?,
                    count: r.try_get("n")?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        let now = ask.now.as_micros();
        // Each scalar below binds `$1` the tenant and `$2` the owner or NULL.
        let q = |sql: &'static str| sqlx::query(sql).bind(t.clone()).bind(o.clone());
        let live_credentials = self
            .scalar(match ask.owner {
                None => q("SELECT CAST(COALESCE(SUM(n), 0) AS BIGINT) AS n FROM tenant_counts \
                     WHERE tenant_id = $1 AND name = 'credentials.live' AND CAST($2 AS TEXT) IS NULL"),
                Some(_) => q(
                    "SELECT COUNT(*) AS n FROM credentials c WHERE c.tenant_id = $1 AND c.revoked_at IS NULL \
                     AND c.agent_id IN (SELECT id FROM agents WHERE tenant_id = $1 AND owner = $2)",
                ),
            })
            .await?;
        // Live credentials without a successor expiring in [$3, $4).
        let expiring = "SELECT COUNT(*) AS n FROM credentials c WHERE c.tenant_id = $1 AND c.revoked_at IS NULL \
             AND c.expires_at IS NOT NULL AND c.expires_at >= $3 AND c.expires_at < $4 AND c.successor_id IS NULL \
             AND ($2 IS NULL OR c.agent_id IN (SELECT id FROM agents WHERE tenant_id = $1 AND owner = $2))";
        let horizon = now.saturating_add(ask.due_within_secs.saturating_mul(1_000_000));
        let days = if ask.owner.is_none() && ask.trend_days > 0 {
            self.days(&t, now.div_euclid(DAY_MICROS) - ask.trend_days + 1).await?
        } else {
            Vec::new()
        };
        Ok(Figures {
            agents,
            pending_approvals: self
                .scalar(q(
                    "SELECT COUNT(*) AS n FROM approvals WHERE tenant_id = $1 AND status = 'pending' \
                     AND ($2 IS NULL OR assignee = $2)",
                ))
                .await?,
            live_leases: self
                .scalar(q("SELECT COUNT(*) AS n FROM leases l WHERE l.tenant_id = $1 \
                     AND l.state IN ('active', 'revocation_pending') \
                     AND ($2 IS NULL OR l.agent_id IN (SELECT id FROM agents WHERE tenant_id = $1 AND owner = $2))"))
                .await?,
            live_credentials,
            rotations_due: self.scalar(q(expiring).bind(now).bind(horizon)).await?,
            rotations_overdue: self
                .scalar(q(expiring).bind(now - OVERDUE_DAYS * DAY_MICROS).bind(now))
                .await?,
            agents_past_ttl: self
                .scalar(
                    q(
                        "SELECT COUNT(*) AS n FROM agents WHERE tenant_id = $1 AND expires_at IS NOT NULL \
                     AND status <> 'retired' AND expires_at < $3 AND ($2 IS NULL OR owner = $2)",
                    )
                    .bind(now),
                )
                .await?,
            // Webhooks belong to the tenant, not to an owner.
            failing_webhooks: self
                .scalar(q(
                    "SELECT COUNT(*) AS n FROM webhooks WHERE tenant_id = $1 AND CAST($2 AS TEXT) IS NULL \
                     AND (status = 'disabled' OR failing_since IS NOT NULL)",
                ))
                .await?,
            days,
        })
    }

    /// Live credentials without a successor that expire in `[from, to)`,
    /// soonest first, at most `limit`; only `owner`'s agents' when given.
    pub async fn credentials_expiring(
        &self,
        tenant_id: Uuid,
        owner: Option<&str>,
        from: idv_core::Timestamp,
        to: idv_core::Timestamp,
        limit: i64,
    ) -> Result<Vec<idv_core::credential::Credential>, StoreError> {
        let sql = format!(
            "SELECT {} FROM credentials c WHERE c.tenant_id = $1 AND c.revoked_at IS NULL \
             AND c.expires_at IS NOT NULL AND c.expires_at >= $3 AND c.expires_at < $4 AND c.successor_id IS NULL \
             AND ($2 IS NULL OR c.agent_id IN (SELECT id FROM agents WHERE tenant_id = $1 AND owner = $2)) \
             ORDER BY c.expires_at, c.id LIMIT $5",
            crate::credentials::CREDENTIAL_COLS
        );
        sqlx::query(&sql)
            .bind(tenant_id.to_string())
            .bind(owner.map(str::to_owned))
            .bind(from.as_micros())
            .bind(to.as_micros())
            .bind(limit)
            .fetch_all(&self.inner.read)
            .await?
            .iter()
            .map(crate::credentials::credential)
            .collect()
    }

    /// Authorization decisions of the tenant per UTC hour (hours since the
    /// Unix epoch) from hour `since` on, every action summed.
    pub async fn decision_hours(&self, tenant_id: Uuid, since: i64) -> Result<Vec<HourCount>, StoreError> {
        let rows = sqlx::query(
            "SELECT hour, CAST(SUM(allowed) AS BIGINT) AS allowed, CAST(SUM(denied) AS BIGINT) AS denied \
             FROM decision_hours WHERE tenant_id = $1 AND hour >= $2 GROUP BY hour ORDER BY hour",
        )
        .bind(tenant_id.to_string())
        .bind(since)
        .fetch_all(&self.inner.read)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(HourCount {
                    hour: r.try_get("hour")?,
                    allowed: r.try_get("allowed")?,
                    denied: r.try_get("denied")?,
                })
            })
            .collect()
    }

    /// The `limit` tenants with the most agents: id, display name and
    /// count, from the counters (one grouped read, whatever the number of
    /// tenants).
    pub async fn largest_tenants(&self, limit: i64) -> Result<Vec<(Uuid, String, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT t.id, t.display_name, CAST(COALESCE(SUM(c.n), 0) AS BIGINT) AS n FROM tenants t \
             LEFT JOIN agent_counts c ON c.tenant_id = t.id GROUP BY t.id, t.display_name \
             ORDER BY n DESC, t.display_name LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.inner.read)
        .await?;
        rows.iter()
            .map(|r| Ok((uuid(r, "id")?, r.try_get("display_name")?, r.try_get("n")?)))
            .collect()
    }

    async fn scalar(&self, q: crate::row::AnyQuery<'_>) -> Result<i64, StoreError> {
        let r = q.fetch_one(&self.inner.read).await?;
        Ok(r.try_get::<i64, _>("n")?)
    }

    /// Events per day of tenant `t` from day `from` on: the agent and
    /// credential counters, and denied decisions from the hourly sums.
    async fn days(&self, t: &str, from: i64) -> Result<Vec<DayCount>, StoreError> {
        let rows = sqlx::query(
            "SELECT day, kind, CAST(SUM(n) AS BIGINT) AS n FROM daily_counts WHERE tenant_id = $1 AND day >= $2 \
             GROUP BY day, kind \
             UNION ALL SELECT hour / 24 AS day, 'denied' AS kind, CAST(SUM(denied) AS BIGINT) AS n FROM decision_hours \
             WHERE tenant_id = $1 AND hour >= $3 GROUP BY hour / 24 ORDER BY day, kind",
        )
        .bind(t.to_owned())
        .bind(from)
        .bind(from * 24)
        .fetch_all(&self.inner.read)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(DayCount {
                    day: r.try_get("day")?,
                    kind: r.try_get("kind")?,
                    n: r.try_get("n")?,
                })
            })
            .filter(|d: &Result<DayCount, StoreError>| d.as_ref().map_or(true, |d| d.n != 0))
            .collect()
    }

    /// The tenant's agent-to-agent graph: at most `max_edges` caller →
    /// callee pairs (every action summed), busiest first, and the agents
    /// they join.
    pub async fn graph(&self, tenant_id: Uuid, max_edges: i64) -> Result<Graph, StoreError> {
        let t = tenant_id.to_string();
        let rows = sqlx::query(
            "SELECT caller_id, callee_id, CAST(SUM(allowed) AS BIGINT) AS allowed, \
             CAST(SUM(denied) AS BIGINT) AS denied FROM agent_edges WHERE tenant_id = $1 \
             GROUP BY caller_id, callee_id ORDER BY SUM(allowed) + SUM(denied) DESC, caller_id, callee_id LIMIT $2",
        )
        .bind(t.clone())
        .bind(max_edges.saturating_add(1))
        .fetch_all(&self.inner.read)
        .await?;
        let mut edges = rows
            .iter()
            .map(|r| {
                Ok(GraphEdge {
                    caller: uuid(r, "caller_id")?,
                    callee: uuid(r, "callee_id")?,
                    allowed: r.try_get("allowed")?,
                    denied: r.try_get("denied")?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let truncated = edges.len() as i64 > max_edges;
        edges.truncate(usize::try_from(max_edges).unwrap_or(0));
        let joined: HashSet<Uuid> = edges.iter().flat_map(|e| [e.caller, e.callee]).collect();
        let rows = sqlx::query(
            "SELECT id, name, status, environment, owner FROM agents WHERE tenant_id = $1 AND id IN \
             (SELECT caller_id FROM agent_edges WHERE tenant_id = $1 UNION SELECT callee_id FROM agent_edges \
             WHERE tenant_id = $1) ORDER BY id",
        )
        .bind(t)
        .fetch_all(&self.inner.read)
        .await?;
        let mut nodes = Vec::new();
        for r in &rows {
            let id = uuid(r, "id")?;
            if joined.contains(&id) {
                nodes.push(GraphNode {
                    id,
                    name: r.try_get("name")?,
                    status: r.try_get("status")?,
                    environment: r.try_get("environment")?,
                    owner: r.try_get("owner")?,
                });
            }
        }
        Ok(Graph {
            nodes,
            edges,
            truncated,
        })
    }

    /// Which actions the tenant's `top_agents` busiest agents used, and how
    /// often (every resource type summed).
    pub async fn usage_matrix(&self, tenant_id: Uuid, top_agents: usize) -> Result<Vec<UsageCell>, StoreError> {
        let rows = sqlx::query(
            "SELECT u.agent_id, a.name, u.action, CAST(SUM(u.count) AS BIGINT) AS n FROM agent_usage u \
             JOIN agents a ON a.id = u.agent_id AND a.tenant_id = u.tenant_id WHERE u.tenant_id = $1 \
             GROUP BY u.agent_id, a.name, u.action ORDER BY u.agent_id, u.action",
        )
        .bind(tenant_id.to_string())
        .fetch_all(&self.inner.read)
        .await?;
        let cells = rows
            .iter()
            .map(|r| {
                Ok(UsageCell {
                    agent_id: uuid(r, "agent_id")?,
                    agent_name: r.try_get("name")?,
                    action: r.try_get("action")?,
                    count: r.try_get("n")?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let mut totals: HashMap<Uuid, i64> = HashMap::new();
        for c in &cells {
            *totals.entry(c.agent_id).or_default() += c.count;
        }
        let mut busiest: Vec<(Uuid, i64)> = totals.into_iter().collect();
        busiest.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let keep: HashSet<Uuid> = busiest.into_iter().take(top_agents).map(|(id, _)| id).collect();
        Ok(cells.into_iter().filter(|c| keep.contains(&c.agent_id)).collect())
    }

    /// How many audit events of `action` the tenant recorded since `since`
    /// (successes only).
    pub async fn count_events(
        &self,
        tenant_id: Uuid,
        action: idv_core::audit::Action,
        since: idv_core::Timestamp,
    ) -> Result<i64, StoreError> {
        let r = sqlx::query(
            "SELECT COUNT(*) AS n FROM audit_events WHERE tenant_id = $1 AND action = $2 AND outcome = 'success' \
             AND time >= $3",
        )
        .bind(tenant_id.to_string())
        .bind(action.as_str().to_owned())
        .bind(since.as_micros())
        .fetch_one(&self.inner.read)
        .await?;
        Ok(r.try_get::<i64, _>("n")?)
    }
}
