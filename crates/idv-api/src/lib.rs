//! Wire types of the admin API, shared by the server and the CLI. No logic.
//!
//! One module per noun, named after its routes; everything is re-exported
//! here, so callers write `idv_api::AgentView`.
//!
//! Request types reject unknown fields, so a typo in a field name is a clear
//! 400 rather than a silently ignored setting.

mod access_requests;
mod admin_tokens;
mod agents;
mod approvals;
mod audit;
mod authzen;
mod common;
mod credentials;
mod db;
mod delegations;
mod entities;
mod grants;
mod graph;
mod keys;
pub mod oauth;
mod permissions;
mod policies;
mod redacted;
mod roles;
mod rotation_policies;
mod sso;
mod tenants;
mod token_ttls;
mod trusted_issuers;
mod webhooks;

pub use self::access_requests::*;
pub use self::admin_tokens::*;
pub use self::agents::*;
pub use self::approvals::*;
pub use self::audit::*;
pub use self::authzen::*;
pub use self::common::*;
pub use self::credentials::*;
pub use self::db::*;
pub use self::delegations::*;
pub use self::entities::*;
pub use self::grants::*;
pub use self::graph::*;
pub use self::keys::*;
pub use self::oauth::{OAuthErrorBody, TokenForm, TokenLookupForm, TokenResponseBody};
pub use self::permissions::*;
pub use self::policies::*;
pub use self::roles::*;
pub use self::rotation_policies::*;
pub use self::sso::*;
pub use self::tenants::*;
pub use self::token_ttls::*;
pub use self::trusted_issuers::*;
pub use self::webhooks::*;
