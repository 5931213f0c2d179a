//! The issuer a request is addressed to: a tenant and its URLs.

use idv_core::tenant::{DEFAULT_TENANT, Tenant};
use idv_store::StoreError;

use crate::AppState;
use crate::app::AppError;

/// The issuer a request is addressed to: a tenant and the URL it is known
/// by on this route (the default tenant is also served at the root).
#[derive(Clone, Debug)]
pub struct Issuer {
    /// The tenant.
    pub tenant: Tenant,
    /// `iss` of tokens issued through this route.
    pub url: String,
    /// Every issuer URL of this tenant (tokens issued at either are valid).
    pub urls: Vec<String>,
}

impl Issuer {
    /// An endpoint of this issuer (`/oauth2/token`, …).
    pub fn endpoint(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }
}

/// The issuer for `tenant_name` (`None`: the default tenant at the root).
pub async fn issuer(state: &AppState, tenant_name: Option<&str>) -> Result<Issuer, AppError> {
    let name = tenant_name.unwrap_or(DEFAULT_TENANT);
    let tenant = crate::app::tenants::by_name(state, name)
        .await?
        .ok_or_else(|| StoreError::NotFound {
            what: "tenant",
            id: name.to_owned(),
        })?;
    let base = &*state.public_url;
    let tenant_url = format!("{base}/t/{}", tenant.name);
    let urls = if tenant.name == DEFAULT_TENANT {
        vec![base.to_owned(), tenant_url.clone()]
    } else {
        vec![tenant_url.clone()]
    };
    Ok(Issuer {
        url: if tenant_name.is_some() {
            tenant_url
        } else {
            base.to_owned()
        },
        tenant,
        urls,
    })
}
