//! Tenants: creating one, and reading them back.

use idv_core::audit::{Action, TargetType};
use idv_core::tenant::Tenant;
use serde_json::json;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use uuid::Uuid;

use crate::audit::{draft, with_details};
use crate::command::{Applied, Command, Context, Effect, typed_writes};
use crate::read::{Arg, Sql};
use crate::row::{ts, uuid};
use crate::{Store, StoreError};

pub(crate) const TENANT_COLS: &str = "id, name, display_name, created_at";

pub(crate) fn tenant(row: &AnyRow) -> Result<Tenant, StoreError> {
    Ok(Tenant {
        id: uuid(row, "id")?,
        name: row.try_get("name")?,
        display_name: row.try_get("display_name")?,
        created_at: ts(row, "created_at")?,
    })
}

pub(crate) async fn create(conn: &mut AnyConnection, t: Tenant, ctx: &Context) -> Result<Effect, StoreError> {
    let taken = sqlx::query("SELECT 1 FROM tenants WHERE name = $1")
        .bind(t.name.clone())
        .fetch_optional(&mut *conn)
        .await?;
    if taken.is_some() {
        return Err(StoreError::Conflict(format!(
            "a tenant named `{}` already exists",
            t.name
        )));
    }
    sqlx::query("INSERT INTO tenants (id, name, display_name, created_at) VALUES ($1, $2, $3, $4)")
        .bind(t.id.to_string())
        .bind(t.name.clone())
        .bind(t.display_name.clone())
        .bind(t.created_at.as_micros())
        .execute(&mut *conn)
        .await?;
    let d = with_details(
        draft(ctx, t.id, Action::TenantCreate, TargetType::Tenant, t.id.to_string()),
        json!({ "name": t.name, "display_name": t.display_name }),
    );
    Ok((Applied::Tenant(t), vec![d]))
}

impl Store {
    /// A tenant by id.
    pub async fn tenant(&self, id: Uuid) -> Result<Option<Tenant>, StoreError> {
        let sql = format!("SELECT {TENANT_COLS} FROM tenants WHERE id = $1");
        let r = sqlx::query(&sql)
            .bind(id.to_string())
            .fetch_optional(&self.inner.read)
            .await?;
        r.as_ref().map(tenant).transpose()
    }

    /// A tenant by name.
    pub async fn tenant_by_name(&self, name: &str) -> Result<Option<Tenant>, StoreError> {
        let sql = format!("SELECT {TENANT_COLS} FROM tenants WHERE name = $1");
        let r = sqlx::query(&sql)
            .bind(name.to_owned())
            .fetch_optional(&self.inner.read)
            .await?;
        r.as_ref().map(tenant).transpose()
    }

    /// Tenants in id order, after `after`.
    pub async fn tenants(&self, after: Option<Uuid>, limit: i64) -> Result<Vec<Tenant>, StoreError> {
        let mut sql = Sql::new(format!("SELECT {TENANT_COLS} FROM tenants WHERE 1 = 1"));
        if let Some(a) = after {
            sql.and("id > ?", vec![Arg::Text(a.to_string())]);
        }
        let lim = sql.bind_next(Arg::Int(limit));
        sql.push(&format!(" ORDER BY id LIMIT {lim}"));
        sql.fetch_all(self).await?.iter().map(tenant).collect()
    }
}

typed_writes! {
    /// Creates a tenant (its name must be free).
    fn create_tenant(tenant: Tenant) -> Tenant {
        Command::CreateTenant(tenant) => Applied::Tenant(t) => t
    }
}
