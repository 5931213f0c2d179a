//! Read models across concepts for dashboards: a tenant's key figures in a
//! few grouped queries, never a row per agent.

use sqlx::Row;
use uuid::Uuid;

use crate::{Store, StoreError};

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
}

impl Store {
    /// The key figures of tenant `tenant_id`.
    pub async fn figures(&self, tenant_id: Uuid) -> Result<Figures, StoreError> {
        let t = tenant_id.to_string();
        let rows = sqlx::query(
            "SELECT status, environment, class, COUNT(*) AS n FROM agents WHERE tenant_id = $1 \
             GROUP BY status, environment, class ORDER BY status, environment, class",
        )
        .bind(t.clone())
        .fetch_all(&self.inner.read)
        .await?;
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
        let count = |sql: &'static str| {
            let t = t.clone();
            async move {
                let r = sqlx::query(sql).bind(t).fetch_one(&self.inner.read).await?;
                Ok::<i64, StoreError>(r.try_get::<i64, _>("n")?)
            }
        };
        Ok(Figures {
            agents,
            pending_approvals: count("SELECT COUNT(*) AS n FROM approvals WHERE tenant_id = $1 AND status = 'pending'")
                .await?,
            live_leases: count(
                "SELECT COUNT(*) AS n FROM leases WHERE tenant_id = $1 AND state IN ('active', 'revocation_pending')",
            )
            .await?,
            live_credentials: count(
                "SELECT COUNT(*) AS n FROM credentials WHERE tenant_id = $1 AND revoked_at IS NULL",
            )
            .await?,
        })
    }
}
