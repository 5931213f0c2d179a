//! Single sign-on: each tenant's OpenID Connect provider, its client secret
//! sealed (the caller seals and opens it; the store never sees it plain).

use std::collections::BTreeMap;

use idv_core::admin_token::Role;
use idv_core::audit::{Action, TargetType};
use idv_core::sso::SsoConfig;
use serde_json::json;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use uuid::Uuid;

use crate::audit::{draft, with_details};
use crate::command::{Applied, Command, Context, Effect, typed_writes};
use crate::row::{corrupt, json as json_col, to_json, ts, uuid};
use crate::{Store, StoreError};

const SSO_COLS: &str =
    "tenant_id, issuer, client_id, sealed_secret, scopes, groups_claim, role_map, updated_at, updated_by";

fn sso(row: &AnyRow) -> Result<(SsoConfig, Vec<u8>), StoreError> {
    let roles: BTreeMap<String, String> = json_col(row, "role_map")?;
    let role_map = roles
        .into_iter()
        .map(|(g, r)| Ok((g, r.parse::<Role>().map_err(|e| corrupt("role_map", e))?)))
        .collect::<Result<_, StoreError>>()?;
    Ok((
        SsoConfig {
            tenant_id: uuid(row, "tenant_id")?,
            issuer: row.try_get("issuer")?,
            client_id: row.try_get("client_id")?,
            scopes: json_col(row, "scopes")?,
            groups_claim: row.try_get("groups_claim")?,
            role_map,
            updated_at: ts(row, "updated_at")?,
            updated_by: row.try_get("updated_by")?,
        },
        row.try_get("sealed_secret")?,
    ))
}

fn roles_json(c: &SsoConfig) -> String {
    let m: BTreeMap<&str, &str> = c.role_map.iter().map(|(g, r)| (g.as_str(), r.as_str())).collect();
    to_json(&m)
}

pub(crate) async fn put(
    conn: &mut AnyConnection,
    c: SsoConfig,
    sealed_secret: Vec<u8>,
    ctx: &Context,
) -> Result<Effect, StoreError> {
    sqlx::query("DELETE FROM sso_providers WHERE tenant_id = $1")
        .bind(c.tenant_id.to_string())
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO sso_providers (tenant_id, issuer, client_id, sealed_secret, scopes, groups_claim, role_map, \
         updated_at, updated_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(c.tenant_id.to_string())
    .bind(c.issuer.clone())
    .bind(c.client_id.clone())
    .bind(sealed_secret)
    .bind(to_json(&c.scopes))
    .bind(c.groups_claim.clone())
    .bind(roles_json(&c))
    .bind(c.updated_at.as_micros())
    .bind(c.updated_by.clone())
    .execute(&mut *conn)
    .await?;
    let d = with_details(
        draft(ctx, c.tenant_id, Action::SsoPut, TargetType::Sso, "oidc".to_owned()),
        json!({
            "issuer": c.issuer, "client_id": c.client_id, "scopes": c.scopes, "groups_claim": c.groups_claim,
            "role_map": c.role_map.iter().map(|(g, r)| (g.clone(), r.as_str())).collect::<BTreeMap<_, _>>(),
        }),
    );
    Ok((Applied::Sso(Box::new(c)), vec![d]))
}

pub(crate) async fn delete(conn: &mut AnyConnection, tenant_id: Uuid, ctx: &Context) -> Result<Effect, StoreError> {
    let done = sqlx::query("DELETE FROM sso_providers WHERE tenant_id = $1")
        .bind(tenant_id.to_string())
        .execute(&mut *conn)
        .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound {
            what: "single sign-on provider",
            id: "oidc".into(),
        });
    }
    let d = draft(ctx, tenant_id, Action::SsoDelete, TargetType::Sso, "oidc".to_owned());
    Ok((Applied::Done, vec![d]))
}

impl Store {
    /// The tenant's provider and its sealed client secret, if set.
    pub async fn sso(&self, tenant_id: Uuid) -> Result<Option<(SsoConfig, Vec<u8>)>, StoreError> {
        let sql = format!("SELECT {SSO_COLS} FROM sso_providers WHERE tenant_id = $1");
        let r = sqlx::query(&sql)
            .bind(tenant_id.to_string())
            .fetch_optional(&self.inner.read)
            .await?;
        r.as_ref().map(sso).transpose()
    }
}

typed_writes! {
    /// Sets (or replaces) the tenant's provider.
    fn put_sso(config: SsoConfig, sealed_secret: Vec<u8>) -> SsoConfig {
        Command::PutSso { config: Box::new(config), sealed_secret } => Applied::Sso(c) => *c
    }

    /// Removes the tenant's provider.
    fn delete_sso(tenant_id: Uuid) {
        Command::DeleteSso { tenant_id }
    }
}
