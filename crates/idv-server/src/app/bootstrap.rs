//! First start: the default tenant and the bootstrap platform admin token.

use anyhow::bail;
use idv_core::admin_token::{self, AdminToken, Role};
use idv_core::tenant::{DEFAULT_TENANT, Tenant};
use idv_store::{Context, StoreError};

use crate::AppState;

/// What bootstrapping did.
#[derive(Debug)]
pub struct Bootstrap {
    /// The token created on this start, if any.
    pub token: Option<String>,
    /// Whether it came from `IDV_BOOTSTRAP_TOKEN`.
    pub from_env: bool,
}

fn ctx() -> Context {
    Context::system("bootstrap")
}

/// Ensures the default tenant exists and, when no admin token exists yet,
/// creates the bootstrap platform admin token (from `given` or generated).
/// Nodes starting at once on one database take turns (an advisory lock):
/// the first creates the token, the others find it and create none.
pub async fn run(state: &AppState, given: Option<&str>) -> anyhow::Result<Bootstrap> {
    let lock = state.store.bootstrap_lock().await?;
    let done = bootstrap(state, given).await;
    lock.release().await?;
    done
}

async fn bootstrap(state: &AppState, given: Option<&str>) -> anyhow::Result<Bootstrap> {
    let tenant = match state.store.tenant_by_name(DEFAULT_TENANT).await? {
        Some(t) => t,
        None => {
            let t = Tenant {
                id: state.clock.new_id(),
                name: DEFAULT_TENANT.into(),
                display_name: "Default tenant".into(),
                created_at: state.clock.now(),
            };
            match state.store.create_tenant(t, ctx()).await {
                Ok(_) | Err(StoreError::Conflict(_)) => {}
                Err(e) => return Err(e.into()),
            }
            match state.store.tenant_by_name(DEFAULT_TENANT).await? {
                Some(t) => t,
                None => bail!("the default tenant could not be created"),
            }
        }
    };
    if state.store.any_admin_token().await? {
        if given.is_some() {
            tracing::info!("IDV_BOOTSTRAP_TOKEN ignored: admin tokens already exist");
        }
        return Ok(Bootstrap {
            token: None,
            from_env: false,
        });
    }
    let (secret, from_env) = match given {
        Some(t) => {
            if t.starts_with(admin_token::PREFIX) {
                admin_token::check_format(t).map_err(|e| anyhow::anyhow!("IDV_BOOTSTRAP_TOKEN: {e}"))?;
            } else if t.len() < admin_token::MIN_EXTERNAL_LEN || t.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                bail!(
                    "IDV_BOOTSTRAP_TOKEN must be at least {} printable characters without spaces",
                    admin_token::MIN_EXTERNAL_LEN
                );
            }
            (t.to_owned(), true)
        }
        None => (admin_token::generate(), false),
    };
    let token = AdminToken {
        id: state.clock.new_id(),
        tenant_id: tenant.id,
        name: "bootstrap".into(),
        role: Role::Admin,
        platform: true,
        hint: admin_token::hint(&secret),
        created_at: state.clock.now(),
        created_by: "system:bootstrap".into(),
        expires_at: None,
        revoked_at: None,
    };
    let secret_hash = state.token_hasher.hash(&secret);
    state.store.create_admin_token(token, secret_hash, ctx()).await?;
    Ok(Bootstrap {
        token: Some(secret),
        from_env,
    })
}
