//! Read-side queries, served from the read pool (never the writer).

use idv_core::Timestamp;
use idv_core::admin_token::AdminToken;
use idv_core::agent::{Agent, Environment};
use idv_core::audit::{Event, Head, Outcome};
use idv_core::credential::Credential;
use idv_core::delegation::{Delegation, Delegator};
use idv_core::lifecycle::Status;
use idv_core::tenant::Tenant;
use idv_core::trusted_issuer::TrustedIssuer;
use sqlx::Row;
use sqlx::any::AnyRow;
use uuid::Uuid;

use crate::row::{
    self, AGENT_COLS, CREDENTIAL_COLS, DELEGATION_COLS, EVENT_COLS, ISSUER_COLS, TENANT_COLS, TOKEN_COLS,
};
use crate::{Store, StoreError};

/// A bound value in a dynamically built query.
#[derive(Debug)]
enum Arg {
    Text(String),
    Int(i64),
}

/// A query assembled from optional filters, numbering `$n` as it goes.
#[derive(Debug, Default)]
struct Sql {
    text: String,
    args: Vec<Arg>,
}

impl Sql {
    fn new(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            args: Vec::new(),
        }
    }
    /// Appends `clause`, replacing each `?` with the next placeholder for `arg`.
    fn and(&mut self, clause: &str, args: Vec<Arg>) -> &mut Self {
        let mut parts = clause.split('?');
        self.text.push_str(" AND ");
        if let Some(first) = parts.next() {
            self.text.push_str(first);
        }
        for (part, arg) in parts.zip(args) {
            self.args.push(arg);
            self.text.push('$');
            self.text.push_str(&self.args.len().to_string());
            self.text.push_str(part);
        }
        self
    }
    fn push(&mut self, s: &str) -> &mut Self {
        self.text.push_str(s);
        self
    }
    fn bind_next(&mut self, arg: Arg) -> String {
        self.args.push(arg);
        format!("${}", self.args.len())
    }
    async fn fetch_all(&self, store: &Store) -> Result<Vec<AnyRow>, StoreError> {
        let mut q = sqlx::query(&self.text);
        for a in &self.args {
            q = match a {
                Arg::Text(s) => q.bind(s.clone()),
                Arg::Int(i) => q.bind(*i),
            };
        }
        Ok(q.fetch_all(&store.inner.read).await?)
    }
}

/// Filters for listing agents; every field narrows the result.
#[derive(Clone, Debug, Default)]
pub struct AgentFilter {
    /// Only in this status.
    pub status: Option<Status>,
    /// Only with this owner.
    pub owner: Option<String>,
    /// Only in this environment.
    pub environment: Option<Environment>,
    /// Only of this class.
    pub class: Option<String>,
    /// Only with every one of these labels.
    pub labels: Vec<(String, String)>,
    /// Only whose name starts with this.
    pub name_prefix: Option<String>,
    /// Keyset cursor: only ids after this one.
    pub after: Option<Uuid>,
    /// At most this many.
    pub limit: i64,
}

/// Filters for reading the audit log.
#[derive(Clone, Debug, Default)]
pub struct AuditFilter {
    /// Only events of this tenant (`None`: every tenant, for whole-chain checks).
    pub tenant_id: Option<Uuid>,
    /// Only this action, e.g. `agent.create`.
    pub action: Option<String>,
    /// Only about this target.
    pub target_id: Option<String>,
    /// Only by this admin token.
    pub actor_token_id: Option<Uuid>,
    /// Only with this outcome.
    pub outcome: Option<Outcome>,
    /// Only at or after this time.
    pub since: Option<Timestamp>,
    /// Only before this time.
    pub until: Option<Timestamp>,
    /// Keyset cursor: only events after this sequence number.
    pub after_seq: i64,
    /// At most this many.
    pub limit: i64,
}

