//! `/v1/token-ttls`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::DurationValue;

/// `PUT /v1/token-ttls/{class}`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenTtlSet {
    /// Lifetime (seconds or text like `10m`), at most the server's maximum.
    pub ttl: DurationValue,
}

/// One access token lifetime setting.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct TokenTtlView {
    /// An agent class, or `*` for the tenant's default.
    pub class: String,
    /// Seconds.
    pub ttl_secs: i64,
}

/// `GET /v1/token-ttls`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct TokenTtls {
    /// The server's default, used when the tenant sets none.
    pub server_default_secs: i64,
    /// The hard maximum no setting may exceed.
    pub max_secs: i64,
    /// The tenant's settings.
    pub items: Vec<TokenTtlView>,
}