impl Store {
    /// A tenant by id.
    pub async fn tenant(&self, id: Uuid) -> Result<Option<Tenant>, StoreError> {
        let sql = format!("SELECT {TENANT_COLS} FROM tenants WHERE id = $1");
        let r = sqlx::query(&sql)
            .bind(id.to_string())
            .fetch_optional(&self.inner.read)
            .await?;
        r.as_ref().map(row::tenant).transpose()
    }

    /// A tenant by name.
    pub async fn tenant_by_name(&self, name: &str) -> Result<Option<Tenant>, StoreError> {
        let sql = format!("SELECT {TENANT_COLS} FROM tenants WHERE name = $1");
        let r = sqlx::query(&sql)
            .bind(name.to_owned())
            .fetch_optional(&self.inner.read)
            .await?;
        r.as_ref().map(row::tenant).transpose()
    }

    /// Tenants in id order, after `after`.
    pub async fn tenants(&self, after: Option<Uuid>, limit: i64) -> Result<Vec<Tenant>, StoreError> {
        let mut sql = Sql::new(format!("SELECT {TENANT_COLS} FROM tenants WHERE 1 = 1"));
        if let Some(a) = after {
            sql.and("id > ?", vec![Arg::Text(a.to_string())]);
        }
        let lim = sql.bind_next(Arg::Int(limit));
        sql.push(&format!(" ORDER BY id LIMIT {lim}"));
        sql.fetch_all(self).await?.iter().map(row::tenant).collect()
    }

    /// The admin token whose secret hashes to `hash`, if any (revoked and
    /// expired ones included; the caller checks [`AdminToken::is_usable`]).
    pub async fn admin_token_by_hash(&self, hash: &[u8; 32]) -> Result<Option<AdminToken>, StoreError> {
        let sql = format!("SELECT {TOKEN_COLS} FROM admin_tokens WHERE secret_hash = $1");
        let r = sqlx::query(&sql)
            .bind(hash.to_vec())
            .fetch_optional(&self.inner.read)
            .await?;
        r.as_ref().map(row::admin_token).transpose()
    }

    /// Whether any admin token exists at all (first start).
    pub async fn any_admin_token(&self) -> Result<bool, StoreError> {
        let r = sqlx::query("SELECT 1 FROM admin_tokens LIMIT 1")
            .fetch_optional(&self.inner.read)
            .await?;
        Ok(r.is_some())
    }

    /// One admin token of a tenant.
    pub async fn admin_token(&self, tenant_id: Uuid, id: Uuid) -> Result<Option<AdminToken>, StoreError> {
        let sql = format!("SELECT {TOKEN_COLS} FROM admin_tokens WHERE tenant_id = $1 AND id = $2");
        let r = sqlx::query(&sql)
            .bind(tenant_id.to_string())
            .bind(id.to_string())
            .fetch_optional(&self.inner.read)
            .await?;
        r.as_ref().map(row::admin_token).transpose()
    }

    /// A tenant's admin tokens in id order, after `after`.
    pub async fn admin_tokens(
        &self,
        tenant_id: Uuid,
        after: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<AdminToken>, StoreError> {
        let mut sql = Sql::new(format!("SELECT {TOKEN_COLS} FROM admin_tokens WHERE 1 = 1"));
        sql.and("tenant_id = ?", vec![Arg::Text(tenant_id.to_string())]);
        if let Some(a) = after {
            sql.and("id > ?", vec![Arg::Text(a.to_string())]);
        }
        let lim = sql.bind_next(Arg::Int(limit));
        sql.push(&format!(" ORDER BY id LIMIT {lim}"));
        sql.fetch_all(self).await?.iter().map(row::admin_token).collect()
    }

    /// The credential whose secret hashes to `hash`, if any (revoked and
    /// expired ones included; the caller checks `Credential::is_usable`).
    pub async fn credential_by_hash(&self, hash: &[u8; 32]) -> Result<Option<Credential>, StoreError> {
        let sql = format!("SELECT {CREDENTIAL_COLS} FROM credentials WHERE secret_hash = $1");
        let r = sqlx::query(&sql)
            .bind(hash.to_vec())
            .fetch_optional(&self.inner.read)
            .await?;
        r.as_ref().map(row::credential).transpose()
    }

    /// One credential of a tenant.
    pub async fn credential(&self, tenant_id: Uuid, id: Uuid) -> Result<Option<Credential>, StoreError> {
        let sql = format!("SELECT {CREDENTIAL_COLS} FROM credentials WHERE tenant_id = $1 AND id = $2");
        let r = sqlx::query(&sql)
            .bind(tenant_id.to_string())
            .bind(id.to_string())
            .fetch_optional(&self.inner.read)
            .await?;
        r.as_ref().map(row::credential).transpose()
    }

    /// An agent's credentials (revoked ones included), oldest first.
    pub async fn credentials(&self, tenant_id: Uuid, agent_id: Uuid) -> Result<Vec<Credential>, StoreError> {
        let sql =
            format!("SELECT {CREDENTIAL_COLS} FROM credentials WHERE tenant_id = $1 AND agent_id = $2 ORDER BY id");
        let rows = sqlx::query(&sql)
            .bind(tenant_id.to_string())
            .bind(agent_id.to_string())
            .fetch_all(&self.inner.read)
            .await?;
        rows.iter().map(row::credential).collect()
    }

    /// Whether the access token with this `jti` was revoked.
    pub async fn is_token_revoked(&self, jti: &str) -> Result<bool, StoreError> {
        let r = sqlx::query("SELECT 1 FROM revoked_tokens WHERE jti = $1")
            .bind(jti.to_owned())
            .fetch_optional(&self.inner.read)
            .await?;
        Ok(r.is_some())
    }

    /// One delegation of a tenant.
    pub async fn delegation(&self, tenant_id: Uuid, id: Uuid) -> Result<Option<Delegation>, StoreError> {
        let sql = format!("SELECT {DELEGATION_COLS} FROM delegations WHERE tenant_id = $1 AND id = $2");
        let r = sqlx::query(&sql)
            .bind(tenant_id.to_string())
            .bind(id.to_string())
            .fetch_optional(&self.inner.read)
            .await?;
        r.as_ref().map(row::delegation).transpose()
    }

    /// A tenant's delegations in id order after `after`, optionally only
    /// those to agent `delegate`.
    pub async fn delegations(
        &self,
        tenant_id: Uuid,
        delegate: Option<Uuid>,
        after: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<Delegation>, StoreError> {
        let mut sql = Sql::new(format!("SELECT {DELEGATION_COLS} FROM delegations WHERE 1 = 1"));
        sql.and("tenant_id = ?", vec![Arg::Text(tenant_id.to_string())]);
        if let Some(d) = delegate {
            sql.and("delegate_id = ?", vec![Arg::Text(d.to_string())]);
        }
        if let Some(a) = after {
            sql.and("id > ?", vec![Arg::Text(a.to_string())]);
        }
        let lim = sql.bind_next(Arg::Int(limit));
        sql.push(&format!(" ORDER BY id LIMIT {lim}"));
        sql.fetch_all(self).await?.iter().map(row::delegation).collect()
    }

    /// Delegations from `delegator` to agent `delegate` (revoked and expired
    /// ones included), newest first.
    pub async fn delegations_between(
        &self,
        tenant_id: Uuid,
        delegator: &Delegator,
        delegate: Uuid,
    ) -> Result<Vec<Delegation>, StoreError> {
        let (_, who) = row::delegator_columns(delegator);
        let sql = format!(
            "SELECT {DELEGATION_COLS} FROM delegations WHERE tenant_id = $1 AND delegate_id = $2 AND delegator = $3 \
             ORDER BY id DESC LIMIT 100"
        );
        let rows = sqlx::query(&sql)
            .bind(tenant_id.to_string())
            .bind(delegate.to_string())
            .bind(who)
            .fetch_all(&self.inner.read)
            .await?;
        rows.iter()
            .map(row::delegation)
            .filter(|d| d.as_ref().map_or(true, |d| d.delegator == *delegator))
            .collect()
    }

    /// The tenant's delegations among `ids` (for checking a token's chain).
    pub async fn delegations_by_ids(&self, tenant_id: Uuid, ids: &[Uuid]) -> Result<Vec<Delegation>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut sql = Sql::new(format!("SELECT {DELEGATION_COLS} FROM delegations WHERE 1 = 1"));
        sql.and("tenant_id = ?", vec![Arg::Text(tenant_id.to_string())]);
        let marks: Vec<String> = ids.iter().map(|id| sql.bind_next(Arg::Text(id.to_string()))).collect();
        sql.push(&format!(" AND id IN ({})", marks.join(", ")));
        sql.fetch_all(self).await?.iter().map(row::delegation).collect()
    }

    /// A tenant's trusted issuers.
    pub async fn trusted_issuers(&self, tenant_id: Uuid) -> Result<Vec<TrustedIssuer>, StoreError> {
        let sql = format!("SELECT {ISSUER_COLS} FROM trusted_issuers WHERE tenant_id = $1 ORDER BY id");
        let rows = sqlx::query(&sql)
            .bind(tenant_id.to_string())
            .fetch_all(&self.inner.read)
            .await?;
        rows.iter().map(row::trusted_issuer).collect()
    }

    /// A tenant's token lifetimes: `(class, seconds)`, class empty for the
    /// tenant's default.
    pub async fn token_ttls(&self, tenant_id: Uuid) -> Result<Vec<(String, i64)>, StoreError> {
        let rows = sqlx::query("SELECT class, ttl_secs FROM token_ttls WHERE tenant_id = $1 ORDER BY class")
            .bind(tenant_id.to_string())
            .fetch_all(&self.inner.read)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get::<String, _>("class")?, r.try_get::<i64, _>("ttl_secs")?)))
            .collect()
    }

    /// One agent of a tenant.
    pub async fn agent(&self, tenant_id: Uuid, id: Uuid) -> Result<Option<Agent>, StoreError> {
        let sql = format!("SELECT {AGENT_COLS} FROM agents WHERE tenant_id = $1 AND id = $2");
        let r = sqlx::query(&sql)
            .bind(tenant_id.to_string())
            .bind(id.to_string())
            .fetch_optional(&self.inner.read)
            .await?;
        r.as_ref().map(row::agent).transpose()
    }

    /// A tenant's agents matching `f`, in id (creation) order.
    pub async fn agents(&self, tenant_id: Uuid, f: &AgentFilter) -> Result<Vec<Agent>, StoreError> {
        let mut sql = Sql::new(format!("SELECT {AGENT_COLS} FROM agents WHERE 1 = 1"));
        sql.and("tenant_id = ?", vec![Arg::Text(tenant_id.to_string())]);
        if let Some(a) = f.after {
            sql.and("id > ?", vec![Arg::Text(a.to_string())]);
        }
        if let Some(s) = f.status {
            sql.and("status = ?", vec![Arg::Text(s.as_str().into())]);
        }
        if let Some(o) = &f.owner {
            sql.and("owner = ?", vec![Arg::Text(o.clone())]);
        }
        if let Some(e) = f.environment {
            sql.and("environment = ?", vec![Arg::Text(e.as_str().into())]);
        }
        if let Some(c) = &f.class {
            sql.and("class = ?", vec![Arg::Text(c.clone())]);
        }
        if let Some(p) = &f.name_prefix {
            let len = i64::try_from(p.chars().count()).unwrap_or(i64::MAX);
            // PostgreSQL's substr takes an integer, and parameters arrive as bigint.
            sql.and(
                "substr(name, 1, CAST(? AS INTEGER)) = ?",
                vec![Arg::Int(len), Arg::Text(p.clone())],
            );
        }
        for (k, v) in &f.labels {
            sql.and(
                // Driven by the label index rather than probing it per agent.
                "id IN (SELECT agent_id FROM agent_labels WHERE tenant_id = ? AND key = ? AND value = ?)",
                vec![
                    Arg::Text(tenant_id.to_string()),
                    Arg::Text(k.clone()),
                    Arg::Text(v.clone()),
                ],
            );
        }
        let lim = sql.bind_next(Arg::Int(f.limit));
        sql.push(&format!(" ORDER BY id LIMIT {lim}"));
        sql.fetch_all(self).await?.iter().map(row::agent).collect()
    }

    /// Audit events matching `f`, in chain order.
    pub async fn audit_events(&self, f: &AuditFilter) -> Result<Vec<Event>, StoreError> {
        let mut sql = Sql::new(format!("SELECT {EVENT_COLS} FROM audit_events WHERE 1 = 1"));
        sql.and("seq > ?", vec![Arg::Int(f.after_seq)]);
        if let Some(t) = f.tenant_id {
            sql.and("tenant_id = ?", vec![Arg::Text(t.to_string())]);
        }
        if let Some(a) = &f.action {
            sql.and("action = ?", vec![Arg::Text(a.clone())]);
        }
        if let Some(t) = &f.target_id {
            sql.and("target_id = ?", vec![Arg::Text(t.clone())]);
        }
        if let Some(t) = f.actor_token_id {
            sql.and("actor_token_id = ?", vec![Arg::Text(t.to_string())]);
        }
        if let Some(o) = f.outcome {
            sql.and("outcome = ?", vec![Arg::Text(o.as_str().into())]);
        }
        if let Some(t) = f.since {
            sql.and("time >= ?", vec![Arg::Int(t.as_micros())]);
        }
        if let Some(t) = f.until {
            sql.and("time < ?", vec![Arg::Int(t.as_micros())]);
        }
        let lim = sql.bind_next(Arg::Int(f.limit));
        sql.push(&format!(" ORDER BY seq LIMIT {lim}"));
        sql.fetch_all(self).await?.iter().map(row::event).collect()
    }

    /// The whole chain's events after `after_seq`, in order, at most `limit`:
    /// what a verifier walks. Same result as [`Store::audit_events`] without
    /// filters, read several times faster.
    pub async fn audit_chain_page(&self, after_seq: i64, limit: i64) -> Result<Vec<Event>, StoreError> {
        let row = sqlx::query(self.inner.dialect.packed_events_sql())
            .bind(after_seq)
            .bind(limit)
            .fetch_one(&self.inner.read)
            .await?;
        let page: String = row.try_get("page")?;
        row::packed_events(&page)
    }

    /// Whether any job is due and not leased at `now`: a cheap read that lets
    /// an idle node skip the claiming write (and its commit).
    pub async fn has_due_jobs(&self, now: Timestamp, kinds: crate::JobKinds) -> Result<bool, StoreError> {
        let (kind, bound) = kinds.condition(2);
        let sql = format!(
            "SELECT COUNT(*) AS n FROM (SELECT 1 FROM jobs WHERE run_at <= $1 \
             AND (locked_until IS NULL OR locked_until < $1){kind} LIMIT 1) AS due"
        );
        let mut q = sqlx::query(&sql).bind(now.as_micros());
        if let Some(k) = bound {
            q = q.bind(k);
        }
        let row = q.fetch_one(&self.inner.read).await?;
        Ok(row.try_get::<i64, _>("n")? > 0)
    }

    /// The last event of the chain.
    pub async fn audit_head(&self) -> Result<Head, StoreError> {
        let mut conn = self.inner.read.acquire().await?;
        crate::writer::read_head(&mut conn).await
    }

    /// Number of agents in a tenant (for metrics and export progress).
    pub async fn count_agents(&self, tenant_id: Option<Uuid>) -> Result<i64, StoreError> {
        let r = match tenant_id {
            Some(t) => {
                sqlx::query("SELECT COUNT(*) AS n FROM agents WHERE tenant_id = $1")
                    .bind(t.to_string())
                    .fetch_one(&self.inner.read)
                    .await?
            }
            None => {
                sqlx::query("SELECT COUNT(*) AS n FROM agents")
                    .fetch_one(&self.inner.read)
                    .await?
            }
        };
        Ok(r.try_get::<i64, _>("n")?)
    }
}
